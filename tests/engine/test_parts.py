"""Chunks run in parts on a CPU device (`lrjax.engine.parts`): the cut the engine chooses, and a
population run in parts computing what the whole computes.

Members cut into parts agree with the whole within 1e-6 (absolute) rather than bitwise, as across devices
(tests/engine/test_scale.py): a part's first layer is a narrower matmul, and float32 summation
order depends on its width. Seeds cut into parts agree bitwise (each seed's matmuls are the
same). Plain SGD keeps the dynamics from amplifying ulp-level differences."""

import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import lrjax
from lrjax.engine import parts
from lrjax.engine.plan import member_bytes, state_bytes
from lrjax.engine.program import Layout, MemberState, PopulationState
from tests.engine.conftest import run_on_devices

CLOSE = dict(rtol=1e-5, atol=1e-6)  # 130 steps: ulp-level differences grow to ~1e-7


@pytest.fixture
def cores(monkeypatch):
    """Pretend the host has ``n`` cores."""
    return lambda n: monkeypatch.setattr(parts, "cores", lambda: n)


@pytest.mark.parametrize(
    "configs, seeds, n, expected",
    [
        (64, 1, 2, ((1, 2), 64)),  # 32 configurations per part
        (3, 2, 2, ((1, 2), 4)),  # two per part: one padding slot
        (5, 1, 4, ((1, 3), 6)),  # two per part: three parts, not four
        (3, 1, 8, ((1, 3), 3)),  # one per part
        (1, 8, 2, ((2, 1), 1)),  # one configuration: the seeds are cut
        (1, 6, 4, ((3, 1), 1)),  # the largest divisor of the seeds up to the cores
        (1, 5, 2, ((1, 1), 1)),  # 5 seeds do not divide into 2
        (64, 4, 1, ((1, 1), 64)),  # one core: one part
    ],
)
def test_the_cut_takes_as_many_parts_as_cores_without_padding_beyond_need(cores, configs, seeds, n, expected):
    cores(n)
    assert parts.choose(configs, seeds, jax.devices()[:1]) == expected


@pytest.mark.parametrize(
    "configs, seeds, devices, expected",
    [
        (64, 2, 4, 1),  # enough configurations: they are sharded, not the seeds
        (1, 8, 4, 4),  # a range test: two seeds a device instead of three padding copies
        (1, 6, 4, 2),  # 6 seeds do not divide into 4
        (1, 5, 4, 1),  # nor do 5 into 2 or 4
        (3, 2, 4, 1),  # 2 seeds × 1 configuration a device (a padding slot) or 1 × 2: a tie
        (2, 4, 4, 2),  # 2 seeds × 1 configuration a device, or 1 × 2 on 4 seed devices: the fewer
    ],
)
def test_the_seeds_are_sharded_only_when_that_gives_each_device_fewer_members(configs, seeds, devices, expected):
    assert lrjax.engine.program.seed_devices(configs, seeds, devices) == expected


def test_split_then_join_is_the_identity_and_cuts_device_blocks():
    # 2 device blocks of 6 members, cut into 3 parts: part k holds members {2k, 2k+1} of each block.
    layout = Layout(seeds=1, slots=12, batch_size=4, devices=tuple(jax.devices()[:1]) * 2, parts=(1, 3))
    kernel = jnp.arange(1 * 5 * 12 * 3, dtype=jnp.float32).reshape(1, 5, 12, 3)  # (seeds, in, members, out)
    state = PopulationState(
        MemberState(
            {"w": kernel},
            {"count": jnp.arange(12)[None]},
            (),
            jnp.zeros((1, 12), bool),
            jnp.zeros((1, 12), jnp.int32),
            0,
            jnp.zeros((1, 12)),
            None,
            None,
        ),
        jnp.zeros((1, 7), jnp.int32),
        jnp.zeros((1, 2), jnp.uint32),
        jnp.ones((1, 2), jnp.uint32),
        jnp.int32(3),
    )
    state = state._replace(members=state.members._replace(steps=jnp.arange(12)[None]))
    hps = {"learning_rate": jnp.arange(12.0)[None]}
    cut = parts.split(layout, state, hps, jnp.ones((1, 12), bool))
    assert len(cut) == 3
    np.testing.assert_array_equal(cut[1][1]["learning_rate"], [[2, 3, 8, 9]])
    np.testing.assert_array_equal(cut[1][0].members.params["w"], kernel[:, :, [2, 3, 8, 9]])
    losses = [jnp.full((100, 1, 4), k, jnp.float32) for k in range(3)]
    joined, joined_losses = parts.join(layout, [(s, loss) for (s, _, _), loss in zip(cut, losses, strict=True)])
    jax.tree.map(np.testing.assert_array_equal, joined, state)
    np.testing.assert_array_equal(joined_losses[0, 0], [0, 0, 1, 1, 2, 2, 0, 0, 1, 1, 2, 2])


