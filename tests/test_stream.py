"""Training data from a stream (a Grain pipeline, a plain iterator): it trains as the same
batches held in memory do, resumes where it was, and a stream that goes wrong raises naming the
seed and the step, with nothing trained from it and nothing lost."""

import itertools
import textwrap
import time

import grain
import jax
import numpy as np
import pytest

import lrjax
from lrjax._stream import stream_seed
from tests import plain
from tests.scripts import run_script

TASK = lrjax.datasets.digits_mlp(hidden=(16,))
SEEDS, STEPS, BATCH = 2, 130, 32  # two chunks: the second read while the first trains
CONFIGS = {"learning_rate": [0.02, 0.1]}


def batches_of(index, steps=STEPS):
    """The batches seed ``index`` of an in-memory population reads, as host arrays."""
    return [
        tuple(np.asarray(a) for a in b) for b in plain.batches(TASK.train_data, BATCH, steps, seeds=SEEDS, index=index)
    ]


INDEX = {stream_seed(0, i): i for i in range(SEEDS)}  # train_data(seed) receives stream_seed(0, index)


def streamed(make):
    return lrjax.Task(TASK.init, TASK.loss, make, TASK.eval_data, TASK.metrics, "streamed")


def from_iterator(seed):
    return iter(batches_of(INDEX[seed]))


def from_grain(seed):
    return grain.MapDataset.source(batches_of(INDEX[seed])).to_iter_dataset()


@pytest.fixture(scope="module")
def in_memory():
    return lrjax.sweep(
        TASK, plain.sgd, CONFIGS, steps=STEPS, batch_size=BATCH, seeds=SEEDS, eval_every=50, progress=False
    )


