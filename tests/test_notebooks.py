"""Every notebook in notebooks/ runs top to bottom in a real Jupyter kernel, and the committed
copy is what that run shows: every code cell executed in order, its outputs kept, and, on the
versions of JAX and jaxlib that produced them (recorded in the notebook), its printed numbers
equal within `RTOL` or one unit of their last printed digit (cells tagged ``timing`` excepted:
their numbers are seconds). tests/docs/test_notebooks_on_two_devices.py checks the same on two
CPU devices.

Two notebooks train chaotic models (a BatchNorm ResNet and a transformer at their largest
learning rates, a stream-fed MLP near its edge of stability): a last-bit difference in a float32
sum, from another number of devices or cores, grows to another second digit over their steps. Their
outputs are not committed; the docs build executes them (docs/conf.py)."""

import math
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


NUMBER = re.compile(r"[-+]?(?:\d+\.\d*|\.\d+|\d+)(?:[eE][-+]?\d+)?")
RTOL = 1e-4  # float32 summation order; a printed number may also differ by one in its last digit


def printed(cell) -> str:
    """The text a code cell shows: its stdout and its results' plain text."""
    parts = []
    for output in cell.outputs:
        if output.output_type == "stream" and output.name == "stdout":
            parts.append(output.text)
        elif output.output_type in ("display_data", "execute_result") and "text/plain" in output.data:
            parts.append(output.data["text/plain"])
    return "".join(parts)


def differences(committed: str, fresh: str, numbers: bool = True) -> list[str]:
    """Where ``fresh`` shows other text than ``committed`` or, with ``numbers``, a number
    further from the committed one than `RTOL` and one unit of its last printed digit."""
    skeleton = lambda text: "".join(NUMBER.sub("#", text).split())  # the layout aside (padding, wrapping)
    if skeleton(committed) != skeleton(fresh):
        return [f"text: {committed[:200]!r} became {fresh[:200]!r}"]
    if not numbers:
        return []
    out = []
    for a, b in zip(NUMBER.findall(committed), NUMBER.findall(fresh), strict=True):
        digits = len(a.split(".")[1].split("e")[0].split("E")[0]) if "." in a else 0
        unit = 10.0**-digits * (10.0 ** int(a.lower().split("e")[1]) if "e" in a.lower() else 1.0)
        if not math.isclose(float(a), float(b), rel_tol=RTOL, abs_tol=1.01 * unit):
            out.append(f"{a} became {b}")
    return out


def versions() -> dict[str, str]:
    import importlib.metadata as m

    return {name: m.version(name) for name in ("jax", "jaxlib")}


def test_there_are_notebooks():
    assert [p.name for p in NOTEBOOKS][:1] == ["01_schedules.ipynb"]


def run_by_the_docs_build(notebook) -> bool:
    """Whether the docs build executes ``notebook`` (myst-nb's notebook metadata
    ``mystnb.execution_mode``) rather than render its committed outputs."""
    return notebook.metadata.get("mystnb", {}).get("execution_mode") == "force"


COMMITTED = [p for p in NOTEBOOKS if not run_by_the_docs_build(nbformat.read(p, as_version=4))]


def against_a_fresh_run(path: pathlib.Path) -> list[str]:
    """Run the notebook at ``path`` in a fresh kernel (and compilation cache, set by the caller):
    where its committed outputs differ from that run's. A notebook the docs build runs must run,
    and be stored without outputs."""
    committed = nbformat.read(path, as_version=4)
    code = [c for c in committed.cells if c.cell_type == "code"]
    fresh = execute(nbformat.read(path, as_version=4), path.parent)
    ran = [c for c in fresh.cells if c.cell_type == "code"]
    assert not any(("stream", "stderr") in kinds(c) for c in ran), "no warnings in the notebook"
    if run_by_the_docs_build(committed):
        assert all(not c.outputs and c.execution_count is None for c in code), "store it without outputs"
        return []
    assert [c.execution_count for c in code] == list(range(1, len(code) + 1)), "run top to bottom, once, and save"
    assert [kinds(c) for c in code] == [kinds(c) for c in ran]  # outputs kept: the same figures, tables and text
    produced = committed.metadata.get("lrjax", {}).get("versions")
    assert produced, "record the versions that produced the outputs (notebook metadata lrjax.versions)"
    same = produced == versions()  # other versions may round floats otherwise: the text is compared
    return [
        f"cell {i}: {d}"
        for i, (c, f) in enumerate(zip(code, ran, strict=True))
        for d in differences(printed(c), printed(f), numbers=same and "timing" not in c.metadata.get("tags", []))
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_a_notebook_runs_and_its_committed_outputs_are_that_run(path, monkeypatch, tmp_path):
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))  # the notebooks' compilation cache: a fresh one
    monkeypatch.delenv("MPLBACKEND", raising=False)
    assert against_a_fresh_run(path) == [], f"committed outputs against a fresh run on {versions()}"


def test_the_docs_build_runs_only_the_chaotic_notebooks():
    assert sorted({p.name for p in NOTEBOOKS} - {p.name for p in COMMITTED}) == [
        "08_real_models.ipynb",
        "09_streaming_data.ipynb",
    ]


def test_the_runner_fails_on_a_broken_cell(tmp_path):
    broken = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_code_cell("x = 1"), nbformat.v4.new_code_cell("raise ValueError('broken')")]
    )
    broken.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    with pytest.raises(nbclient.exceptions.CellExecutionError, match="broken"):
        execute(broken, tmp_path)


def test_the_output_check_fails_on_a_changed_output():
    committed = "best learning rate 0.0152: eval loss 0.062 (mean of 2 seeds)\n   steps  loss\n0    100  1.2345\n"
    assert differences(committed, committed) == []
    assert differences(committed, committed.replace("0.062", "0.063")) == []  # one unit of the last digit
    assert differences(committed, committed.replace("0.062", "0.064")) == ["0.062 became 0.064"]
    assert differences(committed, committed.replace("1.2345", "1.2351")) == ["1.2345 became 1.2351"]
    assert differences(committed, committed.replace("eval loss", "train loss"))  # other text
    assert differences("[0.188 0.3  ]", "[0.188 0.31 ]") == []  # NumPy pads to a common width
    assert differences(committed, committed.replace("0.062", "0.064"), numbers=False) == []  # timings
