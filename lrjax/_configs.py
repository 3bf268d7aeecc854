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
from lrjax.schedules._base import argument_names


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


def stack(where: str, values: Any) -> Any:
    """One pytree whose leaves have a leading axis, from a sequence of pytrees of one structure
    (e.g. a list of schedules becomes one batched schedule)."""
    values = list(values)
    structures = {jax.tree.structure(x) for x in values}
    if len(structures) != 1:
        raise ValueError(
            f"{where} must hold values of one structure (e.g. schedules of one kind), got {len(structures)} structures"
        )
    return jax.tree.map(lambda *xs: np.asarray(xs), *values)


def as_tree(where: str, value: Any) -> Any:
    """A config value as a pytree: a list, tuple or object array of numbers becomes one array,
    of pytrees (e.g. schedules) one batched pytree."""
    if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.dtype == object):
        items = list(value)
        if items and all(jax.tree.leaves(x) != [x] for x in items):  # pytrees, not numbers
            return stack(where, items)
        try:
            return np.asarray(value, dtype=None if not isinstance(value, np.ndarray) else float)
        except (ValueError, TypeError) as err:
            raise ValueError(f"{where} must be a 1-D sequence of numbers or of schedules, got {value!r}") from err
    return value


def as_dict(configs: Any) -> Any:
    """Configurations given as a pandas DataFrame (a column per hyperparameter) or a list of
    dicts (one per configuration), as a dict of name -> values; anything else unchanged."""
    if hasattr(configs, "columns") and hasattr(configs, "to_numpy"):  # a DataFrame
        return {str(c): configs[c].to_numpy() for c in configs.columns}
    if isinstance(configs, (list, tuple)) and configs and all(isinstance(c, Mapping) for c in configs):
        names = list(configs[0])
        for i, c in enumerate(configs):
            if list(c) != names:
                raise ValueError(f"configs[{i}] must have the names of configs[0] {names}, got {list(c)}")
        return {n: [c[n] for c in configs] for n in names}
    return configs


def check_configs(configs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Validate configurations; return them as host arrays and their count N.

    Args:
      configs: name -> a 1-D array with one value per configuration, a list of schedules (one
        per configuration, stacked into one batched schedule), or a pytree whose leaves all
        have that leading axis; or a pandas DataFrame with a column per name; or a list of
        dicts, one per configuration.

    Returns:
      (configs as host arrays, N).
    """
    configs = as_dict(configs)
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
    """Flat named columns: a pytree-valued config contributes one column per leaf, named by the
    config and the leaf's own field (``learning_rate.init_value``) where that is unique within
    the config, else by the leaf's whole path (``learning_rate.schedule.init_value``)."""
    cols = {}
    for name, value in configs.items():
        labels = argument_names(value)  # a schedule's factory argument names
        flat = jax.tree_util.tree_flatten_with_path(value)[0]
        fields = [getattr(path[-1], "name", None) if path else None for path, _ in flat]
        for (path, leaf), field in zip(flat, fields, strict=True):
            label = labels.get(jax.tree_util.keystr(path)[1:])
            if label is not None:
                column = f"{name}.{label}"
            elif field is not None and fields.count(field) == 1:
                column = f"{name}.{field}"
            else:
                column = name + jax.tree_util.keystr(path)
            cols[column] = np.asarray(leaf)
    return cols


def take(configs: Any, index: Any) -> Any:
    """The configurations at ``index`` (host arrays)."""
    return jax.tree.map(lambda x: np.asarray(x)[index], configs)
