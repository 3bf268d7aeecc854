"""A task's random keys (``rng=True``: dropout) and model state (``stateful=True``: running
statistics, counters), written by hand: members equal a plain Optax loop with the same keys,
keys follow each member's seed and own step count, state moves with copy / replace / save."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax.engine import count_compiles, init_key, step_key
from tests.plain import batches, close, take

STEPS, BATCH = 20, 32
CONFIGS = {"learning_rate": [0.05, 0.2]}


def _init(key):
    k1, k2 = jax.random.split(key)
    params = {
        "w1": jax.random.normal(k1, (64, 32)) * 0.2,
        "w2": jax.random.normal(k2, (32, 10)) * 0.2,
    }
    return params, {"mean": jnp.zeros(32), "count": jnp.zeros((), jnp.int32)}


def _logits(params, h):
    return jax.nn.relu(h) @ params["w2"]


def _hidden(params, x):
    return x.reshape(x.shape[0], -1) @ params["w1"]


def _loss(params, state, batch, key):
    """Centre the hidden layer by its batch mean (a running mean is kept), drop half of it."""
    x, y = batch
    h = _hidden(params, x)
    mean = h.mean(0)
    keep = jax.random.bernoulli(key, 0.5, h.shape)
    logits = _logits(params, jnp.where(keep, (h - mean) / 0.5, 0.0))
    new = {"mean": 0.9 * state["mean"] + 0.1 * jax.lax.stop_gradient(mean), "count": state["count"] + 1}
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(), new


def _metrics(params, state, data):
    x, y = data
    logits = _logits(params, _hidden(params, x) - state["mean"])
    return {
        "loss": optax.softmax_cross_entropy_with_integer_labels(logits, y).mean(),
        "accuracy": jnp.mean(jnp.argmax(logits, -1) == y),
    }


@pytest.fixture(scope="module")
def task():
    train, held_out = lrjax.datasets.load_digits()
    return lrjax.Task(_init, _loss, train, held_out, _metrics, name="dropout", rng=True, stateful=True)


def sgd(hp):
    return optax.sgd(hp["learning_rate"], momentum=0.9)


def population(task, **kwargs):
    return lrjax.Population(task, sgd, CONFIGS, batch_size=BATCH, seeds=2, seed=3, **kwargs)


@jax.jit
def _plain_step(params, state, opt, batch, key, lr):
    (loss, state), grads = jax.value_and_grad(_loss, has_aux=True)(params, state, batch, key)
    updates, opt = sgd({"learning_rate": lr}).update(grads, opt, params)
    return optax.apply_updates(params, updates), state, opt, loss


def plain(task, hp, index, steps=STEPS):
    """The loop a user writes: the member's keys are `lrjax.engine.step_key`."""
    params, state = task.init(init_key(3, 2, index))
    opt = sgd(hp).init(params)
    losses = []
    for t, batch in enumerate(batches(task.train_data, BATCH, steps, seed=3, seeds=2, index=index)):
        params, state, opt, loss = _plain_step(params, state, opt, batch, step_key(3, 2, index, t), hp["learning_rate"])
        losses.append(loss)
    return params, state, np.asarray(losses)


def test_each_member_equals_a_plain_optax_loop_with_the_same_keys(task):
    pop = population(task)
    losses = pop.advance(STEPS)
    for member in range(pop.size):
        config, index = divmod(member, 2)
        params, state, plain_losses = plain(task, {"learning_rate": CONFIGS["learning_rate"][config]}, index)
        jax.tree.map(close, take(pop.params, member), params)
        jax.tree.map(close, take(pop.model_state, member), state)
        np.testing.assert_allclose(losses[member], plain_losses, rtol=1e-5)
    np.testing.assert_array_equal(pop.model_state["count"], STEPS)
    # Evaluation reads each member's running mean and draws no mask.
    metrics = pop.evaluate()
    for member in range(pop.size):
        own = _metrics(take(pop.params, member), take(pop.model_state, member), task.eval_data)
        np.testing.assert_allclose(metrics["loss"][member], own["loss"], rtol=1e-5)
    np.testing.assert_array_equal(pop.evaluate()["loss"], metrics["loss"])


def _coins(key):
    return jnp.mean(jax.random.bernoulli(key, 0.5, (64,)))


