"""The `Schedule` base class, pytree registration and exact step arithmetic.

A schedule is a frozen dataclass registered as a JAX pytree: numeric parameters are leaves
(so they may be traced, batched under `jax.vmap`, or swept), while modes and flags are static
metadata. Calling a schedule on a step count returns the learning rate used for update
number ``step + 1`` (``step`` is Optax's 0-based ``count``).

Step arithmetic must be exact at phase boundaries under `jax.jit`, where XLA may rewrite
``x / c`` as ``x * (1 / c)``. The helpers below therefore take floors with
`jnp.floor_divide` (integer arithmetic for integer inputs, remainder-corrected rounding for
floats), and measure progress through a phase as the *remaining* fraction ``(h - t) / h``,
which is exactly 0 at the end of the phase.
"""

from __future__ import annotations

import abc
import dataclasses
import inspect
from collections.abc import Callable
from typing import Any, TypeVar

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array
Numeric = Any  # a Python number, a NumPy/JAX array, or a traced value
_T = TypeVar("_T")


def static_field(**kwargs: Any) -> Any:
    """A dataclass field that is pytree metadata (a mode or flag), not a leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def schedule_dataclass(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen dataclass and register it as a pytree.

    Fields declared with `static_field` become metadata; every other field is a child (a
    numeric leaf, ``None``, or another schedule). Equality is identity (``eq=False``), so a
    schedule is hashable and never compares arrays elementwise.

    Constructing a schedule validates its concrete fields (`Schedule._check`). JAX rebuilds
    pytrees with placeholders for leaves (tracers, shapes, vmap axes), so its unflattening
    bypasses the constructor and sets the fields directly, as Equinox does.
    """
    # Every schedule also carries `labels`: (leaf path, argument name) pairs that a factory sets
    # where its arguments are stored under other field names (see `labelled`).
    cls.__annotations__ = {**inspect.get_annotations(cls), "labels": "tuple[tuple[str, str], ...]"}
    cls.labels = static_field(default=())
    cls = dataclasses.dataclass(frozen=True, eq=False)(cls)
    fields = dataclasses.fields(cls)
    meta = tuple(f.name for f in fields if f.metadata.get("static", False))
    data = tuple(f.name for f in fields if not f.metadata.get("static", False))

    def flatten_with_keys(x: Any) -> tuple[list, tuple]:
        return [(jax.tree_util.GetAttrKey(n), getattr(x, n)) for n in data], tuple(getattr(x, n) for n in meta)

    def flatten(x: Any) -> tuple[list, tuple]:
        return [getattr(x, n) for n in data], tuple(getattr(x, n) for n in meta)

    def unflatten(static: tuple, children: Any) -> Any:
        obj = object.__new__(cls)
        for name, value in zip(meta, static, strict=True):
            object.__setattr__(obj, name, value)
        for name, value in zip(data, children, strict=True):
            object.__setattr__(obj, name, value)
        return obj

    jax.tree_util.register_pytree_with_keys(cls, flatten_with_keys, unflatten, flatten)
    return cls


class Schedule(abc.ABC):
    """A learning-rate (or any hyperparameter) schedule: a pure function of the step count.

    Instances are `optax.Schedule`s: ``schedule(count)`` accepts a Python int, a traced
    integer or float scalar, or an array of steps (the result broadcasts), and returns a
    float32 array (or the promoted float dtype of the parameters).

    Example:
      >>> import jax.numpy as jnp
      >>> import lrjax.schedules as S
      >>> isinstance(S.cosine_decay(0.1, decay_steps=10), S.Schedule)
      True
    """

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not field.metadata.get("static", False):
                object.__setattr__(self, field.name, fit_int32(getattr(self, field.name)))
        self._check()

    @abc.abstractmethod
    def _check(self) -> None:
        """Raise `ValueError` (`TypeError` for a non-number) naming a concrete field whose value
        is invalid; traced values pass (see `lrjax._validate`)."""

    def __call__(self, step: Numeric) -> Array:
        t = jnp.asarray(fit_int32(step))
        if not (jnp.issubdtype(t.dtype, jnp.integer) or jnp.issubdtype(t.dtype, jnp.floating)):
            raise TypeError(f"step must be an integer or float array, got dtype {t.dtype}")
        return as_float(self._eval(t))

    @abc.abstractmethod
    def _eval(self, t: Array) -> Array:
        """The schedule's value at step ``t`` (an integer or float array)."""


_INT32 = np.iinfo(np.int32)


def fit_int32(x: Any) -> Any:
    """``x``, or as floats if it is a concrete integer (Python or NumPy) outside the int32 range.

    JAX computes in int32 unless 64-bit mode is on, and a Python int of 2**31 or more cannot be
    converted. Such steps and step counts become floats, as in Optax: float32 represents every
    integer up to 2**24 exactly and larger ones to within a relative 6e-8. Integers that fit
    stay integers, so boundaries computed with them stay exact."""
    if isinstance(x, bool) or isinstance(x, jax.Array):
        return x
    if isinstance(x, (int, np.integer)):
        return float(x) if not _INT32.min <= x <= _INT32.max else x
    if isinstance(x, np.ndarray) and np.issubdtype(x.dtype, np.integer) and x.size:
        return x.astype(np.float64) if (x.min() < _INT32.min or x.max() > _INT32.max) else x
    return x


