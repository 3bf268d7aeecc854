"""Sharding over devices (4 forced CPU devices, in a subprocess) and memory-budget groups.

Results agree within 1e-6 rather than bitwise: members that share a batch run their first
layer as one matmul whose width is the number of members in the program (per device, per
group), and float32 summation order depends on that shape. SGD keeps the dynamics from
amplifying those ulp-level differences, so the comparison tests the engine, not chaos."""

import textwrap

import jax
import numpy as np

from tests.engine.conftest import run, run_on_devices

MULTI_DEVICE = textwrap.dedent(
    """
    import jax, numpy as np, optax
    import lrjax, lrjax.datasets as D
    assert jax.local_device_count() == 4, jax.devices()
    task = D.digits_mlp(hidden=(16,))
    opt = lambda hp: optax.sgd(hp["learning_rate"])
    configs = {"learning_rate": np.geomspace(1e-2, 0.5, 6).astype(np.float32)}   # 6: not divisible by 4
    kw = dict(steps=30, batch_size=32, seeds=2, eval_every=10, progress=False)
    one = lrjax.sweep(task, opt, configs, devices=jax.devices()[:1], **kw)
    four = lrjax.sweep(task, opt, configs, **kw)
    assert one.info["devices"] == 1 and four.info["devices"] == 4, (one.info, four.info)
    assert four.train_loss.shape == (12, 30), four.train_loss.shape
    np.testing.assert_allclose(four.train_loss, one.train_loss, rtol=1e-6, atol=1e-7)
    for k in one.eval_metrics:
        np.testing.assert_allclose(four.eval_metrics[k], one.eval_metrics[k], rtol=1e-6, atol=1e-7)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), four.final_params, one.final_params)
    pop = lrjax.Population(task, opt, configs, seeds=2, batch_size=32)
    leaf = jax.tree.leaves(pop._state.members.params)[0]  # a (2 seeds × 2 configuration) device mesh:
    assert leaf.shape[:2] == (2, 6)  # 3 members a device, no padding (4 devices by configuration: 2 × 2)
    assert len(leaf.sharding.device_set) == 4 and leaf.sharding.shard_shape(leaf.shape)[:2] == (1, 3)
    pop = lrjax.Population(task, opt, configs, batch_size=32)  # one seed: members 0 and 5 on devices 0 and 2
    pop.advance(10)
    pop.copy([5], [0])
    losses = pop.advance(7)
    np.testing.assert_array_equal(losses[5], losses[0])
    pop = lrjax.Population(task, opt, {"learning_rate": [0.1]}, seeds=4, batch_size=32)  # a seed a device
    pop.advance(10)
    assert pop._layout.seed_devices == 4, pop._layout
    order = pop._state.order  # each seed's data order on its own device, not all on every one
    assert order.sharding.shard_shape(order.shape) == (1, task.num_train)
    pop.copy([0], [3])  # seed 3's member (device 3) into seed 0's (device 0)
    jax.tree.map(lambda x: np.testing.assert_array_equal(x[0], x[3]), pop.params)
    print("sharded ok")
    """
)


def test_four_devices_match_one_device_and_shard_the_seeds_and_configurations():
    run_on_devices(MULTI_DEVICE, 4, "sharded ok")


def test_memory_groups_equal_the_unsplit_sweep(digits, sgd):
    configs = {"learning_rate": np.geomspace(1e-2, 0.5, 5).astype(np.float32)}
    whole = run(digits, sgd, configs, steps=20, batch_size=32, eval_every=10)
    split = run(digits, sgd, configs, steps=20, batch_size=32, eval_every=10, memory_budget=1)
    assert whole.info["groups"] == 1 and split.info["groups"] == 5
    np.testing.assert_allclose(split.train_loss, whole.train_loss, rtol=1e-6)
    for k in whole.eval_metrics:
        np.testing.assert_allclose(split.eval_metrics[k], whole.eval_metrics[k], rtol=1e-6, atol=1e-7)
    jax.tree.map(
        lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7), split.final_params, whole.final_params
    )
