"""The README's range-test and batch-size snippets run as written and print what they say."""

import pathlib

import matplotlib
import numpy as np

matplotlib.use("Agg")


def _snippet(heading: str) -> str:
    readme = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()
    section = readme[readme.index(heading) :]
    start = section.index("```python\n") + len("```python\n")
    return section[start : section.index("```\n", start)]


def test_the_range_test_snippet(capsys):
    scope = {}
    exec(_snippet("## Choosing a learning rate"), scope)
    finder, check = scope["finder"], scope["check"]
    assert finder.losses.shape == (16, 100) and finder.suggestions["valley"].shape == (2,)
    # The suggestion (the middle column) and its neighbours × 2^-3 … 2^3; the regret is how far
    # the suggestion's final loss is above the best of the seven, per weight decay.
    np.testing.assert_allclose(check.lrs[:, 3], finder.suggestions["valley"], rtol=1e-6)
    np.testing.assert_allclose(check.lrs / check.lrs[:, 3:4], np.broadcast_to(2.0 ** np.arange(-3, 4), (2, 7)))
    np.testing.assert_allclose(check.regret, check.values[:, 3] - check.values.min(axis=1))
    np.testing.assert_allclose(check.best_lr, check.lrs[[0, 1], check.values.argmin(axis=1)])
    assert "minimum_spread" in capsys.readouterr().out


def test_the_batch_size_snippet(capsys):
    scope = {}
    exec(_snippet("## Choosing a batch size"), scope)
    result, noise = scope["result"], scope["noise"]
    assert noise.b_simple > 0 and len(result.to_pandas()) == 24
    assert 16 < result.critical_batch_size < 1024
    assert "examples_per_second" in capsys.readouterr().out


def test_the_search_snippet(tmp_path, monkeypatch, capsys):
    monkeypatch.chdir(tmp_path)
    scope = {}
    exec(_snippet("## Search: random"), scope)
    assert scope["configs"]["learning_rate"].shape == (32,)
    assert len(scope["bayes"].study.trials) == 32 and (tmp_path / "study.db").exists()
    assert scope["halving"].info["utilization"] >= 0.9
    assert scope["pbt"].history["generation"].max() == 10
    assert "parent" in capsys.readouterr().out
