"""A population's training chunk run as concurrent parts on each CPU device.

XLA:CPU runs one program's operations one after another, and spreads an operation over the
cores only when it is large: a sweep of small models leaves most cores idle, whatever the
number of members. Two programs run from two threads do run at once. Measured on the user-written
digits MLP (64-128-10, 64 members, 500 steps, 2 cores, jax 0.10): one program of 64 members
1.10–1.15 s; two programs of 32 members, each from its own thread, 0.81–0.84 s, as fast as
splitting the host into one JAX device per core (0.83–0.90 s); four of 16, 0.85 s.

So on CPU the engine cuts each device's members into ``parts`` equal parts, one per core the
device has (`choose`), and a chunk of training steps becomes three steps:

    parts  = split(state, hps, active)              one program: copies of the state's slices
    part_k = chunk(part_k)  for every k, at once    one thread per part, one compiled chunk
    state  = join(part_1, …, part_n)                one program

Members are independent, so the parts compute exactly what the whole would. With fewer
configurations than cores (one configuration, several seeds: a range test) the seeds are cut
instead. What this costs: two more copies of the state while a chunk runs (`COPIES`), which the
population counts against its memory budget (it does not split when they do not fit), and two
small programs to compile. The user's JAX device setting is left as it is.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import math
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.numpy as jnp
from jax import lax

from lrjax.engine.program import Layout, PopulationState, stacked_axis

COPIES = 2  # copies of the state, beyond the state itself, alive while a chunk runs in parts

_pool: concurrent.futures.ThreadPoolExecutor | None = None
_pool_lock = threading.Lock()


def cores() -> int:
    """CPU cores this process may run on."""
    if hasattr(os, "sched_getaffinity"):
        return len(os.sched_getaffinity(0))
    return os.cpu_count() or 1


def choose(configs: int, seeds: int, devices: Sequence[Any], seed_devices: int = 1) -> tuple[tuple[int, int], int]:
    """How to cut a population into parts, and its configuration slots.

    On CPU, in one process, with the devices a (``seed_devices``, ``M``) mesh, ``c =
    ceil(configs / M)`` configurations and ``s = seeds / seed_devices`` seeds per device, and
    ``k`` cores per CPU device: ``q = ceil(c / k)`` configurations per part and ``ceil(c / q)``
    parts, or, with one configuration per device, the largest divisor of ``s`` up to ``k`` seed
    parts. Elsewhere one part.

    Args:
      configs: configurations of the population.
      seeds: seeds per configuration.
      devices: the devices the members are sharded over.
      seed_devices: how many of them shard the seeds (`lrjax.engine.program.seed_devices`).

    Returns:
      ``((seed_parts, slot_parts), slots)``: at most one of the two counts above 1; ``slots``
      configuration slots, a multiple of ``M × slot_parts`` (padding repeats a configuration).

    Example:
      >>> from lrjax.engine.parts import choose
      >>> import jax
      >>> choose(64, 1, jax.devices()[:1])[1] % 64
      0
    """
    slot_devices = len(devices) // seed_devices
    per_device = math.ceil(configs / slot_devices)
    whole = ((1, 1), per_device * slot_devices)
    if jax.process_count() > 1 or not all(d.platform == "cpu" for d in devices):
        return whole
    per_core = max(cores() // len(jax.local_devices(backend="cpu")), 1)
    if per_device >= 2:
        per_part = math.ceil(per_device / per_core)
        parts = math.ceil(per_device / per_part)
        return (1, parts), parts * per_part * slot_devices
    local_seeds = seeds // seed_devices
    seed_parts = max(k for k in range(1, min(per_core, local_seeds) + 1) if local_seeds % k == 0)
    return (seed_parts, 1), whole[1]


def part_layout(layout: Layout) -> Layout:
    """The layout of one part of ``layout``."""
    seed_parts, slot_parts = layout.parts
    return dataclasses.replace(layout, seeds=layout.seeds // seed_parts, slots=layout.slots // slot_parts, parts=(1, 1))


def _axes(layout: Layout, state: PopulationState) -> tuple[Any, int, int, int | None]:
    """Where ``layout``'s parts cut: the member leaves' axes (a tree), the (seeds, members)
    arrays' axis, the losses' axis, and the data-order arrays' axis (None: every part reads
    the whole, members sharing their seeds' order)."""
    if layout.parts[0] > 1:
        return jax.tree.map(lambda x: 0, state.members), 0, 1, 0
    return jax.tree.map(stacked_axis, state.members), 1, 2, None