def _mask_task():
    """A loss that is the mean of 64 coin flips: its value shows which key a member drew."""
    data = (np.zeros((8, 1), np.float32),)
    loss = lambda params, batch, key: _coins(key) + 0 * params.sum()
    metrics = lambda params, data: {"loss": jnp.zeros(())}
    return lrjax.Task(lambda key: jnp.zeros(1), loss, data, metrics=metrics, name="masks", rng=True)


def test_members_sharing_a_seed_draw_the_same_keys_and_other_seeds_do_not():
    pop = lrjax.Population(
        _mask_task(), lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.1, 0.2]}, seeds=2
    )
    losses = pop.advance(10)  # members: (config 0, seed 0), (0, 1), (1, 0), (1, 1)
    np.testing.assert_array_equal(losses[0], losses[2])
    np.testing.assert_array_equal(losses[1], losses[3])
    assert not np.array_equal(losses[0], losses[1])
    assert np.unique(losses[0]).size > 3  # a new key every step
    np.testing.assert_array_equal(losses[1], [_coins(step_key(0, 2, 1, t)) for t in range(10)])


def test_replace_restarts_a_members_keys_and_a_paused_member_keeps_its_own():
    pop = lrjax.Population(_mask_task(), lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.1, 0.2]})
    first = pop.advance(6)
    pop.deactivate([1])
    pop.advance(3)
    pop.activate([1])
    pop.replace([0], {"learning_rate": [0.3]})
    later = pop.advance(6)
    np.testing.assert_array_equal(later[0], first[0])  # steps 0..5 again
    # Member 1, paused for 3 steps of the clock, goes on from its own step 6.
    np.testing.assert_array_equal(later[1], [_coins(step_key(0, 1, 0, t)) for t in range(6, 12)])
    np.testing.assert_array_equal(first[1], [_coins(step_key(0, 1, 0, t)) for t in range(6)])


def test_split_advances_and_a_restored_population_continue_bitwise(task, tmp_path):
    whole = population(task)
    whole.advance(2 * STEPS)
    split = population(task)
    split.advance(7)
    split.save(tmp_path / "ckpt")
    restored = lrjax.Population.restore(tmp_path / "ckpt", task, sgd)
    for pop in (split, restored):
        pop.advance(2 * STEPS - 7)
        jax.tree.map(np.testing.assert_array_equal, pop.params, whole.params)
        jax.tree.map(np.testing.assert_array_equal, pop.model_state, whole.model_state)
        np.testing.assert_array_equal(pop.result().train_loss, whole.result().train_loss)


def test_copy_moves_the_model_state_and_replace_resets_it(task):
    pop = population(task)
    pop.advance(5)
    pop.replace([2], {"learning_rate": [0.1]})
    after_replace = take(pop.model_state, 2)
    np.testing.assert_array_equal(after_replace["count"], 0)
    np.testing.assert_array_equal(after_replace["mean"], _init(init_key(3, 2, 0))[1]["mean"])
    pop.advance(3)
    pop.copy(0, 2)  # same seed (0): from here on the two are one member twice
    jax.tree.map(np.testing.assert_array_equal, take(pop.model_state, 0), take(pop.model_state, 2))
    losses = pop.advance(4)
    np.testing.assert_array_equal(losses[0], losses[2])
    np.testing.assert_array_equal(pop.model_state["count"][[0, 2]], 7)
    jax.tree.map(np.testing.assert_array_equal, take(pop.params, 0), take(pop.params, 2))


def test_the_result_keeps_each_members_model_state_and_saves_it(task, tmp_path):
    pop = population(task)
    pop.advance(4)
    pop.evaluate()
    result = pop.result()
    jax.tree.map(np.testing.assert_array_equal, result.final_model_state, pop.model_state)
    member = result.best()["members"][int(np.argmin(result.final("loss")[result.best()["members"]]))]
    jax.tree.map(np.testing.assert_array_equal, result.best_model_state(), take(pop.model_state, member))
    result.save(tmp_path / "result.npz")
    like = take(pop.model_state, 0)
    loaded = lrjax.SweepResult.load(tmp_path / "result.npz", model_state_like=like)
    jax.tree.map(np.testing.assert_array_equal, loaded.final_model_state, result.final_model_state)


