"""Data beyond one in-memory batch: evaluation in batches equals the whole-set evaluation, and
on-device augmentation equals a plain loop that augments each batch with its seed's key."""

import dataclasses

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax.engine import augment_key, count_compiles, init_key
from tests import plain

TRAIN, HELD_OUT = lrjax.datasets.load_digits()  # 359 held-out examples: 5 batches of 64 and one of 39


class Net(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool):
        x = nn.Dense(16)(x.reshape(x.shape[0], -1))
        x = nn.BatchNorm(use_running_average=not train)(x)
        return nn.Dense(10)(nn.relu(x))


def linen(eval_batch_size=None):
    switch = dict(train_kwargs={"train": True}, eval_kwargs={"train": False})
    return lrjax.Task.from_linen(Net(), TRAIN, eval_data=HELD_OUT, eval_batch_size=eval_batch_size, **switch)


@pytest.mark.parametrize("batch_size", [64, 1, 359, 1000])
def test_evaluation_in_batches_equals_the_whole_set(batch_size):
    adam = lambda hp: optax.adam(hp["learning_rate"])
    configs = {"learning_rate": [1e-3, 1e-2]}
    kw = dict(steps=40, batch_size=32, seeds=2, eval_every=20, progress=False)
    whole = lrjax.sweep(linen(), adam, configs, **kw)
    batched = lrjax.sweep(linen(batch_size), adam, configs, **kw)
    assert sorted(batched.eval_metrics) == ["accuracy", "loss"]
    for name, values in whole.eval_metrics.items():  # running statistics read in every batch
        np.testing.assert_allclose(batched.eval_metrics[name], values, rtol=1e-6, atol=1e-6)
    np.testing.assert_array_equal(batched.train_loss, whole.train_loss)  # training is untouched


def test_a_batched_evaluation_weights_the_partial_last_batch_by_its_size():
    # The mean of x over 10 examples in batches of 4, 4 and 2: a plain average of the three
    # batch means would give (1.5 + 5.5 + 8.5) / 3 = 5.1667, not 4.5.
    x = np.arange(10.0, dtype=np.float32)[:, None]
    task = lrjax.Task(
        init=lambda key: np.zeros(1, np.float32),
        loss=lambda w, batch: ((batch - w) ** 2).mean(),
        train_data=x,
        metrics=lambda w, data: {"mean": data.mean()},
        eval_batch_size=4,
    )
    pop = lrjax.Population(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.1]})
    metrics = pop.evaluate()
    assert metrics["mean"].tolist() == [4.5] and metrics["loss"][0] == pytest.approx(np.mean(x**2), rel=1e-6)


def test_an_eval_batch_size_that_is_not_a_positive_integer_is_refused():
    with pytest.raises(ValueError, match="eval_batch_size must be >= 1, got 0"):
        linen(0)


def shift(key, batch):
    """An on-device augmentation: each image shifted by one random pixel offset, plus noise."""
    images, labels = batch
    dx, dy = jax.random.randint(key, (2,), -1, 2)
    noise = 0.05 * jax.random.normal(jax.random.fold_in(key, 1), images.shape)
    return jnp.roll(images, (dx, dy), axis=(1, 2)) + noise, labels


def test_augmented_training_equals_a_plain_loop_that_augments_each_batch_with_its_seeds_key():
    task = dataclasses.replace(lrjax.datasets.digits_mlp(hidden=(16,)), augment=shift)
    pop = lrjax.Population(task, plain.sgd, {"learning_rate": list(plain.LR)}, batch_size=plain.BATCH, seeds=2)
    losses = pop.advance(plain.STEPS)
    for m, (lr, index) in enumerate([(lr, s) for lr in plain.LR for s in range(2)]):
        params = task.init(init_key(0, 2, index))
        opt = plain.sgd({"learning_rate": lr})
        state = opt.init(params)
        for t, batch in enumerate(plain.batches(task.train_data, plain.BATCH, plain.STEPS, seeds=2, index=index)):
            loss, grads = jax.value_and_grad(task.loss)(params, shift(augment_key(0, 2, index, t), batch))
            plain.close(loss, losses[m, t])
            updates, state = opt.update(grads, state, params)
            params = optax.apply_updates(params, updates)
        jax.tree.map(plain.close, params, plain.take(pop.params, m))
    # Members sharing a seed saw the same augmented batches: equal first losses, as without augment.
    np.testing.assert_array_equal(losses[0, 0], losses[2, 0])
    assert losses[0, 0] != losses[1, 0]


def test_augmenting_across_calls_draws_what_one_call_draws_and_evaluation_is_not_augmented():
    task = dataclasses.replace(lrjax.datasets.digits_mlp(hidden=(16,)), augment=shift)
    plain_task = lrjax.datasets.digits_mlp(hidden=(16,))
    kw = dict(batch_size=32, seeds=2)
    once, twice = (lrjax.Population(task, plain.sgd, {"learning_rate": [0.1]}, **kw) for _ in range(2))
    whole = once.advance(30)
    split = np.concatenate([twice.advance(13), twice.advance(17)], axis=1)
    np.testing.assert_array_equal(split, whole)
    same_params = lrjax.Population(plain_task, plain.sgd, {"learning_rate": [0.1]}, **kw)
    np.testing.assert_array_equal(
        same_params.evaluate()["loss"],
        lrjax.Population(task, plain.sgd, {"learning_rate": [0.1]}, **kw).evaluate()["loss"],
    )


@pytest.mark.parametrize(
    "augment, message",
    [
        (
            lambda key, b: (b[0][:, :6, :6], b[1]),
            r"augment must keep each array's shape and dtype: train_data\[0\] float32\[32, 8, 8\] became float32\[32, 6, 6\]",
        ),
        (lambda key, b: (b[0], b[1].astype(jnp.float32)), r"train_data\[1\] int32\[32\] became float32\[32\]"),
        (lambda key, b: b[0], r"augment must return a batch of train_data's structure"),
        (lambda key, b: (b[0] @ jnp.ones(3), b[1]), r"task.augment fails on a batch of train_data: "),
    ],
)
def test_an_augment_that_changes_the_batch_is_refused_before_anything_compiles(augment, message):
    task = dataclasses.replace(lrjax.datasets.digits_mlp(hidden=(16,)), augment=augment)
    with count_compiles() as compiles, pytest.raises(ValueError, match=message):
        lrjax.sweep(task, plain.sgd, {"learning_rate": [0.1]}, steps=5, batch_size=32, progress=False)
    assert compiles.count == 0
