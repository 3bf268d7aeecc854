"""Bad input raises a clear error before anything is compiled."""

import jax
import numpy as np
import optax
import pytest

import lrjax
from lrjax.engine import count_compiles
from tests.engine.conftest import run


def raises_before_compiling(error, message, make):
    with count_compiles() as log, pytest.raises(error, match=message):
        make()
    assert log.count == 0


@pytest.mark.parametrize(
    "configs, kwargs, error, message",
    [
        (
            {"learning_rate": [0.1, 0.2], "momentum": [0.9]},
            {},
            ValueError,
            r"configs must all have the same length, got \{'learning_rate': 2, 'momentum': 1\}",
        ),
        (
            {"learning_rate": [0.1, float("nan")]},
            {},
            ValueError,
            r"configs\['learning_rate'\] must be finite, got nan in \[0.1, nan\]",
        ),
        ({"learning_rate": [0.1, np.inf]}, {}, ValueError, r"configs\['learning_rate'\] must be finite"),
        ({"learning_rate": [0.1, -0.01]}, {}, ValueError, r"configs\['learning_rate'\] must be >= 0, got -0.01"),
        ({"eta": [0.1, -1e-3]}, {}, ValueError, r"configs\['eta'\] must be >= 0, got -0.001"),
        ({"head_lr": [-0.5]}, {}, ValueError, r"configs\['head_lr'\] must be >= 0, got -0.5"),
        ({"learning_rate": 0.1}, {}, ValueError, r"configs\['learning_rate'\] must have one value per configuration"),
        ({}, {}, ValueError, "configs must be a non-empty dict"),
        ({"learning_rate": ["a", "b"]}, {}, TypeError, r"configs\['learning_rate'\] must be numeric"),
        ({"learning_rate": [0.1]}, {"batch_size": 0}, ValueError, "batch_size must be >= 1, got 0"),
        ({"learning_rate": [0.1]}, {"batch_size": -4}, ValueError, "batch_size must be >= 1, got -4"),
        (
            {"learning_rate": [0.1]},
            {"batch_size": 100_000},
            ValueError,
            r"batch_size must be <= the number of training examples \(1438\), got 100000",
        ),
        ({"learning_rate": [0.1]}, {"steps": 0}, ValueError, "steps must be >= 1, got 0"),
        ({"learning_rate": [0.1]}, {"steps": -5}, ValueError, "steps must be >= 1, got -5"),
        ({"learning_rate": [0.1]}, {"steps": 2.5}, TypeError, "steps must be an integer, got 2.5"),
        ({"learning_rate": [0.1]}, {"steps": 10, "seeds": 0}, ValueError, "seeds must be >= 1, got 0"),
        ({"learning_rate": [0.1]}, {"steps": 10, "eval_every": 0}, ValueError, "eval_every must be >= 1, got 0"),
    ],
)
def test_bad_sweep_arguments(digits, sgd, configs, kwargs, error, message):
    kwargs = {"steps": 10, **kwargs}
    raises_before_compiling(error, message, lambda: run(digits, sgd, configs, **kwargs))


def test_bad_task_and_optimizer(digits):
    raises_before_compiling(
        TypeError, "task must be an lrjax.Task", lambda: run("digits", optax.sgd, {"learning_rate": [0.1]}, steps=1)
    )
    raises_before_compiling(
        TypeError,
        "optimizer must be a function",
        lambda: run(digits, optax.sgd(0.1), {"learning_rate": [0.1]}, steps=1),
    )
    raises_before_compiling(
        TypeError,
        r"optimizer\(hp\) must return an optax.GradientTransformation, got float",
        lambda: run(digits, lambda hp: 0.1, {"learning_rate": [0.1]}, steps=1),
    )


def test_bad_data_is_refused_when_the_task_is_built():
    x, y = np.ones((10, 3), np.float32), np.zeros(10, np.int32)
    init, loss = (lambda key: np.zeros(3)), (lambda p, b: 0.0)
    bad_x = x.copy()
    bad_x[3, 1] = np.nan
    raises_before_compiling(
        ValueError,
        r"train_data\[0\] must be finite, got 1 NaN or infinite values among 30",
        lambda: lrjax.Task(init, loss, (bad_x, y)),
    )
    raises_before_compiling(
        ValueError,
        r"train_data arrays must share their leading \(examples\) axis, got shapes \[\(10, 3\), \(9,\)\]",
        lambda: lrjax.Task(init, loss, (x, y[:9])),
    )
    raises_before_compiling(
        ValueError,
        r"eval_data\[1\] must be finite, got inf in",
        lambda: lrjax.Task(init, loss, (x, y), eval_data=(x, np.full(10, np.inf))),
    )
    raises_before_compiling(
        ValueError, "must contain at least one example", lambda: lrjax.Task(init, loss, (x[:0], y[:0]))
    )
    raises_before_compiling(TypeError, "loss must be callable", lambda: lrjax.Task(init, "mse", (x, y)))
    raises_before_compiling(
        ValueError, "loss must be one of", lambda: lrjax.Task.from_linen(None, (x, y), loss="hinge")
    )


