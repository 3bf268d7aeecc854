"""Member i of a sweep equals that configuration trained alone with a plain Optax loop."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax.schedules as S
from lrjax.engine import init_key
from tests.engine.conftest import run

STEPS = 25

OPTIMIZERS = {
    # Effective steps lr / (1 - momentum) stay <= 3: at lr 1.0 with momentum 0.5 the dynamics amplify
    # float32 summation-order differences to 1.5e-5 in 25 steps on some CPUs (measured here).
    "sgd_momentum": (
        lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"]),
        {"learning_rate": [0.05, 0.3, 0.5], "momentum": [0.0, 0.9, 0.5]},
    ),
    "adam": (
        lambda hp: optax.adam(hp["learning_rate"], b1=hp["b1"]),
        {"learning_rate": [1e-3, 1e-2, 0.1], "b1": [0.9, 0.8, 0.95]},
    ),
    "adamw": (
        lambda hp: optax.adamw(hp["learning_rate"], weight_decay=hp["weight_decay"]),
        {"learning_rate": [3e-3, 3e-2, 1e-2], "weight_decay": [0.0, 0.1, 1.0]},
    ),
    "schedule": (
        lambda hp: optax.adam(hp["learning_rate"]),
        {
            "learning_rate": jax.tree.map(
                lambda *x: np.asarray(x),
                *[
                    S.warmup_cosine_decay(0.0, peak_value=p, warmup_steps=5, total_steps=STEPS)
                    for p in (0.01, 0.05, 0.2)
                ],
            )
        },
    ),
}


def assert_close(a, b):
    """Relative error of a parameter array in norm: float32 summation order differs between a
    batched and a single matmul, so single entries near zero have no meaningful relative error."""
    a, b = np.asarray(a), np.asarray(b)
    assert np.linalg.norm(a - b) <= 1e-5 * np.linalg.norm(b), np.linalg.norm(a - b) / np.linalg.norm(b)


def train_alone(task, optimizer, hp, key):
    params = task.init(key)
    opt = optimizer(hp)
    state = opt.init(params)

    @jax.jit
    def step(params, state):
        grads = jax.grad(task.loss)(params, task.train_data)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state

    for _ in range(STEPS):
        params, state = step(params, state)
    return params


@pytest.mark.parametrize("name", sorted(OPTIMIZERS))
def test_member_equals_plain_optax_loop(digits, name, rewrites):
    optimizer, configs = OPTIMIZERS[name]
    result = run(digits, optimizer, configs, steps=STEPS, seed=3)
    key = init_key(3, 1, 0)
    for i in range(3):
        hp = {
            k: jax.tree.map(lambda x: np.asarray(x)[i], np.asarray(v) if isinstance(v, list) else v)
            for k, v in configs.items()
        }
        alone = train_alone(digits, optimizer, hp, key)
        member = jax.tree.map(lambda x: x[i], result.final_params)
        jax.tree.map(assert_close, member, alone)
    assert not result.diverged.any()


def test_seeds_differ_and_repeats_are_equal(digits, adam):
    result = run(digits, adam, {"learning_rate": [0.01, 0.01]}, steps=20, batch_size=32, seeds=2)
    loss = result.train_loss  # members: (config 0, seed 0), (0, 1), (1, 0), (1, 1)
    np.testing.assert_array_equal(loss[0], loss[2])
    np.testing.assert_array_equal(loss[1], loss[3])
    assert not np.allclose(loss[0], loss[1])
    assert result.configs["seed"].tolist() == [0, 1, 0, 1]


def test_members_sharing_a_seed_see_the_same_batches(digits, adam):
    # Common random numbers: at lr = 0 the loss before each step depends only on the batch.
    result = run(digits, adam, {"learning_rate": [0.0, 0.0, 0.0]}, steps=30, batch_size=64, seed=5)
    np.testing.assert_array_equal(result.train_loss[0], result.train_loss[2])
    assert np.unique(result.train_loss[0]).size > 20  # and the batches do change


def test_minibatch_epochs_cover_every_example_once(digits):
    from lrjax.engine.program import take_batch
    from lrjax.engine.shuffle import epoch_order

    n = digits.num_train
    words = jnp.asarray([12345, 678], jnp.uint32)
    tagged = jnp.arange(n)
    epochs = [epoch_order(words, e, n) for e in range(2)]
    seen = np.concatenate([np.asarray(take_batch(epochs[0], t, tagged, 100)) for t in range(n // 100)])
    assert len(np.unique(seen)) == len(seen) == (n // 100) * 100
    assert sorted(np.asarray(epochs[1])) == list(range(n)) and not np.array_equal(epochs[0], epochs[1])
