"""A schedule shows as the call that builds it, and every factory takes the catalogue's names."""

import dataclasses

import jax
import numpy as np
import pytest

import lrjax.schedules as S
from lrjax.cli import gallery
from lrjax.schedules._decay import Constant

STEPS = np.arange(0, 201)


@pytest.mark.parametrize("name", list(gallery(200)))
def test_repr_is_a_call_that_rebuilds_the_schedule(name):
    schedule = gallery(200)[name]
    text = repr(schedule)
    assert text.split("(")[0] in S.__all__ and text.split("(")[0].islower()  # a public factory, not a class
    assert "factory" not in text and "labels" not in text and "schedule." not in text  # no internal fields
    rebuilt = eval(text, vars(S))
    np.testing.assert_array_equal(rebuilt(STEPS), schedule(STEPS))


def test_repr_shows_the_values_a_schedule_holds_now():
    wsd = S.warmup_stable_decay(3e-3, warmup_steps=60, decay_steps=140, total_steps=600)
    assert repr(wsd) == (
        "warmup_stable_decay(0.003, warmup_steps=60, decay_steps=140, stable_steps=400, init_value=0.0, "
        "end_value=0.0, decay_shape='linear')"
    )
    doubled = jax.tree.map(lambda x: 2 * x, S.cosine_decay(0.1, decay_steps=100))  # as a sweep rebuilds it
    assert repr(doubled) == "cosine_decay(0.2, decay_steps=200, end_value=0.0, exponent=2.0)"
    assert repr(dataclasses.replace(S.constant(0.1), value=0.5)) == "constant(0.5)"
    assert repr(Constant(value=0.1)) == "Constant(value=0.1)"  # constructed directly: the class and its fields


def test_warmup_stable_decay_takes_total_steps_like_the_rest_of_the_catalogue():
    by_total = S.warmup_stable_decay(3e-3, warmup_steps=60, decay_steps=140, total_steps=600, decay_shape="1-sqrt")
    by_stable = S.warmup_stable_decay(3e-3, warmup_steps=60, decay_steps=140, stable_steps=400, decay_shape="1-sqrt")
    steps = np.arange(0, 700)
    np.testing.assert_array_equal(by_total(steps), by_stable(steps))
    assert float(by_total(600)) == 0.0 and float(by_total(460)) == pytest.approx(3e-3)
    for kwargs, said in [({}, "got neither"), ({"stable_steps": 400, "total_steps": 600}, "got both")]:
        with pytest.raises(TypeError, match=f"give stable_steps \\(S\\) or total_steps .*{said}"):
            S.warmup_stable_decay(3e-3, warmup_steps=60, decay_steps=140, **kwargs)
    with pytest.raises(ValueError, match="total_steps - warmup_steps - decay_steps must be >= 0, got -100"):
        S.warmup_stable_decay(3e-3, warmup_steps=60, decay_steps=140, total_steps=100)


def test_an_unknown_argument_names_the_ones_the_schedule_takes():
    with pytest.raises(
        TypeError,
        match=r"cosine_decay\(\) got an unexpected keyword argument 'total_steps'; "
        r"it takes \(init_value, \*, decay_steps, end_value=0.0, exponent=1.0\)",
    ):
        S.cosine_decay(0.1, total_steps=100)
    with pytest.raises(
        TypeError, match=r"one_cycle\(\) missing a required (keyword-only )?argument: 'total_steps'; it takes"
    ):
        S.one_cycle(0.1)
