"""`sweep`: train many hyperparameter configurations as one compiled program; `SweepResult`.

A sweep is the simplest driver of `lrjax.Population`: members that fit the memory budget form
one population, advanced to ``steps`` with an evaluation every ``eval_every`` steps and at the
end; more members run as several populations one after another (memory groups), each padded to
the same shape so that they share one set of compiled programs.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from lrjax import _checkpoint, _configs
from lrjax import _validate as v
from lrjax._checks import check_batch_size, check_divergence_factor, check_task_and_optimizer
from lrjax._configs import check_configs
from lrjax._drive import progress_bar, run
from lrjax._population import Population
from lrjax._result import SweepResult, evaluated_on, metric_column
from lrjax._task import Task
from lrjax.engine import hosts
from lrjax.engine.compiles import count_compiles
from lrjax.engine.plan import DEFAULT_MEMORY_BUDGET, plan
from lrjax.engine.program import DIVERGENCE_FACTOR, OptimizerFn

__all__ = ["check_configs", "sweep"]


def _every(k: int | None, steps: int) -> set[int]:
    """The clocks at which something done every ``k`` steps happens, the last step included."""
    return (set(range(k, steps + 1, k)) if k else set()) | {steps}


def _lowest(values: np.ndarray, diverged: np.ndarray) -> str:
    """The lowest of the members' ``values`` that did not diverge, for the progress bar."""
    kept = np.asarray(values, np.float64)[: len(values)][~diverged[: len(values)]]
    kept = kept[np.isfinite(kept)]
    return f"{kept.min():.4g}" if kept.size else "nan"


def _signature(hps: Mapping[str, Any], **arguments: Any) -> dict[str, Any]:
    """What a sweep's checkpoint must have been written by: the arguments that decide the
    result, and a SHA-256 of the configurations."""
    digest = hashlib.sha256()
    for name, column in sorted(_configs.columns(hps).items()):
        digest.update(name.encode() + column.dtype.str.encode() + np.ascontiguousarray(column).tobytes())
    return {**arguments, "configs": digest.hexdigest()}


