"""Exactness at phase boundaries under jit.

Each schedule is closed over by a jitted function, so its lengths are compile-time constants
and XLA is free to rewrite x / c as x * (1 / c). Off-by-one floors show up as a whole factor.
"""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

import lrjax.schedules as S

lengths = st.integers(min_value=1, max_value=997)
cycles = st.integers(min_value=1, max_value=40)
FAST = settings(max_examples=25, deadline=None)


def at(schedule, steps):
    return np.asarray(jax.jit(lambda: schedule(jnp.asarray(steps)))())


@FAST
@given(lengths, cycles, st.booleans())
def test_step_decay_changes_exactly_at_multiples(step_size, k, float_steps):
    schedule = S.step_decay(1.0, step_size=float(step_size) if float_steps else step_size, decay_rate=0.5)
    before, on = at(schedule, [k * step_size - 1, k * step_size])
    np.testing.assert_allclose([before, on], [0.5 ** (k - 1), 0.5**k], rtol=1e-6)


@FAST
@given(lengths, cycles)
def test_polynomial_cycle_reaches_end_exactly_at_multiples(steps, k):
    schedule = S.polynomial(1.0, end_value=0.0, steps=steps, power=1.0, cycle=True)
    on, after = at(schedule, [k * steps, k * steps + 1])
    assert on == 0.0  # the horizon at t = k·steps is k·steps, not (k + 1)·steps
    np.testing.assert_allclose(after, 1.0 - (k * steps + 1) / ((k + 1) * steps), rtol=1e-5, atol=1e-7)


@FAST
@given(lengths, cycles)
def test_staircase_exponent_and_epochs_floor_exactly(decay_steps, k):
    t = [k * decay_steps - 1, k * decay_steps]
    np.testing.assert_allclose(
        at(S.exponential_decay(1.0, decay_rate=0.5, decay_steps=decay_steps, staircase=True), t),
        [0.5 ** (k - 1), 0.5**k],
        rtol=1e-6,
    )
    np.testing.assert_allclose(
        at(S.inverse_time_decay(1.0, decay_rate=1.0, decay_steps=decay_steps, staircase=True), t),
        [1 / k, 1 / (k + 1)],
        rtol=1e-6,
    )
    np.testing.assert_array_equal(at(S.from_epoch_fn(lambda e: e, steps_per_epoch=decay_steps), t), [k - 1, k])


@FAST
@given(lengths, lengths, cycles)
def test_cyclic_hits_base_and_peak_exactly(up, down, k):
    schedule = S.cyclic(0.25, peak_value=1.0, step_size_up=up, step_size_down=down)
    start, peak = at(schedule, [k * (up + down), k * (up + down) + up])
    assert (start, peak) == (0.25, 1.0)


@FAST
@given(st.integers(1, 200), st.integers(1, 4), st.integers(0, 8))
def test_cosine_restarts_restart_exactly(period, mult, i):
    start = period * (mult**i - 1) // (mult - 1) if mult > 1 else period * i
    schedule = S.cosine_restarts(1.0, period=period, period_mult=mult, peak_mult=0.5)
    last, first = at(schedule, [start - 1, start])
    assert first == np.float32(0.5**i)
    if start > 0:
        assert last < 0.5 ** max(i - 1, 0) * 0.5 or period * mult ** max(i - 1, 0) == 1


@FAST
@given(lengths, st.floats(0.0, 1.0))
def test_warmup_starts_and_ends_exactly(warmup_steps, init_value):
    schedule = S.warmup(S.constant(2.0), warmup_steps=warmup_steps, init_value=init_value)
    first, before, on = at(schedule, [0, warmup_steps - 1, warmup_steps])
    assert first == np.float32(init_value) and on == 2.0
    assert np.float32(init_value) <= before <= 2.0


@FAST
@given(st.lists(lengths, min_size=1, max_size=5, unique=True))
def test_join_and_piecewise_switch_exactly_at_boundaries(boundaries):
    boundaries = sorted(boundaries)
    values = [float(i + 1) for i in range(len(boundaries) + 1)]
    steps = [b + d for b in boundaries for d in (-1, 0)]
    expected = [values[i + d] for i in range(len(boundaries)) for d in (0, 1)]
    np.testing.assert_array_equal(at(S.piecewise_constant(values, boundaries=boundaries), steps), expected)
    np.testing.assert_array_equal(at(S.join(values, boundaries=boundaries), steps), expected)
    np.testing.assert_array_equal(
        at(S.multistep_decay(1.0, milestones=boundaries, decay_rate=0.5), steps),
        [0.5**v for v in np.array(expected) - 1],
    )


def test_decays_end_exactly_on_their_end_value():
    assert at(S.linear(0.3, end_value=0.0, steps=7), 7) == 0.0
    assert at(S.cosine_decay(0.3, decay_steps=7), 7) == 0.0
    assert at(S.warmup_cosine_decay(0.0, peak_value=1.0, warmup_steps=3, total_steps=10), 10) == 0.0
    assert (
        at(S.warmup_stable_decay(1.0, warmup_steps=3, stable_steps=3, decay_steps=7, decay_shape="1-sqrt"), 13) == 0.0
    )
    assert at(S.one_cycle(1.0, total_steps=100, div_factor=10.0, final_div_factor=10.0), 99) == np.float32(0.01)


def test_float_and_integer_steps_agree():
    schedules = [
        S.step_decay(1.0, step_size=7),
        S.cosine_restarts(1.0, period=7, period_mult=2),
        S.cyclic(0.1, peak_value=1.0, step_size_up=7, step_size_down=3),
        S.polynomial(1.0, end_value=0.0, steps=7, cycle=True),
        S.warmup_stable_decay(1.0, warmup_steps=7, stable_steps=7, decay_steps=7),
    ]
    steps = jnp.arange(100)
    for schedule in schedules:
        np.testing.assert_allclose(at(schedule, steps), at(schedule, steps.astype(jnp.float32)), rtol=1e-6, atol=1e-7)
