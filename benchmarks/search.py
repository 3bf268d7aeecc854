"""Benchmark: four search policies with equal budgets, and what the same trials cost one by one.

On the built-in digits MLP with AdamW (batch 64), learning rate log-uniform on [1e-5, 1] and
weight decay log-uniform on [1e-6, 1e-1], every policy gets 32,000 member-steps:

  random    32 configurations × 1000 steps, one sweep
  bayesian  32 Optuna TPE trials × 1000 steps, 4 rounds of 8
  halving   16 slots for 2000 clock steps, rungs 111, 333, 1000, η = 3, refill
  pbt       32 members × 1000 steps, exploit/explore every 100

For each, over 3 search seeds: the best final held-out loss (mean over the seeds of the search,
with the range), the trials run, and the wall time: cold (the program cache cleared: tracing and
compilation included) and warm (mean of the three). The sequential baseline is the same trials
trained one at a time with plain Optax as users write it (hyperparameters as Python floats, so
one jit compile per trial; a Python loop over steps; batches from a NumPy permutation per epoch;
a final evaluation): its compile and step times are measured on 4 trials and multiplied out by
each policy's trials and member-steps (an extrapolation, said as such in the table). A second
baseline passes the hyperparameters as traced arguments instead (one compile in all, the same
steps): what a careful user pays one trial at a time.

On CPU the host is split into one JAX device per core, as the README recommends.

    python benchmarks/search.py
"""

from __future__ import annotations

import os
import platform
import time

import jax

jax.config.update("jax_num_cpu_devices", os.cpu_count() or 1)

import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402
import optuna  # noqa: E402

import lrjax  # noqa: E402
from lrjax import search  # noqa: E402
from lrjax.engine import cache  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.WARNING)
SPACE = {"learning_rate": search.log_uniform(1e-5, 1.0), "weight_decay": search.log_uniform(1e-6, 1e-1)}
ADAMW = lambda hp: optax.adamw(hp["learning_rate"], weight_decay=hp["weight_decay"])
STEPS, BATCH = 1000, 64


def policies(task, seed):
    common = dict(batch_size=BATCH, seed=seed, progress=False)
    return {
        "random": lambda: search.SearchResult.from_sweep(
            lrjax.sweep(task, ADAMW, search.random(SPACE, 32, seed=seed), steps=STEPS, **common)
        ),
        "bayesian": lambda: search.bayesian(task, ADAMW, SPACE, trials=32, batch=8, steps=STEPS, **common),
        "halving": lambda: search.successive_halving(
            task, ADAMW, SPACE, n=16, min_steps=111, max_steps=STEPS, steps=2 * STEPS, **common
        ),
        "pbt": lambda: search.pbt(task, ADAMW, SPACE, population=32, steps=STEPS, interval=100, **common),
    }


def sequential_costs(task, trials: int = 4) -> tuple[float, float]:
    """(seconds of jit compile per trial, seconds per step) of plain Optax, one trial at a time."""
    x, y = (np.asarray(a) for a in task.train_data)
    xv, yv = (np.asarray(a) for a in task.eval_data)
    rng = np.random.default_rng(0)
    compile_s, step_s = [], []
    for lr, wd in zip(np.geomspace(1e-3, 3e-2, trials), np.geomspace(1e-5, 1e-2, trials), strict=True):
        params = task.init(jax.random.key(0))
        tx = optax.adamw(float(lr), weight_decay=float(wd))
        state = tx.init(params)

        @jax.jit
        def step(params, state, xb, yb, tx=tx):
            loss, grads = jax.value_and_grad(task.loss)(params, (xb, yb))
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        per_epoch = len(x) // BATCH
        order = rng.permutation(len(x))
        started = time.perf_counter()
        losses = []  # the sweep's outputs: every step's loss, and the final evaluation
        for t in range(STEPS):
            if t % per_epoch == 0:
                order = rng.permutation(len(x))
            idx = order[(t % per_epoch) * BATCH : (t % per_epoch + 1) * BATCH]
            params, state, loss = step(params, state, x[idx], y[idx])
            losses.append(loss)
            if t == 0:
                jax.block_until_ready(loss)
                first = time.perf_counter() - started
                steady_from = time.perf_counter()
        jax.block_until_ready((jnp.stack(losses), task.loss(params, (jnp.asarray(xv), jnp.asarray(yv)))))
        steady = (time.perf_counter() - steady_from) / (STEPS - 1)
        step_s.append(steady)
        compile_s.append(first - steady)
    return float(np.mean(compile_s)), float(np.mean(step_s))


def main() -> None:
    print(f"jax {jax.__version__}, optuna {optuna.__version__}, {platform.machine()}, {len(jax.devices())} device(s)")
    task = lrjax.datasets.digits_mlp()
    lrjax.sweep(
        lrjax.datasets.quadratic(),
        lambda hp: optax.sgd(hp["learning_rate"]),
        {"learning_rate": [0.1]},
        steps=10,
        progress=False,
    )  # JAX's own first-use costs, off the clock
    compile_s, step_s = sequential_costs(task)
    print(f"plain Optax, one trial at a time: {compile_s:.3f} s compile per trial, {step_s * 1e3:.3f} ms per step")
    print(
        f"\n{'policy':>9} {'best loss':>10} {'seeds range':>15} {'trials':>7} {'member-steps':>13} {'util':>5} "
        f"{'cold s':>7} {'warm s':>7} | one by one (extrapolated): {'compile each':>12} {'vs cold':>7} "
        f"{'compile once':>12} {'vs cold':>7}"
    )
    for name in ("random", "bayesian", "halving", "pbt"):
        cache.clear()
        started = time.perf_counter()
        policies(task, 0)[name]()
        cold = time.perf_counter() - started
        best, seconds, trials, steps, util = [], [], [], [], []
        for seed in range(3):
            started = time.perf_counter()
            result = policies(task, seed)[name]()
            seconds.append(time.perf_counter() - started)
            best.append(result.best()["loss"])
            trials.append(result.info["trials"])
            steps.append(result.info["member_steps"])
            util.append(result.info["utilization"])
        each = np.mean(trials) * compile_s + np.mean(steps) * step_s
        once = compile_s + np.mean(steps) * step_s
        print(
            f"{name:>9} {np.mean(best):>10.4f} {f'{min(best):.4f}-{max(best):.4f}':>15} {np.mean(trials):>7.0f} "
            f"{np.mean(steps):>13.0f} {np.mean(util):>5.2f} {cold:>7.2f} {np.mean(seconds):>7.2f} | {'':>26} "
            f"{each:>12.1f} {each / cold:>6.1f}x {once:>12.1f} {once / cold:>6.1f}x"
        )


if __name__ == "__main__":
    main()
