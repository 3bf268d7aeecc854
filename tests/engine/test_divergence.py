"""Diverging members are frozen and flagged at the right step; nobody else notices.
A sweep compiles each program once; repeated sweeps compile nothing."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
import lrjax.datasets as D
from lrjax.engine import cache, init_key, parts
from tests.engine.conftest import run


def first_bad_step(task, lr, steps, factor=None):
    """Plain Optax gradient descent: the first step whose loss or update is non-finite, or (with
    ``factor``) whose loss exceeds the first loss by more than (factor − 1)·|first loss|."""
    opt = optax.sgd(lr)
    params = task.init(init_key(0, 1, 0))
    state = opt.init(params)
    loss_and_grad = jax.jit(jax.value_and_grad(task.loss))
    first = None
    for t in range(steps):
        loss, grads = loss_and_grad(params, task.train_data)
        first = loss if first is None else first
        updates, state = opt.update(grads, state, params)
        params = optax.apply_updates(params, updates)
        if not (np.isfinite(loss) and np.all(np.isfinite(params))):
            return t
        if factor is not None and loss - first > (factor - 1) * abs(first):
            return t
    return -1


def test_gradient_descent_on_a_quadratic_diverges_exactly_above_two_over_L(quadratic, sgd):
    two_over_l = 2.0 / quadratic.info["max_eigenvalue"]
    lrs = np.asarray([0.1, 0.5, 0.9, 0.98, 1.02, 1.2, 3.0, 30.0]) * two_over_l
    result = run(quadratic, sgd, {"learning_rate": lrs}, steps=1500, divergence_factor=None)  # non-finite only
    stable = lrs < two_over_l
    np.testing.assert_array_equal(result.diverged, ~stable)
    h, x = quadratic.info["hessian"], np.asarray(quadratic.train_data, np.float64)
    d = x - x.mean(0)
    minimum = 0.5 * np.mean(np.einsum("bi,ij,bj->b", d, h, d))
    np.testing.assert_allclose(result.final("train_loss")[stable], minimum, rtol=1e-4)
    for i in np.flatnonzero(~stable):
        assert result.diverged_at[i] == first_bad_step(quadratic, float(lrs[i]), 1500)
        assert np.all(np.isnan(result.train_loss[i, result.diverged_at[i] + 1 :]))
        assert np.all(np.isfinite(result.final_params[i]))  # frozen before the overflow
    assert np.all(result.diverged_at[stable] == -1)


@pytest.mark.parametrize("factor", [100.0, 4.0])
def test_a_loss_far_above_its_start_diverges_at_the_step_a_plain_loop_finds(quadratic, sgd, factor):
    two_over_l = 2.0 / quadratic.info["max_eigenvalue"]
    lrs = np.asarray([0.5, 0.98, 1.05, 1.2, 3.0]) * two_over_l
    result = run(quadratic, sgd, {"learning_rate": lrs}, steps=1500, divergence_factor=factor)
    for i, lr in enumerate(lrs):
        assert result.diverged_at[i] == first_bad_step(quadratic, float(lr), 1500, factor)
    assert result.diverged.tolist() == [False, False, True, True, True]
    # Far before the overflow: 1.05·2/L needs hundreds of steps to grow 100-fold, and ~1000 to overflow.
    assert 0 < result.diverged_at[2] < first_bad_step(quadratic, float(lrs[2]), 1500) // 2


def test_the_threshold_is_relative_to_the_size_of_a_negative_starting_loss():
    # loss = x² − 10 from x = 1 and x ← x − 1.5·2x = −2x: losses 4^t − 10 = −9, −6, 6, 54, 246, 1014.
    # Above −9 + 99·|−9| = 882 first at t = 5; "loss > 100 × first loss" would fire at t = 0.
    task = lrjax.Task(
        init=lambda key: jnp.ones(()),
        loss=lambda x, batch: x**2 - 10.0 + 0.0 * jnp.sum(batch),
        train_data=np.zeros((4, 1), np.float32),
        name="shifted",
    )
    result = run(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [1.5, 0.1]}, steps=20)
    np.testing.assert_allclose(result.train_loss[0, :6], [-9, -6, 6, 54, 246, 1014])
    assert result.diverged_at.tolist() == [5, -1]
    assert np.isnan(result.train_loss[0, 6:]).all() and result.final_params[0] == -32.0  # frozen before step 5's update


def test_a_negative_learning_rate_under_another_name_is_flagged_diverged(digits, tmp_path):
    # Adam ascending the loss at 1e-2 reaches ~1e5 in a few hundred steps without overflowing.
    adam = lambda hp: optax.adam(hp["step_size"])
    result = run(digits, adam, {"step_size": [1e-3, -1e-2]}, steps=80, batch_size=64)
    assert result.diverged.tolist() == [False, True]
    at = result.diverged_at[1]
    assert result.train_loss[1, at] > 100 * result.train_loss[1, 0] >= np.nanmax(result.train_loss[1, :at])
    assert np.isnan(result.final("loss")[1]) and result.best()["step_size"] == pytest.approx(1e-3)
    pop = lrjax.Population(digits, adam, {"step_size": [-1e-2]}, batch_size=64, divergence_factor=None)
    pop.advance(80)
    assert not pop.diverged[0]  # switched off: only a non-finite loss diverges
    pop.save(tmp_path / "pop")
    assert lrjax.Population.restore(tmp_path / "pop", digits, adam).divergence_factor is None


def test_a_divergence_factor_that_is_not_above_one_is_refused(quadratic, sgd):
    with pytest.raises(ValueError, match="divergence_factor must be > 1, got 1"):
        lrjax.sweep(quadratic, sgd, {"learning_rate": [0.1]}, steps=5, divergence_factor=1, progress=False)
    with pytest.raises(ValueError, match=r"divergence_factor must be > 1, got 0\.5"):
        lrjax.Population(quadratic, sgd, {"learning_rate": [0.1]}, divergence_factor=0.5)


def test_an_exploding_member_leaves_the_others_bitwise_identical(digits, sgd):
    calm = run(digits, sgd, {"learning_rate": [0.05, 0.3, 0.01, 0.1]}, steps=40, batch_size=64, eval_every=20)
    wild = run(digits, sgd, {"learning_rate": [0.05, 0.3, 1e20, 0.1]}, steps=40, batch_size=64, eval_every=20)
    assert wild.diverged.tolist() == [False, False, True, False]
    # Step 0's update is finite (1e20 · gradient); the logits it makes overflow at step 1.
    assert wild.diverged_at[2] == 1
    others = [0, 1, 3]
    np.testing.assert_array_equal(wild.train_loss[others], calm.train_loss[others])
    for name in calm.eval_metrics:
        np.testing.assert_array_equal(wild.eval_metrics[name][others], calm.eval_metrics[name][others])
    jax.tree.map(lambda a, b: np.testing.assert_array_equal(a[others], b[others]), wild.final_params, calm.final_params)
    assert np.isnan(wild.final("loss")[2])
    assert wild.best()["learning_rate"] != np.float32(1e20)


def test_a_repeated_sweep_with_new_values_compiles_nothing(digits, adam):
    first = run(digits, adam, {"learning_rate": [1e-3, 1e-2, 1e-1]}, steps=30, batch_size=32, eval_every=10)
    again = run(digits, adam, {"learning_rate": [2e-3, 5e-2, 3e-1]}, steps=30, batch_size=32, eval_every=10)
    longer = run(digits, adam, {"learning_rate": [4e-3, 6e-2, 2e-1]}, steps=50, batch_size=32, eval_every=10, seed=7)
    assert first.info["compiles"] >= 1
    assert again.info["compiles"] == 0
    assert longer.info["compiles"] == 0  # steps and seed are runtime values, not program shape
    assert not np.allclose(first.train_loss[:, -1], again.train_loss[:, -1])


def test_a_sweep_compiles_each_of_its_programs_once(adam):
    # Init, chunk and evaluate (and, for a chunk run in parts, its split and join) are compiled
    # ahead of their first call from the state's expected shapes and shardings; a mismatch with
    # what init really returns would compile the chunk twice.
    kw = dict(steps=30, batch_size=32, eval_every=10)
    run(D.digits_mlp(hidden=(16,)), adam, {"learning_rate": [1e-3, 1e-2]}, **kw)  # jax's own small programs
    cache.clear()
    fresh = run(D.digits_mlp(hidden=(16,)), adam, {"learning_rate": [1e-3, 1e-2]}, **kw)
    in_parts = parts.choose(2, 1, jax.local_devices())[0] != (1, 1)
    assert fresh.info["compiles"] == 3 + 2 * in_parts
