"""Drive the compiled programs: shard members over devices, split them into memory groups,
run the chunks with a progress bar, evaluate, and gather the results on the host."""

from __future__ import annotations

import math
import time
from typing import Any, Optional, Sequence

import jax
import numpy as np
from tqdm.auto import tqdm

from lrjax.engine.program import Layout, OptimizerFn, Programs, member_bytes, stacked_axis
from lrjax.result import SweepResult
from lrjax.task import Task

DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of member state, see group_size
DEFAULT_CHUNK = 100


def _members(x: np.ndarray) -> np.ndarray:
    """(seeds, configs, ...) -> (configs · seeds, ...): configuration-major, seeds inner."""
    x = np.asarray(x)
    return x.swapaxes(0, 1).reshape((x.shape[0] * x.shape[1],) + x.shape[2:])


def _take(tree: Any, idx: np.ndarray) -> Any:
    return jax.tree.map(lambda x: np.asarray(x)[idx], tree)


def group_size(num_configs: int, seeds: int, bytes_per_member: int, budget: int, num_devices: int) -> int:
    """Configurations per program run: as many as fit ``budget``, a multiple of the device count."""
    # A member's parameters and optimizer state, counted three times: the state, the next
    # state being written, and gradients and updates in flight.
    per_config = 3 * seeds * max(bytes_per_member, 1)
    fit = max(budget // per_config, 1)
    size = max(num_devices, fit // num_devices * num_devices)
    return min(size, math.ceil(num_configs / num_devices) * num_devices)


def programs_for(task: Task, optimizer: OptimizerFn, layout: Layout) -> Programs:
    """The cached programs for (task, optimizer, layout); built (not yet compiled) on first use."""
    key = (optimizer, layout)
    if key not in task._programs:
        task._programs[key] = Programs(task, optimizer, layout)
    return task._programs[key]


def run(
    task: Task,
    optimizer: OptimizerFn,
    hps: Any,
    num_configs: int,
    *,
    steps: int,
    batch_size: Optional[int],
    seed: int,
    seeds: int,
    eval_every: Optional[int],
    memory_budget: int,
    progress: bool,
    devices: Optional[Sequence[Any]] = None,
) -> SweepResult:
    """Train every configuration × seed; ``hps`` leaves are host arrays with a leading config axis.

    The result's ``configs`` are left for the caller to fill; ``info`` holds the number of
    memory groups and devices, and the wall-clock seconds spent tracing and compiling."""
    devices = tuple(devices or jax.local_devices())
    first = _take(hps, np.asarray(0))
    size = group_size(num_configs, seeds, member_bytes(task, optimizer, first), memory_budget, len(devices))
    chunk = eval_every or min(steps, DEFAULT_CHUNK)
    programs = programs_for(task, optimizer, Layout(seeds, size, batch_size, chunk, devices))

    replicated = programs.replicated
    keys = jax.device_put(jax.random.split(jax.random.key(seed), seeds), replicated)
    train_data = jax.device_put(task.train_data, replicated)
    eval_data = train_data if task.eval_data is None else jax.device_put(task.eval_data, replicated)

    num_chunks = math.ceil(steps / chunk)
    ends = [min((c + 1) * chunk, steps) for c in range(num_chunks)]
    eval_at = set(range(num_chunks)) if eval_every else {num_chunks - 1}
    groups = [np.arange(g, min(g + size, num_configs)) for g in range(0, num_configs, size)]
    bar = tqdm(total=len(groups) * num_chunks, desc=f"sweep {task.name}", unit="chunk", disable=not progress)

    losses, metrics, params, diverged, diverged_at = [], [], [], [], []
    compile_seconds = 0.0
    for idx in groups:
        padded = np.concatenate([idx, np.full(size - len(idx), idx[-1])])
        group_hps = jax.device_put(_take(hps, padded), programs.config_sharding)
        started = time.perf_counter()
        jitted = programs.compile(group_hps, keys, train_data, eval_data)
        compile_seconds += time.perf_counter() - started
        state = jitted.init(group_hps, keys)
        group_losses, group_metrics = [], []
        for c in range(num_chunks):
            state, chunk_losses = jitted.chunk(state, group_hps, train_data, c * chunk, steps)
            group_losses.append(np.asarray(chunk_losses))
            if c in eval_at:
                group_metrics.append(jax.device_get(jitted.evaluate(state.members.params, eval_data)))
            bar.update(1)
        n = len(idx)
        losses.append(np.concatenate(group_losses).transpose(1, 2, 0)[:, :n, :steps])
        metrics.append({k: np.stack([m[k] for m in group_metrics], -1)[:, :n] for k in group_metrics[0]})
        params.append(jax.tree.map(lambda x: np.moveaxis(np.asarray(x), stacked_axis(x), 1)[:, :n], state.members.params))
        diverged.append(np.asarray(state.members.diverged)[:, :n])
        diverged_at.append(np.asarray(state.members.diverged_at)[:, :n])

    bar.close()
    join = lambda *xs: _members(np.concatenate(xs, axis=1))
    return SweepResult(
        configs={},
        train_loss=join(*losses),
        eval_steps=np.asarray([ends[c] for c in sorted(eval_at)]),
        eval_metrics={k: join(*(m[k] for m in metrics)) for k in metrics[0]},
        final_params=jax.tree.map(join, *params),
        diverged=join(*diverged),
        diverged_at=join(*diverged_at),
        info={"groups": len(groups), "devices": len(devices), "compile_seconds": compile_seconds},
    )
