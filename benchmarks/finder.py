"""Benchmark: the range test's seeds in one program, and how good its suggestion is.

Measured in one run, on the built-in digits MLP, batch 64:

  cost    lrjax.find_lr with 1 seed and with 8 seeds (100 steps, 1e-7 … 10), cold (compile
          included, program cache cleared) and warm (best of 5): what 8 curves cost against 1.
  bound   what 8 seeds within 1.5× of one seed's warm time would ask of each extra seed: its
          100 steps in a fourteenth of the one-seed run, i.e. its model FLOPs (6 · batch ·
          weights per step) at a rate set against the f32 matmul rate measured on 2048²
          matrices, the most this machine's matmuls reach, and on the model's own 64×64
          matrices.
  regret  for Adam and for SGD with momentum 0.9: the valley suggestion of an 8-seed range
          test (200 steps) trained 1000 steps, against the best of a 32-point log grid over
          the same range trained the same way (2 seeds each, final eval loss, mean over seeds).

JAX's default CPU setting (one device; the engine runs a chunk's parts on every core itself,
`lrjax.engine.parts`), or ``--cpu-devices N`` to split the host into N JAX devices.

    python benchmarks/finder.py
    python benchmarks/finder.py --cpu-devices 2 --skip-regret
"""

from __future__ import annotations

import argparse
import platform
import time

import jax
import numpy as np
import optax
from sweep import matmul_flops_per_second, model_flops, timed

import lrjax
from lrjax.engine import cache

OPTIMIZERS = {
    "adam": lambda hp: optax.adam(hp["learning_rate"]),
    "sgd-momentum": lambda hp: optax.sgd(hp["learning_rate"], momentum=0.9),
}


def cost(task) -> None:
    opt = OPTIMIZERS["adam"]
    run = lambda seeds: lrjax.find_lr(task, opt, seeds=seeds, batch_size=64, progress=False)
    print("\nrange test, 100 steps, seconds (cold: compile included; warm: best of 5)")
    print(f"{'seeds':>6} {'cold':>8} {'warm':>8}")
    # JAX's own first-use costs (backend start, its internal jits) go to a throwaway run on
    # another task, so that "cold" is this task's tracing and compilation for either count.
    lrjax.find_lr(lrjax.datasets.quadratic(), lambda hp: optax.sgd(hp["learning_rate"]), progress=False)
    rows = {}
    for seeds in (1, 8):
        cache.clear()
        started = time.perf_counter()
        run(seeds)
        cold = time.perf_counter() - started
        warm = []
        for _ in range(5):
            started = time.perf_counter()
            run(seeds)
            warm.append(time.perf_counter() - started)
        rows[seeds] = (cold, min(warm))
        print(f"{seeds:>6} {cold:>8.3f} {min(warm):>8.3f}")
    print(f"8 seeds / 1 seed: cold {rows[8][0] / rows[1][0]:.2f}x, warm {rows[8][1] / rows[1][1]:.2f}x")
    one, eight = rows[1][1], rows[8][1]
    budget = one * 0.5 / 7  # 8 seeds <= 1.5x one seed: 7 extra seeds in half a one-seed run
    flops = model_flops(task, 100, 64, 1)
    rate = max(matmul_flops_per_second() for _ in range(3))
    print(
        f"each extra seed costs {(eight - one) / 7 * 1e3:.2f} ms warm; within 1.5x of one seed it may cost "
        f"{budget * 1e3:.2f} ms: {flops / 1e6:.0f} MFLOP at {flops / budget / 1e9:.0f} GFLOP/s, against "
        f"{rate / 1e9:.0f} GFLOP/s measured on 2048x2048 matmuls and {small_matmul_rate() / 1e9:.0f} GFLOP/s "
        "on the model's own 64x64 ones (8 at a time, one core)"
    )


def small_matmul_rate(seeds: int = 8, size: int = 64, repeats: int = 1000) -> float:
    """FLOP/s of ``seeds`` batched (size, size)·(size, size) matmuls, the shape of the digits
    MLP's first layer at batch 64, chained ``repeats`` times in one program."""
    a = jax.random.normal(jax.random.key(0), (seeds, size, size))
    b = jax.random.normal(jax.random.key(1), (seeds, size, size)) / size
    step = lambda i, c: jax.numpy.tanh(jax.numpy.einsum("sij,sjk->sik", c, b))
    chain = jax.jit(lambda a: jax.lax.fori_loop(0, repeats, step, a))
    jax.block_until_ready(chain(a))
    best = min(timed(lambda: chain(a))[0] for _ in range(5))
    return 2 * seeds * size**3 * repeats / best


def regret(task) -> None:
    print("\nvalley of an 8-seed range test (200 steps) vs a 32-point grid, 1000 steps, final eval loss")
    print(f"{'optimizer':>13} {'valley':>9} {'spread':>7} {'loss':>8} {'grid best lr':>13} {'loss':>8} {'ratio':>6}")
    for name, opt in OPTIMIZERS.items():
        finder = lrjax.find_lr(task, opt, steps=200, seeds=8, batch_size=64, progress=False)
        grid = np.append(lrjax.search.log_grid(1e-7, 10.0, 32), finder.suggestion)
        result = lrjax.sweep(task, opt, {"learning_rate": grid}, steps=1000, batch_size=64, seeds=2, progress=False)
        final = result.final("loss").reshape(33, 2)
        final = np.where(np.isfinite(final), final, np.inf).mean(1)
        best = int(np.argmin(final[:-1]))
        print(
            f"{name:>13} {finder.suggestion:>9.3g} {finder.spread['valley'][0]:>7.2f} {final[-1]:>8.4f} "
            f"{grid[best]:>13.3g} {final[best]:>8.4f} {final[-1] / final[best]:>6.3f}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cpu-devices", type=int, default=None, help="split the CPU into this many JAX devices")
    parser.add_argument("--skip-regret", action="store_true", help="measure the cost only")
    args = parser.parse_args()
    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)
    print(f"jax {jax.__version__}, {platform.processor() or platform.machine()}, {len(jax.devices())} device(s)")
    task = lrjax.datasets.digits_mlp()
    cost(task)
    if not args.skip_regret:
        regret(task)


if __name__ == "__main__":
    main()
