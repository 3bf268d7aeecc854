"""Two local processes over `jax.distributed` (two CPU devices each, collectives over gloo) run
the same script (`tests/multihost/worker.py`): a sweep of 6 configurations (not a multiple of
the 4 devices) equals a single-process sweep, and so does a range test of one configuration's
4 seeds (one a device), a population copies a member across the processes, a checkpoint written by both restores (in both, and in one process), and killing
one process makes the other exit with an error instead of hanging. Every run has timeouts and
both processes are killed whatever happens."""

import os
import pathlib
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import optax
import pytest

import lrjax

WORKER = pathlib.Path(__file__).parent / "multihost" / "worker.py"
TIMEOUT = 120


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _start(mode: str, out: pathlib.Path) -> list[subprocess.Popen]:
    env = {**os.environ, "JAX_PLATFORMS": "cpu"}
    port = str(_free_port())
    return [
        subprocess.Popen(
            [sys.executable, str(WORKER), str(i), port, mode, str(out)],
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            env=env,
        )
        for i in range(2)
    ]


def _run(mode: str, out: pathlib.Path) -> list[np.lib.npyio.NpzFile]:
    procs = _start(mode, out)
    try:
        logs = [p.communicate(timeout=TIMEOUT)[0] for p in procs]
    finally:
        for p in procs:
            p.kill()
    for p, log in zip(procs, logs, strict=True):
        assert p.returncode == 0, log[-3000:]
    return [np.load(out / f"process{i}.npz") for i in range(2)]


def _reference():
    task = lrjax.datasets.digits_mlp(hidden=(16,))
    momentum = lambda hp: optax.sgd(hp["learning_rate"], momentum=0.5)
    return task, momentum, {"learning_rate": [0.01, 0.02, 0.05, 0.1, 0.2, 0.5]}


def test_a_two_process_sweep_equals_one_process_and_copies_across_processes(tmp_path):
    first, second = _run("sweep", tmp_path)
    assert int(first["devices"]) == 4  # the population spans both processes' devices
    for key in first.files:  # every process gets the whole result
        np.testing.assert_array_equal(first[key], second[key])
    task, momentum, configs = _reference()
    alone = lrjax.sweep(task, momentum, configs, steps=60, batch_size=32, eval_every=30, progress=False)
    np.testing.assert_allclose(first["train_loss"], alone.train_loss, rtol=1e-6)
    np.testing.assert_allclose(first["eval_loss"], alone.eval_metrics["loss"], rtol=1e-6)
    params = np.concatenate([x.reshape(6, -1) for x in jax.tree.leaves(alone.final_params)], 1)
    # two members a device against six on one: the batched weight-gradient matmul blocks its
    # sums differently, and lr 0.5 amplifies the float32 rounding over 60 steps (6e-6 measured)
    np.testing.assert_allclose(first["params"], params, rtol=1e-5, atol=1e-6)
    # member 1 (process 0's device) copied into member 4 (process 1's): identical from then on
    np.testing.assert_array_equal(first["copied"], first["source"])
    np.testing.assert_array_equal(first["copied_params"], first["source_params"])
    # a range test's 4 seeds, one a device over both processes, equal to one process
    finder = lrjax.find_lr(task, momentum, steps=30, seeds=4, batch_size=32, progress=False)
    np.testing.assert_allclose(first["finder_losses"], finder.raw_losses, rtol=1e-6)


def test_a_two_process_checkpoint_restores_in_both_and_in_one_process(tmp_path):
    first, second = _run("checkpoint", tmp_path)
    for result in (first, second):
        np.testing.assert_array_equal(result["restored"], result["uninterrupted"])
    task, momentum, _ = _reference()
    here = lrjax.Population.restore(str(tmp_path / "checkpoint"), task, momentum)
    np.testing.assert_allclose(here.advance(30), first["uninterrupted"], rtol=1e-6)
    np.testing.assert_array_equal(here.result().eval_metrics["loss"], first["evals"])


def test_killing_one_process_makes_the_other_exit_with_an_error_not_hang(tmp_path):
    procs = _start("long", tmp_path)
    try:
        started = time.monotonic()
        for line in procs[1].stdout:  # process 1 trains in step with process 0
            if "advancing" in line or time.monotonic() - started > TIMEOUT:
                break
        procs[1].send_signal(signal.SIGKILL)
        procs[1].wait(timeout=10)
        killed = time.monotonic()
        try:
            log = procs[0].communicate(timeout=60)[0]
        except subprocess.TimeoutExpired:
            pytest.fail("process 0 hung after process 1 was killed")
        assert procs[0].returncode != 0
        assert time.monotonic() - killed < 60  # the heartbeat timeout is 10 s
        assert "heartbeat" in log
    finally:
        for p in procs:
            p.kill()
