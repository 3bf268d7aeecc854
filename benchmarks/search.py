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
a final evaluation), run for every trial of the seed-0 search, each for the steps it trained
there. A second baseline passes the hyperparameters as traced arguments instead (one compile in
all, the same steps): what a careful user pays one trial at a time.

On CPU the host is split into one JAX device per core (the numbers in the README were measured so).

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


def one_by_one(task, result, compile_each: bool) -> float:
    """Seconds to train ``result``'s trials one at a time with plain Optax, each for the steps it
    trained in the search (a PBT trial from its copy on; its parent's steps are its parent's),
    with the sweep's outputs: every step's loss and a final evaluation. ``compile_each``: the
    hyperparameters as Python floats, one jit compile per trial, as users write it; else traced
    arguments of one step function, compiled once (off the clock)."""
    x, y = (np.asarray(a) for a in task.train_data)
    eval_data = tuple(jnp.asarray(a) for a in task.eval_data)
    history = result.history
    first, last = history.groupby("trial").head(1), history.groupby("trial").tail(1)
    if result.method == "pbt":
        interval = result.info["interval"]
        trained = (last.set_index("trial")["steps"] - first.set_index("trial")["steps"] + interval).to_dict()
    else:
        trained = last.set_index("trial")["steps"].to_dict()
    rng, per_epoch = np.random.default_rng(0), len(x) // BATCH

    def make_step(tx_of):
        def step(params, state, xb, yb, lr, wd):
            tx = tx_of(lr, wd)
            loss, grads = jax.value_and_grad(task.loss)(params, (xb, yb))
            updates, state = tx.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        return step

    traced = jax.jit(make_step(lambda lr, wd: optax.adamw(lr, weight_decay=wd)))
    params = task.init(jax.random.key(0))
    jax.block_until_ready(traced(params, optax.adamw(0.1).init(params), x[:BATCH], y[:BATCH], 0.1, 0.1))
    started = time.perf_counter()
    for trial, steps in trained.items():
        lr, wd = (float(np.asarray(result.configs[trial][k])) for k in ("learning_rate", "weight_decay"))
        params = task.init(jax.random.key(0))
        state = optax.adamw(lr, weight_decay=wd).init(params)
        if compile_each:
            fixed = jax.jit(make_step(lambda _lr, _wd, lr=lr, wd=wd: optax.adamw(lr, weight_decay=wd)))
            step = lambda p, s, xb, yb, fixed=fixed: fixed(p, s, xb, yb, 0.0, 0.0)
        else:
            step = lambda p, s, xb, yb, lr=lr, wd=wd: traced(p, s, xb, yb, lr, wd)
        losses = []
        for t in range(int(steps)):
            if t % per_epoch == 0:
                order = rng.permutation(len(x))
            idx = order[(t % per_epoch) * BATCH : (t % per_epoch + 1) * BATCH]
            params, state, loss = step(params, state, x[idx], y[idx])
            losses.append(loss)
        jax.block_until_ready((jnp.stack(losses), task.loss(params, eval_data)))
    return time.perf_counter() - started


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
    print(
        f"\n{'policy':>9} {'best loss':>10} {'seeds range':>15} {'trials':>7} {'member-steps':>13} {'util':>5} "
        f"{'cold s':>7} {'warm s':>7} | one by one, seed 0: {'compile each':>12} {'vs cold':>7} "
        f"{'compile once':>12} {'vs cold':>7}"
    )
    for name in ("random", "bayesian", "halving", "pbt"):
        cache.clear()
        started = time.perf_counter()
        first = policies(task, 0)[name]()
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
        each, once = one_by_one(task, first, True), one_by_one(task, first, False)
        print(
            f"{name:>9} {np.mean(best):>10.4f} {f'{min(best):.4f}-{max(best):.4f}':>15} {np.mean(trials):>7.0f} "
            f"{np.mean(steps):>13.0f} {np.mean(util):>5.2f} {cold:>7.2f} {np.mean(seconds):>7.2f} | {'':>19} "
            f"{each:>12.1f} {each / cold:>6.1f}x {once:>12.1f} {once / cold:>6.1f}x"
        )


if __name__ == "__main__":
    main()
