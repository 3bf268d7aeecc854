"""Properties the math promises: bounds, monotonicity, continuity, holding the final value.

Parameters are drawn by hypothesis and passed to one jitted evaluator as traced arguments,
so each property compiles once per schedule family however many examples run.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import lrjax.schedules as S

SETTINGS = settings(max_examples=40, deadline=None)
values = st.floats(min_value=1e-3, max_value=10.0)
horizons = st.integers(min_value=1, max_value=300)
powers = st.floats(min_value=1.0, max_value=4.0)
GRID = jnp.arange(0, 700)


@functools.cache
def evaluator(factory):
    """A jitted function of (steps, *params) for a factory taking positional params."""
    return jax.jit(lambda steps, *params: factory(*params)(steps))


def run(factory, *params, steps=GRID):
    return np.asarray(evaluator(factory)(steps, *params))


def non_increasing(x, tol=1e-6):
    return np.all(np.diff(x) <= tol * np.abs(x[:-1]) + 1e-12)


def bounded(x, lo, hi, tol=1e-6):
    return np.all(x >= lo - tol * abs(lo) - 1e-12) and np.all(x <= hi + tol * abs(hi) + 1e-12)


DECAYS = {
    "linear": lambda a, b, t, p: S.linear(a, end_value=b, steps=t),
    "polynomial": lambda a, b, t, p: S.polynomial(a, end_value=b, steps=t, power=p),
    "cosine_decay": lambda a, b, t, p: S.cosine_decay(a, decay_steps=t, end_value=b, exponent=p),
    "wsd_linear": lambda a, b, t, p: S.warmup_stable_decay(
        a, warmup_steps=0, stable_steps=t // 2, decay_steps=t, end_value=b
    ),
    "wsd_cosine": lambda a, b, t, p: S.warmup_stable_decay(
        a, warmup_steps=0, stable_steps=t, decay_steps=t, end_value=b, decay_shape="cosine"
    ),
    "wsd_1_sqrt": lambda a, b, t, p: S.warmup_stable_decay(
        a, warmup_steps=0, stable_steps=0, decay_steps=t, end_value=b, decay_shape="1-sqrt"
    ),
    "exponential": lambda a, b, t, p: S.exponential_decay(a, decay_rate=0.99, decay_steps=t, end_value=b),
    "step": lambda a, b, t, p: S.multiply(S.step_decay(a, step_size=t, decay_rate=0.5), 1.0),
    "inverse_time": lambda a, b, t, p: S.inverse_time_decay(a, decay_rate=p, decay_steps=t),
}


@SETTINGS
@given(st.sampled_from(sorted(DECAYS)), values, values, horizons, powers)
def test_decays_are_monotone_and_stay_between_init_and_end(name, a, b, t, p):
    init, end = max(a, b), min(a, b)
    x = run(DECAYS[name], init, end, t, p)
    assert non_increasing(x), name
    lower = end if name not in ("step", "inverse_time") else 0.0
    assert bounded(x, lower, init), name
    np.testing.assert_allclose(x[0], init, rtol=1e-6)


# Schedules that are continuous in t (evaluated at real-valued steps), with the modulus of
# continuity the formula gives: |η(t + δ) − η(t)| <= bound(a, b, t, p, δ) (L·δ for a Lipschitz
# constant L; 1 − √f has unbounded slope at f = 0 and is ½-Hölder there).
LIPSCHITZ = {
    "linear": (lambda a, b, t, p: S.linear(a, end_value=b, steps=t), lambda a, b, t, p, d: abs(a - b) / t * d),
    "polynomial": (
        lambda a, b, t, p: S.polynomial(a, end_value=b, steps=t, power=p),
        lambda a, b, t, p, d: p * abs(a - b) / t * d,
    ),
    "cosine": (
        lambda a, b, t, p: S.cosine_decay(a, decay_steps=t, end_value=b),
        lambda a, b, t, p, d: np.pi / 2 * abs(a - b) / t * d,
    ),
    "warmup_cosine": (
        lambda a, b, t, p: S.warmup_cosine_decay(b, peak_value=a, warmup_steps=t, total_steps=3 * t),
        lambda a, b, t, p, d: max(abs(a - b) / t, np.pi / 2 * a / (2 * t)) * d,
    ),
    "cyclic": (
        lambda a, b, t, p: S.cyclic(b, peak_value=a, step_size_up=t, step_size_down=2 * t),
        lambda a, b, t, p, d: abs(a - b) / t * d,
    ),
    "one_cycle": (
        lambda a, b, t, p: S.one_cycle(a, total_steps=10 * t, pct_start=0.25, anneal="linear"),
        lambda a, b, t, p, d: a / (2.5 * t - 1) * d,
    ),
    "inverse_sqrt": (lambda a, b, t, p: S.inverse_sqrt(a, warmup_steps=t), lambda a, b, t, p, d: a / t * d),
    "wsd_1_sqrt": (
        lambda a, b, t, p: S.warmup_stable_decay(
            a, warmup_steps=t, stable_steps=t, decay_steps=4 * t, decay_shape="1-sqrt", init_value=b
        ),
        lambda a, b, t, p, d: abs(a - b) / t * d + a * np.sqrt(d / (4 * t)),
    ),
}
FINE = jnp.linspace(0.0, 600.0, 24001)  # δ = 0.025


@SETTINGS
@given(st.sampled_from(sorted(LIPSCHITZ)), values, values, st.integers(2, 100), powers)
def test_continuous_schedules_respect_their_modulus_of_continuity(name, a, b, t, p):
    factory, bound = LIPSCHITZ[name]
    x = run(factory, a, b, t, p, steps=FINE)
    delta = float(FINE[1] - FINE[0])
    assert np.abs(np.diff(x)).max() <= bound(a, b, t, p, delta) * 1.01 + 1e-6 * max(a, b), name


FINITE_HORIZON = {
    "linear": lambda a, b, t: S.linear(a, end_value=b, steps=t),
    "polynomial": lambda a, b, t: S.polynomial(a, end_value=b, steps=t, power=2.0),
    "cosine_decay": lambda a, b, t: S.cosine_decay(a, decay_steps=t, end_value=b),
    "warmup_cosine_decay": lambda a, b, t: S.warmup_cosine_decay(
        0.0, peak_value=a, warmup_steps=t // 3, total_steps=t, end_value=b
    ),
    "warmup_stable_decay": lambda a, b, t: S.warmup_stable_decay(
        a, warmup_steps=t // 3, stable_steps=t // 3, decay_steps=t // 3 + 1, end_value=b
    ),
    "one_cycle": lambda a, b, t: S.one_cycle(a, total_steps=t + 2, final_div_factor=a / b),
    # rate < (end/init)^(1/t): the floor is reached by step t
    "exponential_end": lambda a, b, t: S.exponential_decay(
        a, decay_rate=0.99 * (b / a) ** (1.0 / t), decay_steps=1, end_value=b
    ),
}


@SETTINGS
@given(st.sampled_from(sorted(FINITE_HORIZON)), values, values, st.integers(3, 300))
def test_holds_final_value_after_last_phase(name, a, b, t):
    init, end = max(a, b), min(a, b)
    x = run(FINITE_HORIZON[name], init, end, t, steps=jnp.asarray([t + 1, t + 2, 5 * t, 10**6]))
    np.testing.assert_allclose(x, x[-1], rtol=1e-6)
    if name != "one_cycle":  # one_cycle's final value is peak / div / final_div
        np.testing.assert_allclose(x[-1], end, rtol=1e-5)


@SETTINGS
@given(values, values, horizons, st.sampled_from(["linear", "cosine", "exponential"]))
def test_warmup_ramps_monotonically_to_the_schedule(a, b, w, shape):
    init, peak = min(a, b), max(a, b)
    x = run(lambda i, p, w: S.warmup(S.constant(p), warmup_steps=w, init_value=i, shape=shape), init, peak, w)
    assert non_increasing(-x[: w + 1]) and bounded(x, init, peak)
    assert x[w] == np.float32(peak) and x[0] == np.float32(init)


@SETTINGS
@given(values, horizons, st.sampled_from([1, 2, 3]), st.floats(0.3, 1.0))
def test_cosine_restarts_stay_below_their_decayed_peaks(a, period, mult, q):
    x = run(lambda a, p, m, q: S.cosine_restarts(a, period=p, period_mult=m, peak_mult=q), a, period, mult, q)
    assert bounded(x, 0.0, a)
    starts = [period * (mult**i - 1) // (mult - 1) if mult > 1 else period * i for i in range(len(GRID))]
    starts = [s for s in starts if s < len(GRID)]
    # The peaks are a·q^k of float32 a and q; float32's q**k = exp(k·ln q) is off from it by
    # about k·|ln q| float32 epsilons, relative.
    a32, q32 = (np.float64(np.float32(v)) for v in (a, q))
    k = np.arange(len(starts))
    peaks = a32 * q32**k
    rtol = 1e-6 + 4 * np.finfo(np.float32).eps * (1 + k * abs(np.log(q32)))
    np.testing.assert_array_less(np.abs(x[starts] - peaks), rtol * peaks + 1e-30)
    for i, s in enumerate(starts[1:], start=1):  # each cycle decays below the next restart's peak
        assert x[s - 1] <= peaks[i - 1] * (1 + rtol[i - 1])
