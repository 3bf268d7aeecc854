"""`lrjax.engine.dots`: every matmul in the layout XLA:CPU's fast kernels take (the left
operand contracting its last dimension), in the jaxpr and in the compiled program, with the
values and gradients of ``lax.dot_general``; and `lrjax.engine.rewrite`, which applies it."""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from lrjax.engine.dots import COMPILE_OPTIONS, canonical_dot, canonical_dots
from lrjax.engine.rewrite import jaxprs_in_params, rewrite

# (lhs shape, rhs shape, ((lhs contracting, rhs contracting), (lhs batch, rhs batch)))
CASES = [
    ((4, 3), (3, 5), (((1,), (0,)), ((), ()))),  # already canonical
    ((6, 3), (6, 5), (((0,), (0,)), ((), ()))),  # xᵀ dy, a weight gradient: lhs transposed
    ((7, 9), (7, 2), (((0,), (0,)), ((), ()))),  # same, the left operand the larger: swapped
    ((5, 6, 3), (5, 6, 4), (((1,), (1,)), ((0,), (0,)))),  # batched weight gradient
    ((6, 5, 3), (4, 6, 5), (((0,), (1,)), ((1,), (2,)))),  # batch dims not leading
    ((2, 3, 4, 5), (3, 4, 6), (((1, 2), (0, 1)), ((), ()))),  # two contracting dims
    ((3, 4, 2), (4, 3, 5), (((1, 0), (0, 1)), ((), ()))),  # contracting pairs out of order
    ((8, 3), (3,), (((1,), (0,)), ((), ()))),  # matrix-vector: left as given
]


def _equations(jaxpr):
    """Every equation of ``jaxpr`` and of the jaxprs nested in it."""
    for eqn in jaxpr.eqns:
        yield eqn
        for sub in jaxprs_in_params(eqn.params):
            yield from _equations(getattr(sub, "jaxpr", sub))


def _dots(jaxpr):
    return (eqn for eqn in _equations(jaxpr) if eqn.primitive is lax.dot_general_p)


def _canonical(eqn) -> bool:
    """Left operand [batch…, free…, contracting…]: batch dims leading, contracting trailing."""
    (lc, _), (lb, _) = eqn.params["dimension_numbers"]
    rank = eqn.invars[0].aval.ndim
    return list(lb) == list(range(len(lb))) and sorted(lc) == list(range(rank - len(lc), rank))


@pytest.mark.parametrize("lhs, rhs, numbers", CASES)
def test_canonical_dot_equals_dot_general_and_contracts_the_left_operands_last_axis(lhs, rhs, numbers):
    rng = np.random.default_rng(0)
    a = jnp.asarray(rng.standard_normal(lhs), jnp.float32)
    b = jnp.asarray(rng.standard_normal(rhs), jnp.float32)
    np.testing.assert_allclose(canonical_dot(a, b, numbers), lax.dot_general(a, b, numbers), rtol=1e-5, atol=1e-5)
    (eqn,) = _dots(jax.make_jaxpr(lambda a, b: canonical_dot(a, b, numbers))(a, b).jaxpr)
    assert _canonical(eqn) or len(rhs) == 1


def test_integer_dots_are_left_as_given():
    a, b = jnp.arange(6).reshape(3, 2), jnp.arange(12).reshape(3, 4)
    numbers = (((0,), (0,)), ((), ()))
    (eqn,) = _dots(jax.make_jaxpr(lambda a, b: canonical_dot(a, b, numbers))(a, b).jaxpr)
    assert eqn.params["dimension_numbers"] == numbers
    np.testing.assert_array_equal(canonical_dot(a, b, numbers), a.T @ b)


def _mlp_step(params, x, y):
    def loss(p):
        h = jax.nn.relu(x @ p["w1"] + p["b1"])
        logits = h @ p["w2"]
        return -jnp.mean(jnp.take_along_axis(jax.nn.log_softmax(logits), y[:, None], axis=1))

    return jax.value_and_grad(loss)(params)


def test_a_vmapped_training_step_rewritten_has_the_same_loss_and_gradients(members):
    step = jax.vmap(_mlp_step, in_axes=(0, None, None))
    plain, rewritten = step(*members), canonical_dots(step)(*members)
    for got, want in zip(jax.tree.leaves(rewritten), jax.tree.leaves(plain), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    assert not all(_canonical(e) for e in _dots(jax.make_jaxpr(step)(*members).jaxpr))  # what it fixes
    assert all(_canonical(e) for e in _dots(jax.make_jaxpr(canonical_dots(step))(*members).jaxpr))


def test_the_weight_gradient_of_a_shared_input_comes_out_in_the_stored_kernel_order(members):
    """``dyᵀ·x`` with ``x`` read by every member is computed as ``xᵀ·dy``: (in, members, out),
    the order the engine stores kernels in, so no transpose stands between it and the update."""
    step = jax.vmap(_mlp_step, in_axes=(0, None, None))
    jaxpr = jax.make_jaxpr(canonical_dots(step))(*members).jaxpr
    shapes = [(e.invars[0].aval.shape, e.outvars[0].aval.shape) for e in _dots(jaxpr)]
    assert ((12, 32), (12, 4, 16)) in shapes  # xᵀ (in, examples) on the left
    assert not any(out == (4, 16, 12) for _, out in shapes)


def _compiled_dots(text: str) -> list[tuple[int, list[int]]]:
    """(rank of the left operand, its contracting dims) of every dot in optimized HLO text."""
    shapes = dict(re.findall(r"(%[\w.\-]+) = \w+\[([\d,]*)\]", text))
    found = []
    for lhs, dims in re.findall(r" dot\((%[\w.\-]+), [^)]*\).*?lhs_contracting_dims=\{([\d,]*)\}", text):
        found.append((len(shapes[lhs].split(",")) if shapes[lhs] else 0, [int(d) for d in dims.split(",")]))
    return found


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the layout is XLA:CPU's")
def test_the_compiled_step_keeps_every_dot_canonical(members):
    """Compiled with transpose folding off, XLA keeps the layouts chosen: every dot of the
    forward and backward pass contracts its left operand's last dimension. Without the rewrite
    (or with XLA's transpose folding) some gradient dot contracts its left operand's batch axis."""
    step = jax.vmap(_mlp_step, in_axes=(0, None, None))

    def dots(fn, options):
        return _compiled_dots(jax.jit(fn).lower(*members).compile(compiler_options=options).as_text())

    rewritten = dots(canonical_dots(step), COMPILE_OPTIONS)
    assert len(rewritten) >= 4
    assert all(dims == [rank - 1] for rank, dims in rewritten)
    assert any(dims != [rank - 1] for rank, dims in dots(step, {}))


def test_rewrite_offers_wanted_equations_inside_nested_jits_and_binds_the_rest():
    seen = []

    def rule():
        def offer(eqn, invals):
            seen.append(eqn.primitive.name)
            return [jnp.cos(invals[0])] if eqn.primitive is lax.sin_p else None

        return offer

    fn = jax.jit(lambda x: jnp.sin(x) * 2 + jnp.exp(x))
    wanted = lambda eqn: eqn.primitive in (lax.sin_p, lax.exp_p)
    out = rewrite(lambda x: fn(x) + 1, wanted, rule, "sin as cos")(jnp.float32(0.0))
    assert float(out) == pytest.approx(2 * 1 + 1 + 1)  # cos(0)·2 + exp(0) + 1
    assert sorted(seen) == ["exp", "sin"]
