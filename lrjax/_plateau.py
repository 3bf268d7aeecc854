"""Reduce the learning rate when a monitored metric stops improving (PyTorch semantics)."""

from __future__ import annotations

from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import optax

from lrjax import _validate as v


class ReduceOnPlateauState(NamedTuple):
    """State of `reduce_on_plateau`: all scalars, so a batch of states vmaps cleanly.

    Attributes:
      scale: the factor applied to the updates (1 until the first reduction).
      best: the best metric observed so far (+inf / −inf before the first, for min / max).
      num_bad: consecutive observations without improvement.
      cooldown_counter: observations still ignored after the last reduction.
      count: observations so far.
      accumulated: the sum of the values received since the last observation.
      accumulated_count: how many values that sum holds (``< accumulation_size``).

    Example:
      >>> import jax.numpy as jnp, lrjax
      >>> state = lrjax.reduce_on_plateau().init(None)
      >>> float(state.scale), int(state.count)
      (1.0, 0)
    """

    scale: jax.Array
    best: jax.Array
    num_bad: jax.Array
    cooldown_counter: jax.Array
    count: jax.Array  # pyright: ignore[reportIncompatibleMethodOverride]: optax.contrib's state names it count
    accumulated: jax.Array
    accumulated_count: jax.Array


def reduce_on_plateau(
    factor: float = 0.1,
    patience: int = 10,
    threshold: float = 1e-4,
    threshold_mode: str = "rel",
    cooldown: int = 0,
    min_scale: float = 0.0,
    mode: str = "min",
    accumulation_size: int = 1,
) -> optax.GradientTransformationExtraArgs:
    """Scale updates down by ``factor`` when a metric has plateaued (PyTorch ``ReduceLROnPlateau``).

    Each ``update(updates, state, params=None, *, value)`` receives one value of the monitored
    metric; every ``accumulation_size`` values are averaged into one observation (one "epoch":
    with the training loss of each step as ``value``, set it to the steps per epoch, as in
    ``optax.contrib.reduce_on_plateau``). An observation a improves on the best b if, for mode
    ``min``, a < b − threshold·|b| (``rel``) or a < b − threshold (``abs``); for mode ``max``,
    a > b + threshold·|b| or a > b + threshold. The relative test uses |b|, so it is correct
    for negative metrics (PyTorch's b·(1 − threshold) is not). After more than ``patience``
    observations without improvement the scale becomes max(scale · factor, min_scale), the
    count of bad observations resets and the next ``cooldown`` observations are ignored.
    The updates are multiplied by the scale *after* this observation (between observations, by
    the scale of the last one). A NaN metric never
    improves. Unlike PyTorch there is no ``eps`` on the change of the learning rate.

    Chain it after the optimizer, e.g. ``optax.chain(optax.adam(1e-3), reduce_on_plateau())``,
    and pass ``value=`` to ``update`` (Optax forwards extra arguments through ``chain``).

    Args:
      factor: in (0, 1), the multiplicative reduction.
      patience: >= 0 observations without improvement tolerated.
      threshold: >= 0, the minimal improvement.
      threshold_mode: ``"rel"`` or ``"abs"``.
      cooldown: >= 0 observations ignored after each reduction.
      min_scale: in [0, 1], the floor of the scale.
      mode: ``"min"`` (lower is better) or ``"max"``.
      accumulation_size: >= 1 values averaged into one observation.

    Returns:
      An ``optax.GradientTransformationExtraArgs`` whose state is a `ReduceOnPlateauState`.
      ``factor``, ``patience``, ``threshold``, ``cooldown``, ``min_scale`` and
      ``accumulation_size`` may be traced values (e.g. one per member of a sweep).

    Example:
      >>> import jax.numpy as jnp, lrjax
      >>> tx = lrjax.reduce_on_plateau(factor=0.5, patience=0)
      >>> state = tx.init(None)
      >>> for loss in (1.0, 1.0, 1.0):
      ...     _, state = tx.update(jnp.ones(()), state, value=loss)
      >>> float(state.scale)
      0.25

    Reference: PyTorch ``torch.optim.lr_scheduler.ReduceLROnPlateau``.
    """
    v.check("factor", factor, gt=0, lt=1)
    v.check("patience", patience, ge=0)
    v.check("threshold", threshold, ge=0)
    v.check_choice("threshold_mode", threshold_mode, ("rel", "abs"))
    v.check("cooldown", cooldown, ge=0)
    v.check("min_scale", min_scale, ge=0, le=1)
    v.check_choice("mode", mode, ("min", "max"))
    v.check("accumulation_size", accumulation_size, ge=1)
    sign = 1.0 if mode == "min" else -1.0

    def init_fn(params: Any) -> ReduceOnPlateauState:
        del params
        return ReduceOnPlateauState(
            scale=jnp.ones((), jnp.float32),
            best=jnp.asarray(sign * jnp.inf, jnp.float32),
            num_bad=jnp.zeros((), jnp.int32),
            cooldown_counter=jnp.zeros((), jnp.int32),
            count=jnp.zeros((), jnp.int32),
            accumulated=jnp.zeros((), jnp.float32),
            accumulated_count=jnp.zeros((), jnp.int32),
        )

    def observe(state: ReduceOnPlateauState, value: jax.Array) -> ReduceOnPlateauState:
        value = jnp.asarray(value, jnp.float32)
        best = state.best
        margin = threshold * jnp.abs(best) if threshold_mode == "rel" else threshold
        margin = jnp.where(jnp.isfinite(best), margin, 0.0)
        improved = sign * value < sign * best - margin
        best = jnp.where(improved, value, best)
        num_bad = jnp.where(improved, 0, state.num_bad + 1)
        in_cooldown = state.cooldown_counter > 0
        cooldown_counter = jnp.where(in_cooldown, state.cooldown_counter - 1, state.cooldown_counter)
        num_bad = jnp.where(in_cooldown, 0, num_bad)
        reduce = num_bad > patience
        scale = jnp.where(reduce, jnp.maximum(state.scale * factor, min_scale), state.scale)
        return ReduceOnPlateauState(
            scale=scale.astype(jnp.float32),
            best=best,
            num_bad=jnp.where(reduce, 0, num_bad).astype(jnp.int32),
            cooldown_counter=jnp.where(reduce, cooldown, cooldown_counter).astype(jnp.int32),
            count=state.count + 1,
            accumulated=state.accumulated,
            accumulated_count=state.accumulated_count,
        )

    def accumulate(state: ReduceOnPlateauState, value: jax.Array) -> ReduceOnPlateauState:
        total = state.accumulated + jnp.asarray(value, jnp.float32)
        count = state.accumulated_count + 1
        full = count >= accumulation_size
        observed = observe(state, total / count.astype(jnp.float32))
        state = jax.tree.map(lambda new, old: jnp.where(full, new, old), observed, state)
        return state._replace(
            accumulated=jnp.where(full, 0.0, total).astype(jnp.float32),
            accumulated_count=jnp.where(full, 0, count).astype(jnp.int32),
        )

    def update_fn(
        updates: Any, state: ReduceOnPlateauState, params: Any = None, *, value: Any, **extra_args: Any
    ) -> tuple[Any, ReduceOnPlateauState]:
        del params, extra_args
        state = accumulate(state, value)
        updates = jax.tree.map(lambda u: (state.scale * u).astype(u.dtype), updates)
        return updates, state

    # Optax types update's extras as **extra_args; this one requires value=, as optax.contrib's does.
    return optax.GradientTransformationExtraArgs(init_fn, update_fn)  # pyright: ignore[reportArgumentType]
