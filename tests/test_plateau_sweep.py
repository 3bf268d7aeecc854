"""Reduce-on-plateau inside sweeps, both ways: driven by each member's own evaluation metric
(``sweep(..., plateau=...)``), and inside the optimizer chain, fed the training loss through
``value=``."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax.engine import init_key


def standalone_scales(transform, metrics):
    """The scale after each observation of a standalone transformation fed ``metrics``."""
    state, out = transform.init(jnp.ones(())), []
    for value in metrics:
        _, state = transform.update(jnp.ones(()), state, value=value)
        out.append(float(state.scale))
    return np.asarray(out)


def test_each_member_follows_its_own_validation_stream(digits):
    configs = {
        "learning_rate": [0.05, 0.2, 0.3, 0.5],
        "factor": [0.5, 0.3, 0.7, 0.5],
        "patience": [0, 1, 2, 0],
        "cooldown": [0, 1, 0, 2],
        "threshold": [0.02, 0.02, 0.01, 0.03],
    }

    def plateau(hp):
        return lrjax.reduce_on_plateau(
            factor=hp["factor"], patience=hp["patience"], cooldown=hp["cooldown"], threshold=hp["threshold"]
        )

    result = lrjax.sweep(
        digits,
        lambda hp: optax.sgd(hp["learning_rate"]),
        configs,
        steps=200,
        batch_size=32,
        eval_every=5,
        plateau=plateau,
        plateau_metric="loss",
        progress=False,
    )
    assert result.plateau_scale.shape == (4, 40)
    for m in range(4):
        reference = lrjax.reduce_on_plateau(
            factor=configs["factor"][m],
            patience=configs["patience"][m],
            cooldown=configs["cooldown"][m],
            threshold=configs["threshold"][m],
        )
        expected = standalone_scales(reference, result.eval_metrics["loss"][m])
        np.testing.assert_allclose(result.plateau_scale[m], expected, rtol=1e-6)
    assert len({tuple(row) for row in result.plateau_scale}) == 4  # four different factor sequences
    assert all(len(set(row)) >= 2 for row in result.plateau_scale)  # each one reduced


def test_the_scale_multiplies_the_members_updates_until_the_next_evaluation():
    # Full-batch SGD on y = 2x + 1: the sweep equals a plain loop whose learning rate is
    # multiplied by the scale of the last observation of the loss at each evaluation.
    task = lrjax.datasets.linear_regression()
    lr, every, steps = 0.05, 4, 40
    transform = lrjax.reduce_on_plateau(factor=0.5, patience=0, threshold=0.3)
    result = lrjax.sweep(
        task,
        lambda hp: optax.sgd(hp["learning_rate"]),
        {"learning_rate": [lr]},
        steps=steps,
        eval_every=every,
        plateau=transform,
        progress=False,
    )

    params = task.init(init_key(0, 1, 0))
    grad = jax.jit(jax.value_and_grad(task.loss))
    state, scale, losses = transform.init(jnp.ones(())), 1.0, []
    for t in range(steps):
        loss, g = grad(params, task.train_data)
        losses.append(float(loss))
        params = jax.tree.map(lambda p, g: p - lr * scale * g, params, g)
        if (t + 1) % every == 0:
            _, state = transform.update(jnp.ones(()), state, value=task.loss(params, task.train_data))
            scale = float(state.scale)
    np.testing.assert_allclose(result.train_loss[0], losses, rtol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[0], b, rtol=1e-5), result.final_params, params)
    assert result.plateau_scale[0, -1] <= 0.125  # reduced at least three times


@pytest.mark.parametrize(
    "plateau",
    [
        lambda: lrjax.reduce_on_plateau(factor=0.5, patience=0, threshold=0.2, accumulation_size=3),
        lambda: optax.contrib.reduce_on_plateau(factor=0.5, patience=1, rtol=0.2, accumulation_size=3),
    ],
    ids=["lrjax", "optax.contrib"],
)
def test_a_plateau_in_the_chain_receives_each_members_training_loss(plateau):
    task = lrjax.datasets.linear_regression()
    transform = plateau()
    optimizer = lambda hp: optax.chain(optax.sgd(hp["learning_rate"]), transform)
    lrs = [0.02, 0.1]
    result = lrjax.sweep(task, optimizer, {"learning_rate": lrs}, steps=60, progress=False)
    for m, lr in enumerate(lrs):
        opt = optimizer({"learning_rate": lr})

        @jax.jit
        def step(params, state):
            loss, g = jax.value_and_grad(task.loss)(params, task.train_data)
            updates, state = opt.update(g, state, params, value=loss)
            return optax.apply_updates(params, updates), state, loss

        params = task.init(init_key(0, 1, 0))
        state = opt.init(params)
        losses = []
        for _ in range(60):
            params, state, loss = step(params, state)
            losses.append(float(loss))
        np.testing.assert_allclose(result.train_loss[m], losses, rtol=1e-5)
        assert float(state[1].scale) < 0.5  # the plateau did reduce
