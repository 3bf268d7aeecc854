"""Evaluate a traced function with some of its primitives computed another way.

The engine changes how a user's computation runs on XLA:CPU without asking the user to change
their code: `lrjax.engine.conv` computes convolutions as slices and a matmul, `lrjax.engine.dots`
gives every matmul the operand layout XLA:CPU's fast kernels take, `lrjax.engine.sink` moves
transposes to where they cancel. Each traces the function to a jaxpr and evaluates it equation
by equation with `interpret`, which asks a rule for each wanted equation and binds every other
one as traced (`bind`, inside the equation's own source information, as JAX's ``eval_jaxpr``
does, so profiles and HLO metadata name the user's line); nested ``jit`` calls holding wanted
equations are evaluated inline, so the rule sees them too.

A rewrite only changes speed, never values, so it must never be why a program fails: `guarded`
falls back to the user's plain function when evaluating the jaxpr raises (a form of jaxpr or a
primitive a rule does not know, a JAX release that changed what the rules read), with a
warning once per rewrite. ``LRJAX_REWRITES=0`` in the environment turns every rewrite off
(`enabled`).
"""

from __future__ import annotations

import os
import threading
import warnings
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jcore
from jax.extend import source_info_util

__all__ = ["Rule", "bind", "contains", "enabled", "guarded", "interpret", "jaxprs_in_params", "rewrite", "warn_once"]

# (equation, input values) -> output values, or None to bind the equation as traced.
Rule = Callable[[jcore.JaxprEqn, list[Any]], "list[Any] | None"]

# Where a jaxpr holds others (jit, scan, cond, custom_jvp): `jax.extend.core` has it in recent JAX
# releases (0.10), `jax.core` in older ones (0.6 to 0.8).
jaxprs_in_params = getattr(jcore, "jaxprs_in_params", None) or jax.core.jaxprs_in_params  # type: ignore[attr-defined]

_warned: set[str] = set()
_warned_lock = threading.Lock()


def enabled() -> bool:
    """Whether the engine rewrites its programs: unless ``LRJAX_REWRITES`` is ``0`` (or
    ``false``, ``off``, ``no``) in the environment when a population builds its programs.
    Off, every program is the user's computation as written, vmapped and scanned; results
    agree with the rewritten programs up to float summation order."""
    return os.environ.get("LRJAX_REWRITES", "1").strip().lower() not in ("0", "false", "off", "no")


def warn_once(key: str, message: str) -> None:
    """``warnings.warn(message)`` the first time ``key`` is seen in this process."""
    with _warned_lock:
        if key in _warned:
            return
        _warned.add(key)
    warnings.warn(message, RuntimeWarning, stacklevel=3)


def bind(eqn: jcore.JaxprEqn, args: Sequence[Any], **changes: Any) -> list[Any]:
    """The outputs of ``eqn``'s primitive applied to ``args`` (with ``changes`` to its
    parameters), bound inside the equation's source information and context.

    ``Primitive.get_bind_params`` returns the parameters as a dict since JAX 0.9 and as
    ``(subfunctions, parameters)`` before; both forms are taken."""
    got = eqn.primitive.get_bind_params(eqn.params)
    subfuns, params = got if isinstance(got, tuple) else ((), got)
    params = {**params, **changes}
    name_stack = source_info_util.current_name_stack() + eqn.source_info.name_stack
    with source_info_util.user_context(eqn.source_info.traceback, name_stack=name_stack), eqn.ctx.manager:
        out = eqn.primitive.bind(*subfuns, *args, **params)
    return list(out) if eqn.primitive.multiple_results else [out]


def _inner(eqn: jcore.JaxprEqn) -> jcore.ClosedJaxpr | None:
    """The jaxpr of a nested ``jit`` call, which `interpret` may evaluate inline."""
    return eqn.params["jaxpr"] if eqn.primitive.name in ("pjit", "jit") else None


def contains(jaxpr: jcore.Jaxpr, wanted: Callable[[jcore.JaxprEqn], bool]) -> bool:
    """Whether ``jaxpr``, or a jaxpr inside one of its equations, has an equation ``wanted``."""
    for eqn in jaxpr.eqns:
        if wanted(eqn):
            return True
        if any(contains(getattr(sub, "jaxpr", sub), wanted) for sub in jaxprs_in_params(eqn.params)):
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
            outvals = bind(eqn, invals)
        for var, value in zip(eqn.outvars, outvals, strict=True):
            env[var] = value
    return [read(v) for v in jaxpr.outvars]


def guarded(
    fn: Callable[..., Any],
    evaluate: Callable[[jcore.ClosedJaxpr, list[Any]], list[Any]],
    name: str,
) -> Callable[..., Any]:
    """``fn`` computed by ``evaluate(closed_jaxpr, input leaves) -> output leaves``, traced on
    each call's arguments (arrays, tracers or shapes); ``fn`` itself, with a warning once per
    ``name``, where ``evaluate`` raises. An error of ``fn``'s own is raised while tracing it,
    before ``evaluate`` runs, and reaches the caller."""

    def rewritten(*args: Any) -> Any:
        closed, shape = jax.make_jaxpr(fn, return_shape=True)(*args)
        try:
            out = evaluate(closed, jax.tree.leaves(args))
        except Exception as err:  # a rewrite changes speed, never whether the program runs
            warn_once(
                name,
                f"lrjax: the engine's {name} rewrite could not evaluate this program "
                f"({type(err).__name__}: {str(err).strip()[:200]}); it runs as written, with the same "
                "results, possibly slower. Please report it with your JAX version.",
            )
            return fn(*args)
        return jax.tree.unflatten(jax.tree.structure(shape), out)

    return rewritten


def rewrite(
    fn: Callable[..., Any], wanted: Callable[[jcore.JaxprEqn], bool], rule: Callable[[], Rule], name: str
) -> Callable[..., Any]:
    """``fn`` evaluated by `interpret`, with a fresh ``rule()`` per call (a rule may remember
    what it produced), and `guarded`: ``fn`` as written where the rule meets a form it does not
    know.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax import lax
      >>> from lrjax.engine.rewrite import rewrite
      >>> is_sin = lambda eqn: eqn.primitive is lax.sin_p
      >>> as_cos = lambda: lambda eqn, invals: [jnp.cos(invals[0])]
      >>> float(rewrite(lambda x: jnp.sin(x) + 1, is_sin, as_cos, "sin as cos")(0.0))
      2.0
    """
    return guarded(fn, lambda closed, args: interpret(closed.jaxpr, closed.consts, args, wanted, rule()), name)
