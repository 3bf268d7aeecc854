"""Benchmark: a sweep fed by a data pipeline against the same sweep on arrays in memory.

The digits MLP (`lrjax.datasets.digits_mlp`, 64 hidden units), Adam over N learning rates, one
seed, 500 steps of batch 64 and one evaluation at the end, trained three ways that do the same
work (the same model, steps, batch size and evaluation; only where the batches come from
differs):

  in memory   ``train_data`` arrays on the device; the engine draws each batch inside the
              compiled program
  grain       ``train_data(seed)`` a Grain pipeline as its tutorials write one, example by
              example: ``MapDataset.source(examples).seed(seed).repeat().shuffle().batch(64)``
  grain index the same batches, Grain shuffling and batching indices and NumPy gathering
              each batch at once, read in the consumer's thread (``ReadOptions(num_threads=0)``)
  iterator    ``train_data(seed)`` a Python generator of NumPy batches (a permutation per epoch)
  slow source the same generator waiting 2 ms before each batch, as a read from network storage
              does: time the host spends waiting, not computing

Each is timed warm (its programs compiled by a first run; best of 3). A streamed sweep reads
every batch on the host, checks it and moves it to the device; a background thread does that
for the next chunk of 100 steps while one trains, so what shows is whatever the overlap does
not hide. "alone" is the pipeline by itself: making it and reading its 500 batches, no
training. A streamed sweep cannot be faster than the slower of the pipeline and the training
(max); without any overlap it takes their sum. Where the pipeline computes on the same CPU
cores as the training, there is nothing to overlap with; where it waits (the slow source), or
the training runs on an accelerator, the read-ahead hides it.
Target: streaming at most 1.2x the in-memory time, at N = 64 and N = 4.

    python benchmarks/streaming.py
"""

from __future__ import annotations

import time

import grain
import numpy as np
import optax

import lrjax

STEPS, BATCH = 500, 64
(X, Y), HELD_OUT = lrjax.datasets.load_digits()
MLP = lrjax.datasets.digits_mlp(hidden=(64,))


def grain_stream(seed: int):
    examples = grain.MapDataset.source(list(zip(X, Y, strict=True))).seed(seed).repeat().shuffle()
    return examples.batch(BATCH, drop_remainder=True).to_iter_dataset()


def grain_index_stream(seed: int):
    batches = grain.MapDataset.range(len(Y)).seed(seed).repeat().shuffle().batch(BATCH, drop_remainder=True)
    return batches.map(lambda index: (X[index], Y[index])).to_iter_dataset(grain.ReadOptions(num_threads=0))


def iterator_stream(seed: int):
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(len(Y))
        for k in range(len(Y) // BATCH):
            index = order[k * BATCH : (k + 1) * BATCH]
            yield X[index], Y[index]


def slow_stream(seed: int):
    for batch in iterator_stream(seed):
        time.sleep(0.002)
        yield batch


TASKS = {
    "in memory": (MLP, BATCH),
    "grain": (lrjax.Task(MLP.init, MLP.loss, grain_stream, HELD_OUT, MLP.metrics, "digits_grain"), None),
    "grain index": (lrjax.Task(MLP.init, MLP.loss, grain_index_stream, HELD_OUT, MLP.metrics, "digits_grain"), None),
    "iterator": (lrjax.Task(MLP.init, MLP.loss, iterator_stream, HELD_OUT, MLP.metrics, "digits_iterator"), None),
    "slow source": (lrjax.Task(MLP.init, MLP.loss, slow_stream, HELD_OUT, MLP.metrics, "digits_slow"), None),
}
STREAMS = {
    "grain": grain_stream,
    "grain index": grain_index_stream,
    "iterator": iterator_stream,
    "slow source": slow_stream,
}


def warm_seconds(task: lrjax.Task, batch_size: int | None, n: int) -> float:
    configs = {"learning_rate": np.geomspace(1e-4, 1e-1, n)}
    adam = lambda hp: optax.adam(hp["learning_rate"])
    run = lambda: lrjax.sweep(task, adam, configs, steps=STEPS, batch_size=batch_size, progress=False)
    run()  # compile
    times = []
    for _ in range(3):
        started = time.perf_counter()
        result = run()
        times.append(time.perf_counter() - started)
        assert np.isfinite(result.eval_metrics["loss"]).all() or result.diverged.any()
    return min(times)


def alone_seconds(make) -> float:
    """Making the pipeline and reading its 500 batches, nothing else (best of 3)."""
    times = []
    for _ in range(3):
        started = time.perf_counter()
        stream = iter(make(0))
        for _ in range(STEPS):
            next(stream)
        times.append(time.perf_counter() - started)
    return min(times)


def main() -> None:
    print(f"digits MLP, Adam, {STEPS} steps of batch {BATCH}, one evaluation; warm seconds (best of 3)\n")
    alone = {name: alone_seconds(make) for name, make in STREAMS.items()}
    for n in (64, 4):
        seconds = {name: warm_seconds(task, batch, n) for name, (task, batch) in TASKS.items()}
        base = seconds["in memory"]
        print(f"N = {n}: in memory {base:.3f} s")
        print(f"{'source':>12}{'sweep':>9}{'÷ memory':>10}{'alone':>8}{'sum':>8}{'max':>8}")
        for name, a in alone.items():
            print(
                f"{name:>12}{seconds[name]:>9.3f}{seconds[name] / base:>9.2f}x{a:>8.3f}{base + a:>8.3f}{max(base, a):>8.3f}"
            )
        print()


if __name__ == "__main__":
    main()
