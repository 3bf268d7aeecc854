"""Transposes moved past elementwise operations, to where they cancel or a consumer needs them.

``jax.vmap`` puts the member axis first whenever an operation mixes operands batched along
different axes: a member's learning rate (a scalar, batched along axis 0) times a kernel
stored (in, members, out) becomes ``lr[:, None, None] * transpose(kernel)``, and the new
kernel goes back to its stored order by one more transpose. XLA:CPU does not move transposes
through elementwise operations, so a training step's optimizer update read and wrote the
kernels across transposes, and the loop that carries them copied them each step.

`sink_transposes` evaluates a traced function (like `lrjax.engine.rewrite`) with every
transpose kept pending, as ``(array, perm)`` standing for ``lax.transpose(array, perm)``:

- a transpose of a pending value composes with it (``perm[p[i]]``); one that composes to the
  identity vanishes;
- an elementwise operation is computed in the order of one of its pending operands when that
  moves fewer elements than computing it as written (operands in another order are
  transposed; broadcasts count as free, XLA writes a transposed broadcast as a broadcast);
- a reduction, a squeeze and a broadcast that only adds axes of length 1 map their axes;
- anything else, and the function's outputs, get the transposed value. A transpose of a dot's
  result is written as `lrjax.engine.dots.guarded_transpose`, which XLA does not fold into the
  dot (that would undo the matmul layouts);
- a dot's result whose last axis is narrow (fewer than `NARROW` elements, the axis before it
  not) is stored with those two axes swapped, pending. XLA:CPU vectorizes a loop along its last
  axis: the softmax cross-entropy over 10 classes after a classifier's last matmul, and its
  gradient, then run along the examples instead. On the 64-member MLP sweep (32 members a part)
  its elementwise work went from about 147 to 104 µs of a 1.5 ms step.

Elementwise results are exactly those of the function; a reduction over a pending value sums
in another order, so its result is equal up to float summation order. In the engine's training
step this makes the update run in the order the state is stored in (see the README's
Performance section for what it changed). The same rewrite, as graph passes: OpenVINO's
transpose sinking (``TSUnaryForward``, ``TSBinaryForward``, ``TransposeReduction``), TensorFlow
Lite's ``push-transpose-through-ewise``, IREE's ``propagate-linalg-transpose``.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax.extend.core as jcore
import numpy as np
from jax import lax

from lrjax.engine.dots import guarded_transpose
from lrjax.engine.rewrite import Rule, bind, guarded, interpret

__all__ = ["sink_transposes"]

ELEMENTWISE = frozenset(
    "abs add add_any and atan2 cos convert_element_type div eq erf exp exp2 expm1 ge gt integer_pow is_finite le "
    "log log1p logistic lt max min mul ne neg not or pow rem rsqrt select_n sign sin sqrt square sub "
    "tanh xor".split()
)
REDUCTIONS = frozenset("reduce_sum reduce_max reduce_min reduce_prod reduce_and reduce_or".split())


class _Pending(NamedTuple):
    """A value ``lax.transpose(array, perm)`` not computed yet."""

    array: Any
    perm: tuple[int, ...]


def _identity(n: int) -> tuple[int, ...]:
    return tuple(range(n))


def _pending(array: Any, perm: Sequence[int]) -> Any:
    perm = tuple(int(p) for p in perm)
    return array if perm == _identity(len(perm)) else _Pending(array, perm)


def _parts(value: Any) -> tuple[Any, tuple[int, ...]]:
    if isinstance(value, _Pending):
        return value.array, value.perm
    return value, _identity(np.ndim(value))


class _Marks(NamedTuple):
    """The arrays of one evaluation, by id, that are broadcasts (``cheap``: transposing one is
    a broadcast in another order) or a dot's result seen through reshapes (``dots``). Holding
    the arrays keeps their ids from being reused while the evaluation runs."""

    cheap: dict[int, Any]
    dots: dict[int, Any]


def _transpose(array: Any, perm: Sequence[int], marks: _Marks) -> Any:
    """``lax.transpose``; of a dot's result, guarded so that XLA keeps the dot as it is."""
    if tuple(perm) == _identity(len(perm)):
        return array
    return guarded_transpose(array, perm) if id(array) in marks.dots else lax.transpose(array, tuple(perm))


def _value(value: Any, marks: _Marks) -> Any:
    """The value itself, transposed if pending."""
    return _transpose(value.array, value.perm, marks) if isinstance(value, _Pending) else value


def _stored(value: Any, perm: tuple[int, ...], marks: _Marks) -> Any:
    """The array ``a`` with ``lax.transpose(a, perm)`` equal to ``value``."""
    array, own = _parts(value)
    return _transpose(array, [own[i] for i in np.argsort(perm)], marks)


def _elementwise(eqn: jcore.JaxprEqn, invals: list[Any], marks: _Marks) -> list[Any] | None:
    """Computed in the order of its pending operands when that moves fewer elements."""
    rank = max(np.ndim(_parts(v)[0]) for v in invals)
    if any(np.ndim(_parts(v)[0]) not in (0, rank) for v in invals):
        return None
    orders = {v.perm for v in invals if isinstance(v, _Pending)}
    if not orders:
        return None

    def moved(order: tuple[int, ...]) -> int:
        return sum(
            int(np.size(_parts(v)[0]))
            for v in invals
            if np.ndim(_parts(v)[0]) and _parts(v)[1] != order and id(v) not in marks.cheap
        )

    best = min(sorted(orders), key=moved)
    if moved(_identity(rank)) <= moved(best):
        return None
    args = [v if np.ndim(_parts(v)[0]) == 0 else _stored(v, best, marks) for v in invals]
    return [_pending(out, best) for out in bind(eqn, args)]


