"""lrjax.plot.schedule draws the schedule's values; the CLI prints a table and writes a PNG."""

import matplotlib

matplotlib.use("Agg")

import os
import pathlib
import re
import subprocess
import sys

import numpy as np
import pytest

import lrjax
import lrjax.schedules as S
from lrjax import cli, plot
from lrjax.engine import count_compiles

REPO = pathlib.Path(__file__).resolve().parents[1]


def test_plot_draws_each_schedule_with_its_label():
    schedules = {"cosine": S.cosine_decay(0.1, decay_steps=50), "step": S.step_decay(0.1, step_size=10, decay_rate=0.5)}
    (ax,) = plot.schedule(schedules, 60, log_scale=True, title="two").axes
    lines = ax.get_lines()
    assert [line.get_label() for line in lines] == ["cosine", "step"]
    np.testing.assert_array_equal(lines[0].get_xdata(), np.arange(60))
    np.testing.assert_allclose(lines[1].get_ydata(), 0.1 * 0.5 ** (np.arange(60) // 10), rtol=1e-6)
    assert ax.get_yscale() == "log" and ax.get_title() == "two"
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["cosine", "step"]
    assert "learning rate" in ax.get_ylabel() and "step" in ax.get_xlabel()


SCRIPT = """
import matplotlib.figure, matplotlib.pyplot as plt, optax, lrjax
configs = lrjax.search.grid({"learning_rate": [0.01, 0.1], "momentum": [0.0, 0.9]})
result = lrjax.sweep(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"]),
                     configs, steps=20, eval_every=10, progress=False)
figures = [result.plot(), lrjax.plot.schedule(lrjax.schedules.constant(0.1), 10),
           lrjax.plot.heatmap(result, x="learning_rate", y="momentum")]
assert all(type(f).__mro__[1] is matplotlib.figure.Figure for f in figures)
print("open", plt.get_fignums() == [f.number for f in figures])
plt.show()
"""


@pytest.mark.parametrize("backend", ["agg", "module://tests.shown_backend"])
def test_a_script_gets_open_pyplot_figures_that_plt_show_shows(backend, tmp_path):
    env = {**os.environ, "MPLBACKEND": backend, "JAX_PLATFORMS": "cpu", "PYTHONPATH": str(REPO)}
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT], env=env, capture_output=True, text=True, timeout=300, cwd=tmp_path
    )
    assert done.returncode == 0, done.stderr
    shown = [line for line in done.stdout.splitlines() if line.startswith("shown")]
    assert "open True" in done.stdout
    assert shown == (["shown figure 1", "shown figure 2", "shown figure 3"] if backend.startswith("module") else [])


def test_plot_accepts_explicit_steps_and_checks_labels():
    (ax,) = plot.schedule([S.linear(1.0, end_value=0.0, steps=10)], [0, 5, 10], labels=["lin"]).axes
    np.testing.assert_allclose(ax.get_lines()[0].get_ydata(), [1.0, 0.5, 0.0])
    with pytest.raises(ValueError, match="labels must have 2 entries"):
        plot.schedule([S.constant(1.0), S.constant(2.0)], 10, labels=["one"])
    with pytest.raises(TypeError, match="must be an lrjax schedule"):
        plot.schedule({"f": lambda t: t}, 10)
    with pytest.raises(ValueError, match="steps must be > 0, got 0"):
        plot.schedule(S.constant(1.0), 0)


def test_cli_prints_table_and_writes_png(tmp_path, capsys):
    out = tmp_path / "schedules.png"
    with count_compiles() as log:
        assert cli.main(["schedules", "--steps", "200", "--peak", "0.5", "--out", str(out)]) == 0
    assert log.count <= 3  # one program for the table and figure, two that stage arrays (was 158)
    text = capsys.readouterr().out
    rows = {line.split()[0]: line.split()[1:] for line in text.splitlines()[2:] if line.strip() and "wrote" not in line}
    assert rows["cosine_decay"][0] == "0.5" and float(rows["cosine_decay"][3]) == pytest.approx(0.25, rel=1e-3)
    assert rows["warmup_cosine_decay"][:2] == ["0", "0.5"]  # warmup ends at step 200 // 10 = 20
    assert len(rows) == len(cli.gallery(200))
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_cli_rejects_too_few_steps(capsys):
    with pytest.raises(SystemExit):
        cli.main(["schedules", "--steps", "5"])
    assert "must be an integer >= 20, got 5" in capsys.readouterr().err


