"""Constant, piecewise-constant and multiplicative-decay schedules."""

from __future__ import annotations

from collections.abc import Sequence

import jax.numpy as jnp

from lrjax import _validate as v
from lrjax.schedules._base import Array, Numeric, Schedule, as_array, as_float, count_le, factory, floordiv
from lrjax.schedules._fields import number, numbers, schedule_dataclass, static_field


@schedule_dataclass
class Constant(Schedule):
    """``value`` at every step; built by `constant`."""

    value: Numeric = number()

    def _eval(self, t: Array) -> Array:
        return jnp.broadcast_to(as_float(self.value), jnp.shape(t))


@factory()
def constant(value: Numeric) -> Constant:
    """A constant schedule: η(t) = value.

    Args:
      value: the value at every step.

    Returns:
      A `Schedule`: a ``Constant``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.constant(0.1)([0, 1, 2])
      Array([0.1, 0.1, 0.1], dtype=float32)
    """
    return Constant(value)


@schedule_dataclass
class PiecewiseConstant(Schedule):
    """``values[i]`` with ``i`` the number of ``boundaries`` <= t; built by `piecewise_constant`."""

    values: Numeric = numbers()
    boundaries: Numeric = numbers(ge=0, increasing=True)

    def _check(self) -> None:
        boundaries = v.concrete("boundaries", self.boundaries)
        if boundaries is not None:
            v.check_length("values", self.values, boundaries.shape[-1] + 1, "one more than boundaries")

    def _eval(self, t: Array) -> Array:
        return jnp.take(as_float(self.values), count_le(jnp.asarray(self.boundaries), t), axis=-1)


@factory()
def piecewise_constant(values: Sequence[Numeric], *, boundaries: Sequence[Numeric]) -> PiecewiseConstant:
    """Piecewise-constant schedule: η(t) = values[#{b ∈ boundaries : b ≤ t}].

    The value switches *at* each boundary, as in `optax.piecewise_constant_schedule` and
    `optax.join_schedules`; Keras's ``PiecewiseConstantDecay`` switches one step later
    (``t > b``), so Keras boundaries ``b`` correspond to lrjax boundaries ``b + 1``.

    Args:
      values: ``len(boundaries) + 1`` values.
      boundaries: strictly increasing, non-negative step counts.

    Returns:
      A `Schedule`: a ``PiecewiseConstant``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.piecewise_constant([0.1, 0.01, 0.001], boundaries=[100, 200])([99, 100, 200])
      Array([0.1  , 0.01 , 0.001], dtype=float32)
    """
    v.check_vector("values", values)
    v.check_vector("boundaries", boundaries, ge=0)
    return PiecewiseConstant(as_array(values), as_array(boundaries))


@schedule_dataclass
class ExponentialDecay(Schedule):
    """init · rate^((t − begin)/decay_steps), optionally floored and clipped;
    built by `exponential_decay` and `step_decay`.
    """

    init_value: Numeric = number()
    decay_rate: Numeric = number(gt=0)
    decay_steps: Numeric = number(gt=0)
    begin_step: Numeric = number(ge=0)
    end_value: Numeric | None = number(optional=True)
    staircase: bool = static_field(default=False)

    def _eval(self, t: Array) -> Array:
        elapsed = t - self.begin_step
        if self.staircase:
            exponent = as_float(floordiv(elapsed, self.decay_steps))
        else:
            exponent = as_float(elapsed) / as_float(self.decay_steps)
        init = as_float(self.init_value)
        out = jnp.where(elapsed <= 0, init, init * as_float(self.decay_rate) ** exponent)
        if self.end_value is None:
            return out
        end = as_float(self.end_value)
        return jnp.where(self.decay_rate < 1, jnp.maximum(out, end), jnp.minimum(out, end))


@factory()
def exponential_decay(
    init_value: Numeric,
    *,
    decay_rate: Numeric,
    decay_steps: Numeric = 1,
    staircase: bool = False,
    begin_step: Numeric = 0,
    end_value: Numeric | None = None,
) -> ExponentialDecay:
    """Exponential decay: η(t) = η₀ · γ^((t − t₀)/T), η₀ for t ≤ t₀.

    With ``staircase`` the exponent is floored, ⌊(t − t₀)/T⌋. With ``end_value`` the value is
    clipped there: a floor when γ < 1, a ceiling when γ > 1. Matches PyTorch ``ExponentialLR``
    (T = 1), Keras ``ExponentialDecay`` and `optax.exponential_decay`.

    Args:
      init_value: η₀.
      decay_rate: γ > 0.
      decay_steps: T > 0, steps per factor of γ.
      staircase: floor the exponent (decay in discrete jumps every T steps).
      begin_step: t₀ >= 0, the step at which decay starts.
      end_value: optional bound on the value.

    Returns:
      A `Schedule`: an ``ExponentialDecay``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.exponential_decay(0.1, decay_rate=0.5, decay_steps=1000)([0, 500, 1000, 2000])
      Array([0.1       , 0.07071068, 0.05      , 0.025     ], dtype=float32)
    """
    return ExponentialDecay(init_value, decay_rate, decay_steps, begin_step, end_value, staircase)


