"""`sweep`: train many hyperparameter configurations as one compiled program; `SweepResult`."""

from __future__ import annotations

import time
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np
import optax

from lrjax.engine.compiles import count_compiles
from lrjax.engine.program import OptimizerFn
from lrjax.engine.run import DEFAULT_MEMORY_BUDGET, run
from lrjax.result import SweepResult
from lrjax.task import Task

__all__ = ["SweepResult", "check_configs", "sweep"]


def _positive_int(name: str, value: Any, *, minimum: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise TypeError(f"{name} must be an integer, got {value!r}")
    if value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return int(value)


def _is_learning_rate(name: str) -> bool:
    return name in ("learning_rate", "lr") or name.endswith("learning_rate")


def check_configs(configs: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Validate configurations; return them as host arrays (floats as float32) and their count N.

    Each value is a 1-D array with one entry per configuration, or a pytree (e.g. a batch of
    lrjax schedules) whose leaves all have that leading axis.
    """
    if not isinstance(configs, Mapping) or not configs:
        raise ValueError(f"configs must be a non-empty dict of name -> array of values, got {configs!r}")
    out, lengths = {}, {}
    for name, value in configs.items():
        if not isinstance(name, str):
            raise TypeError(f"config names must be strings, got {name!r}")
        if isinstance(value, (list, tuple)):  # a sequence of values, not a pytree of them
            try:
                value = np.asarray(value)
            except ValueError as err:
                raise ValueError(f"configs[{name!r}] must be a 1-D sequence of numbers, got {value!r}") from err
        leaves, treedef = jax.tree.flatten(value)
        if not leaves:
            raise ValueError(f"configs[{name!r}] is empty")
        arrays = []
        for leaf in leaves:
            arr = np.asarray(leaf)
            if arr.ndim == 0:
                raise ValueError(f"configs[{name!r}] must have one value per configuration (a 1-D array), got a scalar")
            if not np.issubdtype(arr.dtype, np.number):
                raise TypeError(f"configs[{name!r}] must be numeric, got dtype {arr.dtype}")
            if not np.all(np.isfinite(arr)):
                raise ValueError(f"configs[{name!r}] must be finite, got {arr.tolist()}")
            if _is_learning_rate(name) and np.any(arr < 0):
                raise ValueError(f"configs[{name!r}] must be >= 0, got {arr[arr < 0][0].item()!r} in {arr.tolist()}")
            lengths[name] = arr.shape[0]
            arrays.append(arr.astype(np.float32) if np.issubdtype(arr.dtype, np.floating) else arr)
        out[name] = jax.tree.unflatten(treedef, arrays)
    if len(set(lengths.values())) != 1:
        raise ValueError(f"configs must all have the same length, got {lengths}")
    return out, next(iter(lengths.values()))


def _columns(configs: Mapping[str, Any]) -> dict[str, np.ndarray]:
    """Flat named columns: a pytree-valued config contributes one column per leaf."""
    cols = {}
    for name, value in configs.items():
        for path, leaf in jax.tree_util.tree_flatten_with_path(value)[0]:
            cols[name + jax.tree_util.keystr(path)] = np.asarray(leaf)
    return cols


def sweep(
    task: Task,
    optimizer: OptimizerFn,
    configs: Mapping[str, Any],
    *,
    steps: int,
    batch_size: Optional[int] = None,
    seed: int = 0,
    seeds: int = 1,
    eval_every: Optional[int] = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = True,
    devices: Optional[Sequence[Any]] = None,
) -> SweepResult:
    """Train every configuration (× ``seeds``) simultaneously in one compiled, vmapped program.

    ``optimizer(hp)`` builds an Optax transformation from one member's hyperparameters, a dict
    of scalars (or schedules) with the keys of ``configs``; it runs inside the traced program,
    so a new sweep with new values compiles nothing. Members that share a seed share their
    initial parameters and batches. Batches are drawn on device, epoch by epoch, without
    replacement. ``batch_size=None`` trains on the full batch. Evaluation (``task.metrics``, and
    the mean loss, on ``task.eval_data`` or else the training data) runs every ``eval_every``
    steps and at the end. Members are sharded over the local devices; if their state exceeds
    ``memory_budget`` bytes they run in groups, with identical results. ``devices`` defaults to
    all local devices.

    Returns:
      A `SweepResult` whose member axis is configuration-major: member ``i * seeds + s`` is
      configuration ``i`` with seed ``s``.
    """
    if not isinstance(task, Task):
        raise TypeError(f"task must be an lrjax.Task, got {task!r}")
    if not callable(optimizer):
        raise TypeError(f"optimizer must be a function hp -> optax.GradientTransformation, got {optimizer!r}")
    hps, num_configs = check_configs(configs)
    steps = _positive_int("steps", steps)
    seeds = _positive_int("seeds", seeds)
    seed = _positive_int("seed", seed, minimum=0)
    memory_budget = _positive_int("memory_budget", memory_budget)
    if eval_every is not None:
        eval_every = _positive_int("eval_every", eval_every)
    if batch_size is not None:
        batch_size = _positive_int("batch_size", batch_size)
        if batch_size > task.num_train:
            raise ValueError(f"batch_size must be <= the number of training examples ({task.num_train}), got {batch_size}")
    probe = optimizer({k: jax.tree.map(lambda x: x[0], v) for k, v in hps.items()})
    if not isinstance(probe, optax.GradientTransformation):
        raise TypeError(f"optimizer(hp) must return an optax.GradientTransformation, got {type(probe).__name__}")

    started = time.perf_counter()
    with count_compiles() as compiles:
        result = run(
            task, optimizer, hps, num_configs, steps=steps, batch_size=batch_size, seed=seed, seeds=seeds,
            eval_every=eval_every, memory_budget=memory_budget, progress=progress, devices=devices,
        )
    result.configs = {k: np.repeat(v, seeds, axis=0) for k, v in _columns(hps).items()}
    result.configs["seed"] = np.tile(np.arange(seeds), num_configs)
    result.info.update(
        task=task.name, steps=steps, batch_size=batch_size, seed=seed, seeds=seeds,
        compiles=compiles.count, seconds=time.perf_counter() - started,
    )
    return result
