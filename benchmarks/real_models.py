"""Benchmark: sweeps of real models, with dropout keys and BatchNorm state, against the two
ways a JAX user trains N learning rates without lrjax. N = 8 configurations of AdamW, one seed.
Every column does the same work and gives the same outputs: the training loss of every step
and the final evaluation (running statistics, no dropout) of every configuration, from the
same initial parameters, batches and dropout keys (`lrjax.engine.step_key`).

  sweep warm        lrjax.sweep of new learning rates, its programs compiled (best of 2)
  sweep cold        the same with the engine's cache emptied: tracing and compiling included
  sweep compile     sweep cold − sweep warm
  jit(vmap(scan))   the training loop a JAX user writes for N learning rates at once: one
                    ``lax.scan`` over the steps of the task's own loss (``task.step_loss``:
                    keys and model state threaded through), ``jax.vmap`` over the learning
                    rates, ``jax.jit``; run (once, compiled ahead) and compile (lower +
                    compile) timed
  fair loop         the same scan jitted once with the learning rate a traced argument, run
                    for one configuration after another (once, compiled and run before)

Tasks: `lrjax.datasets.digits_resnet` (a linen ResNet, 5 BatchNorms and dropout: 60 steps,
batch 64) and `lrjax.datasets.tempest_lm` (a 2-block NNX character transformer, context 64,
width 64, dropout: 100 steps, batch 32). The step counts are short because the baselines are
slow: XLA:CPU's convolutions under a vmap, and even alone, take over a second a step of 8
ResNets (the engine computes them as slices and a matmul, `lrjax.engine.conv`). The engine's targets: warm at least 1.5× faster than
jit(vmap(scan)); compile at most 2× its compile.

    python benchmarks/real_models.py
"""

from __future__ import annotations

import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
from lrjax.engine import cache, init_key, step_key
from lrjax.engine.program import order_words, seed_keys
from lrjax.engine.shuffle import epoch_order

N = 8
CASES = {  # name: (task, steps, batch)
    "ResNet, BatchNorm, dropout (digits)": (lambda: lrjax.datasets.digits_resnet(), 60, 64),
    "transformer LM, dropout (The Tempest)": (lambda: lrjax.datasets.tempest_lm(), 100, 32),
}


def make(lr):
    return optax.adamw(lr, weight_decay=1e-2)


def timed(fn) -> float:
    started = time.perf_counter()
    jax.block_until_ready(fn())
    return time.perf_counter() - started


def batch_index(n: int, steps: int, batch: int) -> np.ndarray:
    """(steps, batch) example indices: the sweep's epoch order for seed 0."""
    words = order_words(seed_keys(0, 1)[0])
    per_epoch = n // batch
    epochs = [np.asarray(epoch_order(words, e, n)) for e in range(-(-steps // per_epoch))]
    return np.stack([epochs[t // per_epoch][(t % per_epoch) * batch :][:batch] for t in range(steps)])


def training(task, steps: int, batch: int):
    """``train(lr) -> (losses, eval metrics)``: the scan a user writes around the task's own
    functions, with the sweep's batches and keys."""
    index = jnp.asarray(batch_index(task.num_train, steps, batch))
    keys = jnp.stack([jax.random.key_data(step_key(0, 1, 0, t)) for t in range(steps)])
    eval_data = task.train_data if task.eval_data is None else task.eval_data

    def train(lr):
        tx = make(lr)
        params, state = task.initial(init_key(0, 1, 0))

        def step(carry, inputs):
            params, state, opt = carry
            rows, words = inputs
            data = jax.tree.map(lambda x: x[rows], task.train_data)
            key = jax.random.wrap_key_data(words) if task.rng else None
            (loss, state), grads = jax.value_and_grad(task.step_loss, has_aux=True)(params, state, data, key)
            updates, opt = tx.update(grads, opt, params)
            return (optax.apply_updates(params, updates), state, opt), loss

        (params, state, _), losses = jax.lax.scan(step, (params, state, tx.init(params)), (index, keys))
        return losses, task.evaluate(params, state, eval_data)

    return train


def note(what: str, seconds: float) -> float:
    print(f"  {what}: {seconds:.2f} s", flush=True)
    return seconds


def measure(task, steps: int, batch: int) -> dict:
    lrs = lrjax.search.log_grid(3e-4, 3e-2, N).astype(np.float32)
    optimizer = lambda hp: make(hp["learning_rate"])
    kw = dict(steps=steps, batch_size=batch, progress=False)
    cache.clear()
    started = time.perf_counter()
    result = lrjax.sweep(task, optimizer, {"learning_rate": lrs}, **kw)
    cold = note("sweep cold", time.perf_counter() - started)
    warm = min(
        timed(lambda: lrjax.sweep(task, optimizer, {"learning_rate": lrs * 0.5}, **kw).train_loss) for _ in range(2)
    )
    note("sweep warm", warm)

    train = training(task, steps, batch)
    started = time.perf_counter()
    vmapped = jax.jit(jax.vmap(train)).lower(jnp.asarray(lrs)).compile()
    vmap_compile = note("jit(vmap(scan)) compile", time.perf_counter() - started)
    losses, _ = vmapped(jnp.asarray(lrs))
    vmap_run = note("jit(vmap(scan)) run", timed(lambda: vmapped(jnp.asarray(lrs * 0.5))))
    single = jax.jit(train).lower(jnp.float32(0.1)).compile()
    timed(lambda: single(jnp.float32(0.1)))
    loop = note("fair loop", timed(lambda: [single(jnp.float32(lr)) for lr in lrs * 0.5]))
    # The same work: the first steps agree to float32 rounding; later, summation order (a matmul
    # over 8 members against one at a time) is amplified by training, most at high learning rates.
    first = np.asarray(losses)[:, :10]
    agree = float(np.max(np.abs(first - result.train_loss[:, :10]) / np.abs(first)))
    return dict(
        cold=cold, warm=warm, compile=cold - warm, vmap_compile=vmap_compile, vmap_run=vmap_run, loop=loop, agree=agree
    )


def main() -> None:
    print(f"N = {N} configurations, {len(jax.devices())} CPU device(s), JAX {jax.__version__}\n")
    rows = []
    for name, (build, steps, batch) in CASES.items():
        print(name, flush=True)
        rows.append((name, measure(build(), steps, batch)))
    header = (
        f"{'task':40} {'sweep warm':>11} {'jit(vmap)':>10} {'fair loop':>10} {'warm vs vmap':>13} "
        f"{'sweep compile':>14} {'vmap compile':>13} {'compile ratio':>14} {'10 steps agree':>15}"
    )
    print("\n" + header)
    for name, m in rows:
        print(
            f"{name:40} {m['warm']:10.2f}s {m['vmap_run']:9.2f}s {m['loop']:9.2f}s {m['vmap_run'] / m['warm']:12.2f}× "
            f"{m['compile']:13.2f}s {m['vmap_compile']:12.2f}s {m['compile'] / m['vmap_compile']:13.2f}× "
            f"{m['agree']:15.1e}",
            flush=True,
        )
    print(
        "\nwarm vs vmap: jit(vmap(scan))'s run ÷ the warm sweep (target >= 1.5); compile ratio: the sweep's "
        "compile ÷ jit(vmap(scan))'s (target <= 2); 10 steps agree: the largest relative difference of "
        "the training losses of the first 10 steps between the sweep and jit(vmap(scan)), over the members."
    )


if __name__ == "__main__":
    main()
