"""The built-in supervised losses against closed forms and Optax."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax._supervised import cross_entropy, mse


def test_cross_entropy_closed_form_and_gradient():
    logits = jnp.asarray([[0.0, np.log(3.0)], [0.0, np.log(3.0)]])
    labels = jnp.asarray([1, 0])
    # softmax = (1/4, 3/4): -log(3/4) and -log(1/4), averaged over the batch.
    np.testing.assert_allclose(cross_entropy(logits, labels), (np.log(4 / 3) + np.log(4.0)) / 2, rtol=1e-6)
    # d/dlogits = (softmax - one_hot) / batch
    expected = (np.asarray([[0.25, 0.75], [0.25, 0.75]]) - np.eye(2)[[1, 0]]) / 2
    np.testing.assert_allclose(jax.grad(cross_entropy)(logits, labels), expected, rtol=1e-6, atol=1e-7)


def test_cross_entropy_equals_optax_integer_labels():
    logits = jax.random.normal(jax.random.key(0), (32, 10)) * 3
    labels = jax.random.randint(jax.random.key(1), (32,), 0, 10)
    reference = jnp.mean(optax.softmax_cross_entropy_with_integer_labels(logits, labels))
    np.testing.assert_allclose(cross_entropy(logits, labels), reference, rtol=1e-6)


def test_mse_closed_form():
    np.testing.assert_allclose(mse(jnp.asarray([1.0, 2.0, 4.0]), jnp.asarray([1.0, 0.0, 1.0])), (0 + 4 + 9) / 3)
