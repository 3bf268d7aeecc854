"""`lrjax.engine.plan`: memory groups, slots and parts decided in one place, and the sweep and
the population following it."""

import jax
import numpy as np
import optax
import pytest

import lrjax
from lrjax.engine.plan import member_bytes, plan, state_bytes

HP = {"learning_rate": np.float32(0.1)}


def _plan(task, configs, budget, *, split, seeds=2, devices=None):
    sgd = lambda hp: optax.sgd(hp["learning_rate"])
    devices = devices or jax.devices()[:1]
    return plan(
        task,
        sgd,
        HP,
        configs,
        seeds=seeds,
        batch_size=32,
        devices=devices,
        memory_budget=budget,
        divergence_factor=None,
        split=split,
    )


def test_groups_hold_what_the_budget_fits_and_each_group_plans_as_its_own_population(digits):
    one = member_bytes(digits, lambda hp: optax.sgd(hp["learning_rate"]), HP)
    per_config = state_bytes(one, 2)
    assert per_config == 3 * 2 * one  # the state, the next one and the gradients in flight
    split = _plan(digits, 10, 3 * per_config + per_config // 2, split=True)
    assert split.group_size == 3
    assert [list(g) for g in split.groups] == [[0, 1, 2], [3, 4, 5], [6, 7, 8], [9]]
    # A group of 3 configurations, given the plan's budget, is laid out as the plan says.
    assert _plan(digits, 3, split.memory_budget, split=False).layout == split.layout
    whole = _plan(digits, 10, 10**9, split=True)
    assert len(whole.groups) == 1 and whole.group_size == 10
    assert _plan(digits, 10, 10**9, split=False) == whole


def test_a_group_holds_one_configuration_per_device_even_over_the_budget(digits):
    devices = jax.devices()[:1] * 2  # the plan only counts them
    tight = _plan(digits, 5, 1, split=True, devices=devices)
    assert tight.group_size == 2 and [list(g) for g in tight.groups] == [[0, 1], [2, 3], [4]]
    assert tight.memory_budget == state_bytes(tight.member_bytes, 2 * 2)
    assert tight.layout.parts == (1, 1) and tight.layout.slots == 2


def test_without_split_what_does_not_fit_raises_naming_the_budget(digits):
    with pytest.raises(ValueError, match=r"more than memory_budget=100; use fewer members"):
        _plan(digits, 4, 100, split=False)


def test_the_population_and_the_sweep_follow_the_plan(digits, sgd):
    configs = {"learning_rate": np.float32([0.01, 0.03, 0.1, 0.3, 0.5])}
    budget = 2 * state_bytes(member_bytes(digits, sgd, HP), 1)  # two configurations a group
    expected = plan(
        digits,
        sgd,
        HP,
        5,
        seeds=1,
        batch_size=16,
        devices=jax.devices(),
        memory_budget=budget,
        divergence_factor=lrjax.engine.program.DIVERGENCE_FACTOR,
        split=True,
    )
    result = lrjax.sweep(digits, sgd, configs, steps=2, batch_size=16, memory_budget=budget, progress=False)
    assert result.info["groups"] == len(expected.groups) == 3
    pop = lrjax.Population(
        digits, sgd, {"learning_rate": np.float32([0.01, 0.03])}, batch_size=16, memory_budget=budget
    )
    assert pop._layout == expected.layout
