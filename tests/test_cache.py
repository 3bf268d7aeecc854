"""The engine's program cache: bounded, not on the user's objects, and a notebook cell run again
(a new optimizer lambda with the same code) pays no XLA compilation."""

import numpy as np

import lrjax
from lrjax.engine import cache, count_compiles

CELL = 'optimizer = lambda hp: optax.sgd(hp["learning_rate"], momentum=0.9)'


def cell():
    """What re-running a notebook cell does: a new function object with the same code."""
    scope = {"optax": __import__("optax")}
    exec(CELL, scope)
    return scope["optimizer"]


def sweep(task, optimizer):
    return lrjax.sweep(task, optimizer, {"learning_rate": [0.01, 0.1]}, steps=10, eval_every=5, progress=False)


def test_a_rerun_cell_compiles_nothing_and_fifty_leave_a_bounded_cache():
    task = lrjax.datasets.quadratic((1.0, 4.0, 9.0))
    cache.clear()
    first_optimizer = cell()
    with count_compiles() as first:
        reference = sweep(task, first_optimizer)
    assert first.count >= 3  # init, chunk, evaluate (and JAX's own small programs)
    executables = cache.sizes()["executables"]
    for i in range(50):
        optimizer = cell()
        assert optimizer is not first_optimizer
        with count_compiles() as again:
            result = sweep(task, optimizer)
        assert again.count == 0, i
        np.testing.assert_array_equal(result.train_loss, reference.train_loss)
    sizes = cache.sizes()
    assert sizes["program_sets"] == cache.MAX_PROGRAM_SETS  # one per lambda, the oldest evicted
    assert sizes["executables"] == executables  # the same HLO: one executable per program


def test_different_programs_are_not_confused():
    # Same HLO text for init (opt.init ignores the values), different pytree of hyperparameters:
    # the executable cache keys on argument structure too.
    import optax

    task = lrjax.datasets.quadratic((1.0, 4.0, 9.0))
    a = lrjax.sweep(task, lambda hp: optax.sgd(hp["lr"]), {"lr": [0.1]}, steps=5, progress=False)
    b = lrjax.sweep(task, lambda hp: optax.sgd(hp["eta"]), {"eta": [0.1]}, steps=5, progress=False)
    c = lrjax.sweep(task, lambda hp: optax.sgd(hp["eta"] * 2), {"eta": [0.05]}, steps=5, progress=False)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    np.testing.assert_allclose(c.train_loss, a.train_loss, rtol=1e-6)
    d = lrjax.sweep(task, lambda hp: optax.sgd(hp["eta"] * 3), {"eta": [0.05]}, steps=5, progress=False)
    assert not np.allclose(d.train_loss[0, 1:], a.train_loss[0, 1:])
