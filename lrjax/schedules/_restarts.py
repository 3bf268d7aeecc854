"""Cosine annealing with warm restarts (SGDR)."""

from __future__ import annotations

import jax.numpy as jnp

from lrjax.schedules._base import Array, Numeric, Schedule, as_float, factory, floordiv
from lrjax.schedules._fields import number, schedule_dataclass


def _cycle_start(i: Array, period: Array, mult: Array, exact: bool) -> Array:
    """First step of cycle ``i``: period · (mult^i − 1)/(mult − 1), or period · i if mult = 1."""
    geometric = mult**i - 1
    one = mult == 1
    denominator = jnp.where(one, 1, mult - 1)
    ratio = floordiv(geometric, denominator) if exact else geometric / denominator
    return period * jnp.where(one, i, ratio)


@schedule_dataclass
class CosineRestarts(Schedule):
    """SGDR: cycle i lasts period · period_mult^i; within it a cosine from a decayed peak;
    built by `cosine_restarts`.
    """

    init_value: Numeric = number()
    period: Numeric = number(gt=0)
    period_mult: Numeric = number(ge=1)
    peak_mult: Numeric = number(gt=0)
    end_value: Numeric = number()

    def _eval(self, t: Array) -> Array:
        period, mult = jnp.asarray(self.period), jnp.asarray(self.period_mult)
        # Integer periods and multipliers give integer cycle boundaries: compute them exactly.
        exact = all(jnp.issubdtype(x.dtype, jnp.integer) for x in (t, period, mult))
        t = jnp.maximum(t, 0)
        tf, pf, mf = as_float(t), as_float(period), as_float(mult)
        # Closed-form estimate of the cycle index (Keras CosineDecayRestarts), then an exact
        # correction by one in either direction against the boundaries themselves.
        by_log = jnp.floor(jnp.log1p(tf * (mf - 1) / pf) / jnp.log(jnp.where(mf == 1, 2.0, mf)))
        i = jnp.where(mf == 1, floordiv(tf, pf), by_log).astype(t.dtype if exact else tf.dtype)
        i = jnp.maximum(i, 0)
        if not exact:
            period, mult = pf, mf
        i = jnp.where(t < _cycle_start(i, period, mult, exact), i - 1, i)
        i = jnp.where(t >= _cycle_start(i + 1, period, mult, exact), i + 1, i)
        start = _cycle_start(i, period, mult, exact)
        length = as_float(period * mult**i)
        fraction = as_float(t - start) / length
        end = as_float(self.end_value)
        peak = (as_float(self.init_value) - end) * as_float(self.peak_mult) ** as_float(i)
        return end + peak * 0.5 * (1.0 + jnp.cos(jnp.pi * fraction))


@factory()
def cosine_restarts(
    init_value: Numeric,
    *,
    period: Numeric,
    period_mult: Numeric = 1.0,
    peak_mult: Numeric = 1.0,
    end_value: Numeric = 0.0,
) -> CosineRestarts:
    """Cosine annealing with warm restarts (Loshchilov & Hutter 2017, SGDR).

    Cycle i starts at s_i = P · (m^i − 1)/(m − 1) (P · i when m = 1) and lasts P · m^i; in it
    η(t) = η₁ + (η₀ − η₁) · q^i · ½(1 + cos(π (t − s_i)/(P m^i))). Matches PyTorch
    ``CosineAnnealingWarmRestarts`` (T_0 = P, T_mult = m, eta_min = η₁, q = 1) and Keras
    ``CosineDecayRestarts`` (first_decay_steps = P, t_mul = m, m_mul = q, alpha = η₁/η₀).
    With integer P and m (and integer steps) the cycle boundaries are computed in integer
    arithmetic and are exact; steps must then stay below 2**31 / m.

    Args:
      init_value: η₀, the first peak.
      period: P > 0, the first cycle's length.
      period_mult: m >= 1, the growth of each cycle's length.
      peak_mult: q > 0, the decay of each cycle's peak.
      end_value: η₁, the value each cycle anneals towards.

    Returns:
      A `Schedule`: a ``CosineRestarts``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.cosine_restarts(0.1, period=10, period_mult=2, peak_mult=0.5)([0, 5, 10, 20, 30])  # restarts at 10, 30
      Array([0.1  , 0.05 , 0.05 , 0.025, 0.025], dtype=float32)
    """
    return CosineRestarts(init_value, period, period_mult, peak_mult, end_value)
