"""Checkpoints: a restored population continues bitwise; a sweep killed with SIGKILL and started
again finishes bitwise equal to an uninterrupted one (within 1e-6 on another device count); a
corrupt, partial or foreign checkpoint raises and is never trained from."""

import json
import os
import shutil
import textwrap

import jax
import numpy as np
import optax
import pytest

import lrjax
import lrjax.schedules as S
from tests.scripts import run_script

SWEEP = textwrap.dedent(
    """
    import os, signal, sys, threading, time
    import numpy as np, optax, lrjax
    mode, checkpoint, out = sys.argv[1:4]
    if mode == "kill":  # SIGKILL this process once the second group has written its second checkpoint
        group = os.path.join(checkpoint, "group_0001")
        def watch():
            while not (os.path.isdir(group) and any(n.isdigit() and int(n) >= 1 for n in os.listdir(group))):
                time.sleep(0.001)
            os.kill(os.getpid(), signal.SIGKILL)
        threading.Thread(target=watch, daemon=True).start()
    task = lrjax.datasets.digits_mlp(hidden=(16,))
    result = lrjax.sweep(task, lambda hp: optax.sgd(hp["learning_rate"], momentum=0.5),
                         {"learning_rate": [0.01, 0.03, 0.05]}, steps=600, batch_size=32, seeds=2, eval_every=100,
                         memory_budget=120_000, checkpoint=checkpoint, checkpoint_every=50, progress=False)
    assert result.info["groups"] == 2 and result.info["devices"] == int(os.environ.get("DEVICES", "1")), result.info
    result.save(out)
    print("finished")
    """
)


def sweep_process(tmp_path, mode, checkpoint, out, devices=1):
    return run_script(SWEEP, (mode, checkpoint, out), tmp_path, devices=devices)


def test_a_killed_sweep_started_again_finishes_as_if_never_interrupted(tmp_path):
    checkpoint = tmp_path / "ckpt"
    killed = sweep_process(tmp_path, "kill", checkpoint, tmp_path / "never.npz")
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert "finished" not in killed.stdout
    shutil.copytree(checkpoint, tmp_path / "ckpt2")

    again = sweep_process(tmp_path, "run", checkpoint, tmp_path / "resumed.npz")
    assert again.returncode == 0, again.stdout + again.stderr
    other_devices = sweep_process(tmp_path, "run", tmp_path / "ckpt2", tmp_path / "two_devices.npz", devices=2)
    assert other_devices.returncode == 0, other_devices.stdout + other_devices.stderr
    uninterrupted = sweep_process(tmp_path, "run", tmp_path / "fresh", tmp_path / "uninterrupted.npz")
    assert uninterrupted.returncode == 0, uninterrupted.stdout + uninterrupted.stderr

    expected = lrjax.SweepResult.load(tmp_path / "uninterrupted.npz")
    resumed = lrjax.SweepResult.load(tmp_path / "resumed.npz")
    two = lrjax.SweepResult.load(tmp_path / "two_devices.npz")
    np.testing.assert_array_equal(resumed.train_loss, expected.train_loss)
    for name in expected.eval_metrics:
        np.testing.assert_array_equal(resumed.eval_metrics[name], expected.eval_metrics[name])
        np.testing.assert_allclose(two.eval_metrics[name], expected.eval_metrics[name], rtol=1e-6, atol=1e-7)
    for name, want in expected.final_params.items():
        np.testing.assert_array_equal(resumed.final_params[name], want)
        # Another sharding changes float32 summation order; momentum amplifies it over 500 steps
        # (effective steps lr / (1 - momentum) <= 0.1 keep it near 1e-6 in single entries).
        for m in range(len(want)):
            assert np.linalg.norm(two.final_params[name][m] - want[m]) <= 1e-6 * np.linalg.norm(want[m]), (name, m)
    np.testing.assert_allclose(two.train_loss, expected.train_loss, rtol=1e-6, atol=1e-7)
    assert expected.train_loss.shape == (6, 600) and np.isfinite(expected.train_loss).all()


def schedules(peaks):
    return jax.tree.map(
        lambda *x: np.asarray(x),
        *[S.warmup_cosine_decay(0.0, peak_value=p, warmup_steps=10, total_steps=80) for p in peaks],
    )


def scheduled(hp):
    return optax.adam(hp["learning_rate"])


