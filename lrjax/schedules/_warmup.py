"""Warmup in front of any schedule, and the warmup-based families (cosine, WSD, inverse sqrt)."""

from __future__ import annotations

import jax.numpy as jnp

from lrjax import _validate as v
from lrjax.schedules._anneal import Anneal, cosine_decay
from lrjax.schedules._base import Array, Numeric, Schedule, as_float, factory, interpolate, remaining
from lrjax.schedules._combine import join
from lrjax.schedules._decay import constant
from lrjax.schedules._fields import child, choice, number, schedule_dataclass

WARMUP_SHAPES = ("linear", "cosine", "exponential")
DECAY_SHAPES = ("linear", "cosine", "1-sqrt")


@schedule_dataclass
class Warmup(Schedule):
    """A ramp from ``init_value`` to ``schedule(0)`` over ``warmup_steps``, then the schedule;
    built by `warmup`, `warmup_cosine_decay` and `warmup_stable_decay`.
    """

    schedule: Schedule = child()
    warmup_steps: Numeric = number(ge=0)
    init_value: Numeric = number()
    shape: str = choice(WARMUP_SHAPES, default="linear")

    def _check(self) -> None:
        if self.shape == "exponential":
            v.check("init_value", self.init_value, gt=0)

    def _eval(self, t: Array) -> Array:
        w = self.warmup_steps
        ramp = interpolate(as_float(self.init_value), self.schedule(0), remaining(t, w), self.shape)
        return jnp.where(t < w, ramp, self.schedule(jnp.maximum(t - w, 0)))


@factory()
def warmup(schedule: Schedule, *, warmup_steps: Numeric, init_value: Numeric = 0.0, shape: str = "linear") -> Warmup:
    """Prepend a warmup: a ramp from η_w to s(0) over W steps, then s(t − W).

    For t < W, with f = t/W: ``linear`` η_w + (s(0) − η_w) f; ``cosine``
    η_w + (s(0) − η_w) · ½(1 − cos πf); ``exponential`` η_w · (s(0)/η_w)^f (needs η_w > 0 and
    s(0) > 0). W = 0 means no warmup (Goyal et al. 2017 use a linear warmup).

    Args:
      schedule: the schedule that follows; it sees its step count restart at W.
      warmup_steps: W >= 0.
      init_value: η_w, the value at step 0.
      shape: ``"linear"``, ``"cosine"`` or ``"exponential"``.

    Returns:
      A `Schedule`: a ``Warmup``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.warmup(S.constant(0.1), warmup_steps=10)([0, 5, 10])
      Array([0.  , 0.05, 0.1 ], dtype=float32)
    """
    return Warmup(schedule, warmup_steps, init_value, shape)


def _total_steps(schedule: Warmup) -> Numeric:
    """T of `warmup_cosine_decay`, which keeps the decay's length T − W."""
    return schedule.warmup_steps + schedule.schedule.steps  # type: ignore[attr-defined]


@factory(
    peak_value="schedule.init_value",
    total_steps=_total_steps,
    end_value="schedule.end_value",
    exponent="schedule.power",
    decay_steps="schedule.steps",
)
def warmup_cosine_decay(
    init_value: Numeric,
    *,
    peak_value: Numeric,
    warmup_steps: Numeric,
    total_steps: Numeric,
    end_value: Numeric = 0.0,
    exponent: Numeric = 1.0,
) -> Warmup:
    """Linear warmup from η_w to η_p over W steps, then cosine decay to η₁ at step T_total.

    η(t) = η_w + (η_p − η_w) t/W for t < W; then η₁ + (η_p − η₁) · (½(1 + cos(π (t − W)/(T − W))))^e,
    held at η₁ after T. Matches `optax.warmup_cosine_decay_schedule` (decay_steps = T) and
    Keras ``CosineDecay(initial_learning_rate=η_w, warmup_target=η_p, warmup_steps=W,
    decay_steps=T − W, alpha=η₁/η_p)``.

    One difference from Optax: with η_p = 0, lrjax still anneals from 0 to η₁ (the formula
    above), where Optax, whose decay is parameterized by α = η₁/η_p, sets α = 0 and stays at 0.

    Args:
      init_value: η_w.
      peak_value: η_p.
      warmup_steps: W >= 0.
      total_steps: T > W, including the warmup.
      end_value: η₁.
      exponent: e > 0.

    Returns:
      A `Schedule`: a ``Warmup`` of a cosine ``Anneal``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.warmup_cosine_decay(0.0, peak_value=0.1, warmup_steps=10, total_steps=110)([0, 5, 10, 60, 110])
      Array([0.  , 0.05, 0.1 , 0.05, 0.  ], dtype=float32)
    """
    v.check("peak_value", peak_value)
    v.check("warmup_steps", warmup_steps, ge=0)
    v.check_greater("total_steps", total_steps, "warmup_steps", warmup_steps)
    decay = cosine_decay(peak_value, decay_steps=total_steps - warmup_steps, end_value=end_value, exponent=exponent)
    return warmup(decay, warmup_steps=warmup_steps, init_value=init_value)


