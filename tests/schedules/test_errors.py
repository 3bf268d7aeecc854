"""Bad arguments raise ValueError (TypeError for non-numbers) naming the argument and value."""

import inspect
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax.schedules as S
from lrjax.schedules._anneal import Anneal
from lrjax.schedules._combine import BatchScaled, FromEpochFn, Join, Multiply
from lrjax.schedules._cyclic import Cyclic
from lrjax.schedules._decay import ExponentialDecay, MultistepDecay, PiecewiseConstant
from lrjax.schedules._warmup import Warmup

BAD = [
    # non-positive lengths
    (lambda: S.exponential_decay(1.0, decay_rate=0.5, decay_steps=0), ValueError, "decay_steps must be > 0, got 0"),
    (lambda: S.step_decay(1.0, step_size=-3), ValueError, "step_size must be > 0, got -3"),
    (
        lambda: S.inverse_time_decay(1.0, decay_rate=0.5, decay_steps=0.0),
        ValueError,
        "decay_steps must be > 0, got 0.0",
    ),
    (lambda: S.linear(1.0, end_value=0.0, steps=0), ValueError, "steps must be > 0, got 0"),
    (lambda: S.polynomial(1.0, end_value=0.0, steps=-10), ValueError, "steps must be > 0, got -10"),
    (lambda: S.cosine_decay(1.0, decay_steps=0), ValueError, "decay_steps must be > 0, got 0"),
    (lambda: S.cosine_restarts(1.0, period=0), ValueError, "period must be > 0, got 0"),
    (lambda: S.warmup(S.constant(1.0), warmup_steps=-1), ValueError, "warmup_steps must be >= 0, got -1"),
    (
        lambda: S.warmup_cosine_decay(0.0, peak_value=1.0, warmup_steps=100, total_steps=100),
        ValueError,
        r"total_steps must be > warmup_steps \(100\), got 100",
    ),
    (
        lambda: S.warmup_stable_decay(1.0, warmup_steps=10, stable_steps=-5, decay_steps=10),
        ValueError,
        "stable_steps must be >= 0, got -5",
    ),
    (
        lambda: S.warmup_stable_decay(1.0, warmup_steps=10, stable_steps=5, decay_steps=0),
        ValueError,
        "decay_steps must be > 0, got 0",
    ),
    (lambda: S.inverse_sqrt(1.0, warmup_steps=0), ValueError, "warmup_steps must be > 0, got 0"),
    (lambda: S.cyclic(0.1, peak_value=1.0, step_size_up=0), ValueError, "step_size_up must be > 0, got 0"),
    (
        lambda: S.cyclic(0.1, peak_value=1.0, step_size_up=5, step_size_down=-1),
        ValueError,
        "step_size_down must be > 0, got -1",
    ),
    (lambda: S.one_cycle(1.0, total_steps=0), ValueError, "total_steps must be > 0, got 0"),
    (lambda: S.from_epoch_fn(lambda e: e, steps_per_epoch=0), ValueError, "steps_per_epoch must be > 0, got 0"),
    (
        lambda: S.scale_for_batch_size(0.1, base_batch_size=0, batch_size=256),
        ValueError,
        "base_batch_size must be > 0, got 0",
    ),
    (
        lambda: S.scale_for_batch_size(0.1, base_batch_size=256, batch_size=-1),
        ValueError,
        "batch_size must be > 0, got -1",
    ),
    (lambda: S.exponential_decay(1.0, decay_rate=0.5, begin_step=-1), ValueError, "begin_step must be >= 0, got -1"),
    # out-of-range factors and fractions
    (lambda: S.exponential_decay(1.0, decay_rate=0.0), ValueError, "decay_rate must be > 0, got 0.0"),
    (lambda: S.step_decay(1.0, step_size=10, decay_rate=-0.1), ValueError, "decay_rate must be > 0, got -0.1"),
    (lambda: S.inverse_time_decay(1.0, decay_rate=-0.5), ValueError, "decay_rate must be >= 0, got -0.5"),
    (lambda: S.polynomial(1.0, end_value=0.0, steps=10, power=0.0), ValueError, "power must be > 0, got 0.0"),
    (lambda: S.cosine_decay(1.0, decay_steps=10, exponent=-1.0), ValueError, "exponent must be > 0, got -1.0"),
    (lambda: S.cosine_restarts(1.0, period=10, period_mult=0.5), ValueError, "period_mult must be >= 1, got 0.5"),
    (lambda: S.cosine_restarts(1.0, period=10, peak_mult=0.0), ValueError, "peak_mult must be > 0, got 0.0"),
    (lambda: S.one_cycle(1.0, total_steps=100, pct_start=1.0), ValueError, "pct_start must be < 1, got 1.0"),
    (lambda: S.one_cycle(1.0, total_steps=100, pct_start=0.0), ValueError, "pct_start must be > 0, got 0.0"),
    (
        lambda: S.one_cycle(1.0, total_steps=100, pct_start=0.6, three_phase=True),
        ValueError,
        "pct_start must be < 0.5, got 0.6",
    ),
    (lambda: S.one_cycle(1.0, total_steps=100, div_factor=0.0), ValueError, "div_factor must be > 0, got 0.0"),
    (lambda: S.cyclic(0.1, peak_value=1.0, step_size_up=5, gamma=1.5), ValueError, "gamma must be <= 1, got 1.5"),
    (
        lambda: S.warmup(S.constant(1.0), warmup_steps=10, shape="exponential"),
        ValueError,
        "init_value must be > 0, got 0.0",
    ),
    # unsorted or mismatched boundaries and milestones
    (
        lambda: S.piecewise_constant([1.0, 0.5, 0.1], boundaries=[50, 20]),
        ValueError,
        r"boundaries must be strictly increasing, got \[50, 20\]",
    ),
    (
        lambda: S.piecewise_constant([1.0, 0.5], boundaries=[10, 20]),
        ValueError,
        r"values must have 3 entries \(one more than boundaries\), got \[1.0, 0.5\]",
    ),
    (
        lambda: S.piecewise_constant([1.0, 0.5], boundaries=[-1]),
        ValueError,
        r"boundaries must be >= 0, got -1 in \[-1\]",
    ),
    (
        lambda: S.join([S.constant(1.0), S.constant(0.5)], boundaries=[10, 20]),
        ValueError,
        r"boundaries must have 1 entries",
    ),
    (lambda: S.join([1.0, 0.5, 0.1], boundaries=[20, 20]), ValueError, "boundaries must be strictly increasing"),
    (lambda: S.join([], boundaries=[]), ValueError, "schedules must contain at least one schedule"),
    (lambda: S.multistep_decay(1.0, milestones=[10, -5]), ValueError, r"milestones must be >= 0, got -5 in \[10, -5\]"),
    (lambda: S.multistep_decay(1.0, milestones=10), ValueError, "milestones must be a sequence of numbers, got 10"),
    (lambda: S.multiply(), ValueError, "multiply needs at least one schedule"),
    # unknown modes
    (
        lambda: S.cyclic(0.1, peak_value=1.0, step_size_up=5, mode="triangle"),
        ValueError,
        "mode must be one of .*'triangular'.*got 'triangle'",
    ),
    (
        lambda: S.one_cycle(1.0, total_steps=100, anneal="quadratic"),
        ValueError,
        "anneal must be one of .*'cosine'.*got 'quadratic'",
    ),
    (lambda: S.warmup(S.constant(1.0), warmup_steps=10, shape="quadratic"), ValueError, "shape must be one of"),
    (
        lambda: S.warmup_stable_decay(1.0, warmup_steps=1, stable_steps=1, decay_steps=1, decay_shape="sqrt"),
        ValueError,
        "decay_shape must be one of",
    ),
    (
        lambda: S.scale_for_batch_size(0.1, base_batch_size=256, batch_size=512, rule="square"),
        ValueError,
        "rule must be one of",
    ),
    # non-finite values
    (lambda: S.constant(math.nan), ValueError, "value must be finite, got nan"),
    (lambda: S.exponential_decay(math.inf, decay_rate=0.5), ValueError, "init_value must be finite, got inf"),
    (lambda: S.linear(1.0, end_value=-math.inf, steps=10), ValueError, "end_value must be finite, got -inf"),
    (lambda: S.cosine_decay(1.0, decay_steps=jnp.nan), ValueError, "decay_steps must be finite, got nan"),
    (
        lambda: S.piecewise_constant([1.0, math.nan], boundaries=[5]),
        ValueError,
        r"values must be finite, got nan in \[1.0, nan\]",
    ),
    (
        lambda: S.warmup_cosine_decay(0.0, peak_value=1.0, warmup_steps=10, total_steps=math.inf),
        ValueError,
        "total_steps must be finite, got inf",
    ),
    (
        lambda: S.exponential_decay(1.0, decay_rate=0.5, end_value=math.nan),
        ValueError,
        "end_value must be finite, got nan",
    ),
    # wrong types
    (lambda: S.constant("0.1"), TypeError, "value must be a number, got '0.1'"),
    (lambda: S.linear(1.0, end_value=None, steps=10), TypeError, "end_value must be a number, got None"),
    (lambda: S.step_decay(1.0, step_size=True), TypeError, "step_size must be a number, got True"),
    (lambda: S.warmup(lambda t: 1.0, warmup_steps=10), TypeError, "schedule must be an lrjax schedule"),
    (
        lambda: S.join([lambda t: 1.0], boundaries=[]),
        TypeError,
        r"schedules\[0\] must be an lrjax schedule or a number",
    ),
    (lambda: S.from_epoch_fn(0.1, steps_per_epoch=10), TypeError, "fn must be callable"),
]