def test_a_diverged_member_keeps_its_last_finite_state(task):
    pop = lrjax.Population(task, sgd, {"learning_rate": [0.05, 1e30]}, batch_size=BATCH)
    pop.advance(5)
    assert pop.diverged.tolist() == [False, True]
    assert np.isfinite(pop.model_state["mean"]).all()
    assert pop.model_state["count"][1] == pop.steps[1]
    assert pop.model_state["count"][0] == 5


def test_the_noise_scale_reads_a_tasks_model_state_and_keys():
    """A loss scaled by its model state (2) has 4 times the squared gradient norm and the same
    B_simple; one scaled by a coin per micro-batch (its key) has another B_simple, the same on
    every call."""
    x = np.random.default_rng(0).standard_normal((256, 3)).astype(np.float32)
    data = (x, x @ np.array([1.0, -2.0, 0.5], np.float32))
    base = lambda w, batch: jnp.mean((batch[0] @ w - batch[1]) ** 2)
    metrics = lambda w, *rest: {"loss": base(w, rest[-1])}
    tasks = {
        "plain": lrjax.Task(lambda key: jnp.zeros(3), base, data),
        "state": lrjax.Task(
            lambda key: (jnp.zeros(3), jnp.float32(2.0)),
            lambda w, s, batch: (s * base(w, batch), s),
            data,
            metrics=metrics,
            stateful=True,
        ),
        "coin": lrjax.Task(
            lambda key: jnp.zeros(3),
            lambda w, batch, key: (1.0 + jax.random.bernoulli(key, 0.5)) * base(w, batch),
            data,
            metrics=metrics,
            rng=True,
        ),
    }
    noise = lambda task: lrjax.gradient_noise_scale(task, batch_size=64, micro_batches=4, steps=3)
    plain, state, coin = (noise(tasks[k]) for k in ("plain", "state", "coin"))
    np.testing.assert_allclose(state.gradient_norm_sq, 4 * plain.gradient_norm_sq, rtol=1e-5)
    np.testing.assert_allclose(state.b_simple, plain.b_simple, rtol=1e-5)
    assert abs(coin.b_simple / plain.b_simple - 1) > 0.01
    assert noise(tasks["coin"]).b_simple == coin.b_simple


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        (dict(loss=lambda p, b, key: 0.0, rng=False), "pass rng=True"),
        (dict(loss=lambda p, b: 0.0, rng=True), "if it takes no key, drop rng=True"),
        (dict(loss=lambda p, s, b: (0.0, s), stateful=False), "pass stateful=True"),
        (dict(loss=lambda p, s, b, key: (0.0, s), rng=True, stateful=True, metrics=None), "metrics is required"),
        (dict(loss=lambda p, b, key: 0.0, rng=True, metrics=lambda p, s, d: {}), r"metrics must take \(params, data\)"),
    ],
)
def test_a_loss_or_metrics_that_do_not_take_what_the_flags_say_raise(kwargs, message):
    args = dict(init=lambda key: jnp.zeros(1), train_data=(np.zeros((4, 1)),), metrics=lambda p, d: {"loss": 0.0})
    with pytest.raises(ValueError, match=message):
        lrjax.Task(**{**args, **kwargs})


def _stateful(loss, init=None, metrics=None):
    train, held_out = lrjax.datasets.load_digits()
    return lrjax.Task(init or _init, loss, train, held_out, metrics or _metrics, name="bad", rng=True, stateful=True)


@pytest.mark.parametrize(
    ("task_args", "message"),
    [
        (dict(loss=lambda p, s, b, key: _loss(p, s, b, key)[0]), r"must return \(scalar, new_model_state\)"),
        (
            dict(loss=lambda p, s, b, key: (_loss(p, s, b, key)[0], {**s, "count": s["count"] + 0.5})),
            r"model_state\['count'\]: int32\[\] became float32\[\]",
        ),
        (dict(loss=lambda p, s, b, key: (_loss(p, s, b, key)[0], s["mean"])), "structure init gives"),
        (dict(loss=_loss, init=lambda key: _init(key)[0]), r"init must return \(params, model_state\)"),
        (dict(loss=_loss, metrics=lambda p, s, d: {"accuracy": 0.0}), "metrics must report 'loss'"),
    ],
)
def test_bad_model_state_raises_before_anything_compiles(task_args, message):
    bad = _stateful(**task_args)
    with count_compiles() as log, pytest.raises(ValueError, match=message):
        population(bad)
    assert log.count == 0
