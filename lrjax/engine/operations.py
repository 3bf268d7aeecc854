"""What each operation of a population compiles: the jitted function, its arguments' shapes and
shardings, which argument it donates, its output shardings and its XLA compile options.

`lrjax.engine.cache` lowers and compiles these pieces and keeps the executables; this module
only says what they are. An operation is one piece, except a chunk that runs in parts
(`lrjax.engine.parts`): three pieces, ``split`` (the population into parts), ``chunk`` (of one
part, run for each at once) and ``join``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax.engine import dots, options, parts
from lrjax.engine.program import CHUNK, Programs

__all__ = ["CHUNK_OPTIONS", "DEFAULT", "RARE", "Piece", "pieces"]

# XLA:CPU compile options (other platforms compile with their defaults). Measured on the digits
# MLP sweep (2-core CPU): the MLIR fusion emitters spend ~8 ms compiling each fusion, the classic
# ones about half; the backend optimisation level trades compile time against run time. Init
# and reset run rarely: their threefry draws compile at level 0 in half the time. The split and
# join of a chunk in parts (`lrjax.engine.parts`) only move data: at level 0 they compile in
# 0.1 s instead of 0.4-0.6 s (an 8-seed Adam range test), and ran no slower (64-member user MLP,
# side by side). The chunk, which
# runs every step, keeps the MLIR emitters: its transposing fusions (activations into and out of
# the batched matmuls) ran 2-4x slower with the classic ones, and the warm sweep 10-20% slower
# (digits MLPs and CNN, measured side by side in one process). Its matmuls are laid out by
# `lrjax.engine.dots`, which needs transpose folding off. XLA's copy insertion with region
# analysis proves that the new optimizer state can be written in place over the loop's carry
# (without it the chunk copied the first layer's momentum every step); alternating processes,
# best of 5: user MLP 0.68-0.70 -> 0.65-0.68 s, built-in MLP 0.43-0.44 -> 0.40-0.42 s, CNN
# 0.38-0.39 -> 0.37-0.38 s, the same losses. Each is passed only where the backend knows it
# (`lrjax.engine.options`); jaxlib 0.12 has no ``xla_cpu_use_fusion_emitters``.
RARE = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
CHUNK_OPTIONS = {"xla_backend_optimization_level": 1, "xla_cpu_copy_insertion_use_region_analysis": True}
DEFAULT = {"xla_cpu_use_fusion_emitters": False}


class Piece(NamedTuple):
    """One program to compile: ``jitted.lower(*args).compile()``, with ``options`` (as passed)."""

    jitted: Any  # a jax.jit-wrapped function
    args: tuple
    options: dict[str, Any]


def _sharding_of(tree: Any) -> Any:
    return jax.tree.map(lambda x: x.sharding, tree)


def _jit(p: Programs, fn: Callable[..., Any], donate: Any, out: Any, wanted: dict[str, Any], args: tuple) -> Piece:
    """``fn`` jitted with ``donate`` and ``out`` shardings and the ``wanted`` options that the
    backend accepts (on CPU; other platforms compile with their defaults)."""
    compile_options = options.supported(wanted, p.layout.devices[0]) if p.layout.on_cpu else {}
    jitted = jax.jit(fn, donate_argnums=donate, out_shardings=out, compiler_options=compile_options or None)
    return Piece(jitted, args, compile_options)


def _slots(p: Programs, hps: Any, dtype: Any) -> jax.ShapeDtypeStruct:
    """A (seeds, slots) array like the hyperparameters' leaves, of ``dtype``."""
    return jax.ShapeDtypeStruct(tuple(jax.tree.leaves(hps)[0].shape[:2]), dtype, sharding=p.slots)


def _losses(p: Programs, hps: Any) -> jax.ShapeDtypeStruct:
    """A chunk's losses, (CHUNK, seeds, slots)."""
    shape = (CHUNK, *jax.tree.leaves(hps)[0].shape[:2])
    return jax.ShapeDtypeStruct(shape, np.float32, sharding=NamedSharding(p.mesh, P(None, "seeds", "slots")))


def _chunk(p: Programs, state: Any, hps: Any, train_data: Any) -> Piece:
    chunk_options = {**CHUNK_OPTIONS, **dots.COMPILE_OPTIONS} if p.rewrites else CHUNK_OPTIONS
    out = _sharding_of((state, _losses(p, hps)))
    return _jit(p, p.chunk, 0, out, chunk_options, (state, hps, _slots(p, hps, bool), train_data, np.int32(0)))


def _chunk_in_parts(p: Programs, q: Programs, state: Any, hps: Any, train_data: Any) -> dict[str, Piece]:
    """``split``, ``chunk`` (of one part, with the part's programs ``q``) and ``join``."""
    cut = lambda *args: parts.split(p.layout, *args)
    whole = (state, hps, _slots(p, hps, bool))
    cuts = jax.eval_shape(cut, *whole)
    part_hps = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=q.slots), cuts[0][1])
    part_state = q.state_shapes(part_hps)
    part = (part_state, part_hps, _slots(q, part_hps, bool))
    glue = lambda outs: parts.join(p.layout, outs)
    outs = ([(part_state, _losses(q, part_hps))] * len(cuts),)
    return {
        "split": _jit(p, cut, (), [_sharding_of(part)] * len(cuts), RARE, whole),
        "chunk": _chunk(q, part_state, part_hps, train_data),
        "join": _jit(p, glue, (), _sharding_of((state, _losses(p, hps))), RARE, outs),
    }


def pieces(
    p: Programs,
    part: Callable[[], Programs],
    name: str,
    state: Any,
    hps: Any,
    keys: jax.Array,
    train_data: Any,
    eval_data: Any,
) -> dict[str, Piece]:
    """What operation ``name`` of ``p`` compiles, piece name -> `Piece`.

    Args:
      p: the population's programs.
      part: ``() -> `` the programs of one part of ``p``'s layout (called for a chunk in parts).
      name: ``init``, ``reset``, ``copy``, ``chunk``, ``evaluate`` or ``observe``.
      state: the population state's shapes and shardings (`Programs.state_shapes`).
      hps, keys, train_data, eval_data: arguments (or their shapes) of the operations.

    Returns:
      ``{name: piece}``, or for a chunk in parts ``{"split", "chunk", "join"}``.
    """
    if name == "chunk":
        if p.layout.parts != (1, 1):
            return _chunk_in_parts(p, part(), state, hps, train_data)
        return {name: _chunk(p, state, hps, train_data)}
    shardings = _sharding_of(state)
    slots_bool, slots_int = _slots(p, hps, bool), _slots(p, hps, np.int32)
    table = {  # name: (function, donated state, output shardings, options, arguments)
        "init": (p.init, (), shardings, RARE, (hps, keys)),
        "reset": (p.reset, 0, shardings, RARE, (state, hps, keys, slots_bool)),
        "copy": (p.copy, 0, shardings, DEFAULT, (state, slots_int, slots_int)),
        "evaluate": (p.evaluate, (), p.slots, DEFAULT, (state.members.params, state.members.model_state, eval_data)),
        "observe": (p.observe, 0, shardings, DEFAULT, (state, hps, _slots(p, hps, np.float32), slots_bool)),
    }
    return {name: _jit(p, *table[name])}
