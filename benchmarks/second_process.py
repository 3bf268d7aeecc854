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

The last lines give the bound: a process that imports lrjax and trains at the FLOP floor (the
training's FLOPs ÷ the measured matmul rate), compiling and tracing nothing, against plain
Optax. "sweep s" is the `lrjax.sweep` call; "process s" is the whole process from its start (Python,
``import jax, lrjax``, the data, the call). Every row trains the same members on the same
batches and returns every step's loss and the final held-out loss. The ratio column divides
the plain Optax process (no cache) by the row's process time. Each sweep row is the fastest of 3
processes (this machine's run-to-run noise is ±1 s); a first process gets an empty cache
directory each time, a second process one filled before. ``import lrjax`` is the best of 5
fresh processes' ``python -X importtime`` totals.

    python benchmarks/second_process.py
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable

N, STEPS, BATCH = 64, 500, 128


def worker(kind: str) -> dict:
    started = float(os.environ["BENCH_STARTED"])
    import jax
    import optax

    import lrjax

    if os.environ.get("BENCH_CACHE"):
        lrjax.enable_compilation_cache(os.environ["BENCH_CACHE"])
    sys.path.insert(0, os.path.dirname(__file__))
    from fair import batch_index, matmul_rate, plain_optax, step_flops, user_tasks

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
    out = {"call": call, "process": time.time() - started, "final": final}
    if kind == "sweep":  # after the clock: the FLOP floor of the same training
        (x, y), _ = lrjax.datasets.load_digits()
        batch = (jax.ShapeDtypeStruct((BATCH, *x.shape[1:]), x.dtype), jax.ShapeDtypeStruct((BATCH,), y.dtype))
        flops = step_flops(task, (jax.eval_shape(task.init, jax.random.key(0)), batch)) * STEPS * N
        out["floor"] = flops / matmul_rate()
    return out


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


def import_seconds() -> tuple[float, float]:
    """``import lrjax`` in the fresh process (of 5) where it was fastest: its cumulative time and
    that of the ``import jax`` inside it, seconds (``python -X importtime``)."""
    best = (float("inf"), float("inf"))
    for _ in range(5):
        err = subprocess.run([sys.executable, "-X", "importtime", "-c", "import lrjax"], capture_output=True, text=True)
        cumulative = {ln.split("|")[2].strip(): int(ln.split("|")[1]) / 1e6 for ln in err.stderr.splitlines()[1:]}
        best = min(best, (cumulative["lrjax"], cumulative["jax"]))
    return best


def best_of(repeats: int, kind: str, cache: Callable[[], str | None]) -> dict:
    """The fastest of ``repeats`` fresh processes (by process time), each given ``cache()``."""
    return min((run(kind, cache()) for _ in range(repeats)), key=lambda r: r["process"])


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

    with tempfile.TemporaryDirectory() as root, tempfile.TemporaryDirectory() as plain_cache:
        empty = lambda: tempfile.mkdtemp(dir=root)
        filled = empty()
        run("sweep", filled)
        rows = {
            "sweep, first process": best_of(3, "sweep", empty),
            "sweep, second process": best_of(3, "sweep", lambda: filled),
            "sweep, no cache": best_of(3, "sweep", lambda: None),
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
    imported, jax_import = import_seconds()
    floor = min(r["floor"] for r in rows.values() if "floor" in r)
    print(
        f"\nimport lrjax: {imported:.2f} s, of which import jax {jax_import:.2f} s (best of 5 processes, -X importtime)"
    )
    print(
        f"FLOP floor of the sweep's training: {floor:.2f} s (3 × XLA's forward FLOPs ÷ the best measured "
        f"2048² matmul rate). A process that only imports lrjax and trains at the floor, compiling nothing, "
        f"would be {plain / (imported + floor):.1f}× faster than the plain Optax process; 30× needs "
        f"plain Optax ÷ 30 = {plain / 30:.2f} s for the whole process."
    )


if __name__ == "__main__":
    main()
