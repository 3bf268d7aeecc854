"""reduce_on_plateau reproduces PyTorch ReduceLROnPlateau and works per member under vmap."""

import json
import pathlib

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax

REFERENCE = json.loads((pathlib.Path(__file__).parent / "reference" / "values.json").read_text())["plateau"]


def scales(transform, metrics):
    """The scale after each observation, from one jitted scan over the metric stream."""

    def observe(state, value):
        _, state = transform.update(jnp.ones(()), state, value=value)
        return state, state.scale

    _, out = jax.jit(lambda m: jax.lax.scan(observe, transform.init(None), m))(jnp.asarray(metrics, jnp.float32))
    return np.asarray(out)


def torch_kwargs_to_lrjax(kwargs):
    kwargs = dict(kwargs)
    if "min_lr" in kwargs:  # the PyTorch cases use base lr 1.0, so min_lr is the floor of the scale
        kwargs["min_scale"] = kwargs.pop("min_lr")
    return kwargs


@pytest.mark.parametrize("name", sorted(REFERENCE))
def test_matches_pytorch(name):
    case = REFERENCE[name]
    transform = lrjax.reduce_on_plateau(**torch_kwargs_to_lrjax(case["kwargs"]))
    np.testing.assert_allclose(scales(transform, case["metrics"]), case["scales"], rtol=1e-6)


def test_reference_streams_exercise_reductions_cooldown_and_floor():
    # A reference stream in which nothing happens would test nothing.
    for name, case in REFERENCE.items():
        assert len(set(case["scales"])) >= 2, name
    assert min(REFERENCE["floor"]["scales"]) == pytest.approx(0.01)


def test_relative_threshold_is_sign_aware_for_negative_metrics():
    # best = -10; with threshold 0.1 an improvement must go below -10 - 0.1 * 10 = -11.
    # PyTorch's best * (1 - threshold) = -9 would count -9.5 as an improvement.
    transform = lrjax.reduce_on_plateau(factor=0.5, patience=1, threshold=0.1)
    np.testing.assert_allclose(
        scales(transform, [-10.0, -9.5, -10.5, -11.5, -11.6, -11.7]), [1, 1, 0.5, 0.5, 0.5, 0.25]
    )
    # mode max mirrors it: best = -10 needs > -10 + 1 = -9.
    transform = lrjax.reduce_on_plateau(factor=0.5, patience=0, threshold=0.1, mode="max")
    np.testing.assert_allclose(scales(transform, [-10.0, -9.5, -8.5]), [1, 0.5, 0.5])


def test_nan_metric_is_never_an_improvement():
    transform = lrjax.reduce_on_plateau(factor=0.5, patience=1)
    np.testing.assert_allclose(scales(transform, [jnp.nan, jnp.nan, 1.0, jnp.nan, jnp.nan]), [1, 0.5, 0.5, 0.5, 0.25])


def test_vmapped_members_follow_their_own_streams():
    transform = lrjax.reduce_on_plateau(factor=0.5, patience=1, cooldown=1)
    rng = np.random.default_rng(1)
    streams = np.cumsum(rng.standard_normal((5, 30)), axis=1).astype(np.float32)

    def run(metrics):
        def observe(state, value):
            _, state = transform.update(jnp.ones(()), state, value=value)
            return state, state.scale

        return jax.lax.scan(observe, transform.init(None), metrics)[1]

    batched = np.asarray(jax.jit(jax.vmap(run))(streams))
    one_at_a_time = np.stack([scales(transform, s) for s in streams])
    np.testing.assert_array_equal(batched, one_at_a_time)
    assert len({tuple(row) for row in batched}) > 1  # the members really differ


def test_scales_updates_inside_an_optax_chain():
    opt = optax.chain(optax.sgd(1.0), lrjax.reduce_on_plateau(factor=0.5, patience=0))
    params = {"w": jnp.ones(3)}
    state = opt.init(params)
    grads = {"w": jnp.full(3, 2.0)}
    steps = []
    for value in [1.0, 2.0, 3.0]:
        updates, state = opt.update(grads, state, params, value=value)
        steps.append(float(updates["w"][0]))
    assert steps == [-2.0, -1.0, -0.5]


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"factor": 1.0}, "factor must be < 1"),
        ({"factor": 0.0}, "factor must be > 0"),
        ({"patience": -1}, "patience must be >= 0"),
        ({"threshold": -1e-3}, "threshold must be >= 0"),
        ({"threshold": float("nan")}, "threshold must be finite"),
        ({"threshold_mode": "relative"}, "threshold_mode must be one of"),
        ({"cooldown": -2}, "cooldown must be >= 0"),
        ({"min_scale": 1.5}, "min_scale must be <= 1"),
        ({"mode": "minimum"}, "mode must be one of"),
    ],
)
def test_bad_arguments(kwargs, message):
    with pytest.raises(ValueError, match=message):
        lrjax.reduce_on_plateau(**kwargs)


def test_accumulation_averages_values_into_one_observation():
    # Every 3 values are one observation of their mean; between observations the scale holds.
    rng = np.random.default_rng(4)
    values = np.cumsum(rng.standard_normal(60)).astype(np.float32) * 0.1 + 5.0
    accumulated = scales(lrjax.reduce_on_plateau(factor=0.5, patience=1, accumulation_size=3), values)
    per_epoch = scales(lrjax.reduce_on_plateau(factor=0.5, patience=1), values.reshape(20, 3).mean(axis=1))
    np.testing.assert_allclose(accumulated[2::3], per_epoch, rtol=1e-6)
    np.testing.assert_array_equal(accumulated[0:2], [1.0, 1.0])
    np.testing.assert_array_equal(accumulated[3::3], accumulated[4::3])  # held between observations
    assert len(set(per_epoch)) >= 3


def test_accumulation_size_must_be_at_least_one():
    with pytest.raises(ValueError, match="accumulation_size must be >= 1, got 0"):
        lrjax.reduce_on_plateau(accumulation_size=0)
