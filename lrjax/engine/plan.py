"""`plan`: how a population's members are laid out, decided in one place.

Given one member's size in bytes (its parameters, model state and optimizer state, from shapes),
the number of configurations and seeds, the devices and a memory budget, a plan says

- the memory groups: configurations that train together, one population after another when
  they do not all fit the budget (`lrjax.sweep` runs them; a `lrjax.Population` is one group);
- the device mesh: how many devices shard the seeds and how many the configurations
  (`lrjax.engine.program.seed_devices`);
- the configuration slots: the configurations padded to a multiple of the devices (and of the
  CPU parts);
- the CPU parts: on CPU, a chunk of training runs in one part per core at once
  (`lrjax.engine.parts`), which takes `COPIES` more copies of the state; a group they do not fit
  runs whole.

The budget counts each member's state three times (`state_bytes`): the state, the next one being
written, and the gradients and updates in flight.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any

import jax

from lrjax._task import Task
from lrjax.engine import cache, parts
from lrjax.engine.program import Layout, OptimizerFn, seed_devices

__all__ = ["DEFAULT_MEMORY_BUDGET", "Plan", "member_bytes", "plan", "state_bytes"]

DEFAULT_MEMORY_BUDGET = 2 * 1024**3  # bytes of member state, see `state_bytes`


def member_bytes(task: Task, optimizer: OptimizerFn, hp: Mapping[str, Any]) -> int:
    """Bytes of one member's parameters, model state and optimizer state, from shapes (nothing
    runs); remembered by the engine's trace cache (`lrjax.engine.cache.traced`)."""

    def state(hp: Any) -> tuple[Any, Any, Any]:
        params, model_state = task.initial(jax.random.key(0))
        return params, model_state, optimizer(hp).init(params)

    def count() -> int:
        return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(jax.eval_shape(state, hp)))

    return cache.traced("bytes", task, optimizer, None, hp, count)


def state_bytes(member_bytes: int, members: int) -> int:
    """Bytes a population of ``members`` needs for its state: each member's parameters and
    optimizer state counted three times (the state, the next state being written, gradients and
    updates in flight)."""
    return 3 * members * max(member_bytes, 1)


@dataclasses.dataclass(frozen=True)
class Plan:
    """How a population's members are laid out (see `plan`).

    Attributes:
      layout: the programs' static shape for each group: seeds, configuration slots, the device
        mesh and the CPU parts.
      groups: the configuration indices of each memory group, in order (one group unless the
        plan was allowed to split).
      group_size: configurations per group, the last group padded to it (repeating its last
        configuration), so that every group shares one set of compiled programs.
      member_bytes: one member's state, in bytes.
      memory_budget: the budget each group is given: the one asked for, or more when a single
        configuration per device does not fit it (a group never holds less).
    """

    layout: Layout
    groups: tuple[range, ...]
    group_size: int
    member_bytes: int
    memory_budget: int


def plan(
    task: Task,
    optimizer: OptimizerFn,
    hp: Mapping[str, Any],
    configs: int,
    seeds: int,
    batch_size: int | None,
    devices: Sequence[Any],
    memory_budget: int,
    divergence_factor: float | None,
    split: bool = False,
) -> Plan:
    """Lay ``configs`` configurations × ``seeds`` seeds out on ``devices`` within ``memory_budget``.

    With ``c`` configurations per group and ``D`` devices: ``d = seed_devices(c, seeds, D)``
    devices shard the seeds and ``D / d`` the configurations; on CPU the configurations of a
    device run in parts, one per core (`lrjax.engine.parts.choose`), unless the parts' copies of
    the state would exceed the budget; the slots are ``c`` rounded up to a multiple of the
    devices (and parts) sharding them. A streamed task is cut into parts of configurations only
    (each part would read every seed's batches).

    Args:
      task: the task to train.
      optimizer: ``hp -> optax.GradientTransformation``.
      hp: one configuration's hyperparameters, arrays (their shapes decide the optimizer state's).
      configs: the number of configurations.
      seeds: seeds per configuration.
      batch_size: examples per step (None: full batch).
      devices: the devices to shard the members over.
      memory_budget: bytes the state of one group may take (`state_bytes`).
      divergence_factor: the layout's divergence threshold (`lrjax.engine.program.Layout`).
      split: whether configurations that do not fit may run in several groups of ``c`` =
        as many as fit, a multiple of ``D`` (at least ``D``, even over the budget). Without it,
        all configurations form one group, and one that does not fit raises.

    Returns:
      A `Plan`.

    Raises:
      ValueError: ``split`` is False and the configurations do not fit ``memory_budget``.

    Example:
      >>> import jax, numpy as np, optax, lrjax
      >>> from lrjax.engine.plan import plan
      >>> p = plan(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...          {"learning_rate": np.float32(0.1)}, 10, seeds=2, batch_size=None, devices=jax.devices()[:1],
      ...          memory_budget=200, divergence_factor=None, split=True)
      >>> p.member_bytes, p.group_size, p.groups     # 3 × 2 seeds × 8 bytes a configuration
      (8, 4, (range(0, 4), range(4, 8), range(8, 10)))
      >>> p.layout.slots, p.layout.parts                                  # no room for the parts' copies
      (4, (1, 1))
    """
    devices = tuple(devices)
    one = member_bytes(task, optimizer, hp)
    count, groups = configs, (range(configs),)
    if split:
        fit = max(memory_budget // state_bytes(one, seeds), 1)
        count = min(
            max(len(devices), fit // len(devices) * len(devices)), math.ceil(configs / len(devices)) * len(devices)
        )
        groups = tuple(range(g, min(g + count, configs)) for g in range(0, configs, count))
        memory_budget = max(memory_budget, state_bytes(one, seeds * count))
    by_seed = seed_devices(count, seeds, len(devices))
    cut, slots = parts.choose(count, seeds, devices, by_seed)
    if task.streamed and cut[0] > 1:  # a part reads every seed's batches: parts of configurations only
        cut = (1, 1)
    if state_bytes(one, seeds * slots) + parts.COPIES * seeds * slots * one > memory_budget:
        across = len(devices) // by_seed  # no room for the parts' copies: one part
        cut, slots = (1, 1), math.ceil(count / across) * across
    needed = state_bytes(one, seeds * slots)
    if needed > memory_budget:
        raise ValueError(
            f"the population needs {needed} bytes ({seeds} seeds × {slots} configurations × {one} bytes "
            f"of parameters and optimizer state × 3), more than memory_budget={memory_budget}; "
            "use fewer members (lrjax.sweep splits them into groups) or a larger budget"
        )
    layout = Layout(seeds, slots, batch_size, devices, cut, by_seed, divergence_factor)
    return Plan(layout, groups, count, one, memory_budget)
