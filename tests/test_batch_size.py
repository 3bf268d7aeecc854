"""The batch-size tools: the gradient noise scale against per-example gradients computed exactly;
batch-size sweeps against stand-alone sweeps; the critical-batch-size fit; bad input."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax import batch_size_sweep, fit_critical_batch_size, gradient_noise_scale
from lrjax.engine import augment_key, cache, count_compiles
from lrjax.engine.program import order_words, seed_keys
from lrjax.engine.shuffle import epoch_order


@pytest.fixture(scope="module")
def regression():
    return lrjax.datasets.linear_regression(4096, noise=0.5)


def _per_example_grads(task, params, index=None, data=None):
    """(n, 2) exact per-example gradients of the mean squared error, (w, b) order, on ``data``
    (default: the task's training data, or its examples ``index``)."""
    x, y = task.train_data if data is None else data
    if index is not None:
        x, y = x[index], y[index]
    one = lambda p, xi, yi: task.loss(p, (xi[None], yi[None]))
    g = jax.vmap(jax.grad(one), in_axes=(None, 0, 0))(params, x, y)
    return np.stack([np.asarray(g["w"], np.float64), np.asarray(g["b"], np.float64)], 1)


def test_noise_scale_is_within_10_percent_of_the_exact_value(regression):
    """B_simple = tr(Σ)/|G|² with G and Σ the mean and covariance of the 4096 per-example
    gradients, computed exactly; the estimate from 200 batches of 512 in 16 micro-batches."""
    params = {"w": jnp.float32(2.1), "b": jnp.float32(1.05)}
    g = _per_example_grads(regression, params)
    mean = g.mean(0)
    trace, norm_sq = ((g - mean) ** 2).sum(1).mean(), (mean**2).sum()
    exact = trace / norm_sq
    assert 50 < exact < 500  # a point where noise and signal both matter
    noise = gradient_noise_scale(regression, params, batch_size=512, micro_batches=16, steps=200)
    print(f"B_simple: estimated {noise.b_simple:.2f}, exact {exact:.2f}")
    assert noise.b_simple == pytest.approx(exact, rel=0.1)
    assert noise.trace == pytest.approx(trace, rel=0.1)
    assert noise.gradient_norm_sq == pytest.approx(norm_sq, rel=0.1)


def test_each_steps_estimates_are_the_formulas_on_its_micro_batches(regression):
    """Step 0's batch is the first 512 of the seed's epoch order; its 16 micro-batch gradients,
    computed here from exact per-example gradients, give |G_b|² and |G_B|², and the estimates
    solve E|G_b|² = |G|² + c(b)·tr(Σ) with c(b) = (n − b)/((n − 1)·b) for b = 32 and 512."""
    params = regression.init(jax.random.key(3))
    noise = gradient_noise_scale(regression, params, batch_size=512, micro_batches=16, steps=1, seed=5)
    order = np.asarray(epoch_order(order_words(seed_keys(5, 1)[0]), 0, 4096))
    g = _per_example_grads(regression, params, order[:512]).reshape(16, 32, 2)
    small_sq = (g.mean(1) ** 2).sum(1).mean()
    big_sq = (g.mean((0, 1)) ** 2).sum()
    c = lambda b: (4096 - b) / (4095 * b)
    trace = (small_sq - big_sq) / (c(32) - c(512))
    np.testing.assert_allclose(noise.per_step["trace"], [trace], rtol=1e-4)
    np.testing.assert_allclose(noise.per_step["gradient_norm_sq"], [big_sq - c(512) * trace], rtol=1e-4)


def test_the_noise_scale_measures_the_augmented_batches_training_sees(regression):
    """With ``augment``, step 1's batch is the seed's second batch through ``augment`` with the
    key of clock 1 (`lrjax.engine.augment_key`), as a population trains on it."""
    noisy = lambda key, batch: (batch[0] + 0.3 * jax.random.normal(key, batch[0].shape), batch[1])
    task = dataclasses.replace(regression, augment=noisy)
    params = task.init(jax.random.key(3))
    noise = gradient_noise_scale(task, params, batch_size=512, micro_batches=16, steps=2, seed=5)
    order = np.asarray(epoch_order(order_words(seed_keys(5, 1)[0]), 0, 4096))
    x, y = (np.asarray(a)[order[512:1024]] for a in task.train_data)
    seen = noisy(augment_key(5, 1, 0, 1), (jnp.asarray(x), jnp.asarray(y)))
    g = _per_example_grads(task, params, data=seen).reshape(16, 32, 2)
    small_sq, big_sq = (g.mean(1) ** 2).sum(1).mean(), (g.mean((0, 1)) ** 2).sum()
    c = lambda b: (4096 - b) / (4095 * b)
    np.testing.assert_allclose(noise.per_step["trace"][1], (small_sq - big_sq) / (c(32) - c(512)), rtol=1e-4)


def test_measuring_again_compiles_nothing_until_the_engine_cache_is_cleared(regression):
    params = regression.init(jax.random.key(0))
    measure = lambda: gradient_noise_scale(regression, params, batch_size=64, micro_batches=4, steps=3)
    measure()
    with count_compiles() as again:
        measure()
    cache.clear()
    with count_compiles() as cleared:
        measure()
    assert (again.count, cleared.count) == (0, 1)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(batch_size=100, micro_batches=8), "batch_size must be a multiple of micro_batches"),
        (dict(batch_size=8192), "batch_size must be <= the number of training examples"),
        (dict(batch_size=64, micro_batches=1), "micro_batches must be >= 2"),
        (dict(batch_size=64, steps=0), "steps must be >= 1"),
    ],
)
def test_noise_scale_bad_input(regression, kwargs, message):
    with pytest.raises(ValueError, match=message):
        gradient_noise_scale(regression, **kwargs)