def _run(task, configs, seeds, steps=130):
    pop = lrjax.Population(task, lambda hp: optax.sgd(hp["learning_rate"]), configs, batch_size=32, seeds=seeds)
    losses = pop.advance(steps)  # crosses a chunk (100 steps) and an epoch (44 batches)
    return pop._layout.parts, {
        "losses": losses,
        "params": pop.params,
        "steps": pop.steps,
        "diverged_at": pop.diverged_at,
        "eval": pop.evaluate(),
    }


@pytest.mark.parametrize(
    "configs, seeds, n, cut",
    [
        ([0.01, 0.1, 0.5, 1e20], 2, 2, (1, 2)),  # members cut; 1e20 diverges alone
        ([0.01, 0.1, 1e20], 1, 2, (1, 2)),  # members cut, one padding slot
        ([0.01, 0.1, 1e20], 1, 3, (1, 3)),  # one member per part
    ],
)
def test_members_in_parts_train_as_the_whole_population(digits, cores, configs, seeds, n, cut):
    cores(1)
    whole_cut, whole = _run(digits, {"learning_rate": configs}, seeds)
    cores(n)
    got_cut, got = _run(digits, {"learning_rate": configs}, seeds)
    assert (whole_cut, got_cut) == ((1, 1), cut)
    assert (whole["diverged_at"] >= 0).sum() == seeds  # the 1e20 configuration, and no other
    np.testing.assert_array_equal(got["diverged_at"], whole["diverged_at"])
    np.testing.assert_array_equal(got["steps"], whole["steps"])
    calm = whole["diverged_at"] < 0  # a diverged member's last finite weights are ~1e18: compared above
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a[calm], b[calm], **CLOSE), got, whole)


def test_seeds_in_parts_train_bitwise_as_the_whole_population(digits, cores):
    cores(1)
    _, whole = _run(digits, {"learning_rate": [0.1]}, seeds=4)
    cores(2)
    cut, got = _run(digits, {"learning_rate": [0.1]}, seeds=4)
    assert cut == (2, 1)
    jax.tree.map(np.testing.assert_array_equal, got, whole)
    assert not np.array_equal(whole["losses"][0], whole["losses"][1])  # the seeds differ


def test_no_parts_when_their_copies_do_not_fit_the_memory_budget(digits, cores):
    cores(2)
    sgd = lambda hp: optax.sgd(hp["learning_rate"])
    configs = {"learning_rate": [0.01, 0.1]}
    roomy = lrjax.Population(digits, sgd, configs, batch_size=32)
    need = state_bytes(member_bytes(digits, sgd, {"learning_rate": np.float32(0.1)}), 2)
    tight = lrjax.Population(digits, sgd, configs, batch_size=32, memory_budget=need)
    assert roomy._layout.parts == (1, 2) and tight._layout.parts == (1, 1)


TWO_DEVICES = textwrap.dedent(
    """
    import jax, numpy as np, optax
    import lrjax, lrjax.datasets as D
    from lrjax.engine import parts
    assert jax.local_device_count() == 2, jax.devices()
    task = D.digits_mlp(hidden=(16,))
    opt = lambda hp: optax.sgd(hp["learning_rate"])
    configs = {"learning_rate": np.geomspace(1e-2, 0.5, 6).astype(np.float32)}  # 3 per device
    kw = dict(steps=30, batch_size=32, seeds=2, eval_every=10, progress=False)
    whole = lrjax.sweep(task, opt, configs, **kw)
    parts.cores = lambda: 4  # 2 per device: 2 parts of 2 slots on each device, 8 slots in all
    pop = lrjax.Population(task, opt, configs, seeds=2, batch_size=32)
    assert pop._layout.parts == (1, 2) and pop._layout.slots == 8, pop._layout
    cut = lrjax.sweep(task, opt, configs, **kw)
    np.testing.assert_allclose(cut.train_loss, whole.train_loss, rtol=1e-6, atol=1e-7)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), cut.final_params, whole.final_params)
    pop.advance(10)
    leaf = jax.tree.leaves(pop._state.members.params)[0]
    assert len(leaf.sharding.device_set) == 2 and leaf.sharding.shard_shape(leaf.shape)[:2] == (2, 4)
    # one configuration, 8 seeds (a range test): 4 seeds a device, cut into 2 parts on each
    one = {"learning_rate": np.float32([0.1])}
    kw = dict(steps=30, batch_size=32, seeds=8, eval_every=10, progress=False)
    single = lrjax.sweep(task, opt, one, devices=jax.devices()[:1], **kw)
    pop = lrjax.Population(task, opt, one, seeds=8, batch_size=32)
    assert (pop._layout.seed_devices, pop._layout.parts, pop._layout.slots) == (2, (2, 1), 1), pop._layout
    leaf = jax.tree.leaves(pop._state.members.params)[0]
    assert leaf.sharding.shard_shape(leaf.shape)[:2] == (4, 1)
    spread = lrjax.sweep(task, opt, one, **kw)
    np.testing.assert_allclose(spread.train_loss, single.train_loss, rtol=1e-6, atol=1e-7)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), spread.final_params, single.final_params)
    print("parts on two devices ok")
    """
)


def test_parts_on_each_of_two_devices_match_the_whole_sweep_and_seeds_fill_the_devices():
    run_on_devices(TWO_DEVICES, 2, "parts on two devices ok")
