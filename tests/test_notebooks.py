"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel, and the committed
copy is what that run shows: every code cell executed in order, its outputs kept."""

import pathlib
import re

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

NOTEBOOKS = sorted((pathlib.Path(__file__).resolve().parents[1] / "notebooks").glob("*.ipynb"))


def execute(notebook, cwd):
    """Run ``notebook`` in a fresh kernel, in place; a failing cell raises `CellExecutionError`.
    A cell may take at most a minute."""
    client = nbclient.NotebookClient(
        notebook, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(cwd)}}
    )
    client.execute()
    return notebook


# The one warning a notebook may show that depends on the reader's jaxlib, not on the notebook:
# a compile option that XLA no longer knows (`lrjax.engine.options`).
OPTION_WARNING = re.compile(
    r"^.*RuntimeWarning: lrjax: XLA on \w+ \(jaxlib [^)]*\) does not accept the compile options.*\n.*\n?$"
)


def kinds(cell):
    """What a reader sees of a code cell's outputs: the streams and the data types shown."""
    shown = set()
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stderr" and OPTION_WARNING.match(output.text):
            continue
        if output.output_type == "stream":
            shown.add(("stream", output.name))
        elif output.output_type in ("display_data", "execute_result"):
            shown.update(("data", mime) for mime in output.data)
        else:
            shown.add((output.output_type,))
    return shown


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_schedules.ipynb"]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_a_notebook_runs_and_its_committed_outputs_are_that_run(path, monkeypatch, tmp_path):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the notebooks' compilation cache: a fresh one
    monkeypatch.delenv("MPLBACKEND", raising=False)
    committed = nbformat.read(path, as_version=4)
    code = [c for c in committed.cells if c.cell_type == "code"]
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom, once, and save"
    fresh = execute(nbformat.read(path, as_version=4), path.parent)
    ran = [c for c in fresh.cells if c.cell_type == "code"]
    assert [kinds(c) for c in code] == [kinds(c) for c in ran]  # outputs kept: the same figures, tables and text
    assert not any(("stream", "stderr") in kinds(c) for c in ran), "no warnings in the notebook"


def test_the_runner_fails_on_a_broken_cell(tmp_path):
    broken = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('broken')")]
    )
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="broken"):
        execute(broken, tmp_path)