def test_labels_outside_the_models_classes_are_refused():
    import lrjax.datasets as D

    (x, y), (xe, ye) = D.load_digits()
    model = D.MLP(hidden=(8,))
    raises_before_compiling(
        ValueError,
        r"train_data\[1\] must hold class labels in \[0, 10\) \(the model's outputs\), got 12 \(1 such labels\)",
        lambda: lrjax.Task.from_linen(model, (x, np.where(np.arange(len(y)) == 5, 12, y))),
    )
    raises_before_compiling(
        ValueError,
        r"eval_data\[1\] must hold class labels in \[0, 10\)",
        lambda: lrjax.Task.from_linen(model, (x, y), eval_data=(xe, ye - 1)),
    )
    raises_before_compiling(
        TypeError, r"train_data\[1\] must hold integer class labels", lambda: lrjax.Task.from_linen(model, (x, y * 1.0))
    )


def test_eval_data_that_does_not_fit_the_model_is_named_before_compiling(sgd):
    import lrjax.datasets as D

    (x, y), (xe, ye) = D.load_digits()
    task = lrjax.Task.from_linen(D.MLP(hidden=(8,)), (x, y), eval_data=(xe[:, :4], ye))  # 8x4 images, not 8x8
    raises_before_compiling(
        ValueError,
        "eval_data does not fit the task's model, loss or metrics: ",
        lambda: run(task, sgd, {"learning_rate": [0.1]}, steps=1),
    )


def test_a_loss_returning_a_vector_is_named(digits, sgd):
    per_example = lrjax.Task(
        digits.init, lambda p, b: jax.vmap(lambda x, y: digits.loss(p, (x[None], y[None])))(*b), digits.train_data
    )
    raises_before_compiling(
        ValueError,
        r"task.loss must return a scalar \(or \(scalar, aux\)\), got shape \(32,\) from a batch of 32 train_data "
        r"examples: average the per-example losses",
        lambda: run(per_example, sgd, {"learning_rate": [0.1]}, steps=1, batch_size=32),
    )


def test_configs_the_optimizer_never_reads_or_reads_but_lack(digits, sgd):
    raises_before_compiling(
        ValueError,
        r"configs\['momentum'\] is never read by optimizer\(hp\): remove it, or use it \(unread: \['momentum'\]\)",
        lambda: run(digits, sgd, {"learning_rate": [0.1], "momentum": [0.9]}, steps=1),
    )
    momentum = lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"])
    raises_before_compiling(
        ValueError,
        r"optimizer\(hp\) reads hp\['momentum'\], which configs do not have \(they have \['learning_rate'\]\)",
        lambda: run(digits, momentum, {"learning_rate": [0.1]}, steps=1),
    )
    # A config read only by the plateau function counts as read.
    plateau = lambda hp: lrjax.reduce_on_plateau(factor=hp["factor"])
    result = run(digits, sgd, {"learning_rate": [0.1], "factor": [0.5]}, steps=2, plateau=plateau)
    assert result.plateau_scale.shape == (1, 1)


def test_an_error_of_the_optimizers_own_reaches_the_user_with_the_hyperparameters(digits):
    wrong_argument = lambda hp: optax.adam(hp["learning_rate"], bogus=1)
    with count_compiles() as log, pytest.raises(TypeError, match="bogus") as raised:
        run(digits, wrong_argument, {"learning_rate": [0.1, 0.2]}, steps=1)
    assert log.count == 0
    assert any("optimizer(hp) with hp = {'learning_rate': 0.1}" in note for note in raised.value.__notes__)

    def own_lookup(hp):  # a KeyError of the user's own code is not a missing hyperparameter
        return optax.sgd({"sgd": hp["learning_rate"]}["adam"])

    with pytest.raises(KeyError, match="adam"):
        run(digits, own_lookup, {"learning_rate": [0.1]}, steps=1)


def test_a_config_read_lazily_inside_update_counts_as_read(digits):
    def lazy(hp):  # reads "scale" only when update is traced
        tx = optax.sgd(hp["learning_rate"])

        def update(grads, state, params=None):
            updates, state = tx.update(grads, state, params)
            return jax.tree.map(lambda u: hp["scale"] * u, updates), state

        return optax.GradientTransformation(tx.init, update)

    result = run(digits, lazy, {"learning_rate": [0.1, 0.1], "scale": [1.0, 0.0]}, steps=3)
    assert not np.allclose(result.train_loss[0, 1:], result.train_loss[1, 1:])  # scale 0: no training
