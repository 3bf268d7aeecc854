"""Benchmark: a sweep against baselines that do the same work, on built-in tasks and on tasks
written the way users write them, with JAX's default CPU device setting and with the one the
README recommends (one device per core). Each setting runs in its own process (JAX fixes the
CPU device count at its first operation), all reported in one table. Every run produces the
same outputs: the training loss of every step and the final held-out loss of every
configuration.

  sweep warm    lrjax.sweep of new values, its programs compiled (best of 3)
  sweep cold    the same with the engine's cache emptied: tracing and compilation included
  fair loop     one jitted lax.scan per configuration, one after another, the learning rate a
                traced argument (one compile in all), batches gathered from a precomputed
                index array (the sweep's own epoch order: no extra work); the task's loss as
                written
  loop, same    the fair loop with the task's convolutions rewritten as the sweep's engine
   rewrite      rewrites them (`lrjax.engine.conv`): equal work (the same as the fair loop for
                tasks without convolutions)
  plain Optax   as users write it: the learning rate a Python float (one compile per
                configuration), a Python loop over steps, NumPy batches, end to end
  FLOP floor    3 × XLA's forward-pass FLOP count (cost analysis) per member step ÷ the f32
                matmul rate measured in the same process

Tasks: the built-in digits MLP (Adam) and CNN; an MLP 64-128-10 and a CNN (two 3×3
convolutions by ``lax.conv_general_dilated``) with their own init and loss
(``optax.softmax_cross_entropy_with_integer_labels``) and SGD with momentum 0.9. MLPs: N = 64,
500 steps, batch 128; CNNs: N = 16, 300 steps, batch 64.

    python benchmarks/fair.py
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

N, STEPS, BATCH = 64, 500, 128


def worker(devices: int) -> dict:
    import jax

    if devices:
        jax.config.update("jax_num_cpu_devices", devices)
    import jax.numpy as jnp
    import numpy as np
    import optax
    from jax import lax

    import lrjax
    from lrjax.engine import cache
    from lrjax.engine.conv import rewrite_convs
    from lrjax.engine.program import order_words, seed_keys
    from lrjax.engine.shuffle import epoch_order

    def timed(fn):
        started = time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - started

    (x, y), (xv, yv) = lrjax.datasets.load_digits()

    def user_task() -> lrjax.Task:
        def init(key):
            k1, k2 = jax.random.split(key)
            return {
                "w1": jax.random.normal(k1, (64, 128)) * jnp.sqrt(2 / 64),
                "b1": jnp.zeros(128),
                "w2": jax.random.normal(k2, (128, 10)) * jnp.sqrt(1 / 128),
                "b2": jnp.zeros(10),
            }

        def loss(p, batch):
            xb, yb = batch
            xb = xb.reshape(xb.shape[0], -1)  # the digits come as 8x8 images
            logits = jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
            return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

        return lrjax.Task(init, loss, (x, y), eval_data=(xv, yv), name="user_mlp")

    def user_cnn() -> lrjax.Task:
        nhwc = ("NHWC", "HWIO", "NHWC")

        def init(key):
            k1, k2, k3 = jax.random.split(key, 3)
            return {
                "c1": jax.random.normal(k1, (3, 3, 1, 8)) * jnp.sqrt(2 / 9),
                "c2": jax.random.normal(k2, (3, 3, 8, 16)) * jnp.sqrt(2 / 72),
                "w": jax.random.normal(k3, (256, 10)) * jnp.sqrt(1 / 256),
            }

        def loss(p, batch):
            xb, yb = batch
            h = jax.nn.relu(lax.conv_general_dilated(xb[..., None], p["c1"], (1, 1), "SAME", dimension_numbers=nhwc))
            h = jax.nn.relu(lax.conv_general_dilated(h, p["c2"], (2, 2), "SAME", dimension_numbers=nhwc))
            return optax.softmax_cross_entropy_with_integer_labels(h.reshape(len(h), -1) @ p["w"], yb).mean()

        return lrjax.Task(init, loss, (x, y), eval_data=(xv, yv), name="user_cnn")

    momentum = lambda lr: optax.sgd(lr, momentum=0.9)
    cases = {  # name: (task, optimizer, N, steps, batch)
        "builtin MLP, Adam": (lrjax.datasets.digits_mlp(), lambda lr: optax.adam(lr), N, STEPS, BATCH),
        "user MLP, SGD-momentum": (user_task(), momentum, N, STEPS, BATCH),
        "builtin CNN, SGD-momentum": (lrjax.datasets.digits_cnn(), momentum, 16, 300, 64),
        "user CNN, SGD-momentum": (user_cnn(), momentum, 16, 300, 64),
    }
    square = jax.random.normal(jax.random.key(0), (2048, 2048))
    matmul = jax.jit(lambda a: a @ a)
    timed(lambda: matmul(square))
    rate = max(2 * 2048**3 / timed(lambda: matmul(square)) for _ in range(5))
    words = order_words(seed_keys(0, 1)[0])

    def measure(task, make, n: int, steps: int, batch: int) -> dict:
        lrs = lrjax.search.log_grid(1e-4, 1.0, n)
        per_epoch = len(x) // batch
        order = np.concatenate([np.asarray(epoch_order(words, e, len(x))) for e in range(-(-steps // per_epoch))])
        index = np.stack([order[(t // per_epoch) * len(x) + (t % per_epoch) * batch :][:batch] for t in range(steps)])
        optimizer = lambda hp: make(hp["learning_rate"])
        kw = dict(steps=steps, batch_size=batch, progress=False)
        cache.clear()
        cold = timed(lambda: lrjax.sweep(task, optimizer, {"learning_rate": lrs}, **kw).train_loss)
        half = {"learning_rate": lrs * 0.5}
        warm = min(timed(lambda: lrjax.sweep(task, optimizer, half, **kw).train_loss) for _ in range(3))
        data, eval_data = (jnp.asarray(x), jnp.asarray(y)), (jnp.asarray(xv), jnp.asarray(yv))

        def loop_with(loss_fn) -> float:
            @jax.jit
            def scan(lr):
                tx, params = make(lr), task.init(jax.random.key(0))

                def step(carry, i):
                    params, state = carry
                    value, grads = jax.value_and_grad(loss_fn)(params, (data[0][i], data[1][i]))
                    updates, state = tx.update(grads, state, params)
                    return (optax.apply_updates(params, updates), state), value

                (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jnp.asarray(index))
                return losses, task.loss(params, eval_data)

            timed(lambda: scan(jnp.float32(0.1)))
            return min(timed(lambda: [scan(jnp.float32(lr)) for lr in lrs]) for _ in range(3))

        loop = loop_with(task.loss)
        shapes = (
            jax.eval_shape(task.init, jax.random.key(0)),
            (jax.ShapeDtypeStruct((batch, *x.shape[1:]), x.dtype), jax.ShapeDtypeStruct((batch,), y.dtype)),
        )
        rewritten = rewrite_convs(task.loss, *shapes)
        loop_rewritten = loop if rewritten is task.loss else loop_with(rewritten)

        def one(lr: float):
            tx, params = make(lr), task.init(jax.random.key(0))
            state = tx.init(params)

            @jax.jit
            def step(params, state, batch):
                loss, grads = jax.value_and_grad(task.loss)(params, batch)
                updates, state = tx.update(grads, state, params)
                return optax.apply_updates(params, updates), state, loss

            losses = []
            for t in range(steps):
                params, state, loss = step(params, state, (x[index[t]], y[index[t]]))
                losses.append(loss)
            return jnp.stack(losses), task.loss(params, (xv, yv))

        plain = timed(lambda: [one(float(lr)) for lr in lrs])
        macs = jax.jit(task.loss).lower(*shapes).compile().cost_analysis().get("flops", float("nan"))
        floor = 3 * macs * steps * n / rate  # forward FLOPs from XLA's cost analysis, ×3 with the backward pass
        return dict(
            n=n,
            steps=steps,
            batch=batch,
            cold=cold,
            warm=warm,
            loop=loop,
            loop_rewritten=loop_rewritten,
            plain=plain,
            floor=floor,
        )

    out = {"devices": len(jax.devices()), "matmul_gflops": rate / 1e9}
    for name, (task, make, n, steps, batch) in cases.items():
        out[name] = measure(task, make, n, steps, batch)
    return out


def main() -> None:
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]))))
        return
    settings = {"JAX default (1 CPU device)": 0, f"one device per core ({os.cpu_count()})": os.cpu_count()}
    runs = {}
    for label, devices in settings.items():
        done = subprocess.run([sys.executable, __file__, "--worker", str(devices)], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        runs[label] = json.loads(done.stdout.strip().splitlines()[-1])
    import jax

    print(f"# jax {jax.__version__}; seconds, and ratios measured in the same process\n")
    print(
        "| task | devices | N × steps × batch | sweep warm | sweep cold | fair loop | loop, same conv rewrite | "
        "plain Optax | FLOP floor | loop ÷ warm | warm ÷ floor | plain ÷ cold |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, out in runs.items():
        for task, r in out.items():
            if not isinstance(r, dict):
                continue
            print(
                f"| {task} | {label} | {r['n']} × {r['steps']} × {r['batch']} | {r['warm']:.2f} | {r['cold']:.2f} | "
                f"{r['loop']:.2f} | {r['loop_rewritten']:.2f} | {r['plain']:.1f} | {r['floor']:.3f} | "
                f"{r['loop'] / r['warm']:.2f}× | {r['warm'] / r['floor']:.1f}× | {r['plain'] / r['cold']:.1f}× |"
            )
    print("\nmatmul rate: " + ", ".join(f"{label}: {out['matmul_gflops']:.0f} GFLOP/s" for label, out in runs.items()))


if __name__ == "__main__":
    main()
