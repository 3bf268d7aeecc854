"""Annealing from an initial to a final value over a fixed horizon: linear, polynomial, cosine."""

from __future__ import annotations

import jax.numpy as jnp

from lrjax import _validate as v
from lrjax.schedules._base import WEIGHTS, Array, Numeric, Schedule, as_float, ceildiv, factory, remaining
from lrjax.schedules._fields import choice, number, schedule_dataclass, static_field


@schedule_dataclass
class Anneal(Schedule):
    """end + (init − end) · w(r)^power, r the remaining fraction of ``steps`` after ``begin_step``.

    Built by `linear`, `polynomial` and `cosine_decay`, documented there.

    ``shape`` picks the weight w: ``linear`` (w = r), ``cosine`` (w = ½(1 − cos πr)) or
    ``1-sqrt`` (w = 1 − √(1 − r)). With ``cycle`` the horizon restarts: it is
    steps · max(1, ⌈(t − begin)/steps⌉) (Keras ``PolynomialDecay(cycle=True)``).
    """

    init_value: Numeric = number()
    end_value: Numeric = number()
    steps: Numeric = number(gt=0)
    power: Numeric = number(gt=0)
    begin_step: Numeric = number(ge=0)
    shape: str = choice(WEIGHTS, default="linear")
    cycle: bool = static_field(default=False)

    def _eval(self, t: Array) -> Array:
        elapsed = jnp.maximum(t - self.begin_step, 0)
        horizon = self.steps
        if self.cycle:
            horizon = self.steps * jnp.maximum(ceildiv(elapsed, self.steps), 1)
        weight = WEIGHTS[self.shape](remaining(elapsed, horizon)) ** as_float(self.power)
        end = as_float(self.end_value)
        return end + (as_float(self.init_value) - end) * weight


@factory()
def linear(init_value: Numeric, *, end_value: Numeric, steps: Numeric, begin_step: Numeric = 0) -> Anneal:
    """Linear schedule: η(t) = η₀ + (η₁ − η₀) · min(t − t₀, T)/T for t ≥ t₀, η₀ before.

    With η₁ = 0 this is η₀(1 − t/T). Holds η₁ after the horizon. Matches
    `optax.linear_schedule` and PyTorch ``LinearLR`` (η₀ = base·start_factor,
    η₁ = base·end_factor, T = total_iters).

    Args:
      init_value: η₀.
      end_value: η₁.
      steps: T > 0, the length of the ramp.
      begin_step: t₀ >= 0, the step at which the ramp starts.

    Returns:
      A `Schedule`: an ``Anneal`` of linear shape.

    Example:
      >>> import lrjax.schedules as S
      >>> S.linear(0.1, end_value=0.0, steps=100)([0, 50, 100, 200])
      Array([0.1 , 0.05, 0.  , 0.  ], dtype=float32)
    """
    return Anneal(init_value, end_value, steps, 1.0, begin_step, "linear", False)


@factory()
def polynomial(
    init_value: Numeric,
    *,
    end_value: Numeric,
    steps: Numeric,
    power: Numeric = 1.0,
    begin_step: Numeric = 0,
    cycle: bool = False,
) -> Anneal:
    """Polynomial decay: η(t) = (η₀ − η₁)(1 − min(t', H)/H)^p + η₁, t' = max(t − t₀, 0).

    H = T, or with ``cycle`` H = T · max(1, ⌈t'/T⌉), which restarts the decay from a
    value below η₀ after each multiple of T. Matches Keras ``PolynomialDecay``,
    `optax.polynomial_schedule` and PyTorch ``PolynomialLR`` (η₁ = 0, T = total_iters).

    Args:
      init_value: η₀.
      end_value: η₁.
      steps: T > 0.
      power: p > 0.
      begin_step: t₀ >= 0.
      cycle: restart the horizon at multiples of T (Keras semantics).

    Returns:
      A `Schedule`: an ``Anneal`` of linear shape raised to ``power``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.polynomial(0.1, end_value=0.0, steps=100, power=2.0)([0, 50, 100])
      Array([0.1  , 0.025, 0.   ], dtype=float32)
    """
    return Anneal(init_value, end_value, steps, power, begin_step, "linear", cycle)


@factory(decay_steps="steps", exponent="power")
def cosine_decay(
    init_value: Numeric, *, decay_steps: Numeric, end_value: Numeric = 0.0, exponent: Numeric = 1.0
) -> Anneal:
    """Cosine decay: η(t) = η₁ + (η₀ − η₁) · (½(1 + cos(π · min(t, T)/T)))^e.

    Loshchilov & Hutter 2017 (SGDR) without restarts. Matches PyTorch ``CosineAnnealingLR``
    for t ≤ T_max (η₁ = eta_min; lrjax holds η₁ after T instead of rising again), Keras
    ``CosineDecay`` and `optax.cosine_decay_schedule` (η₁ = alpha · η₀).

    Args:
      init_value: η₀.
      decay_steps: T > 0.
      end_value: η₁.
      exponent: e > 0.

    Returns:
      A `Schedule`: an ``Anneal`` of cosine shape.

    Example:
      >>> import lrjax.schedules as S
      >>> S.cosine_decay(0.1, decay_steps=100)([0, 50, 100, 150])
      Array([0.1 , 0.05, 0.  , 0.  ], dtype=float32)
    """
    v.check("decay_steps", decay_steps, gt=0)  # the fields are steps and power: name the arguments
    v.check("exponent", exponent, gt=0)
    return Anneal(init_value, end_value, decay_steps, exponent, 0, "cosine", False)