@factory(
    peak_value=("schedule.schedules[0].value", "schedule.schedules[1].init_value"),
    stable_steps="schedule.boundaries[0]",
    decay_steps="schedule.schedules[1].steps",
    total_steps=None,
    end_value="schedule.schedules[1].end_value",
    decay_shape="schedule.schedules[1].shape",
)
def warmup_stable_decay(
    peak_value: Numeric,
    *,
    warmup_steps: Numeric,
    decay_steps: Numeric,
    stable_steps: Numeric | None = None,
    total_steps: Numeric | None = None,
    init_value: Numeric = 0.0,
    end_value: Numeric = 0.0,
    decay_shape: str = "linear",
) -> Warmup:
    """Warmup–stable–decay (WSD, "trapezoidal") schedule.

    Linear warmup from η_w to η_p over W steps, η_p for S steps, then a decay to η₁ over D
    steps, held after: with f = (t − W − S)/D, ``linear`` η₁ + (η_p − η₁)(1 − f), ``cosine``
    η₁ + (η_p − η₁) · ½(1 + cos πf), ``1-sqrt`` η₁ + (η_p − η₁)(1 − √f). MiniCPM (Hu et al.
    2024); Hägele et al. 2024, "Scaling Laws and Compute-Optimal Training Beyond Fixed
    Training Durations" (1-sqrt cooldown). The length is given either by S (``stable_steps``)
    or, as in `warmup_cosine_decay` and `one_cycle`, by the total T = W + S + D
    (``total_steps``), as Hugging Face's ``get_wsd_schedule`` does.

    Args:
      peak_value: η_p.
      warmup_steps: W >= 0.
      decay_steps: D > 0.
      stable_steps: S >= 0; give this or ``total_steps``.
      total_steps: T >= W + D, the whole schedule; give this or ``stable_steps``.
      init_value: η_w.
      end_value: η₁.
      decay_shape: ``"linear"``, ``"cosine"`` or ``"1-sqrt"``.

    Returns:
      A `Schedule`: a ``Warmup`` of a ``Join`` of a constant and an ``Anneal``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.warmup_stable_decay(0.1, warmup_steps=10, stable_steps=80, decay_steps=10)([0, 10, 90, 95, 100])
      Array([0.  , 0.1 , 0.1 , 0.05, 0.  ], dtype=float32)
      >>> S.warmup_stable_decay(0.1, warmup_steps=10, decay_steps=10, total_steps=100)
      warmup_stable_decay(0.1, warmup_steps=10, decay_steps=10, stable_steps=80, init_value=0.0, end_value=0.0, decay_shape='linear')
    """
    v.check_choice("decay_shape", decay_shape, DECAY_SHAPES)
    v.check("peak_value", peak_value)
    v.check("warmup_steps", warmup_steps, ge=0)
    v.check("decay_steps", decay_steps, gt=0)
    if (stable_steps is None) == (total_steps is None):
        raise TypeError(
            "warmup_stable_decay needs the length of the stable phase: give stable_steps (S) or "
            "total_steps (T = warmup_steps + S + decay_steps), one of them; got "
            + ("both" if stable_steps is not None else "neither")
        )
    if total_steps is None:
        v.check("stable_steps", stable_steps, ge=0)
    else:
        stable_steps = total_steps - warmup_steps - decay_steps
        v.check("total_steps - warmup_steps - decay_steps", stable_steps, ge=0)
    v.check("end_value", end_value)
    decay = Anneal(peak_value, end_value, decay_steps, 1.0, 0, decay_shape)
    return warmup(
        join([constant(peak_value), decay], boundaries=[stable_steps]), warmup_steps=warmup_steps, init_value=init_value
    )


@schedule_dataclass
class InverseSqrt(Schedule):
    """peak · min(t/W, √(W/t)), 0 at t = 0; built by `inverse_sqrt`."""

    peak_value: Numeric = number()
    warmup_steps: Numeric = number(gt=0)

    def _eval(self, t: Array) -> Array:
        t, w = as_float(t), as_float(self.warmup_steps)
        positive = t > 0
        decay = jnp.sqrt(w / jnp.where(positive, t, 1.0))
        return jnp.where(positive, as_float(self.peak_value) * jnp.minimum(t / w, decay), 0.0)


@factory()
def inverse_sqrt(peak_value: Numeric, *, warmup_steps: Numeric) -> InverseSqrt:
    """Inverse-square-root ("Noam") schedule: η(t) = η_p · min(t/W, √(W/t)).

    Linear warmup to η_p at t = W, then decay as 1/√t; 0 at t = 0. Vaswani et al. 2017,
    "Attention Is All You Need", with η_p = d_model^−½ · W^−½.

    Args:
      peak_value: η_p, the value at t = W.
      warmup_steps: W > 0.

    Returns:
      A `Schedule`: an ``InverseSqrt``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.inverse_sqrt(0.1, warmup_steps=100)([0, 50, 100, 400])
      Array([0.  , 0.05, 0.1 , 0.05], dtype=float32)
    """
    return InverseSqrt(peak_value, warmup_steps)
