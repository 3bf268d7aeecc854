"""Grids of configurations: a dict of equal-length 1-D arrays, one entry per configuration."""

from __future__ import annotations

import itertools
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lrjax import _configs
from lrjax import _validate as v


def log_grid(low: float, high: float, num: int) -> np.ndarray:
    """``num`` values spaced evenly in log scale from ``low`` to ``high`` inclusive (float32).

    Args:
      low: > 0.
      high: > low.
      num: >= 1 (``num = 1`` gives ``[low]``).

    Example:
      >>> import lrjax
      >>> lrjax.search.log_grid(1e-3, 1e-1, 3)
      array([0.001, 0.01 , 0.1  ], dtype=float32)
    """
    v.check("low", low, gt=0)
    v.check_greater("high", high, "low", low)
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 1:
        raise ValueError(f"num must be an integer >= 1, got {num!r}")
    return np.geomspace(low, high, num).astype(np.float32)


def grid(axes: Mapping[str, Sequence[Any]]) -> dict[str, np.ndarray]:
    """The Cartesian product of ``axes``, as a dict of equal-length 1-D arrays.

    The last axis varies fastest: ``grid({"a": [1, 2], "b": [10, 20]})`` gives
    ``{"a": [1, 1, 2, 2], "b": [10, 20, 10, 20]}``. An axis of schedules (of one kind) becomes
    one batched schedule, ready for `lrjax.sweep`.

    Args:
      axes: name -> the values of that hyperparameter (numbers, or schedules).

    Returns:
      name -> one value per configuration: a 1-D array, or a batched schedule.

    Example:
      >>> import lrjax
      >>> lrjax.search.grid({'learning_rate': [0.1, 0.01], 'momentum': [0.0, 0.9]})
      {'learning_rate': array([0.1 , 0.1 , 0.01, 0.01]), 'momentum': array([0. , 0.9, 0. , 0.9])}
    """
    if not isinstance(axes, Mapping) or not axes:
        raise ValueError(f"axes must be a non-empty dict of name -> values, got {axes!r}")
    values = {}
    for name, vals in axes.items():
        arr = np.asarray(vals)
        if arr.ndim != 1 or arr.size == 0:
            raise ValueError(f"axes[{name!r}] must be a non-empty 1-D sequence of values, got {vals!r}")
        values[name] = arr
    product = list(itertools.product(*(range(len(a)) for a in values.values())))
    out = {name: arr[[p[i] for p in product]] for i, (name, arr) in enumerate(values.items())}
    return {name: _configs.stack(f"axes[{name!r}]", arr) if arr.dtype == object else arr for name, arr in out.items()}
