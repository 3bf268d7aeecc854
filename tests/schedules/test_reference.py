"""Every schedule with a PyTorch, Keras or Optax counterpart matches it at steps 0..130 under jit.

PyTorch and Keras values come from ``tests/reference/values.json``, produced by
``tests/reference/generate.py`` with real torch 2.13 and Keras 3; Optax is compared live.
"""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax.schedules as S

REFERENCE = json.loads((pathlib.Path(__file__).parents[1] / "reference" / "values.json").read_text())
STEPS = jnp.arange(131)
B = 0.1  # the base learning rate of every PyTorch case

LRJAX = {
    "torch_exponential": S.exponential_decay(B, decay_rate=0.95),
    "torch_step": S.step_decay(B, step_size=30, decay_rate=0.1),
    "torch_multistep": S.multistep_decay(B, milestones=[80, 30, 80], decay_rate=0.5),
    "torch_linear_warmup": S.linear(0.25 * B, end_value=B, steps=40),
    "torch_linear_decay": S.linear(B, end_value=0.1 * B, steps=100),
    "torch_polynomial": S.polynomial(B, end_value=0.0, steps=100, power=2.0),
    "torch_cosine": S.cosine_decay(B, decay_steps=130, end_value=0.001),
    "torch_restarts_mult2": S.cosine_restarts(B, period=10, period_mult=2, end_value=0.001),
    "torch_restarts_mult1": S.cosine_restarts(B, period=25),
    "torch_cyclic_triangular": S.cyclic(0.01, peak_value=0.1, step_size_up=10, step_size_down=15),
    "torch_cyclic_triangular2": S.cyclic(0.01, peak_value=0.1, step_size_up=8, mode="triangular2"),
    "torch_cyclic_exp_range": S.cyclic(0.01, peak_value=0.1, step_size_up=12, mode="exp_range", gamma=0.99),
    "torch_one_cycle_cos": S.one_cycle(B, total_steps=131),
    "torch_one_cycle_linear": S.one_cycle(B, total_steps=131, pct_start=0.25, anneal="linear"),
    "torch_one_cycle_three_phase": S.one_cycle(
        B, total_steps=131, pct_start=0.2, div_factor=10.0, final_div_factor=100.0, three_phase=True
    ),
    "torch_sequential": S.join(
        [S.linear(0.1 * B, end_value=B, steps=10), S.exponential_decay(B, decay_rate=0.97)], boundaries=[10]
    ),
    "torch_chained": S.multiply(S.linear(0.5, end_value=1.0, steps=20), S.exponential_decay(B, decay_rate=0.98)),
    "torch_lambda_per_epoch": S.from_epoch_fn(lambda e: B * 0.9**e, steps_per_epoch=7),
    "keras_exponential": S.exponential_decay(0.1, decay_rate=0.5, decay_steps=10),
    "keras_exponential_staircase": S.exponential_decay(0.1, decay_rate=0.5, decay_steps=7, staircase=True),
    "keras_inverse_time": S.inverse_time_decay(0.1, decay_rate=0.5, decay_steps=5),
    "keras_inverse_time_staircase": S.inverse_time_decay(0.1, decay_rate=0.5, decay_steps=5, staircase=True),
    "keras_polynomial": S.polynomial(0.1, end_value=0.01, steps=100, power=0.5),
    "keras_polynomial_cycle": S.polynomial(0.1, end_value=0.01, steps=30, power=2.0, cycle=True),
    "keras_cosine": S.cosine_decay(0.1, decay_steps=100, end_value=0.01),
    "keras_cosine_warmup": S.warmup_cosine_decay(
        0.0, peak_value=0.1, warmup_steps=20, total_steps=120, end_value=0.005
    ),
    "keras_restarts": S.cosine_restarts(0.1, period=10, period_mult=2.0, peak_mult=0.8, end_value=0.001),
    "keras_restarts_float_mult": S.cosine_restarts(0.1, period=8.0, period_mult=1.5, peak_mult=0.9),
    # Keras switches one step after each boundary (t > b); lrjax and Optax switch at t >= b.
    "keras_piecewise": S.piecewise_constant([0.1, 0.05, 0.01], boundaries=[31, 71]),
}


def assert_matches(schedule, expected):
    got = np.asarray(jax.jit(schedule)(STEPS[: len(expected)]))
    one_by_one = np.asarray([jax.jit(schedule)(t) for t in range(len(expected))])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-9)
    np.testing.assert_allclose(one_by_one, expected, rtol=1e-5, atol=1e-9)


def test_every_reference_has_an_lrjax_case():
    assert set(REFERENCE["schedules"]) == set(LRJAX)


@pytest.mark.parametrize("name", sorted(LRJAX))
def test_matches_pytorch_and_keras(name):
    assert_matches(LRJAX[name], REFERENCE["schedules"][name])


OPTAX = {
    "exponential": (
        S.exponential_decay(0.5, decay_rate=0.9, decay_steps=7, begin_step=10),
        optax.exponential_decay(0.5, transition_steps=7, decay_rate=0.9, transition_begin=10),
    ),
    "exponential_staircase_floor": (
        S.exponential_decay(0.5, decay_rate=0.8, decay_steps=5, staircase=True, end_value=0.05),
        optax.exponential_decay(0.5, 5, 0.8, staircase=True, end_value=0.05),
    ),
    "exponential_growth_ceiling": (
        S.exponential_decay(0.01, decay_rate=1.1, decay_steps=3, end_value=0.2),
        optax.exponential_decay(0.01, 3, 1.1, end_value=0.2),
    ),
    "linear": (
        S.linear(0.3, end_value=0.01, steps=50, begin_step=20),
        optax.linear_schedule(0.3, 0.01, 50, transition_begin=20),
    ),
    "polynomial": (
        S.polynomial(0.3, end_value=0.02, steps=60, power=3.0, begin_step=5),
        optax.polynomial_schedule(0.3, 0.02, 3.0, 60, transition_begin=5),
    ),
    "cosine": (
        S.cosine_decay(0.2, decay_steps=90, end_value=0.2 * 0.1, exponent=2.0),
        optax.cosine_decay_schedule(0.2, 90, alpha=0.1, exponent=2.0),
    ),
    "warmup_cosine": (
        S.warmup_cosine_decay(0.01, peak_value=0.5, warmup_steps=15, total_steps=100, end_value=0.02, exponent=1.5),
        optax.warmup_cosine_decay_schedule(0.01, 0.5, 15, 100, end_value=0.02, exponent=1.5),
    ),
    "join": (
        S.join(
            [S.linear(0.0, end_value=1.0, steps=10), S.cosine_decay(1.0, decay_steps=50), S.constant(0.3)],
            boundaries=[10, 60],
        ),
        optax.join_schedules(
            [optax.linear_schedule(0.0, 1.0, 10), optax.cosine_decay_schedule(1.0, 50), optax.constant_schedule(0.3)],
            [10, 60],
        ),
    ),
    "piecewise_constant": (
        S.piecewise_constant([1.0, 0.5, 0.05], boundaries=[25, 75]),
        optax.piecewise_constant_schedule(1.0, {25: 0.5, 75: 0.1}),
    ),
    "constant": (S.constant(0.125), optax.constant_schedule(0.125)),
}


@pytest.mark.parametrize("name", sorted(OPTAX))
def test_matches_optax(name):
    ours, theirs = OPTAX[name]
    assert_matches(ours, np.asarray([theirs(t) for t in range(131)]))
