"""A/B of the warm sweep: the same sweep with the lrjax in this tree and with the lrjax in
another checkout, in alternating processes on the same machine.

    git worktree add /tmp/before <commit>
    python benchmarks/warm_ab.py /tmp/before --rounds 3

Each process runs a 64-learning-rate Adam sweep on the digits MLP (1000 steps, batch 64, one JAX
device per CPU core), once cold and then 7 times warm with new values, and prints the compile
seconds and the best and median warm seconds.
"""

from __future__ import annotations

import argparse
import pathlib
import subprocess
import sys

ONE = """
import sys, time
sys.path.insert(0, sys.argv[1])
import jax
jax.config.update("jax_num_cpu_devices", 2)
import numpy as np, optax, lrjax
task = lrjax.datasets.digits_mlp(hidden=(64,))
opt = lambda hp: optax.adam(hp["learning_rate"])
lrs = lrjax.search.log_grid(1e-4, 1.0, 64)
kw = dict(steps=1000, batch_size=64, progress=False)
first = lrjax.sweep(task, opt, {"learning_rate": lrs}, **kw)
warm = []
for _ in range(7):
    started = time.perf_counter()
    lrjax.sweep(task, opt, {"learning_rate": lrs * 0.5}, **kw)
    warm.append(time.perf_counter() - started)
print(f"compile {first.info['compile_seconds']:.3f} s, warm best {min(warm):.3f} s, median {np.median(warm):.3f} s")
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("before", help="a checkout of the lrjax to compare with")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    trees = {"before": pathlib.Path(args.before).resolve(), "after": pathlib.Path(__file__).resolve().parents[1]}
    for _ in range(args.rounds):
        for name, tree in trees.items():
            out = subprocess.run([sys.executable, "-c", ONE, str(tree)], capture_output=True, text=True, check=True)
            print(f"{name:6s} {out.stdout.strip()}")


if __name__ == "__main__":
    main()