@pytest.mark.parametrize("make, error, message", BAD, ids=[m for _, _, m in BAD])
def test_bad_argument_is_named_with_its_value(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_schedule_rejects_non_numeric_steps():
    with pytest.raises(TypeError, match="step must be an integer or float array"):
        S.constant(1.0)(jnp.asarray(True))


# Arguments a function owns (renamed, combined or converted to arrays before it builds its
# class; CLASS_BAD gives the classes those values directly); every other bad argument in BAD is
# rejected by the class's own validation, which the function reaches.
FUNCTION_ARGUMENTS = {
    "step_size",
    "decay_steps",
    "exponent",
    "total_steps",
    "stable_steps",
    "decay_shape",
    "milestones",
    "values",
    "boundaries",
    "schedules",
    "schedules\\[0\\]",
    "multiply",
}


@pytest.mark.parametrize("make, error, message", BAD, ids=[m for _, _, m in BAD])
def test_the_class_rejects_what_its_function_rejects(make, error, message):
    with pytest.raises(error, match=message) as info:
        make()
    # The class validates in __post_init__: each field's declared rule, then _check.
    in_class = any(entry.name == "__post_init__" for entry in info.traceback)
    assert in_class or message.split()[0] in FUNCTION_ARGUMENTS, message


CLASS_BAD = [  # the arguments the functions own, given to the classes directly
    (lambda: Cyclic(0.1, 1.0, 0, 0, 1.0), ValueError, "step_size_up must be > 0, got 0"),  # was -inf at every step
    (lambda: ExponentialDecay(1.0, 0.5, 0, 0, None, staircase=True), ValueError, "decay_steps must be > 0, got 0"),
    (lambda: Anneal(1.0, 0.0, 0, 1.0, 0, "cosine"), ValueError, "steps must be > 0, got 0"),
    (lambda: Anneal(1.0, 0.0, 10, -1.0, 0, "cosine"), ValueError, "power must be > 0, got -1.0"),
    (lambda: Anneal(1.0, 0.0, 10, 1.0, 0, "quadratic"), ValueError, "shape must be one of"),
    (lambda: PiecewiseConstant(jnp.asarray([1.0, math.nan]), jnp.asarray([5])), ValueError, "values must be finite"),
    (
        lambda: PiecewiseConstant(jnp.asarray([1.0, 0.5, 0.1]), jnp.asarray([50, 20])),
        ValueError,
        "boundaries must be strictly increasing",
    ),
    (
        lambda: PiecewiseConstant(jnp.asarray([1.0, 0.5]), jnp.asarray([-1])),
        ValueError,
        r"boundaries must be >= 0, got -1",
    ),
    (lambda: MultistepDecay(1.0, jnp.asarray([10, -5]), 0.1), ValueError, r"milestones must be >= 0, got -5"),
    (lambda: Join((S.constant(1.0),), jnp.asarray([5])), ValueError, r"boundaries must have 0 entries"),
    (lambda: Join((), jnp.asarray([])), TypeError, "schedules must be a non-empty tuple of lrjax schedules"),
    (
        lambda: Join((lambda t: 1.0,), jnp.asarray([])),
        TypeError,
        "schedules must be a non-empty tuple of lrjax schedules",
    ),
    (lambda: Multiply(()), TypeError, "schedules must be a non-empty tuple of lrjax schedules"),
    (lambda: Warmup(S.constant(1.0), -1, 0.0), ValueError, "warmup_steps must be >= 0, got -1"),
    (lambda: Warmup(0.1, 10, 0.0), TypeError, "schedule must be an lrjax schedule"),
    (lambda: BatchScaled(0.1, 256, 512), TypeError, "schedule must be an lrjax schedule"),
    (lambda: FromEpochFn(10, 0.1), TypeError, "fn must be callable"),
]


@pytest.mark.parametrize("make, error, message", CLASS_BAD, ids=[m for _, _, m in CLASS_BAD])
def test_an_exported_class_validates_like_its_function(make, error, message):
    with pytest.raises(error, match=message):
        make()


def test_classes_take_traced_and_batched_values():
    # Validation inspects concrete values only; JAX rebuilds schedules without the constructor.
    traced = jax.jit(lambda up: Cyclic(0.1, 1.0, up, up, 1.0)(3))(jnp.asarray(6))
    assert float(traced) == pytest.approx(0.1 + 0.9 * 3 / 6)
    batch = Cyclic(
        jnp.asarray([0.1, 0.2]),
        jnp.asarray([1.0, 2.0]),
        jnp.asarray([4, 8]),
        jnp.asarray([4, 8]),
        jnp.asarray([1.0, 1.0]),
    )
    values = jax.vmap(lambda s: s(2))(batch)
    np.testing.assert_allclose(values, [0.1 + 0.9 * 2 / 4, 0.2 + 1.8 * 2 / 8], rtol=1e-6)
    axes = jax.tree.map(lambda _: 0, batch)  # a pytree of vmap axes: all leaves 0, never validated
    assert isinstance(axes, Cyclic) and axes.step_size_up == 0


PORTED_FROM_OPTAX = [
    # optax.exponential_decay(init_value, transition_steps, decay_rate): lrjax's order differs
    lambda: S.exponential_decay(0.1, 1000, 0.5),
    # optax.polynomial_schedule(init_value, end_value, power, transition_steps)
    lambda: S.polynomial(0.1, 0.0, 1.0, 1000),
    # optax.cosine_decay_schedule(init_value, decay_steps, alpha)
    lambda: S.cosine_decay(0.1, 1000, 0.0),
]


@pytest.mark.parametrize("call", PORTED_FROM_OPTAX)
def test_a_call_ported_verbatim_from_optax_fails_loudly(call):
    with pytest.raises(TypeError, match="positional argument"):
        call()


FIRST_ARGUMENTS = {
    "warmup": S.constant(0.1),
    "scale_for_batch_size": 0.1,
    "join": [0.1],
    "from_epoch_fn": lambda e: e,
    "piecewise_constant": [0.1],
}
FUNCTIONS = sorted(n for n in S.__all__ if n[0].islower() and n not in ("is_schedule", "multiply"))


@pytest.mark.parametrize("name", FUNCTIONS)
def test_only_the_first_argument_is_positional(name):
    fn = getattr(S, name)
    parameters = list(inspect.signature(fn).parameters.values())
    assert parameters[0].kind is inspect.Parameter.POSITIONAL_OR_KEYWORD
    assert all(p.kind is inspect.Parameter.KEYWORD_ONLY for p in parameters[1:]), name
    with pytest.raises(TypeError, match="positional argument"):
        fn(FIRST_ARGUMENTS.get(name, 0.1), 10)
