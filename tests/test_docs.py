"""Docstring examples run as written; the package's public names and imports."""

import doctest
import importlib
import importlib.metadata

import pytest


@pytest.mark.parametrize("name", ["lrjax._population", "lrjax._sweep", "lrjax._plateau"])
def test_docstring_examples_run(name):
    module = importlib.import_module(name)  # lrjax.sweep the attribute is the function
    outcome = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert outcome.attempted > 0 and outcome.failed == 0, outcome


def test_importing_lrjax_or_its_schedules_imports_neither_flax_nor_matplotlib():
    import subprocess
    import sys

    for module in ("lrjax", "lrjax.schedules"):
        code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in ('flax', 'matplotlib', 'orbax')))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
        assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_the_public_names_are_the_objects_not_modules():
    import lrjax

    assert callable(lrjax.sweep) and lrjax.sweep.__module__ == "lrjax._sweep"
    assert lrjax.__version__ == importlib.metadata.version("lrjax")
    assert lrjax.datasets.digits_mlp and lrjax.plot.schedule  # imported on first use


def test_one_rule_names_learning_rates():
    from lrjax._validate import is_learning_rate

    named = ["learning_rate", "lr", "eta", "head_lr", "encoder_learning_rate", "learning_rate.peak_value", "lr['init']"]
    assert all(is_learning_rate(n) for n in named)
    assert not any(is_learning_rate(n) for n in ["weight_decay", "momentum", "lr_decay", "beta", "flr"])
