"""`lrjax.engine.sink`: a vmapped optimizer update on kernels stored (in, members, out) runs in
that order, with no transpose of a kernel left; reductions, squeezes and unit axes of pending
transposes keep their values; a dot's transposed result stays a canonical dot when compiled."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

from lrjax.engine.dots import COMPILE_OPTIONS, canonical_dots
from lrjax.engine.sink import sink_transposes
from tests.engine.test_dots import _compiled_dots, _equations, _mlp_step

IN, MEMBERS, OUT = 12, 4, 16


def _update(w, m, g, lr, active):
    """One member's SGD-momentum step, frozen unless active and finite (the engine's selects)."""
    m_new = 0.9 * m + g
    w_new = w - lr * m_new
    applied = active & jnp.isfinite(jnp.sum(w_new))
    return jnp.where(applied, w_new, w), jnp.where(active, m_new, m)


@pytest.fixture(scope="module")
def update_args():
    rng = np.random.default_rng(0)
    w, m, g = (jnp.asarray(rng.standard_normal((IN, MEMBERS, OUT)), jnp.float32) for _ in range(3))
    lr = jnp.asarray([0.1, 0.2, 0.3, 0.4], jnp.float32)
    active = jnp.asarray([True, False, True, True])
    return w, m, g, lr, active


def _transposed_sizes(fn, *args) -> list[int]:
    """Sizes of the float arrays ``fn`` transposes (a transposed broadcast of a per-member flag
    is a broadcast to XLA)."""
    jaxpr = jax.make_jaxpr(fn)(*args).jaxpr
    return [
        e.invars[0].aval.size
        for e in _equations(jaxpr)
        if e.primitive is lax.transpose_p and e.invars[0].aval.dtype == jnp.float32
    ]


def test_a_vmapped_update_runs_in_the_stored_order_with_the_same_values(update_args):
    step = jax.vmap(_update, in_axes=(1, 1, 1, 0, 0), out_axes=(1, 1))
    sunk = sink_transposes(step)
    for got, want in zip(sunk(*update_args), step(*update_args), strict=True):
        np.testing.assert_array_equal(got, want)  # elementwise: the same operations on each element
    kernel = IN * MEMBERS * OUT
    assert max(_transposed_sizes(step, *update_args)) == kernel  # vmap puts the members first
    assert all(size < kernel for size in _transposed_sizes(sunk, *update_args))


@pytest.mark.parametrize(
    "fn",
    [
        lambda x: jnp.sum(jnp.transpose(x, (2, 0, 1)) * 2.0, axis=1),
        lambda x: jnp.max(jnp.transpose(x, (1, 2, 0)) - 1.0, axis=(0, 2)),
        lambda x: jnp.transpose(jnp.transpose(x, (2, 0, 1))[..., None], (1, 0, 3, 2))[:, :, 0] + 1.0,
        lambda x: jnp.exp(jnp.transpose(x[:, :1], (1, 2, 0))).squeeze(0) * x[:, 0].T,
    ],
    ids=["sum", "max over two axes", "unit axis added and squeezed", "squeeze then a plain operand"],
)
def test_reductions_squeezes_and_unit_axes_of_pending_transposes_keep_their_values(fn):
    x = jnp.asarray(np.random.default_rng(1).standard_normal((3, 4, 5)), jnp.float32)
    np.testing.assert_allclose(sink_transposes(fn)(x), fn(x), rtol=1e-6)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the layout is XLA:CPU's")
def test_a_sunk_training_step_keeps_its_values_and_every_dot_canonical(members):
    """A vmapped MLP step on kernels stored (in, members, out), its gradients and its update:
    the values of the matmul rewrite alone, and every compiled dot still contracting its left
    operand's last axis."""
    stacked, x, y = members
    axes = {"w1": 1, "b1": 0, "w2": 1}
    params = {k: jnp.moveaxis(v, 0, axes[k]) for k, v in stacked.items()}

    def train(params, lr):
        loss, grads = jax.vmap(_mlp_step, in_axes=(axes, None, None), out_axes=(0, axes))(params, x, y)
        return loss, grads, jax.tree.map(lambda p, g: p - lr * g, params, grads)

    lr = jnp.float32(0.1)
    plain, sunk = canonical_dots(train), sink_transposes(canonical_dots(train))
    for got, want in zip(jax.tree.leaves(sunk(params, lr)), jax.tree.leaves(plain(params, lr)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)
    text = jax.jit(sunk).lower(params, lr).compile(compiler_options=COMPILE_OPTIONS).as_text()
    dots = _compiled_dots(text)
    assert len(dots) >= 4
    assert all(dims == [rank - 1] for rank, dims in dots)


@pytest.mark.skipif(jax.default_backend() != "cpu", reason="the layout is XLA:CPU's")
def test_the_transpose_of_a_swapped_dot_keeps_its_guard():
    """``xᵀ·dy`` with the left operand the larger is computed swapped, ``(dyᵀ·x)ᵀ``; XLA would
    fold a plain transpose of that result back into a dot contracting the batch axis."""
    rng = np.random.default_rng(2)
    a = jnp.asarray(rng.standard_normal((64, 72)), jnp.float32)
    b = jnp.asarray(rng.standard_normal((64, 16)), jnp.float32)
    f = lambda a, b: lax.dot_general(a, b, (((0,), (0,)), ((), ())))
    sunk = sink_transposes(canonical_dots(f))
    np.testing.assert_allclose(sunk(a, b), f(a, b), rtol=1e-5, atol=1e-4)
    text = jax.jit(sunk).lower(a, b).compile(compiler_options=COMPILE_OPTIONS).as_text()
    assert _compiled_dots(text) == [(2, [1])]


def test_a_dot_result_with_a_narrow_last_axis_is_computed_on_with_that_axis_swapped():
    """Ten logits per example: the softmax cross-entropy after the dot (and its gradient) runs
    on (members, classes, examples), so that XLA:CPU's loops vectorize along the examples."""
    rng = np.random.default_rng(3)
    h = jnp.asarray(rng.standard_normal((4, 32, 24)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((4, 24, 10)), jnp.float32)
    labels = jnp.asarray(rng.integers(0, 10, 32))

    def loss(h, w):
        logits = jnp.einsum("mbk,mko->mbo", h, w)
        return optax.softmax_cross_entropy_with_integer_labels(logits, jnp.broadcast_to(labels, (4, 32))).mean()

    f = jax.value_and_grad(loss, argnums=(0, 1))
    sunk = sink_transposes(f)
    for got, want in zip(jax.tree.leaves(sunk(h, w)), jax.tree.leaves(f(h, w)), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)

    def exp_shapes(fn):
        return [e.outvars[0].aval.shape for e in _equations(jax.make_jaxpr(fn)(h, w).jaxpr) if e.primitive is lax.exp_p]

    assert exp_shapes(f) == [(4, 32, 10)]
    assert exp_shapes(sunk) == [(4, 10, 32)]
