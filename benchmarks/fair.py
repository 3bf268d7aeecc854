"""Benchmark: a sweep against baselines that do the same work, on built-in tasks and on tasks
written the way users write them, with JAX's default CPU device setting (one device: the
engine runs its chunk in parts on every core, `lrjax.engine.parts`) and with the host split into
one JAX device per core. Each setting runs in its own process (JAX fixes the
CPU device count at its first operation), all reported in one table. Every run produces the
same outputs: the training loss of every step and the final held-out loss of every
configuration.

  sweep warm    lrjax.sweep of new values, its programs compiled (best of 3)
  sweep cold    the same with the engine's cache emptied: tracing and compilation included
  fair loop     one jitted lax.scan per configuration, one after another, the learning rate a
                traced argument (one compile in all), batches gathered from a precomputed
                index array (the sweep's own epoch order: no extra work); the task's loss as
                written
  loop, same    the fair loop given everything the sweep's engine does to a step: its
   rewrites     convolutions as slices and a matmul (`lrjax.engine.conv`), its matmuls in the
                layout XLA:CPU's fast kernels take (`lrjax.engine.dots`), the chunk's compile
                options: equal work, done as well as the engine does it
  plain Optax   as users write it: the learning rate a Python float (one compile per
                configuration), a Python loop over steps, NumPy batches, end to end
  compile       sweep cold − sweep warm: tracing, compiling and the engine's setup
  30× budget    plain Optax ÷ 30 − FLOP floor: what end to end 30× faster than plain Optax
                leaves for compiling, with the sweep's own run at its FLOP floor
  FLOP floor    3 × XLA's forward-pass FLOP count (cost analysis) per member step ÷ the f32
                matmul rate: the best of the rates measured in the run's processes (a
                process's own reading was once half the others', which put a sweep below
                its "floor")
  PyTorch eager the user-written tasks in PyTorch (``torch.nn.functional``, ``torch.optim.SGD``
                with momentum 0.9, the same semantics as Optax's), the same initial weights,
                batches, steps and outputs, one configuration after another, in its own
                process (the optional ``bench`` extra; skipped when torch is not installed).
  torch.func    the same, every configuration at once: ``torch.func.vmap`` of
                ``grad_and_value`` over stacked weights, the batch shared, the momentum update
                written out (PyTorch's rule).
                Its final held-out losses are compared with the sweep's (they agree to ~1e-7
                where training is stable; chaotic learning rates drift apart).

Tasks: the built-in digits MLP (Adam) and CNN; an MLP 64-128-10 and a CNN (two 3×3
convolutions by ``lax.conv_general_dilated``) with their own init and loss
(``optax.softmax_cross_entropy_with_integer_labels``) and SGD with momentum 0.9. MLPs: N = 64,
500 steps, batch 128; CNNs: N = 16, 300 steps, batch 64.

    pip install -e '.[bench]'   # PyTorch, for its column (a CPU wheel is enough)
    python benchmarks/fair.py
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
import time

N, STEPS, BATCH = 64, 500, 128
SIZES = {"MLP": (N, STEPS, BATCH), "CNN": (16, 300, 64)}  # N, steps, batch


def user_tasks() -> dict:
    """The MLP 64-128-10 and the CNN written as users write them: own init, own loss with
    integer labels, convolutions by ``lax.conv_general_dilated`` (NHWC)."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax import lax

    import lrjax

    (x, y), (xv, yv) = lrjax.datasets.load_digits()

    def mlp_init(key):
        k1, k2 = jax.random.split(key)
        return {
            "w1": jax.random.normal(k1, (64, 128)) * jnp.sqrt(2 / 64),
            "b1": jnp.zeros(128),
            "w2": jax.random.normal(k2, (128, 10)) * jnp.sqrt(1 / 128),
            "b2": jnp.zeros(10),
        }

    def mlp_loss(p, batch):
        xb, yb = batch
        xb = xb.reshape(xb.shape[0], -1)  # the digits come as 8x8 images
        logits = jax.nn.relu(xb @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]
        return optax.softmax_cross_entropy_with_integer_labels(logits, yb).mean()

    nhwc = ("NHWC", "HWIO", "NHWC")

    def cnn_init(key):
        k1, k2, k3 = jax.random.split(key, 3)
        return {
            "c1": jax.random.normal(k1, (3, 3, 1, 8)) * jnp.sqrt(2 / 9),
            "c2": jax.random.normal(k2, (3, 3, 8, 16)) * jnp.sqrt(2 / 72),
            "w": jax.random.normal(k3, (256, 10)) * jnp.sqrt(1 / 256),
        }

    def cnn_loss(p, batch):
        xb, yb = batch
        h = jax.nn.relu(lax.conv_general_dilated(xb[..., None], p["c1"], (1, 1), "SAME", dimension_numbers=nhwc))
        h = jax.nn.relu(lax.conv_general_dilated(h, p["c2"], (2, 2), "SAME", dimension_numbers=nhwc))
        return optax.softmax_cross_entropy_with_integer_labels(h.reshape(len(h), -1) @ p["w"], yb).mean()

    return {
        "user MLP, SGD-momentum": lrjax.Task(mlp_init, mlp_loss, (x, y), eval_data=(xv, yv), name="user_mlp"),
        "user CNN, SGD-momentum": lrjax.Task(cnn_init, cnn_loss, (x, y), eval_data=(xv, yv), name="user_cnn"),
    }


