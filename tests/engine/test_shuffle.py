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


def _hash_keys(words: np.ndarray, epoch: int, n: int) -> np.ndarray:
    """The sort keys h(i) of the module's formula, in NumPy's uint32 arithmetic."""

    def m(x):
        x = np.uint32(x) if np.isscalar(x) else x.astype(np.uint32)
        x = x ^ (x >> np.uint32(16))
        x = x * np.uint32(0x7FEB352D)
        x = x ^ (x >> np.uint32(15))
        x = x * np.uint32(0x846CA68B)
        return x ^ (x >> np.uint32(16))

    with np.errstate(over="ignore"):
        s = m(m(np.uint32(words[0]) ^ m(np.uint32(epoch))) ^ np.uint32(words[1]))
        i = np.arange(n, dtype=np.uint32)
        return m(m(i ^ s) + s)


@pytest.mark.parametrize("n, epoch", [(1, 0), (1438, 3), (1438, 2**31 - 1), (100_000, 17)])
def test_the_order_is_the_argsort_of_the_hash_keys(n, epoch):
    """The engine sorts the keys alone and inverts the hash; that must be exactly the argsort
    of the documented keys (so no order changed when the faster form replaced the argsort)."""
    words = np.asarray([2024, 11], np.uint32)
    np.testing.assert_array_equal(epoch_order(jnp.asarray(words), epoch, n), np.argsort(_hash_keys(words, epoch, n)))
