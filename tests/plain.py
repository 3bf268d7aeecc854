"""The plain training loops the engine is compared with: the batches and keys a population's
member sees, in the order it sees them, for a loop written as a user of the model's library
writes it."""

from collections.abc import Iterator

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
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


STEPS, BATCH, LR = 12, 32, (0.02, 0.1)  # the adapters' comparisons: members' learning rates


def sgd(hp):
    return optax.sgd(hp["learning_rate"], momentum=0.9)


def cross_entropy(logits, labels):
    return optax.softmax_cross_entropy_with_integer_labels(logits, labels).mean()


def close(a, b):
    """Equal within 1e-5 in norm (float32 summation order differs between a member of a sweep
    and a loop of its own)."""
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    assert np.linalg.norm(a - b) <= 1e-5 * max(np.linalg.norm(b), 1e-6), np.linalg.norm(a - b)


def take(tree, i):
    """Member ``i`` of a tree with a leading member axis."""
    return jax.tree.map(lambda x: x[i], tree)


def sweep(task):
    """``STEPS`` of members with learning rates ``LR`` on batches of ``BATCH``, then an evaluation."""
    pop = lrjax.Population(task, sgd, {"learning_rate": list(LR)}, batch_size=BATCH)
    pop.advance(STEPS)
    return pop, pop.evaluate()