def test_cli_sweep_prints_ranked_table_and_writes_csv_and_png(tmp_path, capsys):
    import pandas as pd

    args = ["sweep", "--num", "4", "--lr-min", "1e-3", "--lr-max", "1.0", "--steps", "60", "--eval-every", "30"]
    assert cli.main([*args, "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "4 configurations (learning_rate) × 1 seed(s) · 60 steps" in text and "best: learning_rate" in text
    frame = pd.read_csv(tmp_path / "lrjax-sweep-digits_mlp.csv")
    assert len(frame) == 4 and {"learning_rate", "eval_loss", "eval_accuracy", "diverged"} <= set(frame)
    best = frame.loc[frame["eval_loss"].idxmin(), "learning_rate"]
    assert f"best: learning_rate {best:.4g}" in text
    assert (tmp_path / "lrjax-sweep-digits_mlp.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_sweep_with_a_checkpoint_resumes_to_the_same_table(tmp_path, capsys):
    import pandas as pd

    args = ["sweep", "--num", "3", "--steps", "40", "--eval-every", "20", "--checkpoint", str(tmp_path / "ckpt")]
    assert cli.main([*args, "--out-dir", str(tmp_path / "a")]) == 0
    assert (tmp_path / "ckpt" / "group_0000").is_dir()
    assert cli.main([*args, "--out-dir", str(tmp_path / "b")]) == 0  # finds the finished checkpoint
    capsys.readouterr()
    first, second = (pd.read_csv(tmp_path / d / "lrjax-sweep-digits_mlp.csv") for d in "ab")
    pd.testing.assert_frame_equal(first, second)


@pytest.mark.parametrize(
    "argv, message",
    [
        (["sweep", "--lr-min", "1", "--lr-max", "0.1"], r"--lr-max must be > --lr-min \(1.0\), got 0.1"),
        (["sweep", "--cpu-devices", "0"], "--cpu-devices must be >= 1, got 0"),
        (["sweep", "--num", "0"], "--num must be >= 1, got 0"),
        (["schedules", "--peak", "-1"], r"--peak must be > 0, got -1.0"),
        (["sweep", "--steps", "0"], "--steps must be >= 1, got 0"),
        (["sweep", "--batch-size", "0", "--steps", "20"], "--batch-size must be >= 1, got 0"),
        (["sweep", "--seeds", "0", "--steps", "20"], "--seeds must be >= 1, got 0"),
        (["sweep", "--eval-every", "0", "--steps", "20"], "--eval-every must be >= 1, got 0"),
        (["find-lr", "--min-lr", "1", "--max-lr", "0.5"], r"--max-lr must be > --min-lr \(1.0\), got 0.5"),
        (["find-lr", "--steps", "5"], "--steps must be >= 10, got 5"),
        (["search", "--method", "pbt", "--population", "1"], "--population must be >= 2, got 1"),
        (["batch-size", "--batch-sizes", "64,32"], r"--batch-sizes must be strictly increasing, got \[64, 32\]"),
    ],
)
def test_cli_reports_bad_flags_as_usage_errors_not_tracebacks(argv, message, capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    # The subcommand's usage line and one line of error, naming the flag as typed.
    assert re.search(f"lrjax {argv[0]}: error: " + message, err) and "Traceback" not in err
    lines = err.strip().splitlines()
    assert err.startswith(f"usage: lrjax {argv[0]} ") and [line for line in lines if "error:" in line] == lines[-1:]


def test_the_catalogue_draws_each_schedule_in_its_panel():
    schedules = cli.gallery(300)
    fig = plot.catalogue(schedules, 300, title="all")
    assert [ax.get_title() for ax in fig.axes] == list(schedules) and fig._suptitle.get_text() == "all"
    for ax, s in zip(fig.axes, schedules.values(), strict=True):
        x, y = ax.get_lines()[0].get_data()
        np.testing.assert_allclose(y, np.asarray(s(np.asarray(x))), rtol=1e-6)


def test_cli_checks_its_output_directory_before_training(tmp_path, capsys):
    a_file = tmp_path / "results"
    a_file.write_text("")
    for flag in ("--out-dir", "--checkpoint"):
        with count_compiles() as log, pytest.raises(SystemExit) as exit_info:
            cli.main(["sweep", "--steps", "20", flag, str(a_file)])
        assert exit_info.value.code == 2 and log.count == 0
        err = capsys.readouterr().err
        assert f"lrjax sweep: error: {flag} must be a directory, new or existing" in err and "Traceback" not in err


def test_cli_find_lr_prints_suggestions_and_writes_curves_and_png(tmp_path, capsys):
    import pandas as pd

    args = ["find-lr", "--steps", "40", "--seeds", "3", "--config", "b1=0.5,0.9", "--verify", "30"]
    assert cli.main([*args, "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "range test 1e-07..10 over 40 steps, 6 curves" in text and "suggestion (valley): " in text
    assert text.count("verify (30 steps), configuration") == 2
    frame = pd.read_csv(tmp_path / "lrjax-find-lr-digits_mlp.csv")
    assert len(frame) == 6 * 40 and {"b1", "seed", "lr", "loss"} <= set(frame)
    assert (tmp_path / "lrjax-find-lr-digits_mlp.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_batch_size_prints_the_trade_off_and_the_critical_batch_size(tmp_path, capsys):
    import pandas as pd

    args = ["batch-size", "--batch-sizes", "16,32,64,128", "--examples", "12800", "--num", "2", "--target", "0.5"]
    assert cli.main([*args, "--seeds", "1", "--evaluations", "20", "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert "steps and examples to eval loss 0.5" in text and "critical batch size" in text
    frame = pd.read_csv(tmp_path / "lrjax-batch-size-digits_mlp.csv")
    assert len(frame) == 8 and {"batch_size", "learning_rate", "steps_to_target", "reached"} <= set(frame)
    assert (tmp_path / "lrjax-batch-size-digits_mlp.png").read_bytes()[:4] == b"\x89PNG"


@pytest.mark.parametrize("method", ["random", "bayesian", "halving", "hyperband", "pbt"])
def test_cli_search_prints_the_best_trials_and_writes_the_history(method, tmp_path, capsys):
    import pandas as pd

    args = ["search", "--method", method, "--steps", "60", "--min-steps", "20", "--trials", "8", "--batch", "4"]
    args += ["--n", "6", "--population", "8", "--interval", "20", "--space", "learning_rate=log:1e-4:1"]
    assert cli.main([*args, "--out-dir", str(tmp_path)]) == 0
    text = capsys.readouterr().out
    assert f"{method} over learning_rate" in text and "best: learning_rate" in text
    frame = pd.read_csv(tmp_path / f"lrjax-search-{method}-digits_mlp.csv")
    assert {"trial", "steps", "learning_rate", "loss", "diverged"} <= set(frame)
    assert (tmp_path / f"lrjax-search-{method}-digits_mlp.png").read_bytes()[:4] == b"\x89PNG"


def test_cli_version(capsys):
    with pytest.raises(SystemExit) as exit_info:
        cli.main(["--version"])
    assert exit_info.value.code == 0 and capsys.readouterr().out.strip() == f"lrjax {lrjax.__version__}"


def test_cli_sweeps_a_users_task_given_as_module_function(tmp_path, monkeypatch, capsys):
    import pandas as pd

    (tmp_path / "user_tasks.py").write_text(
        "import lrjax\n\ndef line():\n    return lrjax.datasets.linear_regression()\n\ndef nothing():\n    return 3\n"
    )
    monkeypatch.chdir(tmp_path)
    args = [
        "sweep",
        "--task",
        "user_tasks:line",
        "--optimizer",
        "sgd",
        "--num",
        "3",
        "--lr-min",
        "0.01",
        "--lr-max",
        "0.5",
    ]
    assert cli.main([*args, "--steps", "40", "--eval-every", "20", "--batch-size", "32"]) == 0
    out = capsys.readouterr().out
    assert "linear_regression · sgd · 3 configurations" in out and "best: learning_rate 0.5" in out
    frame = pd.read_csv(tmp_path / "lrjax-sweep-linear_regression.csv")
    assert len(frame) == 3 and "eval_accuracy" not in frame  # a regression task: loss only
    for spec, message in [
        ("user_tasks:nothing", "--task 'user_tasks:nothing' must return an lrjax.Task, got int"),
        ("no_such_module:f", "--task 'no_such_module:f': No module named 'no_such_module'"),
        ("digits", r"--task must be one of \['digits_cnn', 'digits_mlp'\] or module:function, got 'digits'"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main(["sweep", "--task", spec, "--steps", "20"])
        assert exit_info.value.code == 2 and re.search("lrjax sweep: error: " + message, capsys.readouterr().err)


def test_cli_sweeps_other_hyperparameters_the_optimizer_reads(tmp_path, capsys):
    import pandas as pd

    args = [
        "sweep",
        "--optimizer",
        "adamw",
        "--num",
        "2",
        "--config",
        "weight_decay=0,0.1",
        "--steps",
        "30",
        "--eval-every",
        "30",
    ]
    assert cli.main([*args, "--out-dir", str(tmp_path)]) == 0
    out = capsys.readouterr().out
    assert (
        "4 configurations (learning_rate × weight_decay)" in out
        and "best: learning_rate" in out
        and "weight_decay" in out
    )
    frame = pd.read_csv(tmp_path / "lrjax-sweep-digits_mlp.csv")
    assert sorted(frame["weight_decay"].unique().tolist()) == [0.0, 0.1] and len(frame) == 4
    for argv, message in [
        (
            ["sweep", "--optimizer", "sgd", "--config", "momentum=0,0.9"],
            r"--config momentum is not read by --optimizer sgd \(it reads only the learning rate\): "
            r"use --optimizer momentum",
        ),
        (
            ["sweep", "--config", "weight_decay=0,1e-4"],
            r"--config weight_decay is not read by --optimizer adam \(it reads b1, b2\): use --optimizer adamw",
        ),
        (["sweep", "--config", "b1=x"], r"argument --config: must be NAME=V1,V2,... with numbers, got 'b1=x'"),
        (["sweep", "--batch-size", "5000"], r"lrjax sweep: error: --batch-size must be <= the number of training"),
    ]:
        with pytest.raises(SystemExit) as exit_info:
            cli.main([*argv, "--steps", "20"])
        err = capsys.readouterr().err
        assert exit_info.value.code == 2 and re.search(message, err) and "Traceback" not in err
        assert err.startswith("usage: lrjax sweep ")  # the subcommand's own usage line


CACHE_HITS = """
import sys, jax, jax.monitoring
hits = []
jax.monitoring.register_event_listener(lambda event, **kw: hits.append(event) if event.endswith("cache_hits") else None)
from lrjax import cli
code = cli.main(sys.argv[1:])
print("cache hits", len(hits))
sys.exit(code)
"""


def _cli_process(tmp_path, *flags):
    """``lrjax sweep`` in a process of its own, the user's cache directory under ``tmp_path``."""
    args = ["sweep", "--num", "2", "--steps", "20", "--eval-every", "10", "--out-dir", str(tmp_path), *flags]
    env = dict(os.environ, XDG_CACHE_HOME=str(tmp_path / "cache"), JAX_PLATFORMS="cpu")
    env.pop("JAX_COMPILATION_CACHE_DIR", None)
    done = subprocess.run(
        [sys.executable, "-c", CACHE_HITS, *args], env=env, capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stdout + done.stderr
    return int(done.stdout.split("cache hits")[-1])


def test_the_command_line_keeps_compiled_programs_for_the_next_process(tmp_path):
    assert _cli_process(tmp_path) == 0  # the first process compiles and writes
    kept = list((tmp_path / "cache" / "lrjax" / "jax").iterdir())
    assert len(kept) >= 5  # the sweep's init, chunk, evaluation, ... and the option probe
    assert _cli_process(tmp_path) >= 5  # the second loads them


def test_the_command_line_without_the_compilation_cache_writes_nothing(tmp_path):
    assert _cli_process(tmp_path, "--no-compilation-cache") == 0
    assert not (tmp_path / "cache" / "lrjax").exists()  # (matplotlib keeps its font list there)


def _grid_result(lrs, wds):
    """A synthetic result of a learning-rate × weight-decay grid (no training: only the plots read it)."""
    lr, wd = np.repeat(lrs, len(wds)), np.tile(wds, len(lrs))
    final = (np.log10(lr) + 2.0) ** 2 + 100 * wd + 0.1
    curves = final[:, None] * (1 + 1 / np.arange(1, 41))[None]
    m = len(lr)
    return lrjax.SweepResult(
        {"learning_rate": lr, "weight_decay": wd, "seed": np.zeros(m, int)},
        curves,
        np.array([40]),
        {"loss": final[:, None]},
        None,
        np.zeros(m, bool),
        -np.ones(m, int),
        {"seeds": 1, "task": "grid"},
    )


@pytest.mark.parametrize("n", [8, 24, 64])
def test_a_heat_map_stays_readable_at_8_24_and_64_values_an_axis(n):
    lrs, wds = np.geomspace(1e-4, 1.0, n), np.geomspace(1e-5, 1e-3, n)
    (ax, _) = plot.heatmap(_grid_result(lrs, wds), x="learning_rate", y="weight_decay").axes
    xticks, yticks = [t.get_text() for t in ax.get_xticklabels()], [t.get_text() for t in ax.get_yticklabels()]
    assert len(xticks) == len(yticks) == (8 if n == 8 else -(-n // -(-n // 10)))  # every k-th value, at most 10
    assert xticks[0] == "0.0001" and yticks[0] == "1e-05"  # whole, not cut
    assert len(ax.texts) == (n * n if n == 8 else 0)  # a value in each cell only where it fits


def test_curves_of_a_grid_tell_the_other_hyperparameter_apart_and_thin_within_each_value():
    result = _grid_result(np.geomspace(1e-4, 1.0, 24), [0.0, 1e-3])
    figure = plot.sweep(result, max_curves=24)
    curves = figure.axes[0]
    styles = [line.get_linestyle() for line in curves.get_lines()]
    assert styles.count("-") == styles.count("--") == 12  # 24 of 48 curves, 12 of each weight decay
    assert [t.get_text() for t in curves.get_legend().get_texts()] == ["weight_decay=0", "weight_decay=0.001"]
    assert "24 of 48 configurations" in curves.get_title()
    (heat,) = [ax for ax in figure.axes if ax.get_title().endswith("weight_decay vs learning_rate")]
    assert [t.get_text() for t in heat.get_yticklabels()] == ["0", "0.001"]  # not cut to "001"
