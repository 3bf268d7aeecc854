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
import functools
import inspect
import re
from collections.abc import Callable
from typing import Any, ClassVar, TypeVar

import jax
import jax.numpy as jnp
import numpy as np
from jax.core import Tracer

Array = jax.Array
Numeric = Any  # a Python number, a NumPy/JAX array, or a traced value
_T = TypeVar("_T")


class Schedule(abc.ABC):
    """A learning-rate (or any hyperparameter) schedule: a pure function of the step count.

    Instances are `optax.Schedule`s: ``schedule(count)`` accepts a Python int, a traced
    integer or float scalar, or an array (or list) of steps (the result broadcasts), and returns a
    float32 array (or the promoted float dtype of the parameters).

    Example:
      >>> import lrjax.schedules as S
      >>> isinstance(S.cosine_decay(0.1, decay_steps=10), S.Schedule)
      True
    """

    factory: str | None  # the function that built it (a field `schedule_dataclass` adds)
    __dataclass_fields__: ClassVar[dict[str, dataclasses.Field[Any]]]  # every subclass is a dataclass

    def __post_init__(self) -> None:
        for field in dataclasses.fields(self):
            if not field.metadata.get("static", False):
                object.__setattr__(self, field.name, fit_int32(getattr(self, field.name)))
            if "check" in field.metadata:
                field.metadata["check"](field.name, getattr(self, field.name))
        self._check()

    # A hook with a default (no rule): only schedules with rules across fields override it.
    def _check(self) -> None:  # noqa: B027
        """The rules that tie fields together, after each field's own (`number`, `numbers`,
        `choice`, `child`, `children`): raise `ValueError` (`TypeError` for a wrong type) naming a concrete
        field whose value is invalid; traced values pass (see `lrjax._validate`)."""

    def __call__(self, step: Numeric) -> Array:
        t = jnp.asarray(fit_int32(step))
        if not (jnp.issubdtype(t.dtype, jnp.integer) or jnp.issubdtype(t.dtype, jnp.floating)):
            raise TypeError(f"step must be an integer or float array, got dtype {t.dtype}")
        return as_float(self._eval(t))

    @abc.abstractmethod
    def _eval(self, t: Array) -> Array:
        """The schedule's value at step ``t`` (an integer or float array)."""

    def __repr__(self) -> str:
        """The call that builds this schedule: its factory with the arguments it was given (read
        from the fields, so a schedule changed by a sweep shows its new values), or the class
        with its fields if it was constructed directly."""
        if self.factory is None:
            fields = [f.name for f in dataclasses.fields(self) if f.repr]
            return f"{type(self).__name__}({', '.join(f'{n}={_show(getattr(self, n))}' for n in fields)})"
        signature, paths = _FACTORIES[self.factory]
        args = []
        for name, param in signature.parameters.items():
            where = paths[name]
            if where is None:
                continue
            value = _show(where(self) if callable(where) else _read(self, where[0]))
            positional = param.kind in (param.POSITIONAL_ONLY, param.POSITIONAL_OR_KEYWORD, param.VAR_POSITIONAL)
            args.append(
                value[1:-1] if param.kind == param.VAR_POSITIONAL else value if positional else f"{name}={value}"
            )
        return f"{self.factory}({', '.join(args)})"


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
    if any(isinstance(leaf, Tracer) for leaf in jax.tree.leaves(x)):
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


# Where a factory's argument is kept: the field paths that hold it (the first is read), a function
# of the schedule that computes it, or None where it is not kept.
_Where = tuple[str, ...] | Callable[[Any], Any] | None  # the function takes its own class of schedule
# Each factory's signature, and where each of its arguments is kept.
_FACTORIES: dict[str, tuple[inspect.Signature, dict[str, _Where]]] = {}


def _where(spec: str | _Where) -> _Where:
    return (spec,) if isinstance(spec, str) else spec


