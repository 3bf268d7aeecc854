"""Benchmark: the same sweep run again in a new process, with JAX's persistent compilation cache
(`lrjax.enable_compilation_cache`) and without, against plain Optax; and the time of
``import lrjax``.

Each row is a fresh Python process running the user-written MLP of ``benchmarks/fair.py``
(64-128-10, its own init and loss, SGD with momentum 0.9), 64 learning rates × 500 steps,
batch 128, on JAX's default CPU device setting:

  sweep, first process     a cache directory that is empty: everything is traced and compiled
  sweep, second process    the same directory, now filled by the first: programs are loaded
  sweep, no cache          the cache off (what every process paid before)
  plain Optax              as users write it (``fair.plain_optax``: a compile per learning rate,
                           a Python loop over steps), no cache, one learning rate after another
  plain Optax, second      the same with the cache on, in a second process over a filled cache

"sweep s" is the `lrjax.sweep` call; "process s" is the whole process from its start (Python,
``import jax, lrjax``, the data, the call). Every row trains the same members on the same
batches and returns every step's loss and the final held-out loss. The ratio column divides
the plain Optax process (no cache) by the row's process time. ``import lrjax`` is the best of 5
fresh processes' ``python -X importtime`` totals.

    python benchmarks/second_process.py
"""

from __future__ import annotations

import json
import math
import os
import re
import subprocess
import sys
import tempfile
import time

N, STEPS, BATCH = 64, 500, 128


def worker(kind: str) -> dict:
    started = float(os.environ["BENCH_STARTED"])
    import jax
    import optax

    import lrjax

    if os.environ.get("BENCH_CACHE"):
        lrjax.enable_compilation_cache(os.environ["BENCH_CACHE"])
    sys.path.insert(0, os.path.dirname(__file__))
    from fair import batch_index, plain_optax, user_tasks

    task = user_tasks()["user MLP, SGD-momentum"]
    lrs = lrjax.search.log_grid(1e-4, 1.0, N)
    t0 = time.perf_counter()
    if kind == "sweep":
        optimizer = lambda hp: optax.sgd(hp["learning_rate"], momentum=0.9)
        result = lrjax.sweep(task, optimizer, {"learning_rate": lrs}, steps=STEPS, batch_size=BATCH, progress=False)
        final = [float(v) for v in result.final("loss")]
    else:
        (x, y), (xv, yv) = lrjax.datasets.load_digits()
        index = batch_index(STEPS, BATCH)
        make = lambda lr: optax.sgd(lr, momentum=0.9)
        runs = [plain_optax(task, make, float(lr), index, (x, y), (xv, yv)) for lr in lrs]
        final = [float(jax.block_until_ready(loss)) for _, loss in runs]
    call = time.perf_counter() - t0
    return {"call": call, "process": time.time() - started, "final": final}


def run(kind: str, cache: str | None) -> dict:
    env = dict(os.environ, BENCH_STARTED=repr(time.time()))
    env.pop("BENCH_CACHE", None)
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    if cache:
        env["BENCH_CACHE"] = cache
    done = subprocess.run([sys.executable, __file__, "--worker", kind], env=env, capture_output=True, text=True)
    if done.returncode:
        raise RuntimeError(done.stderr[-3000:])
    return json.loads(done.stdout.strip().splitlines()[-1])


def import_seconds() -> float:
    """The best of 5 fresh processes' cumulative ``import lrjax`` time (``python -X importtime``)."""
    best = float("inf")
    for _ in range(5):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lrjax"], capture_output=True, text=True)
        line = [ln for ln in err.stderr.splitlines() if re.search(r"\|\s+lrjax$", ln)][-1]
        best = min(best, int(line.split("|")[1]) / 1e6)
    return best


def agreement(final: list[float], reference: list[float]) -> str:
    """How close two runs' final losses are where both are finite (the sweep freezes a diverging
    member at its last finite parameters; plain Optax carries NaN on)."""
    pairs = [(a, b) for a, b in zip(final, reference, strict=True) if math.isfinite(a) and math.isfinite(b)]
    gap = max((abs(a - b) for a, b in pairs), default=0.0)
    return f"{len(pairs)} finite pairs, largest gap {gap:.1e}"


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(worker(sys.argv[2])))
        return
    import jax

    with tempfile.TemporaryDirectory() as sweep_cache, tempfile.TemporaryDirectory() as plain_cache:
        rows = {
            "sweep, first process": run("sweep", sweep_cache),
            "sweep, second process": run("sweep", sweep_cache),
            "sweep, no cache": run("sweep", None),
            "plain Optax": run("plain", None),
        }
        run("plain", plain_cache)  # fills its cache
        rows["plain Optax, second process"] = run("plain", plain_cache)
    plain = rows["plain Optax"]["process"]
    reference = rows["sweep, no cache"]["final"]
    print(f"# jax {jax.__version__}; user MLP, SGD-momentum, {N} learning rates × {STEPS} steps × batch {BATCH}\n")
    print(
        "| run | sweep or loop s | process s | plain Optax process ÷ this process | finals equal the uncached sweep's |"
    )
    print("|---|---:|---:|---:|---|")
    for name, r in rows.items():
        same = "yes, bitwise" if r["final"] == reference else agreement(r["final"], reference)
        print(f"| {name} | {r['call']:.2f} | {r['process']:.2f} | {plain / r['process']:.1f}× | {same} |")
    print(f"\nimport lrjax: {import_seconds():.2f} s (best of 5 processes, python -X importtime)")


if __name__ == "__main__":
    main()
