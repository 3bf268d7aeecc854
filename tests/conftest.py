"""Hypothesis profiles (random exploration locally, a fixed derandomized search in CI), and
shared session-scoped tasks and optimizers, so compiled programs are reused across tests."""

import os
import sys

import optax
import pytest
from hypothesis import settings

import lrjax.datasets as D

# No deadline: the examples' speed on two busy cores is not what these tests check.
settings.register_profile("ci", derandomize=True, print_blob=True, deadline=None)
settings.register_profile("dev", deadline=None)
settings.load_profile("ci" if os.environ.get("CI") else "dev")


@pytest.fixture(autouse=True)
def _no_compilation_cache_from_the_command_line(monkeypatch):
    """The command line switches on JAX's persistent compilation cache for its process; called
    in the test process it would do so for every later test (whose compile counts would then
    depend on what earlier tests left on disk). tests/test_plot_cli.py checks it in processes
    of its own."""
    import lrjax.cli

    monkeypatch.setattr(lrjax.cli, "enable_compilation_cache", lambda: None)


@pytest.fixture(autouse=True)
def _figures_closed_after_each_test():
    """lrjax.plot's figures live in pyplot, as plt.subplots's do: a test closes what it drew."""
    yield
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close("all")


@pytest.fixture(scope="session")
def digits():
    return D.digits_mlp(hidden=(16,))


@pytest.fixture(scope="session")
def quadratic():
    return D.quadratic((1.0, 10.0))


@pytest.fixture(scope="session")
def sgd():
    return lambda hp: optax.sgd(hp["learning_rate"])


@pytest.fixture(scope="session")
def adam():
    return lambda hp: optax.adam(hp["learning_rate"])
