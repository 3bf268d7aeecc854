"""Cyclical learning rates (Smith 2017) and the 1cycle policy (Smith & Topin 2019)."""

from __future__ import annotations

import jax.numpy as jnp

from lrjax import _validate as v
from lrjax.schedules._base import (
    Array,
    Numeric,
    Schedule,
    as_float,
    factory,
    floordiv,
    interpolate,
    remaining,
    safe_div,
)
from lrjax.schedules._fields import choice, number, schedule_dataclass, static_field

CYCLIC_MODES = ("triangular", "triangular2", "exp_range")
ANNEAL_SHAPES = {"cosine": "cosine", "linear": "linear", "cos": "cosine"}  # "cos": PyTorch's name


@schedule_dataclass
class Cyclic(Schedule):
    """Triangular waves between ``base_value`` and ``peak_value``; built by `cyclic`."""

    base_value: Numeric = number()
    peak_value: Numeric = number()
    step_size_up: Numeric = number(gt=0)
    step_size_down: Numeric = number(gt=0)
    gamma: Numeric = number(gt=0, le=1)
    mode: str = choice(CYCLIC_MODES, default="triangular")

    def _eval(self, t: Array) -> Array:
        t = jnp.maximum(t, 0)
        up, down = self.step_size_up, self.step_size_down
        cycle = floordiv(t, up + down)
        position = t - cycle * (up + down)
        rising = 1.0 - remaining(position, up)  # exactly 1 at the peak
        falling = as_float(up + down - position) / as_float(down)
        height = jnp.where(position <= up, rising, falling)
        if self.mode == "triangular2":
            height = height * 0.5 ** as_float(cycle)
        elif self.mode == "exp_range":
            height = height * as_float(self.gamma) ** as_float(t)
        base = as_float(self.base_value)
        return base + (as_float(self.peak_value) - base) * height


@factory()
def cyclic(
    base_value: Numeric,
    *,
    peak_value: Numeric,
    step_size_up: Numeric,
    step_size_down: Numeric | None = None,
    mode: str = "triangular",
    gamma: Numeric = 1.0,
) -> Cyclic:
    """Cyclical learning rate (Smith 2017, "Cyclical Learning Rates for Training Neural Networks").

    Each cycle rises linearly from η_b to η_p over U steps and falls back over D steps. With
    c = ⌊t/(U + D)⌋ (0-based) the amplitude (η_p − η_b) is scaled by 1 (``triangular``),
    2^−c (``triangular2``) or γ^t (``exp_range``). Matches PyTorch ``CyclicLR`` (learning
    rate only; momentum cycling belongs to the optimizer).

    Args:
      base_value: η_b, the value at the start of each cycle.
      peak_value: η_p.
      step_size_up: U > 0.
      step_size_down: D > 0; defaults to U.
      mode: ``"triangular"``, ``"triangular2"`` or ``"exp_range"``.
      gamma: γ in (0, 1] for ``exp_range``.

    Returns:
      A `Schedule`: a ``Cyclic``.

    Example:
      >>> import lrjax.schedules as S
      >>> S.cyclic(0.01, peak_value=0.1, step_size_up=10)([0, 5, 10, 15, 20])
      Array([0.01 , 0.055, 0.1  , 0.055, 0.01 ], dtype=float32)
      >>> S.cyclic(0.0, peak_value=1.0, step_size_up=5, mode="triangular2")([5, 15, 25])  # peaks halve
      Array([1.  , 0.5 , 0.25], dtype=float32)
    """
    if step_size_down is None:
        step_size_down = step_size_up
    return Cyclic(base_value, peak_value, step_size_up, step_size_down, gamma, mode)


@schedule_dataclass
class OneCycle(Schedule):
    """PyTorch's OneCycleLR phases, held at the final value after ``total_steps``; built by `one_cycle`."""

    peak_value: Numeric = number()
    total_steps: Numeric = number(gt=0)
    pct_start: Numeric = number(gt=0)
    div_factor: Numeric = number(gt=0)
    final_div_factor: Numeric = number(gt=0)
    anneal: str = choice(ANNEAL_SHAPES, default="cosine")
    three_phase: bool = static_field(default=False)

    def _check(self) -> None:
        v.check("pct_start", self.pct_start, lt=0.5 if self.three_phase else 1)

    def _eval(self, t: Array) -> Array:
        peak = as_float(self.peak_value)
        initial = peak / as_float(self.div_factor)
        final = initial / as_float(self.final_div_factor)
        total, pct = as_float(self.total_steps), as_float(self.pct_start)
        if self.three_phase:
            ends = [pct * total - 1, 2 * pct * total - 2, total - 1]
            values = [initial, peak, initial, final]
        else:
            ends = [pct * total - 1, total - 1]
            values = [initial, peak, final]
        t = as_float(t)
        starts = [jnp.zeros_like(total), *ends[:-1]]
        shape = ANNEAL_SHAPES[self.anneal]
        phases = [
            interpolate(values[k], values[k + 1], jnp.clip(safe_div(ends[k] - t, ends[k] - starts[k]), 0.0, 1.0), shape)
            for k in range(len(ends))
        ]
        out = phases[-1]
        for k in reversed(range(len(ends) - 1)):
            out = jnp.where(t <= ends[k], phases[k], out)
        return out


@factory()
def one_cycle(
    peak_value: Numeric,
    *,
    total_steps: Numeric,
    pct_start: Numeric = 0.3,
    anneal: str = "cosine",
    div_factor: Numeric = 25.0,
    final_div_factor: Numeric = 1e4,
    three_phase: bool = False,
) -> OneCycle:
    """The 1cycle policy (Smith & Topin 2019, "Super-Convergence"), as PyTorch ``OneCycleLR``.

    η_i = η_p/div_factor, η_min = η_i/final_div_factor, T = total_steps, p = pct_start. Phases
    (end steps as in PyTorch): η_i → η_p until pT − 1, then η_p → η_min until T − 1; with
    ``three_phase``: η_i → η_p until pT − 1, η_p → η_i until 2pT − 2, η_i → η_min until T − 1.
    Within a phase from step a to b the value is annealed by f = (t − a)/(b − a): ``cosine``
    end + (start − end) · ½(1 + cos πf), ``linear`` start + (end − start) f. Holds η_min
    after T − 1 (PyTorch raises past T).

    Args:
      peak_value: η_p (PyTorch ``max_lr``).
      total_steps: T > 0.
      pct_start: p in (0, 1) (in (0, 0.5) with ``three_phase``), the fraction spent rising.
      anneal: ``"cosine"`` (or PyTorch's ``"cos"``) or ``"linear"``.
      div_factor: > 0.
      final_div_factor: > 0.
      three_phase: use the three-phase variant (fast.ai style).

    Returns:
      A `Schedule`: a ``OneCycle``.

    Example:
      >>> import lrjax.schedules as S
      >>> [round(float(v), 8) for v in S.one_cycle(0.1, total_steps=100)([0, 29, 99])]
      [0.004, 0.1, 4e-07]
    """
    anneal = ANNEAL_SHAPES.get(anneal, anneal)  # one vocabulary: "cos" is stored as "cosine"
    return OneCycle(peak_value, total_steps, pct_start, div_factor, final_div_factor, anneal, three_phase)