def factory(**paths: str | _Where) -> Callable[[Callable[..., _T]], Callable[..., _T]]:
    """Register a function that builds a schedule, so that the schedule shows as that call.

    The schedule it returns records the function's name (``factory``): its repr is the call with
    the values of its fields, and tables name a swept leaf by the argument the user wrote. An
    argument is read from the field of its own name unless ``paths`` gives another path
    (``"schedule.init_value"``, ``"schedule.boundaries[0]"``), several paths that all hold it
    (the first is read), a function of the schedule that computes it, or None where the schedule
    does not keep it (it is left out of the repr). A name that is not an argument labels a leaf
    that holds no single argument (`warmup_cosine_decay` keeps its decay length T − W as
    ``decay_steps``). A call with arguments the function does not take is a `TypeError` that lists the
    ones it does.

    Args:
      **paths: argument (or leaf) name -> field path(s), function or None, for arguments not
        stored under their own name.

    Returns:
      A decorator.
    """

    def register(fn: Callable[..., _T]) -> Callable[..., _T]:
        signature = inspect.signature(fn)
        _FACTORIES[fn.__name__] = (signature, {n: _where(paths.get(n, n)) for n in [*signature.parameters, *paths]})

        @functools.wraps(fn)
        def build(*args: Any, **kwargs: Any) -> _T:
            unknown = [k for k in kwargs if k not in signature.parameters]
            try:
                if unknown:
                    raise TypeError(f"got an unexpected keyword argument {unknown[0]!r}")
                signature.bind(*args, **kwargs)
            except TypeError as e:
                raise TypeError(f"{fn.__name__}() {e}; it takes ({_describe(signature)})") from None
            return dataclasses.replace(fn(*args, **kwargs), factory=fn.__name__)  # type: ignore[type-var]

        return build

    return register


def _describe(signature: inspect.Signature) -> str:
    """``init_value, *, decay_steps, end_value=0.0``: the arguments a call takes."""
    return str(
        signature.replace(
            parameters=[p.replace(annotation=p.empty) for p in signature.parameters.values()],
            return_annotation=signature.empty,
        )
    )[1:-1]


_STEP = re.compile(r"\.?(\w+)|\[(\d+)\]")


def _read(schedule: Schedule, path: str) -> Any:
    """The value at a field path such as ``schedule.schedules[1].steps`` or ``boundaries[0]``."""
    value: Any = schedule
    for attribute, index in _STEP.findall(path):
        value = getattr(value, attribute) if attribute else value[int(index)]
    return value


def _show(value: Any) -> str:
    """A field's value as it would be written in a call: numbers in their own precision
    (``0.003``, not float32's ``0.003000000026``), arrays as lists."""
    if isinstance(value, (Schedule, str, bool, type(None))) or callable(value):
        return repr(value)
    if isinstance(value, (tuple, list)):
        return "[" + ", ".join(_show(x) for x in value) + "]"
    if isinstance(value, Tracer):
        return repr(value)
    array = np.asarray(value)
    if array.ndim == 0:
        return repr(array.item()) if isinstance(value, (int, float)) else str(array[()])
    return "[" + ", ".join(str(x) for x in array) + "]"


def argument_names(schedule: Any) -> dict[str, str]:
    """Leaf path -> the factory argument it holds, for leaves stored under another name.

    Args:
      schedule: a schedule (anything else has no names).

    Returns:
      ``{"schedule.init_value": "peak_value", ...}``; an index into an array field is dropped
      (``schedule.boundaries[0]`` names the leaf ``schedule.boundaries``).
    """
    if not isinstance(schedule, Schedule) or schedule.factory is None:
        return {}
    names = {}
    for name, where in _FACTORIES[schedule.factory][1].items():
        for path in where if isinstance(where, tuple) else ():
            if path != name:
                names[re.sub(r"\[\d+\]$", "", path)] = name
    return names


def is_schedule(x: object) -> bool:
    """Whether ``x`` is an lrjax `Schedule`.

    Returns:
      A bool.

    Example:
      >>> import lrjax.schedules as S
      >>> S.is_schedule(S.constant(0.1)), S.is_schedule(0.1)
      (True, False)
    """
    return isinstance(x, Schedule)
