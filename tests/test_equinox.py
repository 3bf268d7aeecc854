"""Equinox models, with and without ``equinox.nn.State``: a sweep's member equals the plain
``equinox.filter_value_and_grad`` loop a user writes with the same keys."""

import equinox as eqx
import jax
import jax.numpy as jnp
import pytest

import lrjax
from lrjax.engine import init_key, step_key
from tests.plain import BATCH, LR, STEPS, batches, close, cross_entropy, sgd, sweep, take


class Net(eqx.Module):
    hidden: eqx.nn.Linear
    norm: eqx.nn.BatchNorm
    drop: eqx.nn.Dropout
    out: eqx.nn.Linear

    def __init__(self, key):
        k1, k2 = jax.random.split(key)
        self.hidden = eqx.nn.Linear(64, 24, use_bias=False, key=k1)
        self.norm = eqx.nn.BatchNorm(24, axis_name="batch", momentum=0.8, mode="ema")
        self.drop = eqx.nn.Dropout(0.3)
        self.out = eqx.nn.Linear(24, 10, key=k2)

    def __call__(self, x, state, *, key=None):
        h, state = self.norm(self.hidden(x.reshape(-1)), state)
        return self.out(self.drop(jax.nn.relu(h), key=key)), state


def mlp(key):
    return eqx.nn.Sequential([eqx.nn.Lambda(lambda x: x.reshape(-1)), eqx.nn.MLP(64, 10, 16, 1, key=key)])


@pytest.fixture(scope="module")
def digits():
    return lrjax.datasets.load_digits()


@eqx.filter_jit
def _step(model, state, opt, x, y, key, lr):
    def loss(model, state):
        if state is None:
            return cross_entropy(jax.vmap(model)(x), y), None
        keys = jax.random.split(key, x.shape[0])
        call = lambda xi, s, k: model(xi, s, key=k)
        logits, state = jax.vmap(call, axis_name="batch", in_axes=(0, None, 0), out_axes=(0, None))(x, state, keys)
        return cross_entropy(logits, y), state

    (_, state), grads = eqx.filter_value_and_grad(loss, has_aux=True)(model, state)
    updates, opt = sgd({"learning_rate": lr}).update(grads, opt, eqx.filter(model, eqx.is_inexact_array))
    return eqx.apply_updates(model, updates), state, opt


def plain_loop(model, state, lr, train):
    """The loop an Equinox user writes; ``state`` None for a stateless model."""
    opt = sgd({"learning_rate": lr}).init(eqx.filter(model, eqx.is_inexact_array))
    for t, (x, y) in enumerate(batches(train, BATCH, STEPS)):
        model, state, opt = _step(model, state, opt, x, y, step_key(0, 1, 0, t), jnp.float32(lr))
    return model, state


def test_a_stateless_equinox_member_equals_a_plain_filter_grad_loop(digits):
    train, held_out = digits
    task = lrjax.Task.from_equinox(mlp, train, eval_data=held_out)
    assert not task.rng and not task.stateful
    pop, metrics = sweep(task)
    for member, lr in enumerate(LR):
        model, _ = plain_loop(mlp(init_key(0, 1, 0)), None, lr, train)
        jax.tree.map(close, take(pop.params, member), eqx.filter(model, eqx.is_inexact_array))
        close(metrics["loss"][member], cross_entropy(jax.vmap(model)(held_out[0]), held_out[1]))


def test_an_equinox_member_with_batchnorm_state_and_dropout_equals_the_plain_loop(digits):
    train, held_out = digits
    make = lambda key: eqx.nn.make_with_state(Net)(key)
    task = lrjax.Task.from_equinox(make, train, eval_data=held_out, rng=True)
    assert task.rng and task.stateful
    pop, metrics = sweep(task)
    for member, lr in enumerate(LR):
        model, state = plain_loop(*make(init_key(0, 1, 0)), lr, train)
        jax.tree.map(close, take(pop.params, member), eqx.filter(model, eqx.is_inexact_array))
        jax.tree.map(close, take(pop.model_state, member), state)
        inference = eqx.nn.inference_mode(model)
        logits = jax.vmap(inference, axis_name="batch", in_axes=(0, None), out_axes=(0, None))(held_out[0], state)[0]
        close(metrics["loss"][member], cross_entropy(logits, held_out[1]))
        close(metrics["accuracy"][member], jnp.mean(jnp.argmax(logits, -1) == held_out[1]))


class Counted(eqx.Module):
    linear: eqx.nn.Linear
    calls: jax.Array

    def __init__(self, key):
        self.linear = eqx.nn.Linear(64, 10, key=key)
        self.calls = jnp.zeros((), jnp.int32)

    def __call__(self, x):
        return self.linear(x.reshape(-1))


def test_what_the_equinox_adapter_cannot_carry_raises(digits):
    train, _ = digits
    with pytest.raises(ValueError, match=r"model\.calls is a int32 array.*equinox.field\(static=True\)"):
        lrjax.Task.from_equinox(Counted, train)
    with pytest.raises(ValueError, match=r"train_data\[1\] has shape \(1438, 1\)"):
        lrjax.Task.from_equinox(mlp, (train[0], train[1][:, None]))
    with pytest.raises(TypeError, match=r"must return an equinox\.Module"):
        lrjax.Task.from_equinox(lambda key: jnp.zeros(3), train)
    # The adapters share their keywords as ``**options: Unpack[SupervisedOptions]``: a misspelled
    # one is the TypeError Python raises for an unknown keyword, not ignored.
    with pytest.raises(TypeError, match=r"^Task\.from_equinox\(\) got an unexpected keyword argument 'eval_date'$"):
        lrjax.Task.from_equinox(mlp, train, eval_date=digits[1])
