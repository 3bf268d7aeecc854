"""Evaluate a traced function with some of its primitives computed another way.

The engine changes how a user's computation runs on XLA:CPU without asking the user to change
their code: `lrjax.engine.conv` computes convolutions as slices and a matmul, `lrjax.engine.dots`
gives every matmul the operand layout XLA:CPU's fast kernels take. Both trace the function to a
jaxpr and evaluate it equation by equation with `interpret`, which asks a rule for each wanted
equation and binds every other one as traced; nested ``jit`` calls holding wanted equations are
evaluated inline, so the rule sees them too.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jcore

__all__ = ["Rule", "contains", "interpret", "rewrite"]

# (equation, input values) -> output values, or None to bind the equation as traced.
Rule = Callable[[jcore.JaxprEqn, list[Any]], "list[Any] | None"]


def _inner(eqn: jcore.JaxprEqn) -> jcore.ClosedJaxpr | None:
    """The jaxpr of a nested ``jit`` call, which `interpret` may evaluate inline."""
    return eqn.params["jaxpr"] if eqn.primitive.name in ("pjit", "jit") else None


def contains(jaxpr: jcore.Jaxpr, wanted: Callable[[jcore.JaxprEqn], bool]) -> bool:
    """Whether ``jaxpr``, or a jaxpr inside one of its equations, has an equation ``wanted``."""
    for eqn in jaxpr.eqns:
        if wanted(eqn):
            return True
        if any(contains(getattr(sub, "jaxpr", sub), wanted) for sub in jcore.jaxprs_in_params(eqn.params)):
            return True
    return False


def interpret(
    jaxpr: jcore.Jaxpr,
    consts: Sequence[Any],
    args: Sequence[Any],
    wanted: Callable[[jcore.JaxprEqn], bool],
    rule: Rule,
) -> list[Any]:
    """The outputs of ``jaxpr`` on ``consts`` and ``args``, each ``wanted`` equation computed by
    ``rule`` (unless it returns None) and nested ``jit`` calls with wanted equations inlined.

    Args:
      jaxpr, consts: a traced function (``ClosedJaxpr.jaxpr`` and ``.consts``).
      args: values of its inputs (arrays or tracers of an enclosing trace).
      wanted: which equations to offer to ``rule``.
      rule: computes a wanted equation's outputs from its input values, or returns None.

    Returns:
      The values of ``jaxpr.outvars``.
    """
    env: dict[Any, Any] = {}

    def read(v: Any) -> Any:
        return v.val if isinstance(v, jcore.Literal) else env[v]

    for var, value in zip(jaxpr.constvars, consts, strict=True):
        env[var] = value
    for var, value in zip(jaxpr.invars, args, strict=True):
        env[var] = value
    for eqn in jaxpr.eqns:
        invals = [read(v) for v in eqn.invars]
        outvals = rule(eqn, invals) if wanted(eqn) else None
        inner = _inner(eqn)
        if outvals is None and inner is not None and contains(inner.jaxpr, wanted):
            outvals = interpret(inner.jaxpr, inner.consts, invals, wanted, rule)
        elif outvals is None:
            with eqn.ctx.manager:
                out = eqn.primitive.bind(*invals, **eqn.primitive.get_bind_params(eqn.params))
            outvals = list(out) if eqn.primitive.multiple_results else [out]
        for var, value in zip(eqn.outvars, outvals, strict=True):
            env[var] = value
    return [read(v) for v in jaxpr.outvars]


def rewrite(fn: Callable[..., Any], wanted: Callable[[jcore.JaxprEqn], bool], rule: Callable[[], Rule]) -> Callable:
    """``fn`` evaluated by `interpret`: traced on each call's arguments (arrays, tracers or
    shapes), with a fresh ``rule()`` per call (a rule may remember what it produced).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax import lax
      >>> from lrjax.engine.rewrite import rewrite
      >>> is_sin = lambda eqn: eqn.primitive is lax.sin_p
      >>> as_cos = lambda: lambda eqn, invals: [jnp.cos(invals[0])]
      >>> float(rewrite(lambda x: jnp.sin(x) + 1, is_sin, as_cos)(0.0))
      2.0
    """

    def rewritten(*args: Any) -> Any:
        closed, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        out = interpret(closed.jaxpr, closed.consts, jax.tree.leaves(args), wanted, rule())
        return jax.tree.unflatten(jax.tree.structure(shape), out)

    return rewritten
