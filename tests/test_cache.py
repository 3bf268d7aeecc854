"""The engine's program cache: bounded, not on the user's objects, and a notebook cell run again
(a new optimizer lambda with the same code) pays no XLA compilation."""

import numpy as np
import optax

import lrjax
from lrjax.engine import cache, count_compiles


def cell(line=0):
    """What running a notebook cell does: a new function object, here on line ``line`` of it."""
    scope = {"optax": optax}
    exec("\n" * line + 'optimizer = lambda hp: optax.sgd(hp["learning_rate"], momentum=0.9)', scope)
    return scope["optimizer"]


def sweep(task, optimizer):
    return lrjax.sweep(task, optimizer, {"learning_rate": [0.01, 0.1]}, steps=10, eval_every=5, progress=False)


def test_a_rerun_cell_traces_and_compiles_nothing():
    task = lrjax.datasets.quadratic((1.0, 4.0, 9.0))
    cache.clear()
    with count_compiles() as first:
        reference = sweep(task, cell())
    assert first.count >= 3 and reference.info["compile_seconds"] > 0  # init, chunk, evaluate
    for _ in range(5):
        with count_compiles() as again:
            result = sweep(task, cell())
        assert again.count == 0 and result.info["compile_seconds"] == 0.0
        np.testing.assert_array_equal(result.train_loss, reference.train_loss)
    assert cache.sizes()["program_sets"] == 1


def test_fifty_new_optimizers_compile_nothing_and_leave_a_bounded_cache():
    # The same lambda on another line of the cell is another function: traced anew, but it
    # lowers to the same XLA computation, so its executables come from the HLO-keyed cache.
    task = lrjax.datasets.quadratic((1.0, 4.0, 9.0))
    cache.clear()
    reference = sweep(task, cell())
    executables = cache.sizes()["executables"]
    for line in range(1, 51):
        with count_compiles() as again:
            result = sweep(task, cell(line))
        assert again.count == 0, line
        np.testing.assert_array_equal(result.train_loss, reference.train_loss)
    sizes = cache.sizes()
    assert sizes["program_sets"] == cache.MAX_PROGRAM_SETS  # one per function, the oldest evicted
    assert sizes["executables"] == executables  # the same HLO: one executable per program


def test_different_programs_are_not_confused():
    # Same HLO text for init (opt.init ignores the values), different pytree of hyperparameters:
    # the executable cache keys on argument structure too.
    task = lrjax.datasets.quadratic((1.0, 4.0, 9.0))
    a = lrjax.sweep(task, lambda hp: optax.sgd(hp["lr"]), {"lr": [0.1]}, steps=5, progress=False)
    b = lrjax.sweep(task, lambda hp: optax.sgd(hp["eta"]), {"eta": [0.1]}, steps=5, progress=False)
    c = lrjax.sweep(task, lambda hp: optax.sgd(hp["eta"] * 2), {"eta": [0.05]}, steps=5, progress=False)
    np.testing.assert_array_equal(a.train_loss, b.train_loss)
    np.testing.assert_allclose(c.train_loss, a.train_loss, rtol=1e-6)
    d = lrjax.sweep(task, lambda hp: optax.sgd(hp["eta"] * 3), {"eta": [0.05]}, steps=5, progress=False)
    assert not np.allclose(d.train_loss[0, 1:], a.train_loss[0, 1:])


def test_a_changed_global_the_optimizer_reads_is_a_new_program():
    task = lrjax.datasets.quadratic((1.0, 4.0, 9.0))
    source = (
        "WD = {wd}\noptimizer = lambda hp: optax.chain(optax.add_decayed_weights(WD), optax.sgd(hp['learning_rate']))"
    )

    def cell_with(wd):
        scope = {"optax": optax}
        exec(source.format(wd=wd), scope)
        return scope["optimizer"]

    first = sweep(task, cell_with(0.5))
    again = sweep(task, cell_with(0.5))
    assert again.info["compile_seconds"] == 0.0  # the same program set: nothing traced
    np.testing.assert_array_equal(again.train_loss, first.train_loss)
    changed = sweep(task, cell_with(2.0))  # the global the lambda reads changed: a new program
    assert not np.allclose(changed.train_loss[:, 1:], first.train_loss[:, 1:])
    assert (
        cache.function_key(cell_with(0.5)) == cache.function_key(cell_with(0.5)) != cache.function_key(cell_with(2.0))
    )


def test_functions_reading_mutable_values_are_keyed_by_identity():
    weights = [1.0]
    f = lambda hp: weights[0] * hp
    g = lambda hp: weights[0] * hp
    assert cache.function_key(f) is f and cache.function_key(f) != cache.function_key(g)
    array = np.ones(3)
    h = lambda hp: array * hp
    assert cache.function_key(h) is h


def test_a_new_population_of_known_functions_traces_nothing_on_the_host():
    """The optimizer-reads check and the member-size estimate trace the optimizer from shapes;
    the engine remembers both per (task, optimizer, config structure), so a second population
    (a range test run again, a sweep's next memory group) calls the optimizer 0 times; a
    config structure it has not seen is checked again."""
    task = lrjax.datasets.quadratic((1.0, 4.0))
    calls = []

    def optimizer(hp):
        calls.append(1)
        return optax.sgd(hp["learning_rate"])

    lrjax.Population(task, optimizer, {"learning_rate": [0.1, 0.2]})
    assert calls  # checked, sized and traced into programs
    calls.clear()
    lrjax.Population(task, optimizer, {"learning_rate": [0.3, 0.4]})
    assert calls == []
    with np.testing.assert_raises_regex(ValueError, r"configs\['momentum'\] is never read"):
        lrjax.Population(task, optimizer, {"learning_rate": [0.3], "momentum": [0.9]})