@pytest.fixture(scope="module")
def saved(tmp_path_factory, digits):
    """A population with schedule-valued configs and a plateau, changed and saved mid-run."""
    plateau = lrjax.reduce_on_plateau(factor=0.5, patience=0, threshold=0.05)
    pop = lrjax.Population(
        digits, scheduled, {"learning_rate": schedules([0.003, 0.01, 0.03])}, batch_size=32, seeds=2, plateau=plateau
    )
    pop.advance(30), pop.evaluate(), pop.advance(15)
    pop.copy(0, 5), pop.deactivate(2)
    path = tmp_path_factory.mktemp("pop") / "ckpt"
    pop.save(path)
    return pop, path, plateau


def test_a_restored_population_continues_bitwise(saved, digits):
    pop, path, plateau = saved
    restored = lrjax.Population.restore(
        path, digits, scheduled, configs={"learning_rate": schedules([1.0, 1.0, 1.0])}, plateau=plateau
    )
    assert restored.clock == pop.clock == 45 and restored.active.tolist() == pop.active.tolist()
    np.testing.assert_array_equal(restored.steps, pop.steps)
    jax.tree.map(np.testing.assert_array_equal, restored.configs, pop.configs)
    peaks = [leaf for leaf in jax.tree.leaves(restored.configs["learning_rate"]) if len(np.unique(leaf)) > 1]
    np.testing.assert_allclose(peaks, [[0.03, 0.003, 0.01, 0.01, 0.03, 0.03]])  # the checkpoint's, not configs='s
    for _ in range(2):
        np.testing.assert_array_equal(restored.advance(40), pop.advance(40))
        a, b = restored.evaluate(), pop.evaluate()
        jax.tree.map(np.testing.assert_array_equal, a, b)
    ra, rb = restored.result(), pop.result()
    np.testing.assert_array_equal(ra.train_loss, rb.train_loss)
    np.testing.assert_array_equal(ra.plateau_scale, rb.plateau_scale)
    np.testing.assert_array_equal(ra.eval_steps, [30, 85, 125])
    jax.tree.map(np.testing.assert_array_equal, ra.final_params, rb.final_params)


def test_a_checkpoint_for_another_optimizer_config_structure_or_plateau_raises(saved, digits):
    _, path, plateau = saved
    like = {"learning_rate": schedules([1.0, 1.0, 1.0])}
    with pytest.raises(ValueError, match="written for a different task, optimizer or plateau") as raised:
        lrjax.Population.restore(
            path, digits, lambda hp: optax.sgd(hp["learning_rate"], momentum=0.9), configs=like, plateau=plateau
        )
    # Where the states differ, by path, in a few lines: Adam's moments saved, SGD's trace given.
    lines = str(raised.value).splitlines()
    assert len(lines) == 3 and "… (4 more)" in lines[1]
    assert lines[1].startswith(
        "  only in the checkpoint state: .opt_state[0].count int32[], .opt_state[0].mu['Dense_0']"
    )
    assert lines[2].startswith("  only in the given state: .opt_state[0].trace['Dense_0']['bias'] float32[16]")
    with pytest.raises(
        ValueError,
        match=r"config 'learning_rate' in .* has structure .*Warmup.*Anneal.*, got PyTreeDef\(\*\); pass configs= with that structure",
    ):
        lrjax.Population.restore(path, digits, scheduled, plateau=plateau)
    with pytest.raises(ValueError, match="was saved with a plateau; restore it with one"):
        lrjax.Population.restore(path, digits, scheduled, configs=like)
    with pytest.raises(ValueError, match="written for a different task"):
        lrjax.Population.restore(path, lrjax.datasets.digits_mlp(hidden=(8,)), scheduled, configs=like, plateau=plateau)