@pytest.mark.parametrize("make", [from_iterator, from_grain], ids=["iterator", "grain"])
def test_a_streamed_sweep_equals_the_in_memory_sweep_over_the_same_batches(in_memory, make):
    result = lrjax.sweep(streamed(make), plain.sgd, CONFIGS, steps=STEPS, seeds=SEEDS, eval_every=50, progress=False)
    np.testing.assert_allclose(result.train_loss, in_memory.train_loss, rtol=1e-6, atol=1e-7)
    for name, values in in_memory.eval_metrics.items():
        np.testing.assert_allclose(result.eval_metrics[name], values, rtol=1e-6, atol=1e-7)
    for a, b in zip(*(__import__("jax").tree.leaves(r.final_params) for r in (result, in_memory)), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("make", [from_iterator, from_grain], ids=["iterator", "grain"])
def test_a_restored_population_reads_its_streams_on_from_where_they_were(tmp_path, make):
    task = streamed(make)
    whole = lrjax.Population(task, plain.sgd, CONFIGS, seeds=SEEDS)
    expected = whole.advance(STEPS)
    first = lrjax.Population(task, plain.sgd, CONFIGS, seeds=SEEDS)
    head = first.advance(45)
    first.save(tmp_path / "pop")
    # Grain: its iterator's state is set again; an iterator: made again, 45 batches skipped.
    tail = lrjax.Population.restore(tmp_path / "pop", task, plain.sgd).advance(STEPS - 45)
    np.testing.assert_array_equal(np.concatenate([head, tail], axis=1), expected)


def test_the_next_chunk_is_read_ahead_between_calls_and_a_checkpoint_counts_only_trained_batches(tmp_path):
    read = []

    def counted(seed):
        for batch in batches_of(INDEX[seed]):
            read.append(seed)
            yield batch

    task = streamed(counted)
    first = lrjax.Population(task, plain.sgd, CONFIGS, seeds=SEEDS)
    read.clear()
    head = first.advance(30)
    deadline = time.monotonic() + 30
    while len(read) < SEEDS * (30 + 100) and time.monotonic() < deadline:  # the background thread reads on
        time.sleep(0.01)
    assert len(read) == SEEDS * 130  # 30 steps trained, the next chunk's 100 read ahead
    first._streams.where()  # waits for the background thread
    ahead = first._streams._prepared  # and put on the devices, ahead of the chunk that trains on them
    assert (ahead.clock, ahead.steps) == (30, 100)
    assert all(isinstance(x, jax.Array) and x.shape[:2] == (100, SEEDS) for x in jax.tree.leaves(ahead.batches))
    first.save(tmp_path / "pop")  # where the streams are: after the 30 trained batches
    tail = lrjax.Population.restore(tmp_path / "pop", task, plain.sgd).advance(STEPS - 30)
    whole = lrjax.Population(task, plain.sgd, CONFIGS, seeds=SEEDS).advance(STEPS)
    np.testing.assert_array_equal(np.concatenate([head, tail], axis=1), whole)


def test_a_stream_that_ends_raises_naming_seed_and_step_and_keeps_what_trained():
    short = lambda seed: iter(batches_of(INDEX[seed], steps=120 if INDEX[seed] == 1 else STEPS))
    pop = lrjax.Population(streamed(short), plain.sgd, CONFIGS, seeds=SEEDS)
    with pytest.raises(
        ValueError,
        match=r"train_data's stream for seed 1 \(train_data\(\d+\)\) ended at the population's step 120, after 120 batches",
    ):
        pop.advance(STEPS)
    assert pop.clock == 100 and pop.steps.tolist() == [100] * 4  # the first chunk trained, the second not
    assert pop.result().train_loss.shape == (4, 100)
    with pytest.raises(ValueError, match=r"seed 1 .* ended at the population's step 120"):
        pop.advance(30)  # the streams went back to step 100: the same error, not a shifted stream
    pop.advance(20)  # up to the stream's end
    assert pop.clock == 120


@pytest.mark.parametrize(
    "change, message",
    [
        (
            lambda b: (b[0][:16], b[1][:16]),
            r"batch 7 for seed 0 \(step 7\)\[0\] is float32\[16, 8, 8\], not float32\[32, 8, 8\]",
        ),
        (
            lambda b: (b[0], b[1].astype(np.float32)),
            r"batch 7 for seed 0 \(step 7\)\[1\] is float32\[32\], not int32\[32\]",
        ),
        (
            lambda b: (np.where(np.arange(8) == 3, np.nan, b[0]).astype(np.float32), b[1]),
            r"batch 7 for seed 0 \(step 7\)\[0\] must be finite",
        ),
        (lambda b: b[0], r"batch 7 for seed 0 \(step 7\) has structure"),
    ],
    ids=["batch size", "dtype", "non-finite", "structure"],
)
def test_a_batch_unlike_the_first_is_refused_naming_it(change, message):
    def make(seed):
        out = batches_of(INDEX[seed])
        if INDEX[seed] == 0:
            out[7] = change(out[7])
        return iter(out)

    pop = lrjax.Population(streamed(make), plain.sgd, CONFIGS, seeds=SEEDS)
    with pytest.raises(ValueError, match=message):
        pop.advance(10)
    assert pop.clock == 0 and pop.steps.tolist() == [0] * 4


def test_a_stream_decides_the_batch_size_and_needs_eval_data():
    with pytest.raises(ValueError, match=r"batch_size must be None or 32, the size of train_data's batches"):
        lrjax.Population(streamed(from_iterator), plain.sgd, CONFIGS, batch_size=64)
    with pytest.raises(ValueError, match="eval_data is required when train_data is a stream"):
        lrjax.Task(TASK.init, TASK.loss, from_iterator)
    with pytest.raises(ValueError, match="train_data is a stream: it has no number of examples"):
        _ = streamed(from_iterator).num_train


HELD_OUT = tuple(np.asarray(a) for a in TASK.eval_data)  # 359 examples


def held_out_batches(sizes=(100, 100, 100, 59)):
    """The held-out set in consecutive batches of ``sizes``."""
    cuts = np.cumsum((0, *sizes))
    return [tuple(a[i:j] for a in HELD_OUT) for i, j in itertools.pairwise(cuts)]


def eval_stream():  # a Grain dataset, one pass: batches of 100, the last of 59
    return grain.MapDataset.source(list(zip(*HELD_OUT, strict=True))).batch(100)


def test_a_linen_model_sweeps_on_streamed_train_and_eval_data_as_on_the_same_arrays(in_memory):
    task = lrjax.Task.from_linen(lrjax.datasets.MLP((16,)), from_grain, eval_data=eval_stream, name="streamed")
    assert task.eval_like()[0].shape == (100, 8, 8) and "eval=a stream of batches of 100" in repr(task)
    result = lrjax.sweep(task, plain.sgd, CONFIGS, steps=STEPS, seeds=SEEDS, eval_every=50, progress=False)
    np.testing.assert_allclose(result.train_loss, in_memory.train_loss, rtol=1e-6, atol=1e-7)
    for name, values in in_memory.eval_metrics.items():  # weighted by 100, 100, 100 and 59
        np.testing.assert_allclose(result.eval_metrics[name], values, rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize(
    "batches, message",
    [
        (held_out_batches((100, 50, 100, 109)), r"eval_data's batch 2 follows batch 1, which was partial"),
        (held_out_batches((100, 120, 139)), r"eval_data's batch 1\[0\] has 120 examples: every batch has the first"),
        (
            [(a, b.astype(np.float32)) for a, b in held_out_batches()],
            r"eval_data's batch 0\[1\] is float32\[100\], not int32",
        ),
        (
            [*held_out_batches()[:2], (np.full((100, 8, 8), np.inf, np.float32), HELD_OUT[1][:100])],
            r"eval_data's batch 2\[0\] must be finite",
        ),
    ],
    ids=["partial in the middle", "larger than the first", "dtype", "non-finite"],
)
def test_an_eval_stream_batch_that_does_not_fit_is_refused_and_nothing_is_recorded(batches, message):
    first = held_out_batches()[0]
    calls = iter([[first], batches])  # the task reads the first batch, the evaluation the rest
    task = lrjax.Task(TASK.init, TASK.loss, TASK.train_data, lambda: next(calls), TASK.metrics, "eval stream")
    pop = lrjax.Population(task, plain.sgd, CONFIGS, batch_size=BATCH)
    pop.advance(5)
    with pytest.raises(ValueError, match=message):
        pop.evaluate()
    assert pop.result().eval_steps.size == 0 and pop.clock == 5


def test_eval_data_as_a_stream_is_a_function_whose_batches_are_its_own():
    with pytest.raises(ValueError, match=r"eval_data\(\) yielded no batch"):
        lrjax.Task(TASK.init, TASK.loss, TASK.train_data, lambda: iter([]), TASK.metrics)
    with pytest.raises(ValueError, match=r"eval_batch_size is for eval_data as arrays; .* drop eval_batch_size"):
        lrjax.Task(TASK.init, TASK.loss, TASK.train_data, eval_stream, TASK.metrics, eval_batch_size=64)
    with pytest.raises(ValueError, match=r"eval_data is an iterable of batches \(\w*MapDataset\).*eval_data=lambda:"):
        lrjax.Task(TASK.init, TASK.loss, TASK.train_data, eval_stream(), TASK.metrics)
    with pytest.raises(ValueError, match=r"train_data is an iterable of batches .*train_data=lambda seed:"):
        lrjax.Task(TASK.init, TASK.loss, from_iterator(stream_seed(0, 0)), HELD_OUT, TASK.metrics)
    with pytest.raises(ValueError, match=r"train_data\(seed\) must yield \(inputs, targets\) batches"):
        lrjax.Task.from_linen(lrjax.datasets.MLP((16,)), lambda seed: iter([HELD_OUT[0]]), eval_data=HELD_OUT)


def test_a_checkpointed_sweep_whose_stream_ends_keeps_its_checkpoint_and_resumes_from_it(tmp_path, in_memory):
    short = lambda seed: iter(batches_of(INDEX[seed], steps=120 if INDEX[seed] == 1 else STEPS))
    kw = dict(steps=STEPS, seeds=SEEDS, eval_every=50, checkpoint=tmp_path / "ckpt", progress=False)
    with pytest.raises(ValueError, match=r"seed 1 .* ended at the population's step 120"):
        lrjax.sweep(streamed(short), plain.sgd, CONFIGS, **kw)
    saved = lrjax.Population.restore(tmp_path / "ckpt" / "group_0000", streamed(from_iterator), plain.sgd)
    assert saved.clock == 100  # the checkpoint of step 100 is whole: the failed chunk wrote nothing
    result = lrjax.sweep(streamed(from_iterator), plain.sgd, CONFIGS, **kw)  # resumes at 100, streams skip 100
    np.testing.assert_allclose(result.train_loss, in_memory.train_loss, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(result.eval_metrics["loss"], in_memory.eval_metrics["loss"], rtol=1e-6, atol=1e-7)


def test_an_adapters_streamed_sweep_with_augmentation_equals_the_in_memory_one():
    def augment(key, batch):  # noise on the inputs, a key per seed and step
        x, y = batch
        return x + 0.1 * jax.random.normal(key, x.shape, x.dtype), y

    kw = dict(steps=STEPS, seeds=SEEDS, progress=False)
    in_memory = lrjax.Task(TASK.init, TASK.loss, TASK.train_data, TASK.eval_data, TASK.metrics, augment=augment)
    expected = lrjax.sweep(in_memory, plain.sgd, CONFIGS, batch_size=BATCH, **kw)
    adapter = lrjax.Task.from_linen(lrjax.datasets.MLP((16,)), from_iterator, eval_data=HELD_OUT, augment=augment)
    result = lrjax.sweep(adapter, plain.sgd, CONFIGS, **kw)
    np.testing.assert_allclose(result.train_loss, expected.train_loss, rtol=1e-6, atol=1e-7)
    plain_result = lrjax.sweep(streamed(from_iterator), plain.sgd, CONFIGS, **kw)
    assert not np.allclose(result.train_loss, plain_result.train_loss)  # the augmentation ran


SWEEP = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import grain, numpy as np, optax, lrjax
    mode, checkpoint, out = sys.argv[1:4]
    if mode == "kill":  # SIGKILL this process once the sweep has written its second checkpoint
        def watch():
            while not (os.path.isdir(checkpoint) and any(
                n.isdigit() and int(n) >= 1 for g in os.listdir(checkpoint) for n in os.listdir(os.path.join(checkpoint, g)))):
                time.sleep(0.001)
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Thread(target=watch, daemon=True).start()
    (x, y), held_out = lrjax.datasets.load_digits()
    digits = lrjax.datasets.digits_mlp(hidden=(16,))
    def train_data(seed):  # a Grain pipeline: shuffled anew each epoch, batches of 32
        pairs = grain.MapDataset.source(list(zip(x, y))).seed(seed).repeat().shuffle()
        return pairs.batch(32, drop_remainder=True).to_iter_dataset()
    task = lrjax.Task(digits.init, digits.loss, train_data, held_out, digits.metrics, "grain")
    result = lrjax.sweep(task, lambda hp: optax.sgd(hp["learning_rate"], momentum=0.5),
                         {"learning_rate": [0.01, 0.05]}, steps=300, seeds=2, eval_every=100,
                         checkpoint=checkpoint, checkpoint_every=50, progress=False)
    result.save(out)
    print("finished")
    """
)


def sweep_process(tmp_path, mode, checkpoint, out):
    return run_script(SWEEP, (mode, checkpoint, out), tmp_path)


def test_a_killed_grain_fed_sweep_started_again_finishes_bitwise_as_if_never_interrupted(tmp_path):
    killed = sweep_process(tmp_path, "kill", tmp_path / "ckpt", tmp_path / "never.npz")
    assert killed.returncode == -9 and "finished" not in killed.stdout, killed.stdout + killed.stderr
    again = sweep_process(tmp_path, "run", tmp_path / "ckpt", tmp_path / "resumed.npz")
    assert again.returncode == 0, again.stdout + again.stderr
    uninterrupted = sweep_process(tmp_path, "run", tmp_path / "fresh", tmp_path / "uninterrupted.npz")
    assert uninterrupted.returncode == 0, uninterrupted.stdout + uninterrupted.stderr
    expected, resumed = (lrjax.SweepResult.load(tmp_path / f) for f in ("uninterrupted.npz", "resumed.npz"))
    np.testing.assert_array_equal(resumed.train_loss, expected.train_loss)
    for name in expected.eval_metrics:
        np.testing.assert_array_equal(resumed.eval_metrics[name], expected.eval_metrics[name])
    for name, want in expected.final_params.items():
        np.testing.assert_array_equal(resumed.final_params[name], want)
    assert np.isfinite(expected.train_loss).all() and expected.train_loss.shape == (4, 300)


def test_the_command_line_sweeps_a_users_streamed_task(tmp_path, monkeypatch, capsys):
    import pandas as pd

    from lrjax import cli

    (tmp_path / "stream_tasks.py").write_text(
        textwrap.dedent(
            """
            import grain, lrjax
            def digits():
                (x, y), held_out = lrjax.datasets.load_digits()
                mlp = lrjax.datasets.digits_mlp(hidden=(16,))
                make = lambda seed: (grain.MapDataset.source(list(zip(x, y))).seed(seed).repeat().shuffle()
                                     .batch(48, drop_remainder=True).to_iter_dataset())
                return lrjax.Task(mlp.init, mlp.loss, make, held_out, mlp.metrics, "grain_digits")
            """
        )
    )
    monkeypatch.chdir(tmp_path)
    assert (
        cli.main(["sweep", "--task", "stream_tasks:digits", "--num", "2", "--steps", "30", "--eval-every", "15"]) == 0
    )
    out = capsys.readouterr().out
    assert "grain_digits · adam · 2 configurations" in out and "batch 48" in out  # the stream's batches
    assert len(pd.read_csv(tmp_path / "lrjax-sweep-grain_digits.csv")) == 2