def batch_index(steps: int, batch: int):
    """(steps, batch) example indices: the sweep's own epoch order for seed 0."""
    import numpy as np

    import lrjax
    from lrjax.engine.program import order_words, seed_keys
    from lrjax.engine.shuffle import epoch_order

    n = lrjax.datasets.digits_mlp().num_train
    words = order_words(seed_keys(0, 1)[0])
    per_epoch = n // batch
    order = np.concatenate([np.asarray(epoch_order(words, e, n)) for e in range(-(-steps // per_epoch))])
    return np.stack([order[(t // per_epoch) * n + (t % per_epoch) * batch :][:batch] for t in range(steps)])


def matmul_rate() -> float:
    """The f32 matmul rate of this process's default device, FLOP/s: the best of 5 products of
    two 2048² matrices after a warm-up."""
    import jax

    square = jax.random.normal(jax.random.key(0), (2048, 2048))
    matmul = jax.jit(lambda a: a @ a)
    jax.block_until_ready(matmul(square))
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        jax.block_until_ready(matmul(square))
        best = min(best, time.perf_counter() - started)
    return 2 * 2048**3 / best


def step_flops(task, shapes) -> float:
    """FLOPs of one member's training step: 3 × the forward pass's, from XLA's cost analysis of
    ``task.loss`` on ``shapes`` (parameters, batch)."""
    import jax

    return 3 * jax.jit(task.loss).lower(*shapes).compile().cost_analysis().get("flops", float("nan"))


def plain_optax(task, make, lr: float, index, data, eval_data):
    """One configuration trained as users write it: the learning rate a Python float (a compile
    per value), a Python loop over the steps, NumPy batches (``index``: each step's rows of
    ``data``); every step's loss and the final held-out loss."""
    import jax
    import jax.numpy as jnp
    import optax

    from lrjax.engine.program import init_key

    (x, y) = data
    tx, params = make(lr), task.init(init_key(0, 1, 0))
    state = tx.init(params)

    @jax.jit
    def step(params, state, batch):
        loss, grads = jax.value_and_grad(task.loss)(params, batch)
        updates, state = tx.update(grads, state, params)
        return optax.apply_updates(params, updates), state, loss

    losses = []
    for rows in index:
        params, state, loss = step(params, state, (x[rows], y[rows]))
        losses.append(loss)
    return jnp.stack(losses), task.loss(params, eval_data)


def worker(devices: int) -> dict:
    import jax

    if devices:
        jax.config.update("jax_num_cpu_devices", devices)
    import jax.numpy as jnp
    import optax

    import lrjax
    from lrjax.engine import cache, dots, operations
    from lrjax.engine import options as compile_options
    from lrjax.engine.conv import rewrite_convs
    from lrjax.engine.dots import canonical_dots
    from lrjax.engine.program import init_key

    def timed(fn):
        started = time.perf_counter()
        jax.block_until_ready(fn())
        return time.perf_counter() - started

    (x, y), (xv, yv) = lrjax.datasets.load_digits()
    momentum = lambda lr: optax.sgd(lr, momentum=0.9)
    users = user_tasks()
    cases = {  # name: (task, optimizer, N, steps, batch)
        "builtin MLP, Adam": (lrjax.datasets.digits_mlp(), lambda lr: optax.adam(lr), *SIZES["MLP"]),
        "user MLP, SGD-momentum": (users["user MLP, SGD-momentum"], momentum, *SIZES["MLP"]),
        "builtin CNN, SGD-momentum": (lrjax.datasets.digits_cnn(), momentum, *SIZES["CNN"]),
        "user CNN, SGD-momentum": (users["user CNN, SGD-momentum"], momentum, *SIZES["CNN"]),
    }
    rate = matmul_rate()

    def measure(task, make, n: int, steps: int, batch: int) -> dict:
        lrs = lrjax.search.log_grid(1e-4, 1.0, n)
        index = batch_index(steps, batch)
        optimizer = lambda hp: make(hp["learning_rate"])
        kw = dict(steps=steps, batch_size=batch, progress=False)
        cache.clear()
        started = time.perf_counter()
        final = lrjax.sweep(task, optimizer, {"learning_rate": lrs}, **kw).final("loss")
        cold = time.perf_counter() - started
        half = {"learning_rate": lrs * 0.5}
        warm = min(timed(lambda: lrjax.sweep(task, optimizer, half, **kw).train_loss) for _ in range(3))
        data, eval_data = (jnp.asarray(x), jnp.asarray(y)), (jnp.asarray(xv), jnp.asarray(yv))

        def loop_with(loss_fn, engine: bool = False) -> float:
            grad = canonical_dots(jax.value_and_grad(loss_fn)) if engine else jax.value_and_grad(loss_fn)

            def scan(lr):
                tx, params = make(lr), task.init(init_key(0, 1, 0))

                def step(carry, i):
                    params, state = carry
                    value, grads = grad(params, (data[0][i], data[1][i]))
                    updates, state = tx.update(grads, state, params)
                    return (optax.apply_updates(params, updates), state), value

                (params, _), losses = jax.lax.scan(step, (params, tx.init(params)), jnp.asarray(index))
                return losses, task.loss(params, eval_data)

            wanted = {**operations.CHUNK_OPTIONS, **dots.COMPILE_OPTIONS}
            options = compile_options.supported(wanted, jax.devices()[0]) if engine else {}
            scan = jax.jit(scan).lower(jnp.float32(0.1)).compile(compiler_options=options)
            timed(lambda: scan(jnp.float32(0.1)))
            return min(timed(lambda: [scan(jnp.float32(lr)) for lr in lrs]) for _ in range(3))

        loop = loop_with(task.loss)
        shapes = (
            jax.eval_shape(task.init, jax.random.key(0)),
            (jax.ShapeDtypeStruct((batch, *x.shape[1:]), x.dtype), jax.ShapeDtypeStruct((batch,), y.dtype)),
        )
        loop_rewritten = loop_with(rewrite_convs(task.loss, *shapes), engine=True)

        plain = timed(lambda: [plain_optax(task, make, float(lr), index, (x, y), (xv, yv)) for lr in lrs])
        flops = step_flops(task, shapes) * steps * n
        return dict(
            n=n,
            steps=steps,
            batch=batch,
            cold=cold,
            warm=warm,
            loop=loop,
            loop_rewritten=loop_rewritten,
            plain=plain,
            flops=flops,
            final=[float(v) for v in final],
        )

    out = {"devices": len(jax.devices()), "matmul_gflops": rate / 1e9}
    for name, (task, make, n, steps, batch) in cases.items():
        out[name] = measure(task, make, n, steps, batch)
    return out


def torch_worker() -> dict:
    """PyTorch on the user-written tasks: the sweep's initial weights (the task's init with the
    sweep's key for seed 0), batches, steps and outputs (every step's loss, the final held-out
    loss). Eager: one configuration after another, the best of 2 runs after a warm-up
    configuration. ``torch.func``: every configuration at once, vmapped, the best of 2."""
    import numpy as np
    import torch
    import torch.nn.functional as F

    import lrjax
    from lrjax.engine.program import init_key

    (x, y), (xv, yv) = lrjax.datasets.load_digits()
    X, Y, XV, YV = (torch.from_numpy(np.asarray(a)) for a in (x, y.astype(np.int64), xv, yv.astype(np.int64)))

    def mlp(p, xb):
        return F.relu(xb.reshape(len(xb), -1) @ p["w1"] + p["b1"]) @ p["w2"] + p["b2"]

    def cnn(p, xb):  # NCHW; SAME padding of JAX: 1 each side at stride 1, (0, 1) at stride 2
        h = F.relu(F.conv2d(xb[:, None], p["c1"], padding=1))
        h = F.relu(F.conv2d(F.pad(h, (0, 1, 0, 1)), p["c2"], stride=2))
        return h.permute(0, 2, 3, 1).reshape(len(h), -1) @ p["w"]  # flattened in NHWC order, as JAX

    def train(model, weights: dict, index, lr: float):
        p = {k: torch.tensor(v, requires_grad=True) for k, v in weights.items()}
        opt = torch.optim.SGD(p.values(), lr=lr, momentum=0.9)
        losses = []
        for i in index:
            loss = F.cross_entropy(model(p, X[i]), Y[i])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            losses.append(loss.detach())
        with torch.no_grad():
            return torch.stack(losses), float(F.cross_entropy(model(p, XV), YV))

    def train_vmapped(model, weights: dict, index, lrs: list[float]):
        """All configurations at once with ``torch.func.vmap`` over stacked weights, the batch
        shared, SGD with momentum written out (PyTorch's rule: buf = 0.9·buf + g; p -= lr·buf).
        No divergence freezing: a diverged configuration carries NaN on, harming no other."""
        n = len(lrs)
        p = {k: torch.tensor(np.broadcast_to(v, (n, *v.shape)).copy()) for k, v in weights.items()}
        buf = {k: torch.zeros_like(v) for k, v in p.items()}
        rate = {k: torch.tensor(lrs, dtype=v.dtype).reshape(n, *[1] * (v.ndim - 1)) for k, v in p.items()}
        loss_fn = lambda q, xb, yb: F.cross_entropy(model(q, xb), yb)
        step = torch.func.vmap(torch.func.grad_and_value(loss_fn), in_dims=(0, None, None))
        losses = []
        for i in index:
            grads, loss = step(p, X[i], Y[i])
            with torch.no_grad():
                for k in p:
                    buf[k].mul_(0.9).add_(grads[k])
                    p[k].sub_(rate[k] * buf[k])
            losses.append(loss)
        with torch.no_grad():
            final = torch.func.vmap(loss_fn, in_dims=(0, None, None))(p, XV, YV)
        return torch.stack(losses), [float(v) for v in final]

    out = {"torch": torch.__version__, "threads": torch.get_num_threads()}
    for (name, task), model, size in zip(user_tasks().items(), (mlp, cnn), ("MLP", "CNN"), strict=True):
        n, steps, batch = SIZES[size]
        index = torch.from_numpy(batch_index(steps, batch).astype(np.int64))
        weights = {k: np.asarray(v) for k, v in task.init(init_key(0, 1, 0)).items()}
        weights = {k: v.transpose(3, 2, 0, 1) if v.ndim == 4 else v for k, v in weights.items()}  # HWIO -> OIHW

        lrs = [float(v) for v in lrjax.search.log_grid(1e-4, 1.0, n)]
        train(model, weights, index, lrs[0])
        best, final = float("inf"), []
        for _ in range(2):
            started = time.perf_counter()
            final = [train(model, weights, index, lr)[1] for lr in lrs]
            best = min(best, time.perf_counter() - started)
        vmapped = float("inf")
        for _ in range(2):
            started = time.perf_counter()
            final_vmapped = train_vmapped(model, weights, index, lrs)[1]
            vmapped = min(vmapped, time.perf_counter() - started)
        out[name] = {"eager": best, "final": final, "vmapped": vmapped, "final_vmapped": final_vmapped}
    return out


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--torch":
        print(json.dumps(torch_worker()))
        return
    if len(sys.argv) > 2 and sys.argv[1] == "--worker":
        print(json.dumps(worker(int(sys.argv[2]))))
        return

    def run(*args: str) -> dict:
        done = subprocess.run([sys.executable, __file__, *args], capture_output=True, text=True)
        if done.returncode:
            raise RuntimeError(done.stderr[-3000:])
        return json.loads(done.stdout.strip().splitlines()[-1])

    settings = {"JAX default (1 CPU device)": 0, f"one device per core ({os.cpu_count()})": os.cpu_count()}
    runs = {label: run("--worker", str(devices)) for label, devices in settings.items()}
    eager = run("--torch") if importlib.util.find_spec("torch") else None
    import jax
    import numpy as np

    rate = max(out["matmul_gflops"] for out in runs.values()) * 1e9
    print(f"# jax {jax.__version__}; seconds, and ratios measured in the same process\n")
    print(
        "| task | devices | N × steps × batch | sweep warm | sweep cold | fair loop | loop, same rewrites | "
        "plain Optax | FLOP floor | compile | 30× budget | loop ÷ warm | same-rewrite loop ÷ warm | warm ÷ floor | plain ÷ cold |"
    )
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
    for label, out in runs.items():
        for task, r in out.items():
            if not isinstance(r, dict):
                continue
            floor = r["flops"] / rate
            print(
                f"| {task} | {label} | {r['n']} × {r['steps']} × {r['batch']} | {r['warm']:.2f} | {r['cold']:.2f} | "
                f"{r['loop']:.2f} | {r['loop_rewritten']:.2f} | {r['plain']:.1f} | {floor:.3f} | "
                f"{r['cold'] - r['warm']:.2f} | {r['plain'] / 30 - floor:.2f} | "
                f"{r['loop'] / r['warm']:.2f}× | {r['loop_rewritten'] / r['warm']:.2f}× | "
                f"{r['warm'] / floor:.1f}× | {r['plain'] / r['cold']:.1f}× |"
            )
    rates = ", ".join(f"{label}: {out['matmul_gflops']:.0f} GFLOP/s" for label, out in runs.items())
    print(f"\nmatmul rate: {rates}; the FLOP floor uses the best, {rate / 1e9:.0f} GFLOP/s")
    if eager is None:
        print("\nPyTorch eager: skipped (torch is not installed; pip install -e '.[bench]')")
        return
    print(f"\nPyTorch {eager['torch']} eager, {eager['threads']} threads, its own process:\n")
    print(
        "| task | devices (sweep) | PyTorch eager s | torch.func vmapped s | sweep warm s | eager ÷ warm | "
        "vmapped ÷ warm | eager finals within 1e-4 of the sweep's |"
    )
    print("|---|---|---:|---:|---:|---:|---:|---:|")
    for label, out in runs.items():
        for task, r in eager.items():
            if not isinstance(r, dict):
                continue
            gap = np.abs(np.asarray(out[task]["final"]) - np.asarray(r["final"]))
            warm = out[task]["warm"]
            print(
                f"| {task} | {label} | {r['eager']:.2f} | {r['vmapped']:.2f} | {warm:.2f} | {r['eager'] / warm:.1f}× | "
                f"{r['vmapped'] / warm:.1f}× | {(gap < 1e-4).sum()} of {len(gap)} (largest gap {np.nanmax(gap):.1e}) |"
            )


if __name__ == "__main__":
    main()