# tensorstore's reader reports the corrupt chunk from a callback after orbax has closed its event loop
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
def test_a_corrupt_or_partial_checkpoint_raises(saved, digits, tmp_path):
    _, path, plateau = saved
    like = {"learning_rate": schedules([1.0, 1.0, 1.0])}
    corrupt = tmp_path / "corrupt"
    shutil.copytree(path, corrupt)
    data = [f for f in corrupt.rglob("*") if f.is_file() and f.parent.name == "d"]
    assert data
    for f in data:  # flip bytes in the middle of every array data file
        raw = bytearray(f.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        f.write_bytes(bytes(raw))
    with pytest.raises(ValueError, match="is corrupt"):
        lrjax.Population.restore(corrupt, digits, scheduled, configs=like, plateau=plateau)

    tampered = tmp_path / "tampered"  # arrays that decode, but are not what was saved
    shutil.copytree(path, tampered)
    (meta_file,) = tampered.glob("*/meta/metadata")
    meta = json.loads(meta_file.read_text())
    key = sorted(meta["checksums"])[0]
    meta["checksums"][key] = "0" * 64 + meta["checksums"][key][64:]
    meta_file.write_text(json.dumps(meta))
    with pytest.raises(ValueError, match=rf"is corrupt: the checksums of \['{key}'\] do not match"):
        lrjax.Population.restore(tampered, digits, scheduled, configs=like, plateau=plateau)

    partial = tmp_path / "partial"
    shutil.copytree(path, partial)
    for step in [d for d in partial.iterdir() if d.name.isdigit()]:
        (step / "commit_success.txt").unlink(missing_ok=True)
        step.rename(partial / f"{step.name}.orbax-checkpoint-tmp-1234")  # what a killed save leaves
    with pytest.raises(ValueError, match="holds no complete checkpoint"):
        lrjax.Population.restore(partial, digits, scheduled, configs=like, plateau=plateau)
    with pytest.raises(FileNotFoundError, match="no checkpoint directory"):
        lrjax.Population.restore(tmp_path / "missing", digits, scheduled, configs=like, plateau=plateau)


def test_saving_onto_an_existing_file_raises_before_writing(tmp_path, digits, sgd):
    pop = lrjax.Population(digits, sgd, {"learning_rate": [0.1]}, batch_size=32)
    pop.advance(3)
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    for path in (a_file, a_file / "ckpt"):
        with pytest.raises(
            ValueError, match=r"path must be a directory, new or existing; .*notes.txt.* is an existing file"
        ):
            pop.save(path)
    assert a_file.read_text() == "mine" and sorted(os.listdir(tmp_path)) == ["notes.txt"]
    with pytest.raises(ValueError, match="checkpoint must be a directory"):
        lrjax.sweep(digits, sgd, {"learning_rate": [0.1]}, steps=2, checkpoint=a_file, progress=False)


def test_a_sweep_refuses_the_checkpoint_of_another_sweep(tmp_path, digits, sgd):
    kw = dict(steps=20, batch_size=32, checkpoint=tmp_path / "ckpt", progress=False)
    lrjax.sweep(digits, sgd, {"learning_rate": [0.1, 0.2]}, **kw)
    with pytest.raises(ValueError, match=r"holds a checkpoint of another sweep, \(saved, given\): \{'configs'"):
        lrjax.sweep(digits, sgd, {"learning_rate": [0.1, 0.3]}, **kw)
    with pytest.raises(ValueError, match=r"\{'steps': \(20, 30\)\}"):
        lrjax.sweep(digits, sgd, {"learning_rate": [0.1, 0.2]}, **{**kw, "steps": 30})
    with pytest.raises(ValueError, match="checkpoint_every=5 needs checkpoint=<directory>"):
        lrjax.sweep(digits, sgd, {"learning_rate": [0.1]}, steps=20, checkpoint_every=5, progress=False)


def test_metadata_saved_with_a_population_is_what_the_restored_one_returns(tmp_path, digits, sgd):
    pop = lrjax.Population(digits, sgd, {"learning_rate": [0.1]}, batch_size=32)
    pop.advance(3)
    assert pop.metadata == {}
    given = {"run": "baseline", "group": 2, "budget": [1.5, None], "nested": {"ok": True}}
    pop.save(tmp_path / "ckpt", metadata=given)
    restored = lrjax.Population.restore(tmp_path / "ckpt", digits, sgd)
    assert restored.metadata == given
    restored.metadata["run"] = "changed"  # a copy: the population's own is unchanged
    assert restored.metadata == given
    pop.save(tmp_path / "ckpt")  # saved again without: the checkpoint's metadata is empty
    assert lrjax.Population.restore(tmp_path / "ckpt", digits, sgd).metadata == {}


@pytest.mark.parametrize(
    "metadata, message",
    [
        ({"steps": (1, 2)}, r"read back as given from JSON.*\{'steps': \[1, 2\]\}"),
        ({1: "a"}, r"read back as given from JSON.*\{'1': 'a'\}"),
        ({"loss": np.float32(0.5)}, "JSON values: Object of type float32 is not JSON serializable"),
        ({"loss": float("nan")}, "JSON values: Out of range float values"),
        ([("run", 1)], "must be a mapping of str keys to JSON values, got list"),
    ],
)
def test_metadata_that_would_not_read_back_as_given_raises_before_writing(tmp_path, digits, sgd, metadata, message):
    pop = lrjax.Population(digits, sgd, {"learning_rate": [0.1]}, batch_size=32)
    with pytest.raises(ValueError, match=message):
        pop.save(tmp_path / "ckpt", metadata=metadata)
    assert not (tmp_path / "ckpt").exists()
