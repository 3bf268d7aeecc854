"""How a schedule class declares its fields: `schedule_dataclass` makes it a frozen dataclass
registered as a pytree, and each field says what it holds and what values it takes.

A numeric field (`number`, `numbers`) or a nested schedule (`child`, `children`) is a pytree
leaf or child, so it may be traced, batched under `jax.vmap` or swept; a mode (`choice`) or flag
(`static_field`) is static metadata. Every field declared with a rule is checked when the
schedule is constructed (`lrjax.schedules.Schedule.__post_init__`), concrete values only: a
traced value passes, so checking never stops a schedule from being traced.
"""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable
from typing import Any, TypeVar, dataclass_transform

import jax

from lrjax import _validate as v
from lrjax.schedules._base import Schedule

_T = TypeVar("_T")


def static_field(**kwargs: Any) -> Any:
    """A dataclass field that is pytree metadata (a mode or flag), not a leaf."""
    return dataclasses.field(metadata={"static": True}, **kwargs)


def _checked(check: Callable[[str, Any], None], static: bool = False, **kwargs: Any) -> Any:
    """A field whose value ``check(name, value)`` validates when the schedule is constructed."""
    return dataclasses.field(metadata={"static": static, "check": check}, **kwargs)


def number(*, optional: bool = False, **bounds: float) -> Any:
    """A numeric field (a pytree leaf): finite, within the ``gt``/``ge``/``lt``/``le`` bounds
    (`lrjax._validate.check`; a traced value passes), or None when ``optional``."""

    def check(name: str, value: Any) -> None:
        if not (optional and value is None):
            v.check(name, value, **bounds)

    return _checked(check)


def numbers(*, increasing: bool = False, **bounds: float) -> Any:
    """A field of a sequence of numbers (a pytree leaf), each within ``bounds``, and strictly
    increasing if ``increasing``."""

    def check(name: str, value: Any) -> None:
        v.check_vector(name, value, **bounds)
        if increasing:
            v.check_increasing(name, value)

    return _checked(check)


def choice(choices: Iterable[str], *, default: str) -> Any:
    """A mode (pytree metadata), one of ``choices``."""
    options = tuple(choices)
    return _checked(lambda name, value: v.check_choice(name, value, options), static=True, default=default)


def child() -> Any:
    """Another schedule, this one's pytree child (a TypeError if it is not a `Schedule`)."""

    def check(name: str, value: Any) -> None:
        if not isinstance(value, Schedule):
            raise TypeError(f"{name} must be an lrjax schedule, got {value!r}")

    return _checked(check)


def children() -> Any:
    """A non-empty tuple of schedules, this one's pytree children."""

    def check(name: str, value: Any) -> None:
        if not value or not all(isinstance(s, Schedule) for s in value):
            raise TypeError(f"{name} must be a non-empty tuple of lrjax schedules, got {value!r}")

    return _checked(check)


@dataclass_transform(
    frozen_default=True,
    eq_default=False,
    field_specifiers=(dataclasses.field, static_field, number, numbers, choice, child, children),
)
def schedule_dataclass(cls: type[_T]) -> type[_T]:
    """Make ``cls`` a frozen dataclass and register it as a pytree.

    Fields declared with `static_field` become metadata; every other field is a child (a
    numeric leaf, ``None``, or another schedule). Equality is identity (``eq=False``), so a
    schedule is hashable and never compares arrays elementwise.

    Constructing a schedule validates its concrete fields: each field declared with `number`,
    `numbers`, `choice`, `child` or `children` by its own rule, then `Schedule._check`. JAX rebuilds
    pytrees with placeholders for leaves (tracers, shapes, vmap axes), so its unflattening
    bypasses the constructor and sets the fields directly, as Equinox does.
    """
    # Every schedule also carries the name of the `factory` that built it (None if constructed
    # directly): its repr and the names of swept columns come from that factory's arguments.
    cls.__annotations__ = {**inspect.get_annotations(cls), "factory": "str | None"}
    cls.factory = static_field(default=None, repr=False)  # pyright: ignore[reportAttributeAccessIssue]: added here
    cls = dataclasses.dataclass(frozen=True, eq=False, repr=False)(cls)
    fields = dataclasses.fields(cls)  # pyright: ignore[reportArgumentType]: a dataclass from the line above
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