def as_array(x: Numeric) -> Array:
    """A sequence of numbers (or a traced one) as an array, integers outside int32 as floats."""
    if any(isinstance(leaf, jax.core.Tracer) for leaf in jax.tree.leaves(x)):
        return jnp.asarray(x)
    return jnp.asarray(fit_int32(np.asarray(x)))


def as_float(x: Numeric) -> Array:
    """``x`` as an array of at least float32 precision."""
    x = jnp.asarray(x)
    return x.astype(jnp.promote_types(x.dtype, jnp.float32))


def floordiv(a: Numeric, b: Numeric) -> Array:
    """Exact ``floor(a / b)``: integer division for integers, remainder-corrected for floats."""
    return jnp.floor_divide(a, b)


def ceildiv(a: Numeric, b: Numeric) -> Array:
    """Exact ``ceil(a / b)`` as ``-floor(-a / b)``."""
    return -jnp.floor_divide(-jnp.asarray(a), b)


def remaining(t: Numeric, horizon: Numeric) -> Array:
    """Fraction of a phase of length ``horizon`` still ahead at step ``t``, in [0, 1].

    ``(h - min(max(t, 0), h)) / h``, exactly 0 at ``t >= h`` and exactly 1 at ``t <= 0`` even
    where XLA computes ``h * (1/h) != 1``: a phase starts and ends exactly on its values (a
    warmup from 0 never yields a tiny negative rate). A phase of length 0 is already over.
    """
    h = as_float(horizon)
    t = jnp.clip(as_float(t), 0.0, h)
    positive = h > 0
    inside = jnp.clip((h - t) / jnp.where(positive, h, 1.0), 0.0, 1.0)
    return jnp.where(positive, jnp.where(t <= 0, 1.0, inside), 0.0)


def safe_div(a: Numeric, b: Numeric) -> Array:
    """``a / b`` where ``b != 0`` and 0 elsewhere (the branch is masked by the caller)."""
    b = as_float(b)
    nonzero = b != 0
    return jnp.where(nonzero, as_float(a) / jnp.where(nonzero, b, 1.0), 0.0)


def count_le(points: Array, t: Array) -> Array:
    """Number of entries of the 1-D ``points`` that are <= ``t`` (broadcast over ``t``)."""
    return jnp.sum(points <= jnp.expand_dims(t, -1), axis=-1)


# Interpolation shapes between a start and an end value. Each maps the remaining fraction
# r in [0, 1] (1 at the start of the phase, 0 at its end) to the weight of the start value,
# so that value = end + (start - end) * weight(r), exact at r = 0.
def _cosine_weight(r: Array) -> Array:
    return 0.5 * (1.0 - jnp.cos(jnp.pi * r))


def _one_minus_sqrt_weight(r: Array) -> Array:
    return 1.0 - jnp.sqrt(1.0 - r)


WEIGHTS: dict[str, Callable[[Array], Array]] = {
    "linear": lambda r: r,
    "cosine": _cosine_weight,
    "1-sqrt": _one_minus_sqrt_weight,
}


def interpolate(start: Numeric, end: Numeric, r: Array, shape: str) -> Array:
    """Value between ``start`` (r = 1) and ``end`` (r = 0) along ``shape``.

    ``linear``: end + (start − end)·r.  ``cosine``: end + (start − end)·½(1 − cos πr), i.e.
    PyTorch OneCycleLR's ``_annealing_cos``.  ``1-sqrt``: end + (start − end)·(1 − √(1 − r))
    (Hägele et al. 2024).  ``exponential``: end·(start/end)^r, geometric (both must be > 0).
    Exactly ``start`` at r = 1 and exactly ``end`` at r = 0.
    """
    start, end = as_float(start), as_float(end)
    if shape == "exponential":
        between = end * (start / end) ** r
    else:
        between = end + (start - end) * WEIGHTS[shape](r)
    return jnp.where(r >= 1, start, between)  # exact at both ends, not 1 ulp off at the start


def labelled(schedule: _T, **paths: str) -> _T:
    """``schedule`` with the names of the factory arguments its leaves hold, e.g.
    ``labelled(s, peak_value="schedule.init_value")``: tables and plots name a swept leaf by the
    argument the user wrote, not by the field path it is stored under."""
    return dataclasses.replace(schedule, labels=tuple((path, name) for name, path in paths.items()))


def is_schedule(x: object) -> bool:
    """Whether ``x`` is an lrjax `Schedule`.

    Returns:
      A bool.

    Example:
      >>> import jax.numpy as jnp
      >>> import lrjax.schedules as S
      >>> S.is_schedule(S.constant(0.1)), S.is_schedule(0.1)
      (True, False)
    """
    return isinstance(x, Schedule)
