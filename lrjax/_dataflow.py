"""Which inputs of a function its outputs come from, read off its jaxpr (traced from shapes,
nothing runs). The model adapters use it to catch a train/eval switch that does not switch: a
BatchNorm whose statistics training never updates, or an evaluation that never reads them."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.extend.core as jcore


class Flow(NamedTuple):
    """Per output leaf of ``fn(*args)``, in `jax.tree.leaves` order.

    Attributes:
      forwarded: the index of the input leaf the output is, unchanged, or None.
      reads: the indices of the input leaves the output depends on. An operation with a body
        (a loop, a ``cond``) counts each of its outputs as depending on all of its inputs, so
        the sets can only be too large, never too small.
    """

    forwarded: list[int | None]
    reads: list[frozenset[int]]


def flow(fn: Callable[..., Any], *args: Any) -> Flow:
    """`Flow` of ``fn`` at ``args`` (arrays or `jax.ShapeDtypeStruct`).

    Args:
      fn: any function JAX can trace.
      *args: its arguments.

    Returns:
      A `Flow`.

    Example:
      >>> from lrjax._dataflow import flow
      >>> import jax.numpy as jnp
      >>> f = lambda a, b, c: (a, b * 2, jnp.sin(a + c))
      >>> flow(f, 1.0, 2.0, 3.0)
      Flow(forwarded=[0, None, None], reads=[frozenset({0}), frozenset({1}), frozenset({0, 2})])
    """
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    index = {v: i for i, v in enumerate(jaxpr.invars)}
    deps: dict[Any, frozenset[int]] = {v: frozenset({i}) for v, i in index.items()}
    for eqn in jaxpr.eqns:
        read = frozenset().union(*(deps.get(v, frozenset()) for v in eqn.invars if isinstance(v, jcore.Var)))
        for out in eqn.outvars:
            deps[out] = read
    outs = jaxpr.outvars
    return Flow(
        [index.get(v) if isinstance(v, jcore.Var) else None for v in outs],
        [deps.get(v, frozenset()) if isinstance(v, jcore.Var) else frozenset() for v in outs],
    )
