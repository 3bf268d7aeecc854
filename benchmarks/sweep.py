"""Benchmark: an N-configuration learning-rate sweep against the ways people run it today.

Everything is measured in one run, on one machine, on the digits MLP with Adam, minibatch 64:

  sweep      lrjax.sweep: N configurations in one compiled, vmapped, scanned program.
  (a) scans  the same N configurations one after another, each a jitted lax.scan over steps
             (the learning rate is a traced argument, so this compiles once, off the clock),
             gathering the sweep's own batches from a precomputed index array.
  Every run produces the same outputs: the training loss at each step and a final evaluation.
  (b) optax  plain Optax as users write it: the learning rate a Python float, a jitted step
             function per configuration (one compile per value), a Python loop over steps,
             batches drawn with NumPy.
  (c) floor  model FLOPs / measured matmul throughput: 6 · batch · (weights) FLOPs per member
             step (forward 2, backward 4), divided by the best f32 matmul rate measured here.

Also: compile time and XLA's memory analysis of the compiled chunk program as N grows, and the
compile time of a sweep re-run with its optimizer lambda written anew (a notebook cell run again).

JAX's default CPU setting (one device): the sweep runs its chunk in parts on every core itself
(`lrjax.engine.parts`); ``--cpu-devices N`` splits the host into N JAX devices instead, over which
the sweep shards its members. Everything runs in that one process; the baselines train one
configuration at a time.

    python benchmarks/sweep.py                  # N = 64, 1000 steps, best of 5
    python benchmarks/sweep.py --num 1024 --scaling 64,256,1024,4096   # on a GPU
"""

from __future__ import annotations

import argparse
import json
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax

import lrjax
import lrjax.datasets as D
from lrjax.engine import cache
from lrjax.engine.program import order_words, seed_keys
from lrjax.engine.shuffle import epoch_order


def timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - start, out


def matmul_flops_per_second(size: int = 2048, repeats: int = 10) -> float:
    a = jax.random.normal(jax.random.key(0), (size, size), jnp.float32)
    f = jax.jit(lambda x: x @ x)
    jax.block_until_ready(f(a))
    best = min(timed(lambda: f(a))[0] for _ in range(repeats))
    return 2 * size**3 / best


def model_flops(task, steps: int, batch: int, members: int) -> float:
    weights = sum(x.size for x in jax.tree.leaves(task.init(jax.random.key(0))) if x.ndim == 2)
    return 6.0 * batch * weights * steps * members


