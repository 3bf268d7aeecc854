"""Hyperparameter configurations on the host: validation, dtypes and flat named columns.

A set of configurations is a dict ``name -> value`` where each value is a 1-D array with one
entry per configuration, or a pytree (e.g. a batch of lrjax schedules) whose leaves all have that
leading axis. Floats are stored as float32 and integers as int32, the dtypes the compiled
programs take, so that a new set of values never changes a program's signature.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import jax
import numpy as np

from lrjax import _validate as v


def check_values(where: str, name: str, leaf: Any) -> np.ndarray:
    """One leaf of config ``name`` as a host array (float32 / int32 / bool); ``where`` names it
    in errors. Raises for non-numeric, non-finite or negative learning-rate values."""
    arr = v.numeric_array(where, leaf)
    if v.is_learning_rate(name) and np.any(arr < 0):
        raise ValueError(f"{where} must be >= 0, got {arr[arr < 0].flat[0].item()!r} in {arr.tolist()}")
    if np.issubdtype(arr.dtype, np.floating):
        return arr.astype(np.float32)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.int32)
    return arr


def as_tree(where: str, value: Any) -> Any:
    """A config value as a pytree: a list or tuple of numbers becomes one array."""
    if isinstance(value, (list, tuple)):  # a sequence of values, not a pytree of them
        try:
            return np.asarray(value)
        except ValueError as err:
            raise ValueError(f"{where} must be a 1-D sequence of numbers, got {value!r}") from err
    return value


def check_configs(configs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Validate configurations; return them as host arrays and their count N.

    Args:
      configs: name -> a 1-D array with one value per configuration, or a pytree whose leaves
        all have that leading axis.

    Returns:
      (configs as host arrays, N).
    """
    if not isinstance(configs, Mapping) or not configs:
        raise ValueError(f"configs must be a non-empty dict of name -> array of values, got {configs!r}")
    out, lengths = {}, {}
    for name, value in configs.items():
        if not isinstance(name, str):
            raise TypeError(f"config names must be strings, got {name!r}")
        where = f"configs[{name!r}]"
        leaves, treedef = jax.tree.flatten(as_tree(where, value))
        if not leaves:
            raise ValueError(f"{where} is empty")
        arrays = []
        for leaf in leaves:
            arr = check_values(where, name, leaf)
            if arr.ndim == 0:
                raise ValueError(f"{where} must have one value per configuration (a 1-D array), got a scalar")
            lengths[name] = arr.shape[0]
            arrays.append(arr)
        out[name] = jax.tree.unflatten(treedef, arrays)
    if len(set(lengths.values())) != 1:
        raise ValueError(f"configs must all have the same length, got {lengths}")
    return out, next(iter(lengths.values()))


def columns(configs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flat named columns: a pytree-valued config contributes one column per leaf."""
    cols = {}
    for name, value in configs.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
            cols[name + jax.tree_util.keystr(path)] = np.asarray(leaf)
    return cols


def take(configs: Any, index: Any) -> Any:
    """The configurations at ``index`` (host arrays)."""
    return jax.tree.map(lambda x: np.asarray(x)[index], configs)
