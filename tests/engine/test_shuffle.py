"""The epoch order (lrjax.engine.shuffle): a permutation, deterministic, and uniform enough."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from lrjax.engine.shuffle import epoch_order

EPOCHS = 4000
orders = jax.jit(jax.vmap(epoch_order, in_axes=(None, 0, None)), static_argnums=2)


@pytest.mark.parametrize("n", [1, 2, 7, 1438])
def test_every_epoch_is_a_permutation(n):
    drawn = np.asarray(orders(jnp.asarray([1, 2], jnp.uint32), jnp.arange(50), n))
    assert drawn.dtype == np.int32
    np.testing.assert_array_equal(np.sort(drawn, axis=1), np.broadcast_to(np.arange(n), drawn.shape))


def test_same_key_and_epoch_same_order_else_different():
    a, b = jnp.asarray([7, 9], jnp.uint32), jnp.asarray([7, 10], jnp.uint32)
    np.testing.assert_array_equal(epoch_order(a, 3, 100), epoch_order(a, 3, 100))
    assert not np.array_equal(epoch_order(a, 3, 100), epoch_order(a, 4, 100))
    assert not np.array_equal(epoch_order(a, 3, 100), epoch_order(b, 3, 100))


def test_positions_are_uniform_and_pairs_unbiased():
    n = 8
    drawn = np.asarray(orders(jnp.asarray([2024, 11], jnp.uint32), jnp.arange(EPOCHS), n))
    # counts[i, p]: how often example i lands at position p; Binomial(EPOCHS, 1/n) each,
    # mean 500, standard deviation 20.9. Five deviations: a fair shuffle fails with p < 1e-4.
    counts = np.zeros((n, n), int)
    for p in range(n):
        counts[:, p] = np.bincount(drawn[:, p], minlength=n)
    assert np.abs(counts - EPOCHS / n).max() < 5 * np.sqrt(EPOCHS / n * (1 - 1 / n))
    # Example 0 before example 1 in half the epochs (sd 31.6), and the orders of consecutive
    # epochs are unrelated (the position of example 0 repeats with probability 1/n).
    first = np.argmax(drawn == 0, axis=1) < np.argmax(drawn == 1, axis=1)
    assert abs(first.sum() - EPOCHS / 2) < 5 * np.sqrt(EPOCHS / 4)
    where0 = np.argmax(drawn == 0, axis=1)
    assert abs((where0[1:] == where0[:-1]).sum() - EPOCHS / n) < 5 * np.sqrt(EPOCHS / n)