def _reduction(eqn: jcore.JaxprEqn, value: _Pending) -> list[Any] | None:
    if eqn.params.get("out_sharding") is not None:
        return None
    axes = set(eqn.params["axes"])
    kept = [i for i in range(len(value.perm)) if i not in axes]
    stored = sorted(value.perm[i] for i in kept)
    out = bind(eqn, [value.array], axes=tuple(sorted(value.perm[a] for a in axes)))[0]
    return [_pending(out, [stored.index(value.perm[i]) for i in kept])]


def _squeeze(eqn: jcore.JaxprEqn, value: _Pending) -> list[Any]:
    dims = set(eqn.params["dimensions"])
    kept = [i for i in range(len(value.perm)) if i not in dims]
    stored = sorted(value.perm[i] for i in kept)
    out = lax.squeeze(value.array, tuple(sorted(value.perm[d] for d in dims)))
    return [_pending(out, [stored.index(value.perm[i]) for i in kept])]


def _unit_axes(eqn: jcore.JaxprEqn, value: _Pending) -> list[Any] | None:
    """A broadcast that only adds axes of length 1: new stored axes at the end."""
    shape, dims = eqn.params["shape"], tuple(eqn.params["broadcast_dimensions"])
    operand = [value.array.shape[p] for p in value.perm]
    if eqn.params.get("sharding") is not None or [shape[d] for d in dims] != operand:
        return None
    if any(shape[i] != 1 for i in range(len(shape)) if i not in dims):
        return None
    rank, extra = len(value.perm), iter(range(len(value.perm), len(shape)))
    array = lax.expand_dims(value.array, tuple(range(rank, len(shape))))
    perm = [value.perm[dims.index(i)] if i in dims else next(extra) for i in range(len(shape))]
    return [_pending(array, perm)]


# Fewer elements than one AVX-512 register of float32 holds.
NARROW = 16


def _narrow_last(y: Any, marks: _Marks) -> Any:
    """A dot's result ``y``; pending, stored with its two last axes swapped, when the last is
    narrow and the one before it is not (the stored array is marked a dot's result: a transpose
    of it back is guarded too)."""
    if y.ndim < 2 or y.shape[-1] >= NARROW or y.shape[-2] < NARROW:
        return y
    swap = (*range(y.ndim - 2), y.ndim - 1, y.ndim - 2)
    stored = guarded_transpose(y, swap)
    marks.dots[id(stored)] = stored
    return _Pending(stored, swap)


RESHAPES = frozenset(("broadcast_in_dim", "reshape", "squeeze", "expand_dims"))


def _rule(marks: _Marks) -> Rule:
    """The `lrjax.engine.rewrite.interpret` rule that keeps transposes pending; it computes
    every equation itself except the nested ``jit`` calls it leaves to `interpret` to inline."""

    def rule(eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any] | None:
        first: Any = invals[0] if invals else None
        name = eqn.primitive.name
        out = None
        if name in ("pjit", "jit") and eqn.params["jaxpr"].jaxpr.eqns:
            return None
        if name == "transpose":
            array, perm = _parts(first)
            out = [_pending(array, [perm[p] for p in eqn.params["permutation"]])]
        elif name in ELEMENTWISE:
            out = _elementwise(eqn, invals, marks)
        elif name in REDUCTIONS and isinstance(first, _Pending):
            out = _reduction(eqn, first)
        elif name == "squeeze" and isinstance(first, _Pending):
            out = _squeeze(eqn, first)
        elif name == "broadcast_in_dim" and isinstance(first, _Pending):
            out = _unit_axes(eqn, first)
        elif name == "custom_jvp_call":  # the program is not differentiated again: its primal is enough
            inner = eqn.params["call_jaxpr"]
            out = interpret(inner.jaxpr, inner.consts, invals, _everything, rule)
        if out is None:
            out = bind(eqn, [_value(v, marks) for v in invals])
            if name == "broadcast_in_dim" and np.size(out[0]) > np.size(first):
                marks.cheap[id(out[0])] = out[0]
        if name == "dot_general" or (name in RESHAPES and id(_parts(first)[0]) in marks.dots):
            marks.dots.update((id(_parts(v)[0]), _parts(v)[0]) for v in out)
        if name == "dot_general":
            out = [_narrow_last(out[0], marks)]
        return out

    return rule


def _everything(eqn: jcore.JaxprEqn) -> bool:
    return True


def sink_transposes(fn: Callable[..., Any]) -> Callable[..., Any]:
    """``fn`` with its transposes moved past elementwise operations (module docstring).

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from lrjax.engine.sink import sink_transposes
      >>> f = lambda w, lr: jax.vmap(lambda w, lr: w - lr * w, in_axes=(1, 0), out_axes=1)(w, lr)
      >>> w, lr = jnp.ones((3, 4, 5)), jnp.arange(4.0)
      >>> bool(jnp.array_equal(sink_transposes(f)(w, lr), f(w, lr)))
      True
    """

    def evaluate(closed: jcore.ClosedJaxpr, args: list[Any]) -> list[Any]:
        marks = _Marks({}, {})
        out = interpret(closed.jaxpr, closed.consts, args, _everything, _rule(marks))
        return [_value(v, marks) for v in out]

    return guarded(fn, evaluate, "transpose sinking")
