"""Flax models with dropout and BatchNorm, linen and NNX: a sweep's member equals the plain
Flax + Optax loop a user writes with the same keys, evaluation uses the running statistics,
and what an adapter cannot carry raises before anything compiles."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from flax import nnx

import lrjax
from lrjax.engine import init_key, step_key
from tests.plain import BATCH, LR, STEPS, batches, close, cross_entropy, sgd, sweep, take


class LinenNet(nn.Module):
    @nn.compact
    def __call__(self, x, train: bool = False):
        x = nn.Dense(24, use_bias=False)(x.reshape(x.shape[0], -1))
        x = nn.BatchNorm(use_running_average=not train, momentum=0.8)(x)
        x = nn.Dropout(0.3, deterministic=not train)(nn.relu(x))
        return nn.Dense(10)(x)


class NNXNet(nnx.Module):
    def __init__(self, rngs):
        self.hidden = nnx.Linear(64, 24, use_bias=False, rngs=rngs)
        self.norm = nnx.BatchNorm(24, momentum=0.8, rngs=rngs)
        self.drop = nnx.Dropout(0.3, rngs=rngs)
        self.out = nnx.Linear(24, 10, rngs=rngs)

    def __call__(self, x):
        x = self.norm(self.hidden(x.reshape(x.shape[0], -1)))
        return self.out(self.drop(nnx.relu(x)))


@pytest.fixture(scope="module")
def digits():
    return lrjax.datasets.load_digits()


@jax.jit
def _linen_step(params, batch_stats, opt, batch, key, lr):
    def loss(params):
        logits, updates = LinenNet().apply(
            {"params": params, "batch_stats": batch_stats},
            batch[0],
            train=True,
            mutable=["batch_stats"],
            rngs={"dropout": key},
        )
        return cross_entropy(logits, batch[1]), updates["batch_stats"]

    (_, batch_stats), grads = jax.value_and_grad(loss, has_aux=True)(params)
    updates, opt = sgd({"learning_rate": lr}).update(grads, opt, params)
    return optax.apply_updates(params, updates), batch_stats, opt


@nnx.jit
def _nnx_step(model, opt, x, y, key, lr):
    nnx.reseed(model, dropout=key)
    grads = nnx.grad(lambda m: cross_entropy(m(x), y))(model)  # updates the BatchStats
    params = nnx.state(model, nnx.Param)
    updates, opt = sgd({"learning_rate": lr}).update(grads, opt, params)
    nnx.update(model, optax.apply_updates(params, updates))
    return opt


def test_a_linen_member_equals_the_plain_flax_loop_with_mutable_batch_stats(digits):
    train, held_out = digits
    task = lrjax.Task.from_linen(
        LinenNet(),
        train,
        eval_data=held_out,
        rngs=("dropout",),
        train_kwargs={"train": True},
        eval_kwargs={"train": False},
    )
    assert task.rng and task.stateful
    pop, metrics = sweep(task)
    module = LinenNet()
    for member, lr in enumerate(LR):
        variables = module.init(init_key(0, 1, 0), train[0][:1], train=False)
        params, batch_stats = variables["params"], variables["batch_stats"]
        opt = sgd({"learning_rate": lr}).init(params)
        for t, batch in enumerate(batches(train, BATCH, STEPS)):
            params, batch_stats, opt = _linen_step(params, batch_stats, opt, batch, step_key(0, 1, 0, t), lr)
        jax.tree.map(close, take(pop.params, member), params)
        jax.tree.map(close, take(pop.model_state, member)["batch_stats"], batch_stats)
        logits = module.apply({"params": params, "batch_stats": batch_stats}, held_out[0], train=False)
        close(metrics["loss"][member], cross_entropy(logits, held_out[1]))
        close(metrics["accuracy"][member], jnp.mean(jnp.argmax(logits, -1) == held_out[1]))
    assert np.abs(pop.model_state["batch_stats"]["BatchNorm_0"]["mean"]).min() > 0  # the statistics moved


def test_an_nnx_member_equals_the_plain_nnx_loop_and_evaluates_in_eval_mode(digits):
    train, held_out = digits
    task = lrjax.Task.from_nnx(NNXNet, train, eval_data=held_out, rngs=("dropout",))
    assert task.rng and task.stateful
    pop, metrics = sweep(task)
    for member, lr in enumerate(LR):
        model = NNXNet(nnx.Rngs(params=init_key(0, 1, 0), dropout=0))
        model.train()
        opt = sgd({"learning_rate": lr}).init(nnx.state(model, nnx.Param))
        for t, (x, y) in enumerate(batches(train, BATCH, STEPS)):
            opt = _nnx_step(model, opt, x, y, step_key(0, 1, 0, t), lr)
        jax.tree.map(close, take(pop.params, member), nnx.state(model, nnx.Param))
        jax.tree.map(close, take(pop.model_state, member), nnx.state(model, nnx.BatchStat))
        model.eval()
        logits = model(held_out[0])
        close(metrics["loss"][member], cross_entropy(logits, held_out[1]))
        close(metrics["accuracy"][member], jnp.mean(jnp.argmax(logits, -1) == held_out[1]))


class RegressionNet(nn.Module):
    @nn.compact
    def __call__(self, x):
        return nn.Dense(1)(x)


def _linen(module, data, **kwargs):
    return lambda: lrjax.Task.from_linen(module, data, **kwargs)


class FixedBatchNorm(NNXNet):
    def __call__(self, x):  # evaluation statistics in training too: train() cannot switch it
        x = self.norm(self.hidden(x.reshape(x.shape[0], -1)), use_running_average=True)
        return self.out(self.drop(nnx.relu(x)))


class BatchStatisticsAlways(NNXNet):
    def __call__(self, x):  # batch statistics in evaluation too: eval() cannot switch it
        x = self.norm(self.hidden(x.reshape(x.shape[0], -1)), use_running_average=False)
        return self.out(self.drop(nnx.relu(x)))


SWITCH = dict(rngs=("dropout",), train_kwargs={"train": True}, eval_kwargs={"train": False})


@pytest.mark.parametrize(
    ("build", "message"),
    [
        (
            lambda d: _linen(LinenNet(), d[0], rngs=("dropout",)),
            r"training never updates \['batch_stats/BatchNorm_0'\]",
        ),
        (
            lambda d: _linen(
                LinenNet(), d[0], rngs=("dropout",), train_kwargs={"train": True}, eval_kwargs={"train": True}
            ),
            r"evaluation updates \['batch_stats'\]: the module runs in training mode",
        ),
        (
            lambda d: _linen(LinenNet(), d[0], train_kwargs={"train": True}, eval_kwargs={"train": False}),
            r"name the stream in rngs, e.g. rngs=\('dropout',\)",
        ),
        (lambda d: _linen(LinenNet(), d[0], mutable=["cache"], **SWITCH), "mutable names 'cache'"),
        (lambda d: lambda: lrjax.Task.from_nnx(NNXNet, d[0]), r"name it in rngs, e.g. rngs=\('dropout',\)"),
        (lambda d: lambda: lrjax.Task.from_nnx(FixedBatchNorm, d[0], rngs=("dropout",)), r"never updates \['norm'\]"),
        (
            lambda d: lambda: lrjax.Task.from_nnx(BatchStatisticsAlways, d[0], rngs=("dropout",)),
            r"evaluation never reads \['norm'\]",
        ),
        (
            lambda d: _linen(LinenNet(), (d[0][0], d[0][1][:, None]), **SWITCH),
            r"train_data\[1\] has shape \(1438, 1\), but the model's outputs have shape \(1438, 10\).*y.reshape\(-1\)",
        ),
        (
            lambda d: _linen(LinenNet(), d[0], eval_data=(d[1][0], d[1][1][:, None]), **SWITCH),
            r"eval_data\[1\] has shape \(359, 1\)",
        ),
        (
            lambda d: _linen(RegressionNet(), (d[0][0][:, 0], d[0][0][:, 0, 0]), loss="mse"),
            r"train_data\[1\] has shape \(1438,\), but the model's outputs have shape \(1438, 1\).*\(1438, 1\)",
        ),
        (
            lambda d: (
                lambda: lrjax.Task.from_nnx(
                    lambda rngs: nnx.Linear(8, 2, rngs=rngs), (d[0][0][:, 0], d[0][0][:, 0, :3]), loss="mse"
                )
            ),
            r"model's outputs have shape \(1438, 2\).*one value per output",
        ),
    ],
)
def test_what_an_adapter_cannot_carry_raises_naming_it(digits, build, message):
    with pytest.raises(ValueError, match=message):
        build(digits)()


def test_targets_that_fit_are_taken_as_they_are(digits):
    (x, _), _ = digits
    task = lrjax.Task.from_linen(RegressionNet(), (x[:, 0], x[:, 0, :1]), loss="mse")
    assert not task.rng and not task.stateful
