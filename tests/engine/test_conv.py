"""`lrjax.engine.conv`: convolutions as slices and a matmul equal XLA's (values and gradients,
any layout and rank), are used only where they can be, and a CNN member of a sweep still
equals plain Optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from jax import lax

import lrjax
from lrjax.engine.conv import has_convs, rewrite_convs
from lrjax.engine.dots import canonical_dots
from tests.engine.test_dots import _dots

CASES = [
    ((2, 8, 8, 3), (3, 3, 3, 4), (1, 1), "SAME", ("NHWC", "HWIO", "NHWC")),
    ((2, 3, 9, 7), (5, 3, 3, 2), (2, 1), "VALID", ("NCHW", "OIHW", "NCHW")),
    ((2, 10, 4), (3, 4, 6), (2,), [(1, 2)], ("NWC", "WIO", "NWC")),
    ((2, 6, 6, 6, 2), (3, 3, 3, 2, 3), (1, 2, 1), "SAME", ("NDHWC", "DHWIO", "NDHWC")),
    ((2, 11, 3), (2, 3, 4), (3,), [(2, 1)], ("NWC", "WIO", "NWC")),  # a stride phase no offset reaches
    ((1, 2, 9, 9), (3, 2, 4, 4), (3, 2), [(0, 3), (1, 0)], ("NCHW", "OIHW", "NCHW")),
]


@pytest.mark.parametrize("lhs, rhs, strides, padding, numbers", CASES)
def test_slices_and_a_matmul_equal_xlas_convolution_and_its_gradients(lhs, rhs, strides, padding, numbers):
    rng = np.random.default_rng(0)
    x = jnp.asarray(rng.standard_normal(lhs), jnp.float32)
    k = jnp.asarray(rng.standard_normal(rhs), jnp.float32)

    def f(x, k):
        return jnp.sum(jnp.tanh(lax.conv_general_dilated(x, k, strides, padding, dimension_numbers=numbers)) ** 2)

    g = rewrite_convs(f, x, k)
    assert g is not f
    (fv, fg), (gv, gg) = jax.value_and_grad(f, (0, 1))(x, k), jax.value_and_grad(g, (0, 1))(x, k)
    np.testing.assert_allclose(gv, fv, rtol=1e-5)
    for a, b in zip(gg, fg, strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-4)


def test_only_plain_convolutions_are_replaced():
    x, k = jnp.ones((1, 8, 8, 4)), jnp.ones((3, 3, 2, 4))
    nhwc = ("NHWC", "HWIO", "NHWC")
    grouped = lambda x, k: lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=nhwc, feature_group_count=2)
    dilated = lambda x, k: lax.conv_general_dilated(
        x[..., :2], k, (1, 1), "SAME", rhs_dilation=(2, 2), dimension_numbers=nhwc
    )
    dense = lambda x, k: x.reshape(1, -1) @ jnp.ones((256, 3))
    cropped = lambda x, k: lax.conv_general_dilated(x[..., :2], k, (1, 1), [(-1, 1), (1, 1)], dimension_numbers=nhwc)
    for fn in (grouped, dilated, dense, cropped):
        assert rewrite_convs(fn, x, k) is fn
    nested = jax.jit(lambda x, k: lax.conv_general_dilated(x[..., :2], k, (1, 1), "SAME", dimension_numbers=nhwc))
    assert has_convs(jax.make_jaxpr(nested)(x, k).jaxpr)
    np.testing.assert_allclose(rewrite_convs(nested, x, k)(x, k), nested(x, k), rtol=1e-6)


def test_a_cnn_member_of_a_sweep_equals_plain_optax(rewrites):
    """A user-written CNN calling lax.conv_general_dilated directly: each member of a sweep
    (whose engine rewrites the convolutions, or with ``LRJAX_REWRITES=0`` does not) follows
    plain Optax within float32 rounding."""
    (x, y), (xv, yv) = lrjax.datasets.load_digits()
    x, xv = x[:256, ..., None], xv[..., None]
    y = y[:256]

    def init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        return {
            "c1": jax.random.normal(k1, (3, 3, 1, 4)) * 0.3,
            "c2": jax.random.normal(k2, (3, 3, 4, 8)) * 0.2,
            "w": jax.random.normal(k3, (128, 10)) * 0.1,
        }

    def loss(p, batch):
        xb, yb = batch
        nhwc = ("NHWC", "HWIO", "NHWC")
        h = jax.nn.relu(lax.conv_general_dilated(xb, p["c1"], (1, 1), "SAME", dimension_numbers=nhwc))
        h = jax.nn.relu(lax.conv_general_dilated(h, p["c2"], (2, 2), "SAME", dimension_numbers=nhwc))
        return optax.softmax_cross_entropy_with_integer_labels(h.reshape(len(h), -1) @ p["w"], yb).mean()

    task = lrjax.Task(init, loss, (x, y), eval_data=(xv, yv), name="user_cnn")
    lrs = [0.05, 0.2]
    result = lrjax.sweep(
        task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": lrs}, steps=30, progress=False
    )
    for i, lr in enumerate(lrs):
        params = task.init(lrjax.engine.program.init_key(0, 1, 0))
        tx = optax.sgd(lr)
        state, losses = tx.init(params), []
        for _ in range(30):
            value, grads = jax.value_and_grad(loss)(params, (x, y))
            updates, state = tx.update(grads, state, params)
            params = optax.apply_updates(params, updates)
            losses.append(float(value))
        np.testing.assert_allclose(result.train_loss[i], losses, rtol=1e-5)


def test_the_kernel_gradient_of_a_convolution_of_shared_data_is_one_matmul_across_members():
    """A first layer reads the batch every member shares: its patches go to the matmul as one
    (examples·positions, k·C_in) matrix, so its kernel gradient is `lrjax.engine.dots`'
    shared-input matmul, patchesᵀ on the left and the result in (k·C_in, members, C_out) order."""
    rng = np.random.default_rng(2)
    x = jnp.asarray(rng.standard_normal((2, 8, 8, 3)), jnp.float32)
    kernels = jnp.asarray(rng.standard_normal((4, 3, 3, 3, 5)), jnp.float32)
    numbers = ("NHWC", "HWIO", "NHWC")
    f = lambda k, x: jnp.sum(jnp.tanh(lax.conv_general_dilated(x, k, (1, 1), "SAME", dimension_numbers=numbers)))
    grad = jax.vmap(jax.grad(rewrite_convs(f, kernels[0], x)), in_axes=(0, None))
    np.testing.assert_allclose(
        grad(kernels, x), jax.vmap(jax.grad(f), in_axes=(0, None))(kernels, x), rtol=1e-4, atol=1e-4
    )
    jaxpr = jax.make_jaxpr(canonical_dots(grad))(kernels, x).jaxpr
    shapes = [(e.invars[0].aval.shape, e.outvars[0].aval.shape) for e in _dots(jaxpr)]
    assert ((27, 128), (27, 4, 5)) in shapes
