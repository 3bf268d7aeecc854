"""`lrjax.find_lr`: the ramp, the smoothing, the stop rule and fastai's suggestions against a
transcription of fastai; divergence against the 2/L bound of gradient descent on a quadratic;
the valley suggestion against a grid sweep on digits; bad input."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given
from hypothesis import strategies as st

import lrjax
from lrjax import _suggest
from lrjax._finder import ramp
from tests.reference import fastai_lr_find as fastai

# -- curve arithmetic against fastai ---------------------------------------------------------


def _curve(seed: int, n: int, offset: float, nan_at: int | None, rounding: int) -> np.ndarray:
    """A range-test-like curve: flat, falling, then rising, with noise (rounded, to make ties)."""
    rng = np.random.default_rng(seed)
    t = np.linspace(0, 1, n)
    y = offset + 2.0 - 1.5 * np.clip((t - 0.2) * 2.5, 0, 1) + 4.0 * np.clip(t - 0.8, 0, None) ** 2
    y = np.round(y + 0.05 * rng.standard_normal(n).cumsum() / np.sqrt(n), rounding)
    if nan_at is not None and nan_at < n:
        y[nan_at:] = np.nan
    return y


@given(
    seed=st.integers(0, 2**31),
    n=st.integers(10, 160),
    offset=st.sampled_from([0.0, -5.0, 100.0]),
    nan_at=st.one_of(st.none(), st.integers(0, 160)),
    rounding=st.sampled_from([2, 8]),
    stopped_at=st.one_of(st.none(), st.integers(0, 159)),
)
def test_suggestions_equal_fastai_on_the_same_curve(seed, n, offset, nan_at, rounding, stopped_at):
    """Any curve (NaN in it, negative values, ties, cut short by a stop): each method equals the
    transcription of fastai on the values fastai would have recorded, or is NaN where fastai
    would raise for want of points."""
    lrs = np.geomspace(1e-7, 10, n)
    raw = _curve(seed, n, offset, nan_at, rounding)
    recorded = n if stopped_at is None or stopped_at >= n else stopped_at + 1
    smoothed = _suggest.smooth(raw, 0.98)
    np.testing.assert_allclose(smoothed[:recorded], fastai.avg_smooth_loss(raw[:recorded]), rtol=1e-12)
    got = _suggest.suggest(lrs, smoothed, recorded, n)
    x, y = fastai.lr_find_window(lrs[:recorded], smoothed[:recorded], n)
    needs = {"valley": 1, "slide": 16, "steep": 2, "minimum": 1}
    for name, method in [
        ("valley", fastai.valley),
        ("slide", fastai.slide),
        ("steep", fastai.steep),
        ("minimum", fastai.minimum),
    ]:
        if len(y) < needs[name]:
            assert np.isnan(got[name]), name
        else:
            assert got[name] == method(x, y, n), name


def test_valley_follows_fastais_quirks_on_hand_made_curves():
    """Hand-checked values: a strictly falling curve's valley is a third and a half-third of the
    way along, counted from one before the start (index −1 + 4 + 2); the longest decreasing subsequence
    skips a bump; two points take the last one (fastai's index −1)."""
    lrs = np.arange(1.0, 13.0)
    assert _suggest.valley(lrs, -np.arange(12.0)) == fastai.valley(lrs, -np.arange(12.0), 12) == 6.0
    bumpy = np.array([5, 4, 6, 3, 2, 7, 1, 0, 8, 9, 9.5, 10.0])
    assert _suggest.valley(lrs, bumpy) == fastai.valley(lrs, bumpy, 12)
    assert _suggest.valley(lrs[:2], np.array([2.0, 1.0])) == 2.0
    assert _suggest.minimum(lrs, bumpy) == 0.8
    assert _suggest.steep(lrs[:3], np.array([3.0, 1.0, 0.5])) == 1.0


def test_stop_rule_is_fastais_for_positive_losses_and_sign_aware_for_negative():
    s = np.array([[4.0, 2.0, 1.0, 3.9, 4.1, 2.0], [-1.0, -2.0, -1.5, 1.0, 4.5, 9.0], [1.0, np.nan, 1.0, 1, 1, 1]])
    # 4.1 > 4 · 1; −2's threshold is −2 + 3·2 = 4; NaN at once.
    np.testing.assert_array_equal(_suggest.stop_steps(s, 4.0), [4, 4, 1])
    np.testing.assert_array_equal(_suggest.stop_steps(np.ones((1, 5)), 4.0), [-1])


# -- the range test --------------------------------------------------------------------------


def test_the_ramp_reaches_both_ends_and_members_equal_a_plain_optax_loop(quadratic, sgd):
    """Member s of the test is plain Optax SGD fed the ramp from the same initial parameters:
    losses equal within float32 rounding until the curve stops."""
    finder = lrjax.find_lr(quadratic, sgd, min_lr=1e-3, max_lr=0.5, steps=40, seeds=2, progress=False)
    np.testing.assert_allclose(finder.lrs[[0, -1]], [1e-3, 0.5], rtol=1e-6)
    np.testing.assert_allclose(np.diff(np.log(finder.lrs)), np.log(500) / 39, rtol=1e-4)
    linear = ramp(1e-3, 0.5, 40, "linear")(jnp.arange(40))
    np.testing.assert_allclose(np.diff(np.asarray(linear)), (0.5 - 1e-3) / 39, rtol=1e-4)
    for member in range(2):
        params = quadratic.init(lrjax.engine.program.init_key(0, 2, member))
        tx = optax.sgd(ramp(1e-3, 0.5, 40))
        state, expected = tx.init(params), []
        for _ in range(40):
            loss, grads = jax.value_and_grad(quadratic.loss)(params, quadratic.train_data)
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            expected.append(float(loss))
        stop = finder.diverged_at[member]
        n = 40 if stop < 0 else stop + 1
        np.testing.assert_allclose(finder.raw_losses[member, :n], expected[:n], rtol=2e-5)
        assert np.isnan(finder.raw_losses[member, n:]).all()
        np.testing.assert_allclose(finder.losses[member, :n], fastai.avg_smooth_loss(expected[:n]), rtol=2e-5)


@pytest.mark.parametrize("eigenvalues", [(0.01, 1.0, 10.0), (0.5, 4.0)])
def test_gradient_descent_diverges_only_above_two_over_L(eigenvalues, sgd):
    """GD on a quadratic shrinks every eigencomponent while η ≤ 2/L, so no seed's curve may stop
    below 2/L; each one does stop once the ramp passes it. With max_lr < 2/L none stops (−1)."""
    task = lrjax.datasets.quadratic(eigenvalues, num_examples=32)
    bound = 2 / task.info["max_eigenvalue"]
    finder = lrjax.find_lr(task, sgd, min_lr=1e-4, max_lr=50 * bound, steps=120, seeds=6, progress=False)
    assert (finder.diverged_at >= 0).all()
    assert (finder.diverged_lr > bound).all(), finder.diverged_lr
    np.testing.assert_array_equal(finder.diverged_lr, finder.lrs[finder.diverged_at])
    calm = lrjax.find_lr(task, sgd, min_lr=1e-4, max_lr=0.9 * bound, steps=60, seeds=6, progress=False)
    np.testing.assert_array_equal(calm.diverged_at, -1)
    assert np.isnan(calm.diverged_lr).all() and np.isfinite(calm.losses).all()


def test_negative_losses_do_not_stop_a_descending_curve(sgd):
    """A loss shifted to −1000 (a log-likelihood, say): fastai's s > 4·best would stop at once;
    the sign-aware rule lets a descending curve run and stops it when it blows up."""
    base = lrjax.datasets.quadratic((1.0, 4.0), num_examples=16)
    task = lrjax.Task(base.init, lambda w, x: base.loss(w, x) - 1000.0, base.train_data, name="shifted")
    calm = lrjax.find_lr(task, sgd, min_lr=1e-3, max_lr=0.4, steps=30, seeds=2, progress=False)
    np.testing.assert_array_equal(calm.diverged_at, -1)
    wild = lrjax.find_lr(task, sgd, min_lr=1e-3, max_lr=100.0, steps=60, seeds=2, progress=False)
    assert (wild.diverged_lr > 0.5).all()


def test_configs_are_extra_curves_and_the_task_is_left_as_it_was(digits, sgd):
    """Smith's multi-curve test: each extra configuration gets every seed; suggestions, spread
    and the band are per configuration. A sweep after the test equals one before it."""
    before = lrjax.sweep(digits, sgd, {"learning_rate": [0.1]}, steps=20, batch_size=32, progress=False)
    data = jax.tree.map(np.copy, digits.train_data)
    opt = lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"])
    finder = lrjax.find_lr(
        digits, opt, steps=30, seeds=3, batch_size=32, configs={"momentum": [0.0, 0.9]}, progress=False
    )
    assert finder.losses.shape == (6, 30) and finder.median.shape == (2, 30)
    np.testing.assert_allclose(finder.configs["momentum"], [0, 0, 0, 0.9, 0.9, 0.9], rtol=1e-6)
    lower, upper = finder.band
    ok = np.isfinite(upper)
    assert (lower[ok] <= finder.median[ok]).all() and (finder.median[ok] <= upper[ok]).all()
    assert finder.suggestions["valley"].shape == (2,) and finder.spread["valley"].shape == (2,)
    assert isinstance(finder.suggestion, np.ndarray)
    by_seed = np.log10(finder.member_suggestions["minimum"]).reshape(2, 3)
    np.testing.assert_allclose(np.log10(finder.suggestions["minimum"]), np.median(by_seed, 1), rtol=1e-12)
    np.testing.assert_allclose(finder.spread["minimum"], np.ptp(by_seed, 1), rtol=1e-12)
    table = finder.to_pandas()
    assert len(table) == 6 * 30 and {"member", "momentum", "seed", "step", "lr", "raw_loss", "loss"} <= set(table)
    assert list(finder.summary()["momentum"].round(3)) == [0.0, 0.9]
    after = lrjax.sweep(digits, sgd, {"learning_rate": [0.1]}, steps=20, batch_size=32, progress=False)
    np.testing.assert_array_equal(before.train_loss, after.train_loss)
    jax.tree.map(np.testing.assert_array_equal, data, digits.train_data)


def test_verify_trains_the_suggestion_and_its_neighbours(quadratic, sgd):
    finder = lrjax.find_lr(quadratic, sgd, min_lr=1e-3, max_lr=1.0, steps=50, seeds=2, progress=False)
    check = finder.verify(steps=30, progress=False)
    np.testing.assert_allclose(check.lrs[0], finder.suggestion * 2.0 ** np.arange(-3, 4), rtol=1e-12)
    direct = lrjax.sweep(quadratic, sgd, {"learning_rate": check.lrs[0]}, steps=30, seeds=2, progress=False)
    np.testing.assert_allclose(check.values[0], direct.final("loss").reshape(7, 2).mean(1), rtol=1e-6)
    assert check.best_lr == check.lrs[0, np.argmin(check.values[0])]
    assert check.regret == pytest.approx(check.values[0, 3] - check.values[0].min())
    with pytest.raises(ValueError, match="method must be one of"):
        finder.verify(method="fastest")


@pytest.mark.parametrize(
    "name, optimizer",
    [
        ("adam", lambda hp: optax.adam(hp["learning_rate"])),
        ("sgd-momentum", lambda hp: optax.sgd(hp["learning_rate"], momentum=0.9)),
    ],
)
def test_valley_of_eight_seeds_is_within_1_5x_of_the_best_of_a_32_point_grid(name, optimizer):
    """On the built-in digits MLP: the valley suggestion of an 8-seed range test over
    1e-7 … 10, trained 1000 steps, against the best of 32 log-spaced learning rates over the same
    range trained the same way (2 seeds each, batch 64)."""
    task = lrjax.datasets.digits_mlp()
    finder = lrjax.find_lr(task, optimizer, steps=200, seeds=8, batch_size=64, progress=False)
    grid = np.append(lrjax.search.log_grid(1e-7, 10.0, 32), finder.suggestion)
    result = lrjax.sweep(task, optimizer, {"learning_rate": grid}, steps=1000, batch_size=64, seeds=2, progress=False)
    final = result.final("loss").reshape(33, 2)
    final = np.where(np.isfinite(final), final, np.inf).mean(1)
    ratio = final[-1] / final[:-1].min()
    print(f"{name}: valley {finder.suggestion:.3g}, best grid lr {grid[np.argmin(final[:-1])]:.3g}, ratio {ratio:.3f}")
    assert ratio <= 1.5


@pytest.mark.parametrize(
    "kwargs, message",
    [
        (dict(min_lr=1.0, max_lr=0.1), "min_lr must be < max_lr"),
        (dict(min_lr=0.0), "min_lr must be > 0"),
        (dict(max_lr=-1.0), "max_lr must be > 0"),
        (dict(steps=9), "steps must be >= 10"),
        (dict(mode="log"), "mode must be one of"),
        (dict(smoothing=1.0), "smoothing must be < 1"),
        (dict(stop_factor=1.0), "stop_factor must be > 1"),
        (dict(configs={"learning_rate": [0.1]}), "configs must not hold 'learning_rate'"),
        (dict(seeds=0), "seeds must be >= 1"),
        (dict(batch_size=10**6), "batch_size must be <="),
    ],
)
def test_bad_input_raises_before_training(quadratic, sgd, kwargs, message):
    with pytest.raises(ValueError, match=message):
        lrjax.find_lr(quadratic, sgd, progress=False, **kwargs)


def test_an_optimizer_that_ignores_the_ramp_is_an_error(quadratic):
    with pytest.raises(ValueError, match="learning_rate"):
        lrjax.find_lr(quadratic, lambda hp: optax.sgd(0.1), progress=False)


def test_verify_without_a_suggestion_says_why(quadratic, sgd):
    """Every curve stops in the first steps (the ramp starts far above 2/L): no suggestion."""
    finder = lrjax.find_lr(quadratic, sgd, min_lr=10.0, max_lr=1e4, steps=20, seeds=2, progress=False)
    assert np.isnan(finder.suggestion)
    with pytest.raises(ValueError, match="stopped too early"):
        finder.verify(progress=False)
