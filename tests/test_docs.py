"""Docstring examples run as written and every public name has one; the package's public names
and imports."""

import doctest
import importlib
import importlib.metadata
import inspect
import pathlib
import pkgutil
import re
import subprocess
import sys

import pytest

import lrjax

MODULES = sorted(m.name for m in pkgutil.walk_packages(lrjax.__path__, "lrjax."))
# Examples that change process-wide JAX settings run in a process of their own.
OWN_PROCESS = {"lrjax._compilation_cache"}
PUBLIC = ["lrjax", "lrjax.schedules", "lrjax.search", "lrjax.datasets", "lrjax.plot", "lrjax.engine"]


@pytest.mark.parametrize("name", MODULES)
def test_docstring_examples_run(name, monkeypatch):
    monkeypatch.setenv("MPLBACKEND", "Agg")
    if name in OWN_PROCESS:
        code = f"import doctest, {name} as m; print(doctest.testmod(m, optionflags=doctest.ELLIPSIS).failed)"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
        assert out.returncode == 0 and out.stdout.strip() == "0", out.stdout + out.stderr
        return
    module = importlib.import_module(name)  # lrjax.sweep the attribute is the function
    # A fresh namespace for each docstring, as a reader who copies the example has: it imports
    # what it uses (the module's own globals are not there).
    outcome = doctest.testmod(module, globs={}, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE)
    assert outcome.failed == 0, outcome


@pytest.mark.parametrize("module", PUBLIC)
def test_every_public_function_and_class_has_a_runnable_example(module):
    names = importlib.import_module(module).__all__
    objects = [getattr(importlib.import_module(module), n) for n in names]
    missing = [
        n
        for n, o in zip(names, objects, strict=True)
        if callable(o) and not inspect.ismodule(o) and ">>>" not in (inspect.getdoc(o) or "")
    ]
    assert missing == []


def test_importing_lrjax_or_its_schedules_imports_no_optional_library():
    heavy = ("equinox", "flax", "matplotlib", "orbax", "optuna", "pandas")
    for module in ("lrjax", "lrjax.schedules"):
        code = f"import sys, {module}; print(sorted(m for m in sys.modules if m.split('.')[0] in {heavy}))"
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
        assert out.returncode == 0 and out.stdout.strip() == "[]", out.stdout + out.stderr


def test_importing_lrjax_changes_no_jax_setting():
    code = "import jax; before = dict(jax.config.values); import lrjax; print(before == dict(jax.config.values))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=False)
    assert out.returncode == 0 and out.stdout.strip() == "True", out.stdout + out.stderr


def test_the_public_names_are_the_objects_not_modules():
    assert callable(lrjax.sweep) and lrjax.sweep.__module__ == "lrjax._sweep"
    assert lrjax.__version__ == importlib.metadata.version("lrjax")
    assert lrjax.datasets.digits_mlp and lrjax.plot.schedule  # imported on first use


def test_one_rule_names_learning_rates():
    from lrjax._validate import is_learning_rate

    named = ["learning_rate", "lr", "eta", "head_lr", "encoder_learning_rate", "learning_rate.peak_value", "lr['init']"]
    assert all(is_learning_rate(n) for n in named)
    assert not any(is_learning_rate(n) for n in ["weight_decay", "momentum", "lr_decay", "beta", "flr"])


# What a reader of the docs does not have: the files this library grew from, and how the
# repository is built. Other projects' public issues ("fastai's issue 3185") are references.
FORBIDDEN = re.compile(
    r"shared/|seeds/|\barticles?\b|(?<!'s )\bissues? #?\d+|open issue|this (project's )?(2-core )?(cpu )?machine",
    re.IGNORECASE,
)


def _readable_text() -> dict[str, str]:
    root = pathlib.Path(lrjax.__file__).resolve().parents[1]
    files = [
        root / "README.md",
        *sorted((root / "docs").rglob("*.md")),
        *sorted((root / "lrjax").rglob("*.py")),
        *sorted((root / "notebooks").glob("*.ipynb")),  # their text, code and outputs
    ]
    built = [root / "docs" / d for d in ("_build", "notebooks", "generated")]  # made by the docs build
    return {str(f.relative_to(root)): f.read_text() for f in files if not any(f.is_relative_to(d) for d in built)}


def test_no_page_or_docstring_refers_to_files_or_builds_a_reader_does_not_have():
    found = [f"{name}: {m.group(0)!r}" for name, text in _readable_text().items() for m in FORBIDDEN.finditer(text)]
    assert found == []


def test_the_reference_check_finds_what_it_forbids():
    for text in (
        "see shared/DESIGN.md",
        "as Article 002 says",
        "the open issue on baselines",
        "issue 24",
        "on this machine",
    ):
        assert FORBIDDEN.search(text), text
    assert not FORBIDDEN.search("fastai's issue 3185")
