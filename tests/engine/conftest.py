"""Shared, session-scoped tasks and optimizers, so compiled sweep programs are reused."""

import optax
import pytest

import lrjax
import lrjax.datasets as D


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


def run(task, optimizer, configs, **kwargs):
    kwargs.setdefault("progress", False)
    return lrjax.sweep(task, optimizer, configs, **kwargs)
