"""The README's three snippets (a sweep, a range test, a search) run as written and give what
they say."""

import pathlib
import re

import matplotlib
import numpy as np
import pytest

matplotlib.use("Agg")

README = (pathlib.Path(__file__).resolve().parents[1] / "README.md").read_text()


def snippet(heading: str) -> dict:
    section = README[README.index(heading) :]
    code = re.search(r"```python\n(.*?)^```$", section, re.S | re.M).group(1)
    scope: dict = {}
    exec(code, scope)
    return scope


def test_the_readme_is_short():
    assert len(README.splitlines()) <= 150


def test_the_sweep_snippet():
    result = snippet("## A sweep")["result"]
    best = result.best()
    assert result.train_loss.shape == (64, 500) and len(result.to_pandas()) == 64
    # The best configuration by held-out loss, averaged over its two seeds.
    means = np.nanmean(result.by_configuration(result.eval_metrics["loss"][:, -1]), axis=1)
    assert best["loss"] == pytest.approx(float(np.nanmin(means)), rel=1e-6)
    assert list(best["members"]) == list(result.configurations()[int(np.nanargmin(means))])


def test_the_range_test_snippet():
    scope = snippet("## A range test")
    finder, check = scope["finder"], scope["check"]
    assert finder.losses.shape == (8, 100)
    np.testing.assert_allclose(check.lrs[:, 3], finder.suggestions["valley"], rtol=1e-6)
    np.testing.assert_allclose(check.regret, check.values[:, 3] - check.values.min(axis=1))


def test_the_search_snippet():
    result = snippet("## A search")["result"]
    assert result.info["utilization"] > 0 and set(result.best()) >= {"learning_rate", "weight_decay"}
