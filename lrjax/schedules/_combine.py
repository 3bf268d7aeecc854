"""Combinators: sequences of schedules, products, epoch functions, batch-size scaling."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import jax.numpy as jnp

from lrjax import _validate as v
from lrjax.schedules._base import Array, Numeric, Schedule, as_array, as_float, factory, floordiv
from lrjax.schedules._decay import constant
from lrjax.schedules._fields import child, children, choice, number, numbers, schedule_dataclass, static_field

ScheduleLike = Schedule | float | int


def as_schedule(name: str, value: ScheduleLike) -> Schedule:
    """``value`` itself if it is a schedule; a number becomes `constant(value)`."""
    if isinstance(value, Schedule):
        return value
    if callable(value):
        raise TypeError(
            f"{name} must be an lrjax schedule or a number, got the callable {value!r}; "
            "wrap a jnp function of the epoch with from_epoch_fn"
        )
    v.check(name, value)
    return constant(value)


@schedule_dataclass
class Join(Schedule):
    """Schedule k runs on [b_{k−1}, b_k) and sees t − b_{k−1}; built by `join`."""

    schedules: tuple[Schedule, ...] = children()
    boundaries: Numeric = numbers(ge=0, increasing=True)

    def _check(self) -> None:
        v.check_length("boundaries", self.boundaries, len(self.schedules) - 1, "one fewer than schedules")

    def _eval(self, t: Array) -> Array:
        boundaries = jnp.asarray(self.boundaries)
        out = self.schedules[0](t)
        for k, schedule in enumerate(self.schedules[1:]):
            b = boundaries[..., k]
            out = jnp.where(t >= b, schedule(jnp.maximum(t - b, 0)), out)
        return out


@factory()
def join(schedules: Sequence[ScheduleLike], *, boundaries: Sequence[Numeric]) -> Join:
    """Run schedules one after another: η(t) = s_k(t − b_{k−1}) for b_{k−1} ≤ t < b_k.

    With b_{−1} = 0 and b_K = ∞. Each schedule restarts its own step count at its boundary.
    Matches `optax.join_schedules` and PyTorch ``SequentialLR`` (for schedulers with closed
    forms). Numbers in ``schedules`` are constants.

    Args:
      schedules: K + 1 schedules (or numbers).
      boundaries: K strictly increasing, non-negative steps.

    Returns:
      A `Schedule`: a ``Join``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.join([S.linear(0.0, end_value=0.1, steps=10), S.cosine_decay(0.1, decay_steps=90)], boundaries=[10])([0, 10, 55, 100])
      Array([0.  , 0.1 , 0.05, 0.  ], dtype=float32)
    """
    schedules = tuple(as_schedule(f"schedules[{i}]", s) for i, s in enumerate(schedules))
    if not schedules:
        raise ValueError("schedules must contain at least one schedule, got []")
    v.check_vector("boundaries", boundaries, ge=0)
    return Join(schedules, as_array(boundaries))


@schedule_dataclass
class Multiply(Schedule):
    """The product of the schedules' values; built by `multiply`."""

    schedules: tuple[Schedule, ...] = children()

    def _eval(self, t: Array) -> Array:
        out = self.schedules[0](t)
        for schedule in self.schedules[1:]:
            out = out * schedule(t)
        return out


@factory()
def multiply(*schedules: ScheduleLike) -> Multiply:
    """Product of schedules: η(t) = Π_k s_k(t) (PyTorch ``ChainedScheduler`` of factors).

    Use it to put a multiplicative factor (a number or a schedule of factors) on any
    schedule, e.g. a warmup factor times a decay.

    Args:
      *schedules: one or more schedules (or numbers).

    Returns:
      A `Schedule`: a ``Multiply``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.multiply(S.constant(2.0), S.step_decay(0.1, step_size=10))([0, 10])
      Array([0.2 , 0.02], dtype=float32)
    """
    if not schedules:
        raise ValueError("multiply needs at least one schedule, got none")
    return Multiply(tuple(as_schedule(f"schedules[{i}]", s) for i, s in enumerate(schedules)))


@schedule_dataclass
class FromEpochFn(Schedule):
    """fn(⌊t / steps_per_epoch⌋); built by `from_epoch_fn`."""

    steps_per_epoch: Numeric = number(gt=0)
    fn: Callable[[Array], Array] = static_field()

    def _check(self) -> None:
        if not callable(self.fn):
            raise TypeError(f"fn must be callable (epoch -> value), got {self.fn!r}")

    def _eval(self, t: Array) -> Array:
        return self.fn(floordiv(jnp.maximum(t, 0), self.steps_per_epoch))


@factory()
def from_epoch_fn(fn: Callable[[Array], Array], *, steps_per_epoch: Numeric) -> FromEpochFn:
    """A schedule given per epoch: η(t) = fn(⌊t / steps_per_epoch⌋).

    ``fn`` receives the epoch as an integer array and must be written with ``jnp`` (no Python
    control flow on its value) so it can be traced. Matches Keras ``LearningRateScheduler``
    and PyTorch ``LambdaLR`` stepped per epoch (with fn(e) = base_lr · λ(e)).

    Args:
      fn: epoch -> value, traceable.
      steps_per_epoch: optimizer steps per epoch, > 0.

    Returns:
      A `Schedule`: a ``FromEpochFn``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.from_epoch_fn(lambda epoch: 0.1 * 0.5**epoch, steps_per_epoch=100)([0, 99, 100])
      Array([0.1 , 0.1 , 0.05], dtype=float32)
    """
    return FromEpochFn(steps_per_epoch, fn)


@schedule_dataclass
class BatchScaled(Schedule):
    """schedule(t) · (b/b₀) (``linear``) or · √(b/b₀) (``sqrt``); built by `scale_for_batch_size`."""

    schedule: Schedule = child()
    base_batch_size: Numeric = number(gt=0)
    batch_size: Numeric = number(gt=0)
    rule: str = choice(("linear", "sqrt"), default="linear")

    def _eval(self, t: Array) -> Array:
        ratio = as_float(self.batch_size) / as_float(self.base_batch_size)
        return self.schedule(t) * (ratio if self.rule == "linear" else jnp.sqrt(ratio))


@factory(value="schedule")
def scale_for_batch_size(
    value: ScheduleLike, *, base_batch_size: Numeric, batch_size: Numeric, rule: str = "linear"
) -> BatchScaled:
    """Scale a learning rate (or schedule) tuned at batch size b₀ for batch size b.

    ``linear``: η · b/b₀ (Goyal et al. 2017, "Accurate, Large Minibatch SGD"), for SGD.
    ``sqrt``: η · √(b/b₀) (Krizhevsky 2014; Malladi et al. 2022 for Adam).

    Args:
      value: the learning rate (number or schedule) at ``base_batch_size``.
      base_batch_size: b₀ > 0.
      batch_size: b > 0.
      rule: ``"linear"`` or ``"sqrt"``.

    Returns:
      A `Schedule`: a ``BatchScaled``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.scale_for_batch_size(0.1, base_batch_size=256, batch_size=1024, rule='sqrt')(0)
      Array(0.2, dtype=float32)
    """
    return BatchScaled(as_schedule("value", value), base_batch_size, batch_size, rule)