def _blocks(layout: Layout) -> int:
    """Blocks the cut axis is laid out in: one per device along it (the members' or the seeds'
    axis of the device mesh), so that every part keeps each device's share on that device."""
    return layout.slot_devices if layout.parts[1] > 1 else layout.seed_devices


def _take(x: jax.Array, axis: int, blocks: int, parts: int, k: int) -> jax.Array:
    """Part ``k`` of ``parts`` of every one of ``blocks`` equal blocks of ``x`` along ``axis``."""
    s = x.shape
    y = x.reshape((*s[:axis], blocks, parts, s[axis] // (blocks * parts), *s[axis + 1 :]))
    return lax.index_in_dim(y, k, axis + 1, keepdims=False).reshape((*s[:axis], s[axis] // parts, *s[axis + 1 :]))


def _merge(xs: Sequence[jax.Array], axis: int, blocks: int) -> jax.Array:
    """The inverse of `_take` over ``k = 0 … len(xs) − 1``."""
    s = xs[0].shape
    y = jnp.stack([x.reshape((*s[:axis], blocks, s[axis] // blocks, *s[axis + 1 :])) for x in xs], axis + 1)
    return y.reshape((*s[:axis], s[axis] * len(xs), *s[axis + 1 :]))


def split(layout: Layout, state: PopulationState, hps: Any, active: jax.Array) -> list[tuple]:
    """The parts of a chunk's arguments: ``(state, hps, active)`` per part (traced)."""
    count = max(layout.parts)
    member_axes, slot_axis, _, order_axis = _axes(layout, state)
    blocks = _blocks(layout)

    def part(k: int) -> tuple:
        cut = lambda x, axis: x if axis is None else _take(x, axis, blocks, count, k)
        members = jax.tree.map(cut, state.members, member_axes)
        order, shuffle, keys = (cut(x, order_axis) for x in (state.order, state.shuffle, state.keys))
        cut_state = PopulationState(members, order, shuffle, keys, state.clock)
        return (cut_state, *jax.tree.map(lambda x: cut(x, slot_axis), (hps, active)))

    return [part(k) for k in range(count)]


def join(layout: Layout, outs: Sequence[tuple[PopulationState, jax.Array]]) -> tuple[PopulationState, jax.Array]:
    """The chunk's result from its parts' ``(state, losses)`` (traced): the inverse of `split`."""
    first = outs[0][0]
    member_axes, _, loss_axis, order_axis = _axes(layout, first)
    blocks = _blocks(layout)
    glue = lambda axis, *xs: xs[0] if axis is None else _merge(xs, axis, blocks)
    members = jax.tree.map(lambda axis, *xs: glue(axis, *xs), member_axes, *(s.members for s, _ in outs))
    state = PopulationState(
        members,
        glue(order_axis, *(s.order for s, _ in outs)),
        glue(order_axis, *(s.shuffle for s, _ in outs)),
        glue(order_axis, *(s.keys for s, _ in outs)),
        first.clock,
    )
    return state, glue(loss_axis, *(losses for _, losses in outs))


def _executor() -> concurrent.futures.ThreadPoolExecutor:
    global _pool
    with _pool_lock:
        if _pool is None:
            _pool = concurrent.futures.ThreadPoolExecutor(max(cores() - 1, 1), thread_name_prefix="lrjax-part")
        return _pool


class PartedChunk:
    """A chunk run in parts: ``split``, the part ``chunk`` of every part at once (the first in
    the calling thread, the others in a shared pool), ``join``. Called like the whole chunk:
    ``(state, hps, active, data, n) -> (state, losses)``."""

    def __init__(self, split: Callable, chunk: Callable, join: Callable):
        self.split, self.chunk, self.join = split, chunk, join

    def _run(self, args: tuple, data: Any, n: Any) -> Any:
        return jax.block_until_ready(self.chunk(*args, data, n))

    def __call__(self, state: PopulationState, hps: Any, active: jax.Array, data: Any, n: Any) -> Any:
        first, *rest = self.split(state, hps, active)
        pending = [_executor().submit(self._run, args, data, n) for args in rest]
        outs = [self._run(first, data, n), *(job.result() for job in pending)]
        return self.join(outs)
