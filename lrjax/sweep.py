"""`sweep`: train many hyperparameter configurations as one compiled program; `SweepResult`."""

from __future__ import annotations

import dataclasses
import json
import time
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np
import optax

from lrjax.engine.compiles import count_compiles
from lrjax.engine.program import OptimizerFn
from lrjax.engine.run import DEFAULT_MEMORY_BUDGET, run
from lrjax.task import Task


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


def _members(x: np.ndarray) -> np.ndarray:
    """(seeds, configs, ...) -> (configs · seeds, ...), configuration-major."""
    x = np.asarray(x)
    return x.swapaxes(0, 1).reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


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
) -> "SweepResult":
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
        raw = run(
            task, optimizer, hps, num_configs, steps=steps, batch_size=batch_size, seed=seed, seeds=seeds,
            eval_every=eval_every, memory_budget=memory_budget, progress=progress, devices=devices,
        )
    columns = {k: np.repeat(v, seeds, axis=0) for k, v in _columns(hps).items()}
    columns["seed"] = np.tile(np.arange(seeds), num_configs)
    return SweepResult(
        configs=columns,
        train_loss=_members(raw.train_loss),
        eval_steps=raw.eval_steps,
        eval_metrics={k: _members(v) for k, v in raw.eval_metrics.items()},
        final_params=jax.tree.map(_members, raw.final_params),
        diverged=_members(raw.diverged),
        diverged_at=_members(raw.diverged_at),
        info={
            "task": task.name, "steps": steps, "batch_size": batch_size, "seed": seed, "seeds": seeds,
            "compiles": compiles.count, "compile_seconds": compiles.seconds,
            "seconds": time.perf_counter() - started, "groups": raw.groups, "devices": raw.devices,
        },
    )


@dataclasses.dataclass
class SweepResult:
    """What a sweep measured, one row per member (configuration-major, seeds inner).

    Attributes:
      configs: name -> (M,) values, plus ``seed`` (the seed index of each member).
      train_loss: (M, steps) training loss before each update; NaN after divergence.
      eval_steps: (E,) numbers of updates applied at each evaluation.
      eval_metrics: name -> (M, E); always includes ``loss``.
      final_params: the parameters pytree with a leading M axis.
      diverged: (M,) whether the member's loss or parameters turned non-finite.
      diverged_at: (M,) the step at which it did, or −1.
      info: task name, steps, batch size, seeds, compiles, compile and wall seconds.
    """

    configs: dict[str, np.ndarray]
    train_loss: np.ndarray
    eval_steps: np.ndarray
    eval_metrics: dict[str, np.ndarray]
    final_params: Any
    diverged: np.ndarray
    diverged_at: np.ndarray
    info: dict[str, Any]

    @property
    def num_members(self) -> int:
        return int(self.diverged.shape[0])

    def final(self, metric: str = "loss") -> np.ndarray:
        """Each member's final value of an eval metric, or of ``train_loss`` (mean of the last
        5% of steps); NaN for diverged members."""
        if metric == "train_loss":
            window = max(1, self.train_loss.shape[1] // 20)
            values = self.train_loss[:, -window:].mean(axis=1)
        elif metric in self.eval_metrics:
            values = self.eval_metrics[metric][:, -1].astype(np.float64)
        else:
            raise ValueError(f"metric must be 'train_loss' or one of {sorted(self.eval_metrics)}, got {metric!r}")
        return np.where(self.diverged, np.nan, values)

    def best(self, metric: str = "loss", mode: Optional[str] = None) -> dict[str, Any]:
        """The configuration with the best final ``metric``, averaged over its seeds.

        ``mode`` is ``"min"`` or ``"max"`` (default: ``max`` for metrics named like accuracy).
        A configuration with a diverged seed ranks last.
        """
        mode = mode or ("max" if "acc" in metric else "min")
        if mode not in ("min", "max"):
            raise ValueError(f"mode must be 'min' or 'max', got {mode!r}")
        seeds = self.info["seeds"]
        scores = self.final(metric).reshape(-1, seeds).mean(axis=1)
        if np.all(np.isnan(scores)):
            raise ValueError("every configuration diverged; there is no best")
        i = int(np.nanargmin(scores) if mode == "min" else np.nanargmax(scores))
        row = {k: v[i * seeds].item() for k, v in self.configs.items() if k != "seed"}
        return {**row, metric: float(scores[i]), "index": i}

    def to_pandas(self) -> Any:
        """One row per member: configuration, seed, final losses and metrics, divergence."""
        import pandas as pd

        frame = pd.DataFrame({k: np.asarray(v) for k, v in self.configs.items()})
        frame["final_train_loss"] = self.final("train_loss")
        for name in self.eval_metrics:
            frame[f"eval_{name}"] = self.final(name)
        frame["diverged"] = self.diverged
        frame["diverged_at"] = self.diverged_at
        return frame

    def plot(self, hyperparameter: Optional[str] = None, metric: str = "loss") -> Any:
        """Loss curves coloured by learning rate, and final ``metric`` against it; see `lrjax.plot.sweep`."""
        from lrjax import plot

        return plot.sweep(self, hyperparameter=hyperparameter, metric=metric)

    def save(self, path: str) -> None:
        """Write the result to a ``.npz`` file (parameters are stored by their pytree paths)."""
        arrays = {f"config/{k}": v for k, v in self.configs.items()}
        arrays.update({f"eval/{k}": v for k, v in self.eval_metrics.items()})
        for p, leaf in jax.tree_util.tree_flatten_with_path(self.final_params)[0]:
            arrays[f"params/{jax.tree_util.keystr(p)}"] = np.asarray(leaf)
        np.savez_compressed(
            path, train_loss=self.train_loss, eval_steps=self.eval_steps, diverged=self.diverged,
            diverged_at=self.diverged_at, info=np.asarray(json.dumps(self.info)), **arrays,
        )

    @classmethod
    def load(cls, path: str, like: Any = None) -> "SweepResult":
        """Read a saved result. ``final_params`` is a dict keyed by pytree path, or, given
        ``like`` (any pytree with the parameters' structure), that structure."""
        with np.load(path) as f:
            data = {k: f[k] for k in f.files}
        section = lambda prefix: {k[len(prefix):]: v for k, v in data.items() if k.startswith(prefix)}  # noqa: E731
        params = section("params/")
        if like is not None:
            paths = [jax.tree_util.keystr(p) for p, _ in jax.tree_util.tree_flatten_with_path(like)[0]]
            params = jax.tree.unflatten(jax.tree.structure(like), [params[p] for p in paths])
        return cls(
            configs=section("config/"), train_loss=data["train_loss"], eval_steps=data["eval_steps"],
            eval_metrics=section("eval/"), final_params=params, diverged=data["diverged"],
            diverged_at=data["diverged_at"], info=json.loads(str(data["info"])),
        )
