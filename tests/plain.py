"""The plain training loops the engine is compared with: the batches and keys a population's
member sees, in the order it sees them, for a loop written as a user of the model's library
writes it."""

from collections.abc import Iterator

import jax
import jax.numpy as jnp

from lrjax.engine.program import order_words, seed_keys
from lrjax.engine.shuffle import epoch_order


def batches(data, batch_size: int, steps: int, *, seed: int = 0, seeds: int = 1, index: int = 0) -> Iterator:
    """The batches of seed ``index`` of a population with ``seed`` and ``seeds``: epochs drawn
    by `lrjax.engine.shuffle.epoch_order`, each cut into whole batches."""
    n = jax.tree.leaves(data)[0].shape[0]
    per_epoch = n // batch_size
    words = order_words(seed_keys(seed, seeds)[index])
    for t in range(steps):
        order = epoch_order(words, t // per_epoch, n)
        idx = order[(t % per_epoch) * batch_size : (t % per_epoch + 1) * batch_size]
        yield jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)
