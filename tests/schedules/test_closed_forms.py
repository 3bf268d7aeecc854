"""Schedules without a library counterpart match their closed forms (float64 NumPy) under jit."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import lrjax.schedules as S

T = np.arange(0, 200)


def wsd(peak, w, s, d, init, end, shape):
    f = np.clip((T - w - s) / d, 0.0, 1.0)
    decay = {"linear": 1 - f, "cosine": 0.5 * (1 + np.cos(np.pi * f)), "1-sqrt": 1 - np.sqrt(f)}[shape]
    return np.where(T < w, init + (peak - init) * T / w, np.where(T < w + s, peak, end + (peak - end) * decay))


def warm(init, peak, w, shape, after):
    f = T / w
    ramp = {
        "linear": init + (peak - init) * f,
        "cosine": init + (peak - init) * 0.5 * (1 - np.cos(np.pi * f)),
        "exponential": init * (peak / init) ** f,
    }[shape]
    return np.where(T < w, ramp, after(np.maximum(T - w, 0)))


CASES = {
    **{
        f"wsd_{shape}": (
            S.warmup_stable_decay(
                0.8,
                warmup_steps=20,
                stable_steps=70,
                decay_steps=60,
                init_value=0.08,
                end_value=0.01,
                decay_shape=shape,
            ),
            wsd(0.8, 20, 70, 60, 0.08, 0.01, shape),
        )
        for shape in ("linear", "cosine", "1-sqrt")
    },
    "inverse_sqrt": (
        S.inverse_sqrt(0.5, warmup_steps=16),
        np.where(T > 0, 0.5 * np.minimum(T / 16, np.sqrt(16 / np.maximum(T, 1))), 0.0),
    ),
    **{
        f"warmup_{shape}": (
            S.warmup(S.exponential_decay(0.4, decay_rate=0.98), warmup_steps=30, init_value=0.004, shape=shape),
            warm(0.004, 0.4, 30, shape, lambda t: 0.4 * 0.98**t),
        )
        for shape in ("linear", "cosine", "exponential")
    },
    "scale_linear": (
        S.scale_for_batch_size(S.linear(0.1, end_value=0.0, steps=100), base_batch_size=256, batch_size=768),
        3 * 0.1 * (1 - np.minimum(T, 100) / 100),
    ),
    "scale_sqrt": (
        S.scale_for_batch_size(0.001, base_batch_size=1024, batch_size=256, rule="sqrt"),
        np.full(T.shape, 0.001 * 0.5),
    ),
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_matches_closed_form(name):
    schedule, expected = CASES[name]
    np.testing.assert_allclose(jax.jit(schedule)(jnp.asarray(T)), expected, rtol=1e-5, atol=1e-9)


def test_one_vocabulary_for_shapes_with_pytorchs_cos_accepted():
    cosine = S.one_cycle(1.0, total_steps=100, anneal="cosine")
    cos = S.one_cycle(1.0, total_steps=100, anneal="cos")
    assert cos.anneal == cosine.anneal == "cosine"
    steps = np.arange(120)
    np.testing.assert_array_equal(cos(steps), cosine(steps))
    assert S.one_cycle(1.0, total_steps=100).anneal == "cosine"  # PyTorch's default, by its lrjax name
