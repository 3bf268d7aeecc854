"""Schedules are optax.Schedules: they drive Optax optimizers, inject_hyperparams, jit and vmap."""

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax.schedules as S


def test_drives_an_optax_optimizer_step_by_step():
    schedule = S.warmup(S.cosine_decay(1.0, decay_steps=6), warmup_steps=3)
    opt = optax.sgd(schedule)
    params = jnp.zeros(())
    state = opt.init(params)
    applied = []
    for _ in range(10):
        updates, state = opt.update(jnp.ones(()), state, params)  # gradient 1: update = -lr
        applied.append(-float(updates))
    np.testing.assert_allclose(applied, schedule(jnp.arange(10)), rtol=1e-6)


def test_inside_inject_hyperparams_reports_the_current_value():
    schedule = S.step_decay(0.1, step_size=2, decay_rate=0.5)
    opt = optax.inject_hyperparams(optax.adam)(learning_rate=schedule)
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    seen = []
    for _ in range(5):  # after each update the state reports the rate that update used
        _, state = opt.update({"w": jnp.ones(3)}, state, params)
        seen.append(float(state.hyperparams["learning_rate"]))
    np.testing.assert_allclose(seen, [0.1, 0.1, 0.05, 0.05, 0.025], rtol=1e-6)


def test_new_numeric_values_do_not_recompile():
    traces = []

    @jax.jit
    def lr_at(schedule, step):
        traces.append(1)
        return schedule(step)

    first = lr_at(S.warmup_cosine_decay(0.0, peak_value=1.0, warmup_steps=10, total_steps=100), 50)
    second = lr_at(S.warmup_cosine_decay(0.1, peak_value=3.0, warmup_steps=20, total_steps=200, end_value=0.01), 50)
    assert len(traces) == 1
    assert float(first) != float(second)
    lr_at(
        S.warmup_stable_decay(1.0, warmup_steps=10, stable_steps=10, decay_steps=10), 5
    )  # another structure compiles once more
    assert len(traces) == 2


def test_vmapped_training_over_schedules_equals_training_each():
    # Gradient descent on f(w) = ½ w², one member per peak learning rate.
    def train(peak):
        opt = optax.sgd(S.warmup_cosine_decay(0.0, peak_value=peak, warmup_steps=5, total_steps=40))

        def step(carry, _):
            w, state = carry
            updates, state = opt.update(w, state, w)
            return (optax.apply_updates(w, updates), state), w

        w0 = jnp.asarray(3.0)
        return jax.lax.scan(step, (w0, opt.init(w0)), length=40)[1]

    peaks = jnp.asarray([0.05, 0.3, 1.0, 1.9])
    batched = jax.jit(jax.vmap(train))(peaks)
    singles = np.stack([np.asarray(jax.jit(train)(p)) for p in peaks])
    np.testing.assert_allclose(batched, singles, rtol=1e-6)


def test_output_dtype_and_shape():
    assert S.constant(1)(0).dtype == jnp.float32
    assert S.step_decay(1, step_size=2, decay_rate=1)(3).dtype == jnp.float32
    assert S.linear(1.0, end_value=0.0, steps=10)(jnp.zeros((2, 3), jnp.int32)).shape == (2, 3)
    assert S.piecewise_constant([1.0, 2.0], boundaries=[3])(jnp.arange(6).reshape(2, 3)).shape == (2, 3)
    assert S.cosine_restarts(1.0, period=3, period_mult=2)(5).shape == ()
    np.testing.assert_allclose(S.inverse_sqrt(1.0, warmup_steps=4)(jnp.asarray([0, 1, 4, 16])), [0.0, 0.25, 1.0, 0.5])


def test_schedules_are_pytrees_with_numeric_leaves_and_static_modes():
    schedule = S.cyclic(0.1, peak_value=1.0, step_size_up=5, step_size_down=7, mode="exp_range", gamma=0.99)
    leaves, treedef = jax.tree.flatten(schedule)
    assert leaves == [0.1, 1.0, 5, 7, 0.99]
    assert "exp_range" in str(treedef)
    rebuilt = jax.tree.unflatten(treedef, [0.2, 2.0, 5, 7, 0.98])
    assert isinstance(rebuilt, type(schedule)) and rebuilt.mode == "exp_range" and rebuilt.base_value == 0.2


def test_giant_int_steps_and_step_counts_as_in_optax():
    # Optax's test_with_giant_int_steps: Python ints beyond int32 become floats.
    ours = S.cosine_decay(1000.0, decay_steps=int(1e10))
    theirs = optax.cosine_decay_schedule(1000.0, int(1e10))
    for step in (0, int(1e9), int(5e9), int(1e10), 2**40):
        np.testing.assert_allclose(ours(step), theirs(step), rtol=1e-6)
    np.testing.assert_allclose(ours(int(1e9)), 975.52826, rtol=1e-7)
    np.testing.assert_allclose(S.exponential_decay(1.0, decay_rate=0.5, decay_steps=2**33)(2**34), 0.25, rtol=1e-6)
    np.testing.assert_allclose(
        S.piecewise_constant([1.0, 0.5], boundaries=[2**33])(np.asarray([2**33 - 2**20, 2**33])), [1.0, 0.5]
    )


def test_every_schedule_evaluates_at_a_python_int_step_of_two_to_the_forty():
    from lrjax.cli import gallery

    for name, schedule in gallery(1000).items():
        value = schedule(2**40)
        assert np.isfinite(value) and 0 <= value <= 0.4, (name, value)  # peak 0.1 (x4 for the batch-scaled one)
