"""What every search policy shares: a population of trial slots, its metric per slot, its
records, and the count of member-steps spent on live trials.

A *slot* is one configuration of the population with all its seeds (members
``slot * seeds … slot * seeds + seeds − 1``); a *trial* is one configuration's life in a slot,
from its start (or the copy that began it) to its stop. The metric of a slot is the mean over its
seeds; a slot with a diverged seed, or a non-finite mean, has diverged.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from typing import Any, TypedDict

import numpy as np

from lrjax import _configs
from lrjax import _validate as v
from lrjax._drive import progress_bar, run
from lrjax._population import Population
from lrjax._result import evaluated_on, metric_mode, readable
from lrjax._task import Task
from lrjax.engine.program import OptimizerFn, trace_metric_names
from lrjax.search._result import SearchResult
from lrjax.search._space import Distribution

__all__ = ["Common", "Driver", "SearchOptions", "check_common", "is_space"]


def is_space(value: Mapping[str, Any]) -> bool:
    """Whether ``value`` is a space (distributions or constants) rather than configurations
    (one value per configuration)."""
    return isinstance(value, Mapping) and all(isinstance(x, Distribution) or np.ndim(x) == 0 for x in value.values())


class Driver:
    """A population of ``slots`` trial slots and the bookkeeping of one search.

    Args:
      common: the policy's checked common arguments (`check_common`): ``metric`` and ``mode``
        rank trials; ``eval_every`` adds evaluations (recorded in ``curves`` only).
      configs: the first configuration of every slot.
      stage: the policy's stage column (``rung``, ...).
      total: the number of clock steps, for the progress bar.
    """

    def __init__(self, common: Common, configs: Mapping[str, Any], *, stage: str, total: int):
        self.started = time.perf_counter()
        self.common = common
        self.task, self.optimizer, self.seeds = common.task, common.optimizer, common.seeds
        self.pop = Population(self.task, self.optimizer, configs, **common.population)
        self.slots = self.pop.size // self.seeds
        self.metric, self.mode, self.method, self.stage = common.metric, common.mode, common.method, stage
        self.records: list[dict[str, Any]] = []
        self.curves: list[dict[str, Any]] = []
        self.eval_every = common.eval_every
        self._measured: tuple[int, int, Any] | None = None  # (population id, clock, values)
        self._snapshot: tuple[np.ndarray, dict[str, np.ndarray]] = (np.zeros(0, int), {})
        self.trial_configs: dict[int, dict[str, Any]] = {}
        self.trial_of = np.full(self.slots, -1)
        self.next_trial = 0
        self.member_steps = 0
        self.active_steps = 0
        self.bar = progress_bar(total, f"{common.method} {self.task.name} · {self.slots} slots", common.progress)

    # -- slots and trials -------------------------------------------------------------------

    def members(self, slots: Any) -> np.ndarray:
        """The member indices of ``slots`` (all their seeds)."""
        slots = np.asarray(slots, np.int64).reshape(-1)
        return (slots[:, None] * self.seeds + np.arange(self.seeds)[None, :]).reshape(-1)

    def new_population(self, configs: Mapping[str, Any]) -> None:
        """Replace the population by a fresh one of ``configs`` (same shapes: nothing compiles)."""
        self.pop = Population(self.task, self.optimizer, configs, **self.common.population)

    def start_trials(self, slots: Any, ids: Any = None) -> np.ndarray:
        """Trial ids for ``slots`` (whose configs are already in the population): ``ids``, or
        the next unused numbers."""
        slots = np.asarray(slots, np.int64).reshape(-1)
        if ids is None:
            ids = np.arange(self.next_trial, self.next_trial + len(slots))
        ids = np.asarray(ids, np.int64)
        self.next_trial = max(self.next_trial, int(ids.max()) + 1 if ids.size else 0)
        self.trial_of[slots] = ids
        configs = self.pop.configs
        for slot, trial in zip(slots, ids, strict=True):
            self.trial_configs[int(trial)] = {
                k: _configs.take(x, slot * self.seeds) for k, x in configs.items() if k != "seed"
            }
        return ids

    # -- training and measuring -----------------------------------------------------------

    def advance(self, steps: int) -> None:
        """Advance the population, evaluating at every multiple of ``eval_every`` on the way;
        count the slot-steps run and those of active slots."""
        target = self.pop.clock + max(steps, 0)
        evals = range(self.eval_every, target + 1, self.eval_every) if self.eval_every else ()
        active = int(self.pop.active.reshape(self.slots, self.seeds).any(1).sum())
        for losses in run(self.pop, target, stops=evals, bar=self.bar):
            n = losses.shape[1]
            self.member_steps += self.slots * n
            self.active_steps += active * n
            if self.eval_every and self.pop.clock % self.eval_every == 0:
                self.measure()
            active = int(self.pop.active.reshape(self.slots, self.seeds).any(1).sum())

    def measure(self) -> tuple[np.ndarray, np.ndarray]:
        """(values, diverged), each (slots,): the seed-mean metric and whether the slot diverged
        (a seed diverged or the mean is not finite; its value is then NaN). Each evaluation adds
        a row per active trial to ``curves``; measuring again at the same clock reuses it."""
        if self._measured is not None and self._measured[:2] == (id(self.pop), self.pop.clock):
            return self._measured[2]
        values = self.pop.evaluate()[self.metric].reshape(self.slots, self.seeds)
        diverged = self.pop.diverged.reshape(self.slots, self.seeds).any(1)
        mean = values.astype(np.float64).mean(1)
        diverged |= ~np.isfinite(mean)
        out = np.where(diverged, np.nan, mean), diverged
        steps = self.pop.steps.reshape(self.slots, self.seeds)[:, 0]
        # What `record` writes of each slot, read once per evaluation (not once per row).
        hps = {k: x for k, x in self.pop.configs.items() if k != "seed"}
        columns = _configs.columns(_configs.take(hps, np.arange(self.slots) * self.seeds))
        self._snapshot = steps, {k: readable(x) for k, x in columns.items()}
        for slot in np.flatnonzero(self.pop.active.reshape(self.slots, self.seeds).any(1)):
            self.curves.append(
                {
                    "trial": int(self.trial_of[slot]),
                    "member": int(slot),
                    "steps": int(steps[slot]),
                    self.metric: float(out[0][slot]),
                    "diverged": bool(diverged[slot]),
                }
            )
        self._measured = (id(self.pop), self.pop.clock, out)
        return out

    def ranking(self, values: np.ndarray) -> np.ndarray:
        """Positions of ``values`` best first (stable: ties keep their order; NaN last)."""
        key = np.where(np.isnan(values), np.inf, values if self.mode == "min" else -values)
        return np.argsort(key, kind="stable")

    def record(self, slot: int, value: float, diverged: bool, stage: int, **extra: Any) -> dict[str, Any]:
        """A history row for ``slot`` as of the last `measure` (its steps and hyperparameters)."""
        steps, columns = self._snapshot
        row = {
            "trial": int(self.trial_of[slot]),
            self.stage: int(stage),
            "steps": int(steps[slot]),
            "member": int(slot),
            **{k: x[slot].item() for k, x in columns.items()},
            self.metric: float(value),
            "diverged": bool(diverged),
            **extra,
        }
        self.records.append(row)
        return row

    def finish(self, info: Mapping[str, Any], study: Any = None) -> SearchResult:
        self.bar.close()
        info = {
            **info,
            "task": self.pop.task.name,
            "evaluated_on": evaluated_on(self.pop.task),
            "slots": self.slots,
            "seeds": self.seeds,
            "trials": len(self.trial_configs),
            "seconds": time.perf_counter() - self.started,
            "member_steps": self.member_steps,
            "active_member_steps": self.active_steps,
            "utilization": self.active_steps / self.member_steps if self.member_steps else float("nan"),
        }
        return SearchResult(
            method=self.method,
            records=self.records,
            metric=self.metric,
            mode=self.mode,
            stage=self.stage,
            info=info,
            configs=self.trial_configs,
            study=study,
            curves=self.curves,
        )


class SearchOptions(TypedDict, total=False):
    """The keyword arguments every search policy takes besides its own, all optional.

    Keys:
      metric: the evaluation metric that ranks trials (default ``"loss"``); one of the task's
        metrics.
      mode: ``"min"`` or ``"max"`` (default: the metric's known direction, as the task's
        ``metric_modes`` or lrjax's own say: ``"max"`` for accuracy, ``"min"`` for a loss).
      batch_size, seed, devices, progress: as for `lrjax.sweep` (defaults: the full batch, or
        a stream's own batches; 0; every device; a progress bar).
      seeds: seeds per trial (default 1); a trial is ranked by its seeds' mean.
      eval_every: also evaluate every this many clock steps (default never), recorded in the
        result's ``learning_curves``; the policy's decisions use its own evaluations only.

    Example:
      >>> import optax, lrjax
      >>> from lrjax.search import SearchOptions, log_uniform, pbt
      >>> options: SearchOptions = {"seeds": 2, "eval_every": 10, "progress": False}
      >>> result = pbt(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...              {"learning_rate": log_uniform(1e-3, 0.5)}, population=4, steps=40, interval=20, **options)
      >>> result.info["seeds"], sorted(set(result.learning_curves["steps"]))
      (2, [10, 20, 30, 40])
    """

    metric: str
    mode: str | None
    batch_size: int | None
    seed: int
    seeds: int
    eval_every: int | None
    devices: Sequence[Any] | None
    progress: bool


@dataclasses.dataclass(frozen=True)
class Common:
    """A policy's `SearchOptions`, checked (`check_common`), with its task and optimizer:
    ``mode`` is resolved from the metric; ``population`` holds `lrjax.Population`'s keywords."""

    task: Task
    optimizer: OptimizerFn
    method: str
    metric: str
    mode: str
    eval_every: int | None
    progress: bool
    population: dict[str, Any]

    @property
    def seed(self) -> int:
        return self.population["seed"]

    @property
    def seeds(self) -> int:
        return self.population["seeds"]


def check_common(method: str, task: Task, optimizer: OptimizerFn, options: SearchOptions) -> Common:
    """The ``options`` of the policy ``method`` with their defaults, checked before anything
    compiles (a key that is not an option is a TypeError, as Python raises for a keyword)."""
    v.check_keywords(method, options, SearchOptions.__annotations__)
    if not isinstance(task, Task):
        raise TypeError(f"task must be an lrjax.Task, got {task!r}")
    eval_every, batch_size = options.get("eval_every"), options.get("batch_size")
    if eval_every is not None:
        v.integer("eval_every", eval_every)
    seeds = v.integer("seeds", options.get("seeds", 1))
    seed = v.integer("seed", options.get("seed", 0), minimum=0)
    if batch_size is not None:
        v.integer("batch_size", batch_size)
    metric = options.get("metric", "loss")
    names = trace_metric_names(task, batch_size)
    if metric not in names:
        raise ValueError(f"metric must be one of the task's metrics {names}, got {metric!r}")
    mode = metric_mode(metric, options.get("mode"), task.metric_modes)
    population = dict(batch_size=batch_size, seed=seed, seeds=seeds, devices=options.get("devices"))
    return Common(task, optimizer, method, metric, mode, eval_every, options.get("progress", True), population)