def epoch_index(task, steps: int, batch: int) -> np.ndarray:
    """(steps, batch) the example indices the sweep draws for seed 0 (its epoch-by-epoch order),
    precomputed so that a baseline gathers the same batches at the cost of an index lookup."""
    n = task.num_train
    per_epoch = n // batch
    words = order_words(seed_keys(0, 1)[0])
    order = np.concatenate([np.asarray(epoch_order(words, e, n)) for e in range(-(-steps // per_epoch))])
    return np.stack([order[(t // per_epoch) * n + (t % per_epoch) * batch :][:batch] for t in range(steps)])


def scans_one_after_another(task, lrs, steps: int, batch: int) -> float:
    x, y = task.train_data
    index = jnp.asarray(epoch_index(task, steps, batch))

    def train(lr, key):
        opt = optax.adam(lr)
        params = task.init(key)

        def step(carry, idx):
            params, state = carry
            loss, grads = jax.value_and_grad(task.loss)(params, (x[idx], y[idx]))
            updates, state = opt.update(grads, state, params)
            return (optax.apply_updates(params, updates), state), loss

        (params, _), losses = jax.lax.scan(step, (params, opt.init(params)), index)
        return losses, task.metrics(params, task.eval_data)  # the same outputs as the sweep

    train = jax.jit(train)
    key = jax.random.key(0)
    jax.block_until_ready(train(lrs[0], key))  # one compile in all (the learning rate is traced), off the clock
    return timed(lambda: [train(lr, key) for lr in lrs])[0]


def plain_optax(task, lrs, steps: int, batch: int) -> float:
    x, y = (np.asarray(a) for a in task.train_data)
    per_epoch = len(x) // batch

    def one(lr: float):
        opt = optax.adam(lr)  # a Python float: baked into the compiled step
        params = task.init(jax.random.key(0))
        state = opt.init(params)
        rng = np.random.default_rng(0)

        @jax.jit
        def step(params, state, batch):
            loss, grads = jax.value_and_grad(task.loss)(params, batch)
            updates, state = opt.update(grads, state, params)
            return optax.apply_updates(params, updates), state, loss

        losses = []  # kept on device, stacked at the end: no synchronisation per step
        for t in range(steps):
            if t % per_epoch == 0:
                order = rng.permutation(len(x))
            idx = order[(t % per_epoch) * batch : (t % per_epoch + 1) * batch]
            params, state, loss = step(params, state, (x[idx], y[idx]))
            losses.append(loss)
        return jnp.stack(losses), task.metrics(params, task.eval_data)  # the same outputs as the sweep

    return timed(lambda: [one(float(lr)) for lr in lrs])[0]


def memory_of_chunk(task, optimizer, members: int, batch: int) -> dict:
    pop = lrjax.Population(task, optimizer, {"learning_rate": np.zeros(members, np.float32)}, batch_size=batch)
    compiled = pop._programs.executable("chunk", pop._device_hps)
    count = max(pop._layout.parts)  # a chunk in parts (lrjax.engine.parts): that many part programs run at once
    mem = (compiled.chunk if count > 1 else compiled).memory_analysis()
    return {
        "argument_bytes": count * int(mem.argument_size_in_bytes),
        "output_bytes": count * int(mem.output_size_in_bytes),
        "temp_bytes": count * int(mem.temp_size_in_bytes),
    }


def rerun_compile_seconds(task, lrs, kw) -> tuple[float, float, float]:
    """Compile seconds (tracing + compiling, wall) of a sweep with a freshly written optimizer
    lambda; of the same sweep with the lambda written anew in the same place (a notebook cell run
    again); and with it written on another line (a new function: traced again, compiled nothing)."""
    source = 'optimizer = lambda hp: optax.adam(hp["learning_rate"])'
    seconds = []
    cache.clear()
    for line in (0, 0, 1):
        scope = {"optax": optax}
        exec("\n" * line + source, scope)
        seconds.append(lrjax.sweep(task, scope["optimizer"], {"learning_rate": lrs}, **kw).info["compile_seconds"])
    return tuple(seconds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--num", type=int, default=64)
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--repeats", type=int, default=5, help="repeat each measurement, keep the fastest")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--hidden", type=int, default=64)
    parser.add_argument("--scaling", default="16,64,256,1024", help="N values for compile time and memory")
    parser.add_argument("--skip-plain", action="store_true", help="skip (b), which is slow for large N")
    parser.add_argument("--json", default=None, help="also write the numbers to this file")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=None,
        help="on CPU, split the host into this many JAX devices, the sweep's members sharded over them "
        "(default: JAX's own setting, one device)",
    )
    args = parser.parse_args()
    if args.cpu_devices:
        jax.config.update("jax_num_cpu_devices", args.cpu_devices)

    task = D.digits_mlp(hidden=(args.hidden,))
    optimizer = lambda hp: optax.adam(hp["learning_rate"])
    lrs = lrjax.search.log_grid(1e-4, 1.0, args.num)
    kw = dict(steps=args.steps, batch_size=args.batch_size, progress=False)
    device = jax.devices()[0]
    print(
        f"# lrjax sweep benchmark: {device.platform} ({device.device_kind}), {jax.local_device_count()} device(s), "
        f"{platform.processor() or platform.machine()}, jax {jax.__version__}"
    )
    print(
        f"# digits MLP 64-{args.hidden}-10, Adam, batch {args.batch_size}, {args.steps} steps, N = {args.num}, "
        f"best of {args.repeats}\n"
    )

    # The machine may be shared: each measurement is repeated and the fastest kept (noise only
    # ever adds time). "Cold" runs empty the engine's cache first, so everything compiles.
    def sweep_cold():
        cache.clear()
        return timed(lambda: lrjax.sweep(task, optimizer, {"learning_rate": lrs}, **kw))

    colds = [sweep_cold() for _ in range(args.repeats)]
    cold, first = min(colds, key=lambda c: c[0])
    warm = min(
        timed(lambda: lrjax.sweep(task, optimizer, {"learning_rate": lrs * 0.5}, **kw))[0]
        for _ in range(args.repeats + 1)
    )
    scans = min(scans_one_after_another(task, lrs, args.steps, args.batch_size) for _ in range(args.repeats))
    plain = (
        None
        if args.skip_plain
        else min(plain_optax(task, lrs, args.steps, args.batch_size) for _ in range(args.repeats))
    )
    reruns = [rerun_compile_seconds(task, lrs, kw) for _ in range(args.repeats)]
    first_compile, rerun_compile, moved_compile = (min(r[i] for r in reruns) for i in range(3))
    rate = max(matmul_flops_per_second() for _ in range(args.repeats))
    floor = model_flops(task, args.steps, args.batch_size, args.num) / rate

    rows = [
        ("lrjax.sweep, end to end (with compile)", cold, cold / cold),
        ("lrjax.sweep, warm (new values, no compile)", warm, warm / cold),
        ("(a) jitted scan per config, one after another", scans, scans / cold),
        ("(b) plain Optax, Python-float LR, loop per config", plain, None if plain is None else plain / cold),
        ("(c) FLOP floor: model FLOPs / matmul rate", floor, floor / cold),
    ]
    print("| run | seconds | ÷ sweep end to end |\n|---|---:|---:|")
    for name, seconds, ratio in rows:
        if seconds is not None:
            print(f"| {name} | {seconds:.2f} | {ratio:.2f} |")
    print(
        f"\nsweep compile: {first.info['compiles']} compilations, {first.info['compile_seconds']:.2f} s; "
        f"matmul rate {rate / 1e9:.1f} GFLOP/s; warm sweep = {warm / floor:.2f} × the FLOP floor, "
        f"end to end = {cold / floor:.2f} × the floor"
    )
    if plain is not None:
        print(f"speed-ups of the sweep: {scans / cold:.1f}× vs (a), {plain / cold:.1f}× vs (b)")
    print(
        f"compile seconds of a sweep {first_compile:.3f}; with its optimizer lambda written anew: in the same place "
        f"(a notebook cell run again) {rerun_compile:.3f} = {rerun_compile / first_compile:.0%}, on another line "
        f"{moved_compile:.3f} = {moved_compile / first_compile:.0%}"
    )

    print(
        "\n| N | compile s | sweep s (cold) | chunk program: arguments MiB | temporaries MiB |\n|---:|---:|---:|---:|---:|"
    )
    scaling = []
    for n in [int(v) for v in args.scaling.split(",")]:
        cache.clear()  # nothing cached
        configs = {"learning_rate": lrjax.search.log_grid(1e-4, 1.0, n)}
        seconds, result = timed(lambda: lrjax.sweep(task, optimizer, configs, **kw))  # noqa: B023 (called at once)
        mem = memory_of_chunk(task, optimizer, n, args.batch_size)
        scaling.append({"N": n, "compile_seconds": result.info["compile_seconds"], "seconds": seconds, **mem})
        print(
            f"| {n} | {result.info['compile_seconds']:.2f} | {seconds:.2f} | {mem['argument_bytes'] / 2**20:.2f} | {mem['temp_bytes'] / 2**20:.2f} |"
        )

    if args.json:
        with open(args.json, "w") as f:
            json.dump(
                {
                    "device": str(device),
                    "rows": rows,
                    "scaling": scaling,
                    "matmul_flops": rate,
                    "compile_seconds": {
                        "first": first_compile,
                        "rerun_cell": rerun_compile,
                        "other_line": moved_compile,
                    },
                },
                f,
                indent=1,
            )


if __name__ == "__main__":
    main()
