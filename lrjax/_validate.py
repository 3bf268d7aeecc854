"""Argument validation at the boundary, on concrete values only.

Every numeric parameter of a schedule may be a traced value (inside `jax.jit` or
`jax.vmap`); such values cannot be inspected and are passed through unchecked. Concrete
values are checked eagerly, before anything is compiled, and a bad one raises `ValueError`
(`TypeError` for a non-numeric one) naming the argument, the constraint and the value, e.g.
``decay_steps must be > 0, got 0``. Non-finite values are invalid everywhere.
"""

from __future__ import annotations

import operator
import os
import re
from collections.abc import Iterable, Mapping
from typing import Any

import jax
import numpy as np
from jax.core import Tracer

_BOUNDS = (
    ("gt", ">", operator.gt),
    ("ge", ">=", operator.ge),
    ("lt", "<", operator.lt),
    ("le", "<=", operator.le),
)


def concrete(name: str, value: Any) -> np.ndarray | None:
    """``value`` as a finite NumPy array, or None if it is traced; raises on bad input."""
    if any(isinstance(leaf, Tracer) for leaf in jax.tree.leaves(value)):
        return None
    if isinstance(value, (bool, np.bool_, str, bytes)) or value is None:
        raise TypeError(f"{name} must be a number, got {value!r}")
    try:
        arr = np.asarray(value)
    except Exception as err:  # e.g. a ragged list
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}") from err
    if not np.issubdtype(arr.dtype, np.number):
        raise TypeError(f"{name} must be a number or an array of numbers, got {value!r}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {_show(arr, ~np.isfinite(arr))}")
    return arr


def numeric_array(name: str, value: Any) -> np.ndarray:
    """``value`` as a NumPy array of numbers (or bools), all finite: the check of data and
    hyperparameter arrays. A short array is shown in the error, a long one counted."""
    arr = np.asarray(value)
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise TypeError(f"{name} must be numeric, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.inexact):
        bad = ~np.isfinite(arr)
        if bad.any():
            shown = _show(arr, bad) if arr.size <= 16 else f"{int(bad.sum())} NaN or infinite values among {arr.size}"
            raise ValueError(f"{name} must be finite, got {shown}")
    return arr


def _show(arr: np.ndarray, bad: np.ndarray) -> str:
    if arr.ndim == 0:
        return repr(arr.item())
    return f"{arr[bad].flat[0].item()!r} in {arr.tolist()!r}"


def check(name: str, value: Any, **bounds: float) -> None:
    """Check that ``value`` is finite and satisfies ``gt``/``ge``/``lt``/``le`` bounds."""
    arr = concrete(name, value)
    if arr is None:
        return
    for key, symbol, op in _BOUNDS:
        if key in bounds:
            bad = ~op(arr, bounds[key])
            if np.any(bad):
                raise ValueError(f"{name} must be {symbol} {bounds[key]!r}, got {_show(arr, bad)}")


def check_vector(name: str, value: Any, **bounds: float) -> None:
    """Check a 1-D sequence of numbers (or a batch of them) element by element."""
    arr = concrete(name, value)
    if arr is None:
        return
    if arr.ndim < 1:
        raise ValueError(f"{name} must be a sequence of numbers, got {value!r}")
    check(name, arr, **bounds)


def check_increasing(name: str, value: Any) -> None:
    """Check that a sequence is strictly increasing along its last axis."""
    arr = concrete(name, value)
    if arr is None or arr.shape[-1] < 2:
        return
    if np.any(np.diff(arr, axis=-1) <= 0):
        raise ValueError(f"{name} must be strictly increasing, got {arr.tolist()!r}")


LEARNING_RATE_NAMES = ("learning_rate", "lr", "eta")


def is_learning_rate(name: str) -> bool:
    """Whether a hyperparameter named ``name`` is a learning rate, the one rule used everywhere:
    its base name (before any ``.field`` or ``[index]`` of a pytree-valued config) is one of
    `LEARNING_RATE_NAMES` or ends in ``_learning_rate`` or ``_lr``. Learning rates must be >= 0
    and are plotted on the x axis by default."""
    base = re.split(r"[.\[]", name, maxsplit=1)[0]
    return base in LEARNING_RATE_NAMES or base.endswith(("_learning_rate", "_lr"))


def integer(name: str, value: Any, *, minimum: int = 1) -> int:
    """``value`` as an int >= ``minimum``: `TypeError` for a non-integer (or a bool),
    `ValueError` below the minimum, both naming ``name`` and the value."""
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def check_choice(name: str, value: Any, choices: Iterable[Any]) -> None:
    """Check that a mode or flag is one of ``choices``."""
    choices = tuple(choices)
    if value not in choices:
        raise ValueError(f"{name} must be one of {choices!r}, got {value!r}")


def check_keywords(function: str, options: Mapping[str, Any], allowed: Iterable[str]) -> None:
    """Check that every key of ``options`` (a function's ``**options``) is one it takes: raise
    the TypeError Python raises for an unknown keyword, naming ``function``."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise TypeError(f"{function}() got an unexpected keyword argument {unknown[0]!r}")


def check_length(name: str, value: Any, expected: int, what: str) -> None:
    """Check that a sequence has ``expected`` entries (``what`` says why)."""
    arr = concrete(name, value)
    if arr is not None and arr.shape[-1:] != (expected,):
        raise ValueError(f"{name} must have {expected} entries ({what}), got {arr.tolist()!r}")


def check_greater(name: str, value: Any, other_name: str, other: Any) -> None:
    """Check ``value > other`` when both are concrete (e.g. total_steps > warmup_steps)."""
    a, b = concrete(name, value), concrete(other_name, other)
    if a is not None and b is not None and np.any(a <= b):
        raise ValueError(f"{name} must be > {other_name} ({b.tolist()!r}), got {a.tolist()!r}")


def directory(name: str, path: Any) -> str:
    """``path`` as a string, or a `ValueError` naming the argument ``name`` if it cannot be a
    directory: it, or a folder above it, is an existing file. For paths written to later
    (checkpoints, output), so that the error comes before the work.

    Example:
      >>> from lrjax._validate import directory
      >>> directory("out_dir", "results/run-1")
      'results/run-1'
    """
    path = os.fspath(path)
    probe = os.path.abspath(path)
    while not os.path.exists(probe):
        probe = os.path.dirname(probe)
    if not os.path.isdir(probe):
        inside = "" if probe == os.path.abspath(path) else f" (inside {probe!r})"
        raise ValueError(f"{name} must be a directory, new or existing; {path!r} is an existing file{inside}")
    return path


def first_line(err: Exception) -> str:
    """``err``'s type and the first line of its message, to quote inside an error of our own."""
    text = str(err).strip()
    return f"{type(err).__name__}: {text.splitlines()[0] if text else ''}"
