"""Benchmark: the engine at another revision against the working tree, on `fair.py`'s four tasks.

A refactoring must leave the engine's speed as it was. This runs `fair.py`'s sweeps (the
built-in digits MLP with Adam and CNN, and the user-written MLP and CNN with SGD-momentum; the
same N, steps and batch) with lrjax from a git revision (checked out into a temporary worktree)
and from the working tree, each in its own process, alternating ``old, new, old, new, ...`` so
that drift of the host's speed falls on both alike. Each process reports `fair.py`'s "sweep
warm" (best of 3 sweeps of new values, programs compiled) and "sweep cold" (the engine's cache
emptied: tracing and compilation included) per task; the table gives each side's best over its
rounds and the ratio new ÷ old (below 1: the working tree is faster).

    python benchmarks/versus.py 957c5e6 --rounds 3
"""

from __future__ import annotations

import argparse
import json
import os
import pathlib
import subprocess
import sys
import tempfile
import time

HERE = pathlib.Path(__file__).resolve().parent
ROOT = HERE.parent


def _import_from(source: pathlib.Path) -> None:
    """Make ``import lrjax`` find the copy in ``source``: it is first on ``sys.path``
    (PYTHONPATH), but an editable install's finder comes before the path, so it goes."""
    sys.meta_path[:] = [f for f in sys.meta_path if not getattr(f, "__module__", "").startswith("__editable__")]
    import lrjax

    assert pathlib.Path(lrjax.__file__).resolve().is_relative_to(source.resolve()), (lrjax.__file__, source)


def _measure(task, make, n: int, steps: int, batch: int) -> dict[str, float]:
    """`fair.py`'s sweep cold (cache emptied) and warm (best of 3, new values) seconds."""
    import jax

    import lrjax
    from lrjax.engine import cache

    def timed(fn) -> float:
        started = time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - started

    lrs = lrjax.search.log_grid(1e-4, 1.0, n)
    optimizer = lambda hp: make(hp["learning_rate"])
    kw = dict(steps=steps, batch_size=batch, progress=False)
    cache.clear()
    cold = timed(lambda: lrjax.sweep(task, optimizer, {"learning_rate": lrs}, **kw).train_loss)
    half = {"learning_rate": lrs * 0.5}
    warm = min(timed(lambda: lrjax.sweep(task, optimizer, half, **kw).train_loss) for _ in range(3))
    return {"warm": warm, "cold": cold}


def worker() -> dict[str, dict[str, float]]:
    """This process's sweep warm and cold seconds per task, with the lrjax of ``LRJAX_SOURCE``."""
    _import_from(pathlib.Path(os.environ["LRJAX_SOURCE"]))
    import optax
    from fair import SIZES, user_tasks

    import lrjax

    momentum = lambda lr: optax.sgd(lr, momentum=0.9)
    users = user_tasks()
    cases = {
        "builtin MLP, Adam": (lrjax.datasets.digits_mlp(), optax.adam, *SIZES["MLP"]),
        "user MLP, SGD-momentum": (users["user MLP, SGD-momentum"], momentum, *SIZES["MLP"]),
        "builtin CNN, SGD-momentum": (lrjax.datasets.digits_cnn(), momentum, *SIZES["CNN"]),
        "user CNN, SGD-momentum": (users["user CNN, SGD-momentum"], momentum, *SIZES["CNN"]),
    }
    return {name: _measure(*case) for name, case in cases.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("revision", nargs="?", help="the git revision to compare the working tree with")
    parser.add_argument("--rounds", type=int, default=3, help="processes per side, alternating (default 3)")
    parser.add_argument("--worker", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.worker:
        print(json.dumps(worker()))
        return
    if not args.revision:
        parser.error("a revision is needed, e.g. python benchmarks/versus.py HEAD~3")
    with tempfile.TemporaryDirectory() as tmp:
        old = pathlib.Path(tmp) / "old"
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(old), args.revision], check=True)
        try:
            sides = {"old": old, "new": ROOT}
            runs: dict[str, list[dict]] = {"old": [], "new": []}
            for _ in range(args.rounds):
                for side, src in sides.items():
                    # lrjax from ``src`` (ahead of an installed one), fair.py's tasks from here.
                    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(src), str(HERE)]), LRJAX_SOURCE=str(src))
                    cmd = [sys.executable, __file__, "--worker"]
                    done = subprocess.run(cmd, env=env, capture_output=True, text=True, check=False)
                    if done.returncode:
                        raise RuntimeError(done.stderr[-3000:])
                    runs[side].append(json.loads(done.stdout.strip().splitlines()[-1]))
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(old)], check=False)
    head = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True)
    print(
        f"# old: {args.revision}; new: the working tree at {head.stdout.strip()}; {args.rounds} rounds, alternating\n"
    )
    print("| task | warm old s | warm new s | new ÷ old | cold old s | cold new s | new ÷ old |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for task in runs["new"][0]:
        best = {side: {k: min(r[task][k] for r in runs[side]) for k in ("warm", "cold")} for side in runs}
        print(
            f"| {task} | {best['old']['warm']:.3f} | {best['new']['warm']:.3f} | "
            f"{best['new']['warm'] / best['old']['warm']:.3f} | {best['old']['cold']:.2f} | {best['new']['cold']:.2f} | "
            f"{best['new']['cold'] / best['old']['cold']:.3f} |"
        )
    spread = {
        side: {t: max(r[t]["warm"] for r in runs[side]) / min(r[t]["warm"] for r in runs[side]) for t in runs[side][0]}
        for side in runs
    }
    print("\nround-to-round spread of warm (max ÷ min), the noise to judge the ratios by:")
    for side, per_task in spread.items():
        print(f"  {side}: " + ", ".join(f"{t} {s:.3f}" for t, s in per_task.items()))


if __name__ == "__main__":
    main()
