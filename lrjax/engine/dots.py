"""Matmuls in the operand layout XLA:CPU's fast kernels take.

XLA:CPU (jax 0.10) hands a ``dot`` to its fast YNNPACK kernels only when the left operand's
contracting dimension is its last (``[batch…, m, k]``); any other dot runs on a slower generic
path. Reverse-mode differentiation produces exactly the other kind: the weight gradient of
``y = x @ w`` is ``xᵀ @ dy``, contracting the batch dimension, which is the first dimension of
both operands. XLA's transpose-folding pass also folds an explicit transpose of an operand back
into the dot. Profiled on the 64-128-10 MLP sweep of 64 members (1 CPU device, 500 steps), the
second layer's weight gradient alone took 400–490 ms of a 1.8 s run, at 26 GFLOP/s; the first
layer's, which XLA happened to lay out canonically, ran at 265 GFLOP/s.

`canonical_dot` computes ``lax.dot_general`` with explicit transposes chosen so the dot is in
canonical form: either the left operand is transposed to ``[batch…, free…, contracting…]``, or
the operands are swapped (the right one, transposed to that form, goes left) and the small
result is transposed back, whichever moves fewer elements. `canonical_dots` applies it to every
dot of a traced function (`lrjax.engine.rewrite`), and transposes a dot's result so that XLA's
algebraic simplifier cannot fold the transpose back into the dot (it rewrites ``transpose(dot(a,
b))`` as ``dot(b, a)``). The engine compiles its training steps with transpose folding off
(`lrjax.engine.cache`), so the transposes stay where they are put. Values are those of
``lax.dot_general`` up to float summation order.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
from jax import lax

from lrjax.engine.rewrite import Rule, rewrite

__all__ = ["canonical_dot", "canonical_dots", "guarded_transpose"]

# What XLA is asked not to do to the programs `canonical_dots` rewrites (a compile option).
COMPILE_OPTIONS = {"xla_disable_hlo_passes": "transpose-folding"}


def guarded_transpose(x: jax.Array, permutation: Sequence[int]) -> jax.Array:
    """``lax.transpose(x, permutation)`` written through a trailing unit axis, a form XLA's
    algebraic simplifier does not fold into the dot that produced ``x``."""
    y = lax.transpose(x[..., None], (*permutation, x.ndim))
    return y[..., 0]


def _cost(x: jax.Array, orders: Sequence[Sequence[int]]) -> int:
    """Elements moved to bring ``x`` into the first of ``orders``; nothing if already in one."""
    return 0 if any(list(o) == list(range(x.ndim)) for o in orders) else x.size


def _placed(x: jax.Array, orders: Sequence[Sequence[int]]) -> tuple[jax.Array, list[int]]:
    """``x`` in one of ``orders`` (as it is when it already is, else transposed to the first),
    and the order it is in."""
    if _cost(x, orders) == 0:
        return x, list(range(x.ndim))
    return lax.transpose(x, tuple(orders[0])), list(orders[0])


def _shared_input_gradient(
    lhs: jax.Array, rhs: jax.Array, lc: Sequence[int], rc: Sequence[int], lb: Sequence[int]
) -> bool:
    """Whether the dot is the weight gradient of a layer whose input all members share:
    ``dyᵀ · x`` under a ``vmap`` over members, with no batch dimensions, ``x`` a 2-D right
    operand contracting its first (example) axis, ``dy`` carrying the member axis.

    Reverse-mode differentiation writes it as ``dot(dy, x)`` followed by a transpose to the
    kernel's ``(in, out)`` order, and the engine stores a kernel as ``(in, members, out)``
    (`lrjax.engine.program.member_axis`). Computed swapped, ``xᵀ · dy`` comes out in exactly
    that order, and the transposes after it cancel; computed as given, the optimizer's update
    reads the gradient transposed. Profiled on the 64-128-10 MLP sweep (32 members a part, 500
    steps), the swap took a step from 1.98 ms to 1.72 ms."""
    return not lb and rhs.ndim == 2 and lhs.ndim > 2 and tuple(rc) == (0,) and tuple(lc) != (lhs.ndim - 1,)


def canonical_dot(
    lhs: jax.Array,
    rhs: jax.Array,
    dimension_numbers: Any,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> jax.Array:
    """``lax.dot_general(lhs, rhs, dimension_numbers)`` computed as a dot whose left operand is
    ``[batch…, free…, contracting…]`` and whose right one is ``[batch…, contracting…, free…]``
    or ``[batch…, free…, contracting…]`` (what XLA:CPU's fast kernels take).

    Two plans, the cheaper in elements moved (ties to the first):

      1. transpose ``lhs`` (and ``rhs`` if needed) into those forms;
      2. swap: ``rhs`` in the left form, ``lhs`` in a right form, then transpose the result
         (batch, rhs free, lhs free) back to (batch, lhs free, rhs free).

    The weight gradient of a layer whose input the members share is always swapped (see
    `_shared_input_gradient`): its result is wanted in the swapped order.

    A dot with no contracting or no free dimension on either side (a matrix-vector product,
    which XLA runs with its own kernels), or of non-float operands, is computed as given.

    Args:
      lhs, rhs, dimension_numbers, precision, preferred_element_type: as for
        ``lax.dot_general``.

    Returns:
      The same array as ``lax.dot_general`` (up to float summation order).

    Example:
      >>> import jax.numpy as jnp
      >>> from lrjax.engine.dots import canonical_dot
      >>> x, dy = jnp.arange(6.0).reshape(3, 2), jnp.ones((3, 4))
      >>> canonical_dot(x, dy, (((0,), (0,)), ((), ())))  # xᵀ dy, a weight gradient
      Array([[6., 6., 6., 6.],
             [9., 9., 9., 9.]], dtype=float32)
    """
    (lc, rc), (lb, rb) = dimension_numbers
    kw = dict(precision=precision, preferred_element_type=preferred_element_type)
    lf = [d for d in range(lhs.ndim) if d not in lc and d not in lb]
    rf = [d for d in range(rhs.ndim) if d not in rc and d not in rb]
    floats = all(jnp.issubdtype(x.dtype, jnp.floating) for x in (lhs, rhs))
    if not (lc and lf and rf and floats):
        return lax.dot_general(lhs, rhs, dimension_numbers, **kw)
    left = [[*lb, *lf, *lc]]
    right = [[*rb, *rc, *rf], [*rb, *rf, *rc]]
    swapped_left = [[*rb, *rf, *rc]]
    swapped_right = [[*lb, *lc, *lf], [*lb, *lf, *lc]]
    out_size = math.prod(lhs.shape[d] for d in (*lb, *lf)) * math.prod(rhs.shape[d] for d in rf)
    plain = _cost(lhs, left) + _cost(rhs, right)
    swap = _cost(rhs, swapped_left) + _cost(lhs, swapped_right) + out_size
    if plain == 0:
        return lax.dot_general(lhs, rhs, dimension_numbers, **kw)

    def dot(
        a: jax.Array,
        a_order: list[int],
        b: jax.Array,
        b_order: list[int],
        ac: Sequence[int],
        bc: Sequence[int],
        ab: Sequence[int],
        bb: Sequence[int],
    ) -> jax.Array:
        where_a, where_b = {d: i for i, d in enumerate(a_order)}, {d: i for i, d in enumerate(b_order)}
        dims = (
            ([where_a[d] for d in ac], [where_b[d] for d in bc]),
            ([where_a[d] for d in ab], [where_b[d] for d in bb]),
        )
        return lax.dot_general(a, b, dims, **kw)

    if plain <= swap and not _shared_input_gradient(lhs, rhs, lc, rc, lb):
        a, a_order = _placed(lhs, left)
        b, b_order = _placed(rhs, right)
        return dot(a, a_order, b, b_order, lc, rc, lb, rb)
    a, a_order = _placed(rhs, swapped_left)
    b, b_order = _placed(lhs, swapped_right)
    out = dot(a, a_order, b, b_order, rc, lc, rb, lb)  # (batch, rhs free, lhs free)
    nb, nr = len(lb), len(rf)
    return guarded_transpose(out, [*range(nb), *range(nb + nr, out.ndim), *range(nb, nb + nr)])


def _wanted(eqn: jcore.JaxprEqn) -> bool:
    return eqn.primitive in (lax.dot_general_p, lax.transpose_p)


def _rule() -> Rule:
    """Dots by `canonical_dot`; a transpose of a dot's result by `guarded_transpose`."""
    from_dots: dict[int, Any] = {}  # id -> value (held, so the id is not reused)

    def rule(eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any] | None:
        if eqn.primitive is lax.transpose_p:
            if id(invals[0]) not in from_dots:
                return None
            return [guarded_transpose(invals[0], eqn.params["permutation"])]
        p = eqn.params
        sharding = p.get("out_sharding")
        if sharding is not None and any(axis is not None for axis in sharding.spec):
            return None  # a sharded result: left as it is (unsharded ones are what vmap makes)
        lhs, rhs = invals
        out = canonical_dot(lhs, rhs, p["dimension_numbers"], p["precision"], p["preferred_element_type"])
        out = out.astype(eqn.outvars[0].aval.dtype)  # pyright: ignore[reportAttributeAccessIssue]: a ShapedArray
        from_dots[id(out)] = out
        return [out]

    return rule


def canonical_dots(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with every dot computed by `canonical_dot` (see the module's docstring). Compile
    the program that calls it with ``COMPILE_OPTIONS`` for XLA to keep the layouts chosen.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lrjax.engine.dots import canonical_dots
      >>> grad = jax.grad(lambda w, x: jnp.sum(x @ w))
      >>> w, x = jnp.ones((2, 3)), jnp.arange(8.0).reshape(4, 2)
      >>> bool(jnp.array_equal(canonical_dots(grad)(w, x), grad(w, x)))
      True
    """
    return rewrite(fn, _wanted, _rule, "matmul layout")
