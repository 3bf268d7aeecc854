"""Regenerate the README's figures: python docs/figures.py (about 25 s on 2 cores)."""

import matplotlib

matplotlib.use("Agg")

import jax

jax.config.update("jax_num_cpu_devices", 2)

import optax  # noqa: E402

import lrjax  # noqa: E402

task = lrjax.datasets.digits_mlp()
adam = lambda hp: optax.adam(hp["learning_rate"])
one = lrjax.sweep(
    task,
    adam,
    {"learning_rate": lrjax.search.log_grid(1e-4, 3.0, 32)},
    steps=1000,
    batch_size=64,
    seeds=2,
    eval_every=100,
    progress=False,
)
one.plot().savefig("docs/sweep-learning-rate.png", dpi=72)
adamw = lambda hp: optax.adamw(hp["learning_rate"], weight_decay=hp["weight_decay"])
two = lrjax.sweep(
    task,
    adamw,
    lrjax.search.grid({"learning_rate": lrjax.search.log_grid(1e-4, 3.0, 12), "weight_decay": [0.0, 1e-2, 1.0]}),
    steps=1000,
    batch_size=64,
    seeds=2,
    eval_every=250,
    progress=False,
)
two.plot().savefig("docs/sweep-learning-rate-weight-decay.png", dpi=72)
finder = lrjax.find_lr(task, adamw, seeds=8, batch_size=64, configs={"weight_decay": [1e-4, 1e-1]}, progress=False)
finder.plot().savefig("docs/find-lr.png", dpi=80)
sizes = lrjax.batch_size_sweep(
    task,
    adam,
    {"learning_rate": lrjax.search.log_grid(1e-3, 3e-2, 4)},
    [8, 16, 32, 64, 128, 256],
    examples=96_000,
    target=0.15,
    seeds=2,
    progress=False,
)
sizes.plot().savefig("docs/batch-size.png", dpi=72)