def test_the_fit_recovers_a_critical_batch_size_from_the_model():
    sizes = np.array([8, 32, 128, 512, 2048])
    steps = 40.0 * (1 + 300.0 / sizes)
    noise, s_min, e_min = fit_critical_batch_size(sizes, steps)
    assert (noise, s_min, e_min) == pytest.approx((300.0, 40.0, 12000.0), rel=1e-9)
    assert np.isnan(fit_critical_batch_size(sizes, np.where(sizes > 8, np.nan, steps))).all()  # one point
    assert np.isnan(fit_critical_batch_size(sizes, 1000.0 / sizes)).all()  # E constant: S_min would be 0


SGD = lambda hp: optax.sgd(hp["learning_rate"])


@pytest.fixture(scope="module")
def small_regression():
    return lrjax.datasets.linear_regression(512, noise=0.3)


def test_each_batch_size_is_the_stand_alone_sweep_and_the_table_holds_the_trade_off(small_regression):
    configs = {"learning_rate": [0.05, 0.3]}
    sizes = [4, 16, 64, 256]
    result = batch_size_sweep(
        small_regression, SGD, configs, sizes, examples=8192, target=0.12, seeds=2, evaluations=50, progress=False
    )
    for k, b in enumerate(sizes):
        steps = 8192 // b
        alone = lrjax.sweep(
            small_regression,
            SGD,
            configs,
            steps=steps,
            batch_size=b,
            seeds=2,
            eval_every=max(steps // 50, 1),
            progress=False,
        )
        np.testing.assert_allclose(result.results[k].train_loss, alone.train_loss, rtol=1e-6)
        np.testing.assert_allclose(result.results[k].eval_metrics["loss"], alone.eval_metrics["loss"], rtol=1e-6)
    table = result.to_pandas()
    # Only the small learning rate at the largest batch (32 steps) falls short.
    assert list(table["reached"]) == [True] * 6 + [False, True]
    assert np.isnan(table["steps_to_target"][6]) and np.isnan(table["examples_to_target"][6])
    assert list(table["steps"]) == [2048, 2048, 512, 512, 128, 128, 32, 32]
    np.testing.assert_allclose(table["examples_to_target"], table["steps_to_target"] * table["batch_size"])
    # The interpolated crossing: between the evaluations around it, on the seed-mean curve.
    curve, steps = result.curves(1)[0], result.results[1].eval_steps
    j = int(np.argmax(curve <= 0.12))
    expected = steps[j - 1] + (steps[j] - steps[j - 1]) * (curve[j - 1] - 0.12) / (curve[j - 1] - curve[j])
    assert table["steps_to_target"][2] == pytest.approx(expected)
    best_steps, examples = result.trade_off()
    np.testing.assert_allclose(best_steps, np.nanmin(table["steps_to_target"].to_numpy().reshape(4, 2), 1))
    np.testing.assert_allclose(examples, best_steps * sizes)
    assert np.isfinite(result.critical_batch_size) and result.critical_batch_size > 0
    assert result.s_min * result.critical_batch_size == pytest.approx(result.e_min)
    assert (result.examples_per_second > 0).all()
    fig = result.plot()
    assert [ax.get_xlabel() for ax in fig.axes] == ["examples", "steps", "examples to target"]


@pytest.mark.parametrize("rule, factor", [("linear", lambda r: r), ("sqrt", np.sqrt)])
def test_lr_rule_scales_learning_rates_from_the_base_batch_size(small_regression, rule, factor):
    result = batch_size_sweep(
        small_regression,
        SGD,
        {"learning_rate": [0.01, 0.02]},
        [8, 32, 128],
        steps=4,
        lr_rule=rule,
        base_batch_size=16,
        progress=False,
    )
    for k, b in enumerate([8, 32, 128]):
        np.testing.assert_allclose(
            result.results[k].configs["learning_rate"], np.array([0.01, 0.02]) * factor(b / 16), rtol=1e-6
        )


def test_a_target_never_reached_is_marked_not_a_crash(small_regression):
    result = batch_size_sweep(
        small_regression, SGD, {"learning_rate": [0.01]}, [8, 16], steps=5, target=1e-6, progress=False
    )
    table = result.to_pandas()
    assert not table["reached"].any() and table["steps_to_target"].isna().all()
    assert np.isnan(result.critical_batch_size)
    assert "critical_batch_size=nan" in repr(result)
    result.plot()


@pytest.mark.parametrize(
    "args, kwargs, message",
    [
        ([[16, 8]], dict(steps=5), "batch_sizes must be strictly increasing"),
        ([[8, 1024]], dict(steps=5), "batch_sizes must be <= the number of training examples"),
        ([[0, 8]], dict(steps=5), "batch_sizes must be >= 1"),
        ([[8.5]], dict(steps=5), "batch_sizes must be a non-empty sequence of integers"),
        ([[8, 64]], dict(examples=32), "examples must be >= the largest batch size"),
        ([[8, 64]], dict(), "give one of examples= or steps="),
        ([[8, 64]], dict(steps=5, examples=640), "give one of examples= or steps="),
        ([[8, 64]], dict(steps=5, lr_rule="cube"), "lr_rule must be one of"),
        ([[8, 64]], dict(steps=5, metric="accuracy"), "metric must be one of"),
        ([[8, 64]], dict(steps=5, target=float("nan")), "target must be finite"),
    ],
)
def test_batch_size_sweep_bad_input(small_regression, args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        batch_size_sweep(small_regression, SGD, {"learning_rate": [0.01]}, *args, progress=False, **kwargs)


def test_lr_rule_needs_a_learning_rate_config(small_regression):
    opt = lambda hp: optax.sgd(0.01, momentum=hp["momentum"])
    with pytest.raises(ValueError, match="needs a learning-rate config"):
        batch_size_sweep(small_regression, opt, {"momentum": [0.5]}, [8, 16], steps=5, lr_rule="sqrt", progress=False)