@factory(step_size="decay_steps")
def step_decay(init_value: Numeric, *, step_size: Numeric, decay_rate: Numeric = 0.1) -> ExponentialDecay:
    """Step decay: η(t) = η₀ · γ^⌊t / step_size⌋ (PyTorch ``StepLR``).

    Args:
      init_value: η₀.
      step_size: steps between decays, > 0.
      decay_rate: γ > 0, the factor applied every ``step_size`` steps.

    Returns:
      A `Schedule`: an ``ExponentialDecay`` with ``staircase=True``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.step_decay(0.1, step_size=30)([0, 29, 30, 60])
      Array([0.1  , 0.1  , 0.01 , 0.001], dtype=float32)
    """
    v.check("step_size", step_size, gt=0)  # the field is decay_steps: name the argument
    return exponential_decay(init_value, decay_rate=decay_rate, decay_steps=step_size, staircase=True)


@schedule_dataclass
class MultistepDecay(Schedule):
    """init · rate^(number of milestones <= t); built by `multistep_decay`."""

    init_value: Numeric = number()
    milestones: Numeric = numbers(ge=0)
    decay_rate: Numeric = number(gt=0)

    def _eval(self, t: Array) -> Array:
        passed = count_le(jnp.asarray(self.milestones), t)
        return as_float(self.init_value) * as_float(self.decay_rate) ** as_float(passed)


@factory()
def multistep_decay(init_value: Numeric, *, milestones: Sequence[Numeric], decay_rate: Numeric = 0.1) -> MultistepDecay:
    """Multi-step decay: η(t) = η₀ · γ^#{m ∈ milestones : m ≤ t} (PyTorch ``MultiStepLR``).

    A milestone listed twice applies γ twice, as in PyTorch. Order does not matter.

    Args:
      init_value: η₀.
      milestones: non-negative step counts.
      decay_rate: γ > 0.

    Returns:
      A `Schedule`: a ``MultistepDecay``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.multistep_decay(0.1, milestones=[30, 80])([0, 30, 80])
      Array([0.1  , 0.01 , 0.001], dtype=float32)
    """
    v.check_vector("milestones", milestones, ge=0)
    return MultistepDecay(init_value, as_array(milestones), decay_rate)


@schedule_dataclass
class InverseTimeDecay(Schedule):
    """init / (1 + rate · t / decay_steps); built by `inverse_time_decay`."""

    init_value: Numeric = number()
    decay_rate: Numeric = number(ge=0)
    decay_steps: Numeric = number(gt=0)
    staircase: bool = static_field(default=False)

    def _eval(self, t: Array) -> Array:
        t = jnp.maximum(t, 0)
        if self.staircase:
            p = as_float(floordiv(t, self.decay_steps))
        else:
            p = as_float(t) / as_float(self.decay_steps)
        return as_float(self.init_value) / (1.0 + as_float(self.decay_rate) * p)


@factory()
def inverse_time_decay(
    init_value: Numeric, *, decay_rate: Numeric, decay_steps: Numeric = 1, staircase: bool = False
) -> InverseTimeDecay:
    """Inverse-time decay: η(t) = η₀ / (1 + k · t / T), with ⌊t / T⌋ if ``staircase``.

    With T = 1 this is the classic η₀ / (1 + kt) (Robbins–Monro style). Matches Keras
    ``InverseTimeDecay``.

    Args:
      init_value: η₀.
      decay_rate: k >= 0.
      decay_steps: T > 0.
      staircase: floor t / T.

    Returns:
      A `Schedule`: an ``InverseTimeDecay``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.inverse_time_decay(0.1, decay_rate=1.0, decay_steps=10)([0, 10, 30])
      Array([0.1  , 0.05 , 0.025], dtype=float32)
    """
    return InverseTimeDecay(init_value, decay_rate, decay_steps, staircase)
