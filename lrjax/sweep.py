"""`sweep`: train many hyperparameter configurations as one compiled program; `SweepResult`.

A sweep is the simplest driver of `lrjax.Population`: members that fit the memory budget form
one population, advanced to ``steps`` with an evaluation every ``eval_every`` steps and at the
end; more members run as several populations one after another (memory groups), each padded to
the same shape so that they share one set of compiled programs.
"""

from __future__ import annotations

import math
import time
from typing import Any, Mapping, Optional, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from lrjax import _configs
from lrjax._configs import check_configs
from lrjax.engine.compiles import count_compiles
from lrjax.engine.program import CHUNK, OptimizerFn, member_bytes
from lrjax.population import DEFAULT_MEMORY_BUDGET, Population, check_task_and_optimizer, positive_int, state_bytes
from lrjax.result import SweepResult
from lrjax.task import Task

__all__ = ["SweepResult", "check_configs", "sweep"]


def group_size(num_configs: int, seeds: int, bytes_per_member: int, budget: int, num_devices: int) -> int:
    """Configurations per population: as many as fit ``budget`` (see `state_bytes`), a multiple
    of the device count."""
    fit = max(budget // state_bytes(bytes_per_member, seeds), 1)
    size = max(num_devices, fit // num_devices * num_devices)
    return min(size, math.ceil(num_configs / num_devices) * num_devices)


def _boundaries(steps: int, eval_every: Optional[int]) -> list[tuple[int, bool]]:
    """(clock, evaluate here) at which the sweep stops advancing: every `CHUNK` steps (for the
    progress bar), every ``eval_every`` steps and at the end, where it always evaluates."""
    evals = set(range(eval_every, steps + 1, eval_every)) if eval_every else set()
    stops = sorted(evals | set(range(CHUNK, steps, CHUNK)) | {steps})
    return [(t, t in evals or t == steps) for t in stops]


def _join(parts: Sequence[SweepResult], counts: Sequence[int], info: dict[str, Any]) -> SweepResult:
    """One result from the first ``counts[g]`` members of each group's result."""
    rows = lambda get: np.concatenate([get(p)[:n] for p, n in zip(parts, counts)])
    scales = None if parts[0].plateau_scale is None else rows(lambda p: p.plateau_scale)
    return SweepResult(
        configs={k: rows(lambda p: p.configs[k]) for k in parts[0].configs},
        train_loss=rows(lambda p: p.train_loss),
        eval_steps=parts[0].eval_steps,
        eval_metrics={k: rows(lambda p: p.eval_metrics[k]) for k in parts[0].eval_metrics},
        final_params=jax.tree.map(lambda *xs: np.concatenate([x[:n] for x, n in zip(xs, counts)]), *[p.final_params for p in parts]),
        diverged=rows(lambda p: p.diverged),
        diverged_at=rows(lambda p: p.diverged_at),
        plateau_scale=scales,
        info=info,
    )


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
    plateau: Any = None,
    plateau_metric: str = "loss",
) -> SweepResult:
    """Train every configuration (× ``seeds``) simultaneously in one compiled, vmapped program.

    ``optimizer(hp)`` builds an Optax transformation from one member's hyperparameters, a dict
    of scalars (or schedules) with the keys of ``configs``; it runs inside the traced program,
    so a new sweep with new values compiles nothing. Its ``update`` receives ``value=``, the
    member's training loss. Members that share a seed share their initial parameters and
    batches. Batches are drawn on device, epoch by epoch, without replacement.

    Args:
      task: the `lrjax.Task` to train.
      optimizer: ``hp -> optax.GradientTransformation``.
      configs: name -> one value per configuration (1-D arrays, or pytrees of them).
      steps: >= 1 training steps.
      batch_size: examples per step; None trains on the full batch.
      seed, seeds: the base seed and the number of seeds per configuration.
      eval_every: evaluate (``task.metrics`` and the mean loss, on ``task.eval_data`` or else
        the training data) every this many steps; always at the end.
      memory_budget: bytes of member state per population; more members run in groups, with
        results equal within float32 summation order (1e-6).
      progress: show a progress bar.
      devices: devices to shard the members over (default: all local devices).
      plateau: ``lrjax.reduce_on_plateau(...)`` (or a function ``hp -> `` one): at each
        evaluation each member's plateau observes its own ``plateau_metric`` and scales the
        member's updates until the next; recorded in ``result.plateau_scale``.
      plateau_metric: the evaluation metric the plateau observes.

    Returns:
      A `SweepResult` whose member axis is configuration-major: member ``i * seeds + s`` is
      configuration ``i`` with seed ``s``.

    Example:
      >>> import optax, lrjax
      >>> result = lrjax.sweep(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                      {"learning_rate": [0.01, 0.1, 0.5]}, steps=200, progress=False)
      >>> result.best()["learning_rate"]
      0.5
    """
    hps, num_configs = check_configs(configs)
    steps = positive_int("steps", steps)
    seeds = positive_int("seeds", seeds)
    memory_budget = positive_int("memory_budget", memory_budget)
    if eval_every is not None:
        eval_every = positive_int("eval_every", eval_every)
    check_task_and_optimizer(task, optimizer, _configs.take(hps, 0))
    devices = tuple(devices or jax.local_devices())
    one_member = member_bytes(task, optimizer, _configs.take(hps, 0))
    size = group_size(num_configs, seeds, one_member, memory_budget, len(devices))
    groups = [np.arange(g, min(g + size, num_configs)) for g in range(0, num_configs, size)]
    # A group holds at least one configuration per device, even over the budget.
    budget = max(memory_budget, state_bytes(one_member, seeds * size))
    kwargs = dict(batch_size=batch_size, seed=seed, seeds=seeds, devices=devices, memory_budget=budget,
                  plateau=plateau, plateau_metric=plateau_metric)

    started = time.perf_counter()
    parts, compile_seconds = [], 0.0
    bar = tqdm(total=len(groups) * steps, desc=f"sweep {task.name}", unit="step", disable=not progress)
    with count_compiles() as compiles:
        for g, index in enumerate(groups):
            padded = np.concatenate([index, np.full(size - len(index), index[-1])])
            pop = Population(task, optimizer, _configs.take(hps, padded), **kwargs)
            if len(index) < size:
                pop.deactivate(np.arange(len(index) * seeds, pop.size))
            for clock, evaluate in _boundaries(steps, eval_every):
                pop.advance(clock - pop.clock)
                if evaluate:
                    pop.evaluate()
                bar.update(clock - bar.n + g * steps)
            parts.append(pop.result())
            compile_seconds += parts[-1].info["compile_seconds"]
    bar.close()
    info = {
        "task": task.name, "steps": steps, "batch_size": batch_size, "seed": seed, "seeds": seeds,
        "groups": len(groups), "devices": len(devices), "compiles": compiles.count,
        "compile_seconds": compile_seconds, "seconds": time.perf_counter() - started,
    }
    return _join(parts, [len(i) * seeds for i in groups], info)
