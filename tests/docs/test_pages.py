"""Every page of the documentation site runs as written: each page's ```python blocks, in order,
in one namespace, as a reader pasting them would (the one ``{code-block}`` of the pages, a
script for several processes, is run by tests/test_multihost.py). Where a page shows a result,
its value is checked."""

import pathlib
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

DOCS = pathlib.Path(__file__).resolve().parents[2] / "docs"
PAGES = sorted(
    p for p in DOCS.rglob("*.md") if not {"_build", "notebooks", "generated"} & set(p.relative_to(DOCS).parts)
)
BLOCK = re.compile(r"^```python\n(.*?)^```$", re.S | re.M)


def run(page: pathlib.Path) -> dict:
    scope: dict = {}
    for k, code in enumerate(BLOCK.findall(page.read_text())):
        exec(compile(code, f"{page.relative_to(DOCS)}[{k}]", "exec"), scope)
    return scope


@pytest.fixture(autouse=True)
def _in_tmp(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # pages that save write there
    yield
    import matplotlib.pyplot as plt

    plt.close("all")


def test_the_site_has_its_pages():
    names = {str(p.relative_to(DOCS)) for p in PAGES}
    assert {"index.md", "getting_started.md", "guides/own_model.md", "api.md", "design/performance.md"} <= names


@pytest.mark.parametrize(
    "page", [p for p in PAGES if BLOCK.search(p.read_text())], ids=lambda p: str(p.relative_to(DOCS))
)
def test_a_page_runs_as_written(page):
    scope = run(page)
    name = str(page.relative_to(DOCS))
    if name == "guides/range_test.md":
        finder, check = scope["finder"], scope["check"]
        assert finder.losses.shape == (16, 100) and finder.suggestions["valley"].shape == (2,)
        # The suggestion (the middle column) and its neighbours × 2^-3 … 2^3; the regret is how far
        # the suggestion's final loss is above the best of the seven, per weight decay.
        np.testing.assert_allclose(check.lrs[:, 3], finder.suggestions["valley"], rtol=1e-6)
        np.testing.assert_allclose(check.lrs / check.lrs[:, 3:4], np.broadcast_to(2.0 ** np.arange(-3, 4), (2, 7)))
        np.testing.assert_allclose(check.regret, check.values[:, 3] - check.values.min(axis=1))
    elif name == "guides/batch_size.md":
        result, noise = scope["result"], scope["noise"]
        assert noise.b_simple > 0 and len(result.to_pandas()) == 24
        assert 16 < result.critical_batch_size < 1024
    elif name == "guides/search.md":
        assert scope["configs"]["learning_rate"].shape == (32,)
        assert len(scope["bayes"].study.trials) == 32 and pathlib.Path("study.db").exists()
        assert scope["halving"].info["utilization"] >= 0.9
        assert scope["pbt"].history["generation"].max() == 10
    elif name == "guides/own_model.md":
        assert scope["task"].rng and scope["task"].stateful
        assert (scope["result"].to_pandas()["eval_accuracy"] > 0.5).all()  # every adapter's sweep learns
    elif name == "guides/plateau.md":
        np.testing.assert_allclose(scope["updates"]["w"], np.full(3, -0.025), rtol=1e-6)
