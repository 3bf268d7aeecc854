"""One process of a 2-process lrjax run over jax.distributed on local CPU devices (used by
tests/test_multihost.py): ``python worker.py PROCESS_ID PORT MODE OUT_DIR``."""

import inspect
import sys

import jax

process_id, port, mode, out = int(sys.argv[1]), sys.argv[2], sys.argv[3], sys.argv[4]
jax.config.update("jax_cpu_collectives_implementation", "gloo")
jax.config.update("jax_num_cpu_devices", 2)  # 4 devices in all: 6 configurations are padded to 8
# A dead peer is noticed within seconds where this JAX lets one say so (0.7 and later).
timeouts = {"heartbeat_timeout_seconds": 10, "shutdown_timeout_seconds": 10}
known = inspect.signature(jax.distributed.initialize).parameters
jax.distributed.initialize(
    f"127.0.0.1:{port}",
    num_processes=2,
    process_id=process_id,
    initialization_timeout=60,
    **{name: value for name, value in timeouts.items() if name in known},
)

import numpy as np  # noqa: E402
import optax  # noqa: E402

import lrjax  # noqa: E402

task = lrjax.datasets.digits_mlp(hidden=(16,))
momentum = lambda hp: optax.sgd(hp["learning_rate"], momentum=0.5)
configs = {"learning_rate": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]}

if mode == "sweep":
    result = lrjax.sweep(task, momentum, configs, steps=60, batch_size=32, eval_every=30, progress=False)
    pop = lrjax.Population(task, momentum, configs, batch_size=32)
    pop.advance(20)
    pop.copy([4], [1])  # member 1 lives on process 0, member 4 on process 1
    after = pop.advance(20)
    # one configuration, 4 seeds: the seeds are sharded, one a device, across both processes
    finder = lrjax.find_lr(task, momentum, steps=30, seeds=4, batch_size=32, progress=False)
    np.savez(
        f"{out}/process{process_id}.npz",
        devices=len(pop.devices),
        train_loss=result.train_loss,
        eval_loss=result.eval_metrics["loss"],
        params=np.concatenate([x.reshape(6, -1) for x in jax.tree.leaves(result.final_params)], 1),
        diverged=result.diverged,
        copied=after[4],
        source=after[1],
        copied_params=np.concatenate([x[4].reshape(-1) for x in jax.tree.leaves(pop.params)]),
        source_params=np.concatenate([x[1].reshape(-1) for x in jax.tree.leaves(pop.params)]),
        finder_losses=finder.raw_losses,
    )
elif mode == "checkpoint":
    pop = lrjax.Population(task, momentum, configs, batch_size=32)
    pop.advance(20)
    pop.evaluate()
    pop.save(f"{out}/checkpoint")
    restored = lrjax.Population.restore(f"{out}/checkpoint", task, momentum)
    np.savez(
        f"{out}/process{process_id}.npz",
        uninterrupted=pop.advance(30),
        restored=restored.advance(30),
        evals=restored.result().eval_metrics["loss"],
    )
elif mode == "long":
    pop = lrjax.Population(task, momentum, configs, batch_size=32)
    pop.advance(10)
    print("advancing", flush=True)
    for _ in range(10_000):
        pop.advance(10)
