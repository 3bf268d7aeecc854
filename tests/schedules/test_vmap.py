"""Every numeric parameter of every schedule can be traced: a vmapped sweep over it equals
evaluating the values one at a time (and the values really differ)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax.schedules as S
from lrjax.schedules._warmup import Warmup

STEPS = jnp.arange(0, 160, 3)

# (id, factory, base keyword arguments, {parameter: values to sweep})
CASES = [
    ("constant", S.constant, dict(value=0.1), {"value": [0.1, 0.2, 0.3]}),
    (
        "piecewise_constant",
        S.piecewise_constant,
        dict(values=[1.0, 0.5, 0.1], boundaries=[30, 90]),
        {"values": [[1.0, 0.5, 0.1], [2.0, 0.2, 0.02]], "boundaries": [[30, 90], [10, 100], [50, 51]]},
    ),
    (
        "exponential_decay",
        S.exponential_decay,
        dict(init_value=1.0, decay_rate=0.9, decay_steps=10, begin_step=5, end_value=0.3),
        {
            "init_value": [1.0, 0.5],
            "decay_rate": [0.5, 0.9, 1.2],
            "decay_steps": [3, 10, 25],
            "begin_step": [0, 5, 50],
            "end_value": [0.1, 0.3, 2.0],
        },
    ),
    (
        "exponential_decay_staircase",
        lambda **kw: S.exponential_decay(**kw, staircase=True),
        dict(init_value=1.0, decay_rate=0.7, decay_steps=10),
        {"decay_steps": [3, 7, 30], "decay_rate": [0.5, 0.7]},
    ),
    (
        "step_decay",
        S.step_decay,
        dict(init_value=1.0, step_size=30, decay_rate=0.1),
        {"init_value": [1.0, 3.0], "step_size": [7, 30, 45], "decay_rate": [0.1, 0.5]},
    ),
    (
        "multistep_decay",
        S.multistep_decay,
        dict(init_value=1.0, milestones=[30, 60], decay_rate=0.5),
        {"init_value": [1.0, 2.0], "milestones": [[30, 60], [10, 10], [0, 150]], "decay_rate": [0.1, 0.5]},
    ),
    (
        "inverse_time_decay",
        S.inverse_time_decay,
        dict(init_value=1.0, decay_rate=0.5, decay_steps=10),
        {"init_value": [1.0, 0.1], "decay_rate": [0.0, 0.5, 2.0], "decay_steps": [1, 10, 33]},
    ),
    (
        "inverse_time_decay_staircase",
        lambda **kw: S.inverse_time_decay(**kw, staircase=True),
        dict(init_value=1.0, decay_rate=0.5, decay_steps=10),
        {"decay_steps": [1, 10, 33]},
    ),
    (
        "linear",
        S.linear,
        dict(init_value=1.0, end_value=0.0, steps=100, begin_step=10),
        {"init_value": [1.0, 0.0], "end_value": [0.0, 2.0], "steps": [1, 50, 100], "begin_step": [0, 10, 40]},
    ),
    (
        "polynomial",
        S.polynomial,
        dict(init_value=1.0, end_value=0.1, steps=100, power=2.0, begin_step=10),
        {
            "init_value": [1.0, 0.5],
            "end_value": [0.1, 0.0],
            "steps": [20, 100],
            "power": [0.5, 1.0, 3.0],
            "begin_step": [0, 10],
        },
    ),
    (
        "polynomial_cycle",
        lambda **kw: S.polynomial(**kw, cycle=True),
        dict(init_value=1.0, end_value=0.1, steps=30, power=2.0),
        {"steps": [7, 30, 41], "power": [0.5, 2.0]},
    ),
    (
        "cosine_decay",
        S.cosine_decay,
        dict(init_value=1.0, decay_steps=100, end_value=0.1, exponent=1.0),
        {"init_value": [1.0, 0.5], "decay_steps": [10, 100, 150], "end_value": [0.0, 0.1], "exponent": [0.5, 1.0, 2.0]},
    ),
    (
        "cosine_restarts",
        S.cosine_restarts,
        dict(init_value=1.0, period=10, period_mult=2, peak_mult=0.8, end_value=0.01),
        {
            "init_value": [1.0, 0.5],
            "period": [5, 10, 17],
            "period_mult": [1, 2, 3],
            "peak_mult": [1.0, 0.8],
            "end_value": [0.0, 0.01],
        },
    ),
    (
        "cosine_restarts_float",
        S.cosine_restarts,
        dict(init_value=1.0, period=10.0, period_mult=1.5),
        {"period": [5.0, 12.5], "period_mult": [1.0, 1.5, 2.5]},
    ),
    (
        "warmup",
        lambda **kw: S.warmup(S.cosine_decay(1.0, decay_steps=100), **kw),
        dict(warmup_steps=20, init_value=0.0),
        {"warmup_steps": [0, 5, 20], "init_value": [0.0, 0.5]},
    ),
    (
        "warmup_exponential",
        lambda **kw: S.warmup(S.exponential_decay(1.0, decay_rate=0.98), **kw, shape="exponential"),
        dict(warmup_steps=20, init_value=0.01),
        {"warmup_steps": [1, 20, 60], "init_value": [0.01, 0.1]},
    ),
    (
        "warmup_cosine_decay",
        S.warmup_cosine_decay,
        dict(init_value=0.0, peak_value=1.0, warmup_steps=10, total_steps=100, end_value=0.1, exponent=1.0),
        {
            "init_value": [0.0, 0.2],
            "peak_value": [1.0, 2.0],
            "warmup_steps": [0, 10, 50],
            "total_steps": [60, 100, 150],
            "end_value": [0.0, 0.1],
            "exponent": [1.0, 2.0],
        },
    ),
    (
        "warmup_stable_decay",
        lambda **kw: S.warmup_stable_decay(**kw, decay_shape="1-sqrt"),
        dict(peak_value=1.0, warmup_steps=10, stable_steps=50, decay_steps=40, init_value=0.0, end_value=0.0),
        {
            "peak_value": [1.0, 0.5],
            "warmup_steps": [0, 10, 30],
            "stable_steps": [0, 50, 80],
            "decay_steps": [10, 40],
            "init_value": [0.0, 0.1],
            "end_value": [0.0, 0.05],
        },
    ),
    (
        "inverse_sqrt",
        S.inverse_sqrt,
        dict(peak_value=1.0, warmup_steps=20),
        {"peak_value": [1.0, 0.3], "warmup_steps": [1, 20, 64]},
    ),
    (
        "cyclic",
        lambda **kw: S.cyclic(**kw, mode="exp_range"),
        dict(base_value=0.1, peak_value=1.0, step_size_up=10, step_size_down=20, gamma=0.99),
        {
            "base_value": [0.0, 0.1],
            "peak_value": [1.0, 0.5],
            "step_size_up": [4, 10, 25],
            "step_size_down": [4, 20],
            "gamma": [1.0, 0.99],
        },
    ),
    (
        "cyclic_triangular2",
        lambda **kw: S.cyclic(**kw, mode="triangular2"),
        dict(base_value=0.1, peak_value=1.0, step_size_up=10),
        {"step_size_up": [4, 10, 25]},
    ),
    (
        "one_cycle",
        S.one_cycle,
        dict(peak_value=1.0, total_steps=120, pct_start=0.3, div_factor=25.0, final_div_factor=1e4),
        {
            "peak_value": [1.0, 0.1],
            "total_steps": [50, 120, 200],
            "pct_start": [0.1, 0.3, 0.7],
            "div_factor": [10.0, 25.0],
            "final_div_factor": [100.0, 1e4],
        },
    ),
    (
        "one_cycle_three_phase",
        lambda **kw: S.one_cycle(**kw, three_phase=True, anneal="linear"),
        dict(peak_value=1.0, total_steps=120, pct_start=0.3),
        {"total_steps": [50, 120], "pct_start": [0.1, 0.3, 0.45]},
    ),
    (
        "join",
        lambda boundaries: S.join(
            [S.linear(0.0, end_value=1.0, steps=10), S.cosine_decay(1.0, decay_steps=50), 0.05], boundaries=boundaries
        ),
        dict(boundaries=[10, 60]),
        {"boundaries": [[10, 60], [5, 100], [0, 1]]},
    ),
    (
        "multiply",
        lambda rate: S.multiply(S.linear(0.1, end_value=1.0, steps=20), S.exponential_decay(1.0, decay_rate=rate)),
        dict(rate=0.9),
        {"rate": [0.9, 0.99, 1.01]},
    ),
    (
        "from_epoch_fn",
        lambda steps_per_epoch: S.from_epoch_fn(lambda e: 0.5 ** jnp.minimum(e, 4), steps_per_epoch=steps_per_epoch),
        dict(steps_per_epoch=10),
        {"steps_per_epoch": [1, 10, 33]},
    ),
    (
        "scale_for_batch_size",
        lambda **kw: S.scale_for_batch_size(S.cosine_decay(kw.pop("value"), decay_steps=100), **kw, rule="sqrt"),
        dict(value=0.1, base_batch_size=256, batch_size=1024),
        {"value": [0.1, 0.3], "base_batch_size": [128, 256], "batch_size": [64, 1024, 4096]},
    ),
]

PARAMS = [(case_id, param) for case_id, _, _, sweeps in CASES for param in sweeps]
BY_ID = {case_id: (factory, base, sweeps) for case_id, factory, base, sweeps in CASES}


@pytest.mark.parametrize("case_id, param", PARAMS, ids=[f"{c}-{p}" for c, p in PARAMS])
def test_vmapped_parameter_equals_one_at_a_time(case_id, param):
    factory, base, sweeps = BY_ID[case_id]
    values = sweeps[param]

    def evaluate(value):
        return factory(**{**base, param: value})(STEPS)

    batched = jax.jit(jax.vmap(evaluate))(jnp.asarray(values))
    singles = np.stack([np.asarray(evaluate(value)) for value in values])
    np.testing.assert_allclose(np.asarray(batched), singles, rtol=2e-6, atol=1e-7)
    assert not np.allclose(singles[0], singles[1]), "the swept values should change the schedule"


def test_a_batch_of_schedules_is_a_schedule_with_batched_leaves():
    schedules = [
        S.warmup_cosine_decay(0.0, peak_value=peak, warmup_steps=10, total_steps=100) for peak in (0.1, 0.2, 0.4)
    ]
    batch = jax.tree.map(lambda *leaves: jnp.stack([jnp.asarray(x) for x in leaves]), *schedules)
    assert isinstance(batch, Warmup)
    values = jax.vmap(lambda s: s(STEPS))(batch)
    np.testing.assert_allclose(values, np.stack([s(STEPS) for s in schedules]), rtol=1e-6)
