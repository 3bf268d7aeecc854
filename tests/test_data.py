"""Data beyond one in-memory batch: evaluation in batches equals the whole-set evaluation."""

import flax.linen as nn
import numpy as np
import optax
import pytest

import lrjax

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
