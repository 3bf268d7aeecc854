"""In a real Jupyter kernel: a figure is displayed once, returned or not, the progress bar is a widget
(no "IProgress not found" fallback), and the reprs are short."""

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")

CELLS = [
    "import optax, lrjax",
    'result = lrjax.sweep(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]), '
    '{"learning_rate": [0.01, 0.1, 0.5]}, steps=60, eval_every=20)',
    "result.plot()",
    "lrjax.plot.schedule(lrjax.schedules.cosine_decay(0.1, decay_steps=100), 100);",
    "result",
    "figure = result.plot()",  # shown though not returned, as plt.subplots's figures are
    "figure",  # shown again on request, once
]


def test_a_notebook_shows_each_figure_once_and_a_widget_progress_bar(tmp_path, monkeypatch):
    notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(c) for c in CELLS])
    notebook.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
    monkeypatch.setenv("JAX_PLATFORMS", "cpu")
    monkeypatch.delenv("MPLBACKEND", raising=False)  # the kernel's own inline backend
    client = nbclient.NotebookClient(
        notebook, timeout=240, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    outputs = [cell.outputs for cell in notebook.cells]
    images = lambda cell: sum("image/png" in o.get("data", {}) for o in cell)
    assert [images(o) for o in outputs] == [0, 0, 1, 1, 0, 1, 1]  # each figure once, not twice
    sweep_output = "".join(o.get("text", "") for o in outputs[1] if o.get("output_type") == "stream")
    assert "IProgress not found" not in sweep_output
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in outputs[1])  # tqdm's widget
    (shown,) = [o for o in outputs[4] if o.get("output_type") == "execute_result"]
    assert shown["data"]["text/plain"].startswith("SweepResult(task='linear_regression', members=3")