def _join(parts: Sequence[SweepResult], counts: Sequence[int], info: dict[str, Any]) -> SweepResult:
    """One result from the first ``counts[g]`` members of each group's result."""
    rows = lambda get: np.concatenate([get(p)[:n] for p, n in zip(parts, counts, strict=True)])
    members = lambda get: jax.tree.map(
        lambda *xs: np.concatenate([x[:n] for x, n in zip(xs, counts, strict=True)]), *[get(p) for p in parts]
    )
    scales = None if parts[0].plateau_scale is None else rows(lambda p: p.plateau_scale)
    return SweepResult(
        configs={k: rows(lambda p, k=k: p.configs[k]) for k in parts[0].configs},
        train_loss=rows(lambda p: p.train_loss),
        eval_steps=parts[0].eval_steps,
        eval_metrics={k: rows(lambda p, k=k: p.eval_metrics[k]) for k in parts[0].eval_metrics},
        final_params=members(lambda p: p.final_params),
        final_model_state=members(lambda p: p.final_model_state),
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
    batch_size: int | None = None,
    seed: int = 0,
    seeds: int = 1,
    eval_every: int | None = None,
    memory_budget: int = DEFAULT_MEMORY_BUDGET,
    progress: bool = True,
    devices: Sequence[Any] | None = None,
    plateau: Any = None,
    plateau_metric: str = "loss",
    checkpoint: str | None = None,
    checkpoint_every: int | None = None,
    divergence_factor: float | None = DIVERGENCE_FACTOR,
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
      devices: devices to shard the members over (default: all local devices; all global
        devices when `jax.distributed` runs several processes).
      plateau: ``lrjax.reduce_on_plateau(...)`` (or a function ``hp -> `` one): at each
        evaluation each member's plateau observes its own ``plateau_metric`` and scales the
        member's updates until the next; recorded in ``result.plateau_scale``.
      plateau_metric: the evaluation metric the plateau observes.
      checkpoint: a directory. The sweep saves each memory group's population there
        (``Population.save``, orbax-checkpoint) every ``checkpoint_every`` steps and when the group
        finishes; if the directory holds checkpoints, the sweep resumes from them. A sweep killed
        and started again with the same arguments finishes with results bitwise equal to an
        uninterrupted sweep on the same devices. Checkpoints from a different sweep raise
        `ValueError`.
      checkpoint_every: steps between checkpoints (default: at each evaluation).
      divergence_factor: f > 1 or None (off): a member whose training loss exceeds its first
        loss by more than (f − 1)·|first| diverged, like one whose loss turns non-finite; see
        `lrjax.Population`.

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
    steps = v.integer("steps", steps)
    seeds = v.integer("seeds", seeds)
    memory_budget = v.integer("memory_budget", memory_budget)
    if eval_every is not None:
        eval_every = v.integer("eval_every", eval_every)
    v.integer("seed", seed, minimum=0)
    divergence_factor = check_divergence_factor(divergence_factor)
    hp = _configs.take(hps, 0)
    check_task_and_optimizer(task, optimizer, hp, plateau)
    check_batch_size(task, batch_size)  # before the progress bar starts
    if checkpoint_every is not None:
        checkpoint_every = v.integer("checkpoint_every", checkpoint_every)
        if checkpoint is None:
            raise ValueError(f"checkpoint_every={checkpoint_every} needs checkpoint=<directory>")
    if checkpoint is not None:
        if not isinstance(checkpoint, (str, os.PathLike)):
            raise TypeError(f"checkpoint must be a directory path, got {checkpoint!r}")
        checkpoint = v.directory("checkpoint", checkpoint)
        checkpoint_every = checkpoint_every or eval_every
    devices = tuple(devices or hosts.default_devices())
    planned = plan(
        task, optimizer, hp, num_configs, seeds, batch_size, devices, memory_budget, divergence_factor, split=True
    )
    groups, size, budget = planned.groups, planned.group_size, planned.memory_budget
    # The arguments that decide every member's training: each group's Population gets them, and
    # a checkpoint records them (with the sweep's length and grouping) to be resumed only by them.
    decides: dict[str, Any] = dict(batch_size=batch_size, seed=seed, seeds=seeds, divergence_factor=divergence_factor)
    signature = _signature(
        hps,
        steps=steps,
        eval_every=eval_every,
        group_size=size,
        plateau_metric=plateau_metric if plateau is not None else None,
        **decides,
    )

    started = time.perf_counter()
    parts, compile_seconds = [], 0.0
    members = num_configs * seeds
    bar = progress_bar(len(groups) * steps, f"sweep {task.name} · {members} members", progress)
    evals, saves = _every(eval_every, steps), _every(checkpoint_every, steps)
    diverged_before = 0  # in finished groups
    shown: dict[str, Any] = {}  # the progress bar's numbers
    with count_compiles() as compiles:
        for g, index in enumerate(groups):
            padded = np.concatenate([np.asarray(index), np.full(size - len(index), index[-1])])
            group_configs = _configs.take(hps, padded)
            path = None if checkpoint is None else os.path.join(os.fspath(checkpoint), f"group_{g:04d}")
            if path is not None and _checkpoint.exists(path):
                pop = Population.restore(
                    path, task, optimizer, configs=group_configs, devices=devices, memory_budget=budget, plateau=plateau
                )
                expected = {**signature, "group": g}
                saved = pop.metadata
                if saved != expected:
                    diff = {k: (saved.get(k), value) for k, value in expected.items() if saved.get(k) != value}
                    raise ValueError(
                        f"{path!r} holds a checkpoint of another sweep, (saved, given): {diff}; use another checkpoint directory"
                    )
            else:
                pop = Population(
                    task,
                    optimizer,
                    group_configs,
                    devices=devices,
                    memory_budget=budget,
                    plateau=plateau,
                    plateau_metric=plateau_metric,
                    **decides,
                )
                if len(index) < size:
                    pop.deactivate(np.arange(len(index) * seeds, pop.size))
            bar.update(g * steps + pop.clock - bar.n)  # a resumed population starts where it was saved
            for losses in run(pop, steps, stops=evals | saves, bar=bar):
                clock = pop.clock
                if clock in evals:
                    evaluated = pop.evaluate()["loss"][: len(index) * seeds]
                    shown[f"best_{metric_column('loss', evaluated_on(task))}"] = _lowest(evaluated, pop.diverged)
                if path is not None and clock in saves:
                    pop.save(path, metadata={**signature, "group": g})
                if progress:
                    # The lowest minibatch loss of the last step; with evaluations, the lowest loss
                    # of the last one (what `best` ranks by): each named for what it is.
                    shown["best_train_loss"] = _lowest(losses[: len(index) * seeds, -1], pop.diverged)
                    shown["diverged"] = diverged_before + int(pop.diverged[: len(index) * seeds].sum())
                    bar.set_postfix(shown, refresh=False)
            diverged_before += int(pop.diverged[: len(index) * seeds].sum())
            parts.append(pop.result())
            compile_seconds += parts[-1].info["compile_seconds"]
    bar.close()
    info = {
        "task": task.name,
        "steps": steps,
        "batch_size": batch_size,
        "seed": seed,
        "seeds": seeds,
        "groups": len(groups),
        "devices": len(devices),
        "compiles": compiles.count,
        "compile_seconds": compile_seconds,
        "seconds": time.perf_counter() - started,
        "metric_modes": dict(task.metric_modes),
        "evaluated_on": evaluated_on(task),
    }
    return _join(parts, [len(i) * seeds for i in groups], info)
