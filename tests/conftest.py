"""Hypothesis profiles (random exploration locally, a fixed derandomized search in CI), and
shared session-scoped tasks and optimizers, so compiled programs are reused across tests."""

import os

import optax
import pytest
from hypothesis import settings

import lrjax.datasets as D

settings.register_profile("ci", derandomize=True, print_blob=True)
settings.register_profile("dev")
settings.load_profile("ci" if os.environ.get("CI") else "dev")


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
