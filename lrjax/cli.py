"""The ``lrjax`` command line."""

from __future__ import annotations

import argparse
import importlib
import os
import pathlib
import re
import sys
import time
from collections.abc import Sequence
from typing import Any

import jax
import numpy as np
import optax

import lrjax.schedules as S
from lrjax import __version__, search
from lrjax import _validate as v
from lrjax._batch_size_sweep import batch_size_sweep
from lrjax._compilation_cache import enable_compilation_cache
from lrjax._finder import find_lr
from lrjax._sweep import sweep
from lrjax._task import Task


def gallery(total_steps: int, peak: float = 0.1) -> dict[str, S.Schedule]:
    """One example of each schedule family over ``total_steps`` steps, peaking at ``peak``."""
    n = total_steps
    return {
        "step_decay": S.step_decay(peak, step_size=n // 4, decay_rate=0.5),
        "multistep_decay": S.multistep_decay(peak, milestones=[n // 2, 3 * n // 4], decay_rate=0.1),
        "exponential_decay": S.exponential_decay(peak, decay_rate=0.01, decay_steps=n),
        "inverse_time_decay": S.inverse_time_decay(peak, decay_rate=1.0, decay_steps=n // 10),
        "linear": S.linear(peak, end_value=0.0, steps=n),
        "polynomial(p=2, cycle)": S.polynomial(peak, end_value=0.0, steps=n // 3, power=2.0, cycle=True),
        "cosine_decay": S.cosine_decay(peak, decay_steps=n),
        "cosine_restarts(x2)": S.cosine_restarts(peak, period=n // 15, period_mult=2, peak_mult=0.8),
        "warmup_cosine_decay": S.warmup_cosine_decay(0.0, peak_value=peak, warmup_steps=n // 10, total_steps=n),
        "warmup_stable_decay(1-sqrt)": S.warmup_stable_decay(
            peak, warmup_steps=n // 20, stable_steps=n - n // 20 - n // 4, decay_steps=n // 4, decay_shape="1-sqrt"
        ),
        "inverse_sqrt": S.inverse_sqrt(peak, warmup_steps=n // 10),
        "cyclic(triangular2)": S.cyclic(peak / 10, peak_value=peak, step_size_up=n // 8, mode="triangular2"),
        "one_cycle": S.one_cycle(peak, total_steps=n),
        "one_cycle(three_phase)": S.one_cycle(peak, total_steps=n, three_phase=True, anneal="linear"),
        "join(linear, exp)": S.join(
            [
                S.linear(peak / 10, end_value=peak, steps=n // 10),
                S.exponential_decay(peak, decay_rate=0.05, decay_steps=n),
            ],
            boundaries=[n // 10],
        ),
        "batch-scaled cosine (sqrt, 4x)": S.scale_for_batch_size(
            S.cosine_decay(peak / 2, decay_steps=n), base_batch_size=256, batch_size=1024, rule="sqrt"
        ),
    }


def format_table(schedules: dict[str, S.Schedule], steps: Sequence[int]) -> str:
    """A plain-text table of each schedule's value at ``steps``."""
    from lrjax import plot

    width = max(len(name) for name in schedules)
    head = f"{'schedule':<{width}}" + "".join(f"{'t=' + str(t):>11}" for t in steps)
    rows = [head, "-" * len(head)]
    # Evaluated at every step up to the last one asked, as the catalogue figure is: one program.
    for name, values in plot.values(list(schedules.items()), np.arange(max(steps) + 1)).items():
        rows.append(f"{name:<{width}}" + "".join(f"{values[t]:>11.4g}" for t in steps))
    return "\n".join(rows)


def _schedules_command(args: argparse.Namespace) -> int:
    schedules = gallery(args.steps, args.peak)
    n = args.steps
    print(format_table(schedules, [0, n // 10, n // 4, n // 2, 3 * n // 4, n - 1]))
    if args.out:
        from lrjax import plot

        fig = plot.catalogue(schedules, n, title=f"lrjax schedules over {n} steps (peak {args.peak:g})")
        fig.savefig(args.out, dpi=110)
        _close(fig)
        print(f"\nwrote {args.out}")
    return 0


# Each reads learning_rate and, when swept with --config, the other hyperparameters named here.
OPTIMIZERS = {
    "sgd": lambda hp: optax.sgd(hp["learning_rate"]),
    "momentum": lambda hp: optax.sgd(hp["learning_rate"], momentum=hp.get("momentum", 0.9)),
    "adam": lambda hp: optax.adam(hp["learning_rate"], b1=hp.get("b1", 0.9), b2=hp.get("b2", 0.999)),
    "adamw": lambda hp: optax.adamw(
        hp["learning_rate"], b1=hp.get("b1", 0.9), b2=hp.get("b2", 0.999), weight_decay=hp.get("weight_decay", 1e-4)
    ),
}
SWEPT = {"sgd": [], "momentum": ["momentum"], "adam": ["b1", "b2"], "adamw": ["b1", "b2", "weight_decay"]}


def _config_arg(text: str) -> tuple[str, list[float]]:
    """``NAME=V1,V2,...`` as (name, values)."""
    name, sep, values = text.partition("=")
    try:
        parsed = [float(value) for value in values.split(",")]
    except ValueError:
        parsed = []
    if not sep or not name or not parsed:
        raise argparse.ArgumentTypeError(f"must be NAME=V1,V2,... with numbers, got {text!r}")
    return name, parsed


TASKS = ("digits_mlp", "digits_cnn")  # in lrjax.datasets, imported when a command needs one (it imports Flax)


def _use_cpu_devices(count: int) -> None:
    """Split the host CPU into ``count`` JAX devices, so that a sweep shards its members over the
    cores. With JAX's single CPU device the engine runs parts on every core itself
    (`lrjax.engine.parts`); the two settings measure the same within the benchmark host's noise (the
    README's Performance section), end to end from the command line too (`lrjax sweep` 3.7 s
    with 2 devices, 4.0 s with 1; `lrjax find-lr --seeds 8` 3.9 s and 4.1 s on 2 cores). JAX
    allows it only before its backends start: called from a program that already ran JAX, the
    devices stay as they are (the summary line reports how many the sweep used)."""
    try:
        jax.config.update("jax_num_cpu_devices", count)
    except RuntimeError:
        pass


def load_task(spec: str) -> Task:
    """A built-in task by name, or ``module:function`` (a function of no arguments returning an
    `lrjax.Task`, imported from the current directory or the Python path)."""
    if spec in TASKS:
        return getattr(importlib.import_module("lrjax.datasets"), spec)()
    module_name, sep, function_name = spec.partition(":")
    if not sep or not module_name or not function_name:
        raise ValueError(f"--task must be one of {sorted(TASKS)} or module:function, got {spec!r}")
    if "" not in sys.path:
        sys.path.insert(0, "")
    try:
        make = getattr(importlib.import_module(module_name), function_name)
    except (ImportError, AttributeError) as err:
        raise ValueError(f"--task {spec!r}: {err}") from err
    task = make()
    if not isinstance(task, Task):
        raise TypeError(f"--task {spec!r} must return an lrjax.Task, got {type(task).__name__}")
    return task


def _load_task(args: argparse.Namespace) -> Task:
    """The ``--task``, with ``--batch-size`` filled in where it was not given: the batches of a
    task whose training data is a stream, else 64."""
    task = load_task(args.task)
    if "batch_size" in args and args.batch_size is None:
        args.batch_size = task.stream_batch_size if task.streamed else 64
    return task


def _axes(args: argparse.Namespace, axes: dict[str, Any]) -> dict[str, Any]:
    """``axes`` (learning rates from the flags) and the ``--config`` values, each name once."""
    axes = dict(axes)
    for name, values in args.config or []:
        if name in axes or name == "learning_rate":
            raise ValueError(f"--config {name} is given twice or is the learning rate, which the command sets")
        axes[name] = values
    return axes


def _write(args: argparse.Namespace, stem: str, table: Any, figure: Any) -> None:
    """Write ``table`` (pandas) to ``<out-dir>/<stem>.csv`` and ``figure`` to ``<stem>.png``."""
    out = pathlib.Path(args.out_dir)
    out.mkdir(parents=True, exist_ok=True)
    csv, png = out / f"{stem}.csv", out / f"{stem}.png"
    table.to_csv(csv, index=False)
    figure.savefig(png, dpi=110)
    _close(figure)
    print(f"wrote {csv} and {png}")


def _close(figure: Any) -> None:
    """Let pyplot forget a figure once it is written (`lrjax.plot` figures live in pyplot)."""
    import matplotlib.pyplot as plt

    plt.close(figure)


def _summary_line(task: Task, args: argparse.Namespace, what: str, seconds: float) -> str:
    devices = len(jax.devices())
    batch = f" · batch {args.batch_size}" if "batch_size" in args else ""
    return f"\n{task.name} · {args.optimizer} · {what}{batch} · {devices} device(s): {seconds:.1f} s"


def _find_lr_command(args: argparse.Namespace) -> int:
    _use_cpu_devices(args.cpu_devices)
    task = _load_task(args)
    axes = _axes(args, {})
    started = time.perf_counter()
    result = find_lr(
        task,
        OPTIMIZERS[args.optimizer],
        configs=search.grid(axes) if axes else None,
        **_given(args, "min_lr", "max_lr", "steps", "mode", "seeds", "batch_size", "seed"),
    )
    seconds = time.perf_counter() - started
    curves = len(result.diverged_at)
    print(
        _summary_line(
            task, args, f"range test {args.min_lr:g}..{args.max_lr:g} over {args.steps} steps, {curves} curves", seconds
        )
    )
    print("\nsuggested learning rates (median over seeds; spread: decades the seeds' own suggestions span):")
    print(result.summary().to_string(index=False, float_format=lambda x: f"{x:.3g}"))
    suggestion = np.atleast_1d(result.suggestion)
    print(f"\nsuggestion (valley): {', '.join(f'{x:.3g}' for x in suggestion)}")
    if args.verify:
        check = result.verify(args.verify)
        best, regret = np.atleast_1d(check.best_lr), np.atleast_1d(check.regret)
        for c, (lr, r) in enumerate(zip(best, regret, strict=True)):
            print(
                f"verify ({args.verify} steps), configuration {c}: best of suggestion x 2^-3..2^3 is {lr:.3g}; regret {r:.4g}"
            )
    _write(args, f"lrjax-find-lr-{task.name}", result.to_pandas(), result.plot())
    return 0


def _batch_size_command(args: argparse.Namespace) -> int:
    _use_cpu_devices(args.cpu_devices)
    task = _load_task(args)
    axes = _axes(args, {"learning_rate": search.log_grid(args.lr_min, args.lr_max, args.num)})
    started = time.perf_counter()
    result = batch_size_sweep(
        task,
        OPTIMIZERS[args.optimizer],
        search.grid(axes),
        args.batch_sizes,
        **_given(args, "examples", "target", "lr_rule", "seed", "seeds", "evaluations"),
    )
    seconds = time.perf_counter() - started
    print(_summary_line(task, args, f"batch sizes {args.batch_sizes}, {args.examples} examples each", seconds))
    steps = result.trade_off()[0]
    table = result.to_pandas()
    best = table.loc[table.groupby("batch_size")["steps_to_target"].idxmin().dropna().astype(int)]
    print(f"\nsteps and examples to eval loss {args.target:g} (best configuration per batch size):")
    shown = ["batch_size", *axes, "steps_to_target", "examples_to_target", "best_loss", "examples_per_second"]
    print(best[shown].to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    missing = [int(b) for b, s in zip(result.batch_sizes, steps, strict=True) if not np.isfinite(s)]
    if missing:
        print(f"not reached at batch sizes {missing}")
    if np.isfinite(result.critical_batch_size):
        print(
            f"\ncritical batch size B_noise = {result.critical_batch_size:.4g} "
            f"(S_min = {result.s_min:.4g} steps, E_min = {result.e_min:.4g} examples)"
        )
    else:
        print("\ncritical batch size: not fitted (fewer than two batch sizes reached the target, or no trade-off)")
    _write(args, f"lrjax-batch-size-{task.name}", table, result.plot())
    return 0


def _given(args: argparse.Namespace, *names: str) -> dict[str, Any]:
    """The flags ``names`` as keyword arguments (each flag's name is the argument's)."""
    return {name: getattr(args, name) for name in names}


METHODS = ("random", "bayesian", "halving", "hyperband", "pbt")
# Each policy's own arguments from the flags (``random`` is a sweep of random configurations).
_POLICIES: dict[str, tuple[Any, Any]] = {
    "bayesian": (
        search.bayesian,
        lambda a: _given(a, "trials", "batch", "steps", "storage", "study_name"),
    ),
    "halving": (
        search.successive_halving,
        lambda a: dict(n=a.n, min_steps=a.min_steps, max_steps=a.steps, steps=a.search_steps or 2 * a.steps),
    ),
    "hyperband": (search.hyperband, lambda a: dict(min_steps=a.min_steps, max_steps=a.steps)),
    "pbt": (search.pbt, lambda a: dict(population=a.population, steps=a.steps, interval=a.interval)),
}


def _search_command(args: argparse.Namespace) -> int:
    _use_cpu_devices(args.cpu_devices)
    task = _load_task(args)
    space = dict(args.space or [])
    if not space:
        space = {"learning_rate": search.log_uniform(1e-5, 1.0)}
        if args.optimizer == "adamw":
            space["weight_decay"] = search.log_uniform(1e-6, 1e-1)
    opt = OPTIMIZERS[args.optimizer]
    common = _given(args, "batch_size", "seed", "seeds")
    started = time.perf_counter()
    if args.method == "random":
        swept = sweep(task, opt, search.random(space, args.trials, seed=args.seed), steps=args.steps, **common)
        result = search.SearchResult.from_sweep(swept)
    else:
        if args.method == "bayesian":
            import optuna

            optuna.logging.set_verbosity(optuna.logging.WARNING)
        policy, own = _POLICIES[args.method]
        result = policy(task, opt, space, **own(args), **common)
    seconds = time.perf_counter() - started
    info = result.info
    print(
        _summary_line(task, args, f"{args.method} over {', '.join(space)}", seconds)
        + f" · {info['trials']} trials, {info['member_steps']} member-steps"
        + (f", utilization {info['utilization']:.2f}" if np.isfinite(info.get("utilization", np.nan)) else "")
    )
    history = result.history
    finals = result.finals()
    print(
        f"\nbest {min(args.top, len(finals))} trials by final eval {result.metric} (trained {finals['steps'].max()} steps):"
    )
    print(finals.head(args.top).to_string(index=False, float_format=lambda x: f"{x:.4g}"))
    best = result.best()
    chosen = ", ".join(f"{name} {best[name]:.4g}" for name in space if name in best)
    print(f"\nbest: {chosen} (trial {best['trial']}, eval {result.metric} {best[result.metric]:.4f})")
    _write(args, f"lrjax-search-{args.method}-{task.name}", history, result.plot())
    return 0


def _sweep_command(args: argparse.Namespace) -> int:
    _use_cpu_devices(args.cpu_devices)
    task = _load_task(args)
    axes = _axes(args, {"learning_rate": search.log_grid(args.lr_min, args.lr_max, args.num)})
    configs = search.grid(axes)
    swept = list(axes)
    result = sweep(
        task,
        OPTIMIZERS[args.optimizer],
        configs,
        **_given(args, "steps", "batch_size", "seed", "seeds", "eval_every", "checkpoint"),
    )
    frame = result.to_pandas()
    measured = [result.column(n) for n in ["train_loss", *result.eval_metrics]]
    means = {c: (c, "mean") for c in measured}
    by_config = frame.groupby(swept, as_index=False).agg(**means, diverged=("diverged", "any"))
    ranked = by_config.sort_values(result.column("loss"), na_position="last")
    info = result.info
    print(
        f"\n{task.name} · {args.optimizer} · {len(by_config)} configurations ({' × '.join(swept)}) × {args.seeds} seed(s) "
        f"· {args.steps} steps "
        f"· batch {args.batch_size} · {info['devices']} device(s): {info['seconds']:.1f} s, {info['compiles']} compilations "
        f"({info['compile_seconds']:.1f} s), {int(result.diverged.sum())} member(s) diverged"
    )
    label = result.column("loss").replace("_", " ")
    print(f"\nbest {min(args.top, len(ranked))} configurations by final {label} (mean over seeds):")
    print(ranked.head(args.top).to_string(index=False, float_format=lambda v: f"{v:.4g}"))
    best = result.best()
    chosen = ", ".join(f"{name} {best[name]:.4g}" for name in swept)
    print(f"\nbest: {chosen} ({label} {best['loss']:.4f})")
    _write(args, f"lrjax-sweep-{task.name}", frame, result.plot())
    return 0


def _steps_arg(text: str) -> int:
    value = int(text)
    if value < 20:
        raise argparse.ArgumentTypeError(f"must be an integer >= 20, got {text}")
    return value


def _schedules_parser(commands: Any) -> None:
    p = commands.add_parser("schedules", help="print and draw the schedule catalogue")
    p.add_argument("--steps", type=_steps_arg, default=1000, help="training length in steps (default %(default)s)")
    p.add_argument("--peak", type=float, default=0.1, help="peak learning rate (default %(default)s)")
    p.add_argument("--out", default=None, help="write the figure to this PNG file")
    p.set_defaults(run=_schedules_command)


def _lr_grid_flags(parser: argparse.ArgumentParser, low: float, high: float, num: int, per: str) -> None:
    """The log-spaced learning rates a command sweeps: ``--lr-min``, ``--lr-max``, ``--num``."""
    grid = parser.add_argument_group("learning rates")
    grid.add_argument("--lr-min", type=float, default=low, help="the smallest (default %(default)g)")
    grid.add_argument("--lr-max", type=float, default=high, help="the largest (default %(default)g)")
    grid.add_argument("--num", type=int, default=num, help=f"how many {per}, log-spaced (default %(default)s)")


def _sweep_parser(commands: Any) -> None:
    p = commands.add_parser("sweep", help="sweep learning rates on a built-in task in one compiled program")
    _task_flags(p)
    _lr_grid_flags(p, 1e-4, 3.0, 32, "in all")
    p.add_argument("--steps", type=int, default=1000, help="training steps (default %(default)s)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per learning rate (default %(default)s)")
    p.add_argument("--eval-every", type=int, default=100, help="evaluate every N steps (default %(default)s)")
    p.add_argument(
        "--checkpoint",
        default=None,
        metavar="DIR",
        help="save the sweep to DIR at each evaluation (orbax-checkpoint); run the same command again to resume",
    )
    _config_flag(p, "also sweep this hyperparameter (a grid with the learning rates; repeatable)")
    _top_flag(p, "configurations")
    p.set_defaults(run=_sweep_command)


def _find_lr_parser(commands: Any) -> None:
    p = commands.add_parser("find-lr", help="the learning-rate range test, many seeds in one program")
    _task_flags(p)
    ramp = p.add_argument_group("the ramp")
    ramp.add_argument("--min-lr", type=float, default=1e-7, help="its start (default %(default)g)")
    ramp.add_argument("--max-lr", type=float, default=10.0, help="its end (default %(default)g)")
    ramp.add_argument("--steps", type=int, default=100, help="its steps (default %(default)s)")
    ramp.add_argument("--mode", choices=["exp", "linear"], default="exp", help="its shape (default %(default)s)")
    p.add_argument("--seeds", type=int, default=8, help="curves per configuration (default %(default)s)")
    _config_flag(p, "one curve per value and seed (Smith's multi-curve test; repeatable, a grid)")
    p.add_argument(
        "--verify",
        type=int,
        default=0,
        metavar="STEPS",
        help="train suggestion x 2^-3..2^3 for STEPS steps (default: no)",
    )
    p.set_defaults(run=_find_lr_command)


def _batch_size_parser(commands: Any) -> None:
    p = commands.add_parser("batch-size", help="steps and examples to a target across batch sizes; critical batch size")
    _task_flags(p, batch_size=False)
    p.add_argument("--batch-sizes", type=_ints_arg, default=[8, 16, 32, 64, 128, 256], help="default 8,16,...,256")
    p.add_argument("--examples", type=int, default=96_000, help="training examples per member (default %(default)s)")
    p.add_argument("--target", type=float, default=0.15, help="eval loss to reach (default %(default)s)")
    _lr_grid_flags(p, 1e-3, 3e-2, 4, "per batch size")
    p.add_argument(
        "--lr-rule", choices=["linear", "sqrt"], default=None, help="rescale the learning rates per batch size"
    )
    p.add_argument("--seeds", type=int, default=2, help="seeds per configuration (default %(default)s)")
    p.add_argument("--evaluations", type=int, default=100, help="evaluations per batch size (default %(default)s)")
    _config_flag(p, "also sweep this hyperparameter at every batch size (a grid with the learning rates)")
    p.set_defaults(run=_batch_size_command)


def _search_parser(commands: Any) -> None:
    p = commands.add_parser("search", help="random, Bayesian (Optuna), successive halving, Hyperband or PBT search")
    _task_flags(p)
    p.add_argument("--method", choices=sorted(METHODS), default="bayesian", help="the policy (default %(default)s)")
    p.add_argument(
        "--space",
        type=_space_arg,
        action="append",
        metavar="NAME=KIND:A:B",
        help="a searched hyperparameter: log:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or choice:V1,V2,... "
        "(repeatable; default learning_rate=log:1e-5:1, and weight_decay=log:1e-6:1e-1 for adamw)",
    )
    p.add_argument("--steps", type=int, default=1000, help="training steps of a full trial (default %(default)s)")
    p.add_argument("--seeds", type=int, default=1, help="seeds per trial (default %(default)s)")
    _top_flag(p, "trials")
    sampled = p.add_argument_group("random and bayesian")
    sampled.add_argument("--trials", type=int, default=32, help="trials (default %(default)s)")
    sampled.add_argument("--batch", type=int, default=8, help="bayesian: trials per round (default %(default)s)")
    sampled.add_argument("--storage", default=None, help="an Optuna storage URL, e.g. sqlite:///study.db (resumable)")
    sampled.add_argument("--study-name", default=None, help="the study's name in --storage")
    halving = p.add_argument_group("halving and hyperband")
    halving.add_argument("--n", type=int, default=16, help="halving: trial slots (default %(default)s)")
    halving.add_argument("--min-steps", type=int, default=100, help="the first rung (default %(default)s)")
    halving.add_argument("--search-steps", type=int, default=None, help="the search's length (default 2 x --steps)")
    pbt = p.add_argument_group("pbt")
    pbt.add_argument("--population", type=int, default=32, help="members (default %(default)s)")
    pbt.add_argument("--interval", type=int, default=100, help="steps between exploits (default %(default)s)")
    p.set_defaults(run=_search_command)


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="lrjax", description="Choose and schedule learning rates in JAX.")
    parser.add_argument("--version", action="version", version=f"lrjax {__version__}")
    commands = parser.add_subparsers(dest="command", required=True)
    for add in (_schedules_parser, _sweep_parser, _find_lr_parser, _batch_size_parser, _search_parser):
        add(commands)
    for command in commands.choices.values():
        command.set_defaults(command_parser=command)
        command.add_argument(
            "--no-compilation-cache",
            action="store_true",
            help="do not keep compiled programs on disk (default: kept in $XDG_CACHE_HOME/lrjax/jax, "
            "or JAX_COMPILATION_CACHE_DIR if set, so the same command runs again without compiling)",
        )
    return parser


def _space_arg(text: str) -> tuple[str, Any]:
    """``NAME=log:LOW:HIGH`` (or uniform, int, choice:V1,V2,...) as (name, distribution)."""
    name, _, spec = text.partition("=")
    kind, _, rest = spec.partition(":")
    try:
        if kind == "choice":
            return name, search.choice([float(x) for x in rest.split(",")])
        low, high = rest.split(":")
        if kind == "int":
            return name, search.int_uniform(int(low), int(high))
        make = {"log": search.log_uniform, "uniform": search.uniform}[kind]
        return name, make(float(low), float(high))
    except (KeyError, ValueError, TypeError) as err:
        detail = f" ({err})" if isinstance(err, ValueError) and "must" in str(err) else ""
        raise argparse.ArgumentTypeError(
            f"must be NAME=log:LOW:HIGH, uniform:LOW:HIGH, int:LOW:HIGH or choice:V1,V2,..., got {text!r}{detail}"
        ) from None


def _task_flags(parser: argparse.ArgumentParser, batch_size: bool = True) -> None:
    """The flags every training command shares: task, optimizer, batch size, seed, output, devices."""
    parser.add_argument(
        "--task",
        default="digits_mlp",
        metavar="TASK",
        help=f"a built-in task ({', '.join(sorted(TASKS))}) or module:function returning an lrjax.Task (default digits_mlp)",
    )
    parser.add_argument(
        "--optimizer",
        choices=sorted(OPTIMIZERS),
        default="adam",
        help="the Optax optimizer (default adam); --config can sweep what it reads: "
        + "; ".join(f"{o} reads {', '.join(n) or 'only the learning rate'}" for o, n in SWEPT.items()),
    )
    if batch_size:
        parser.add_argument(
            "--batch-size", type=int, default=None, help="batch size (default 64; a streamed task's own batches)"
        )
    parser.add_argument("--seed", type=int, default=0, help="base seed (default 0)")
    parser.add_argument("--out-dir", default=".", help="where to write the CSV and PNG (default .)")
    parser.add_argument(
        "--cpu-devices",
        type=int,
        default=os.cpu_count() or 1,
        help="on CPU, JAX devices to split the host into, members sharded over them (default: one per core)",
    )


def _top_flag(parser: argparse.ArgumentParser, rows: str) -> None:
    parser.add_argument("--top", type=int, default=8, help=f"{rows} in the table (default %(default)s)")


def _config_flag(parser: argparse.ArgumentParser, what: str) -> None:
    parser.add_argument(
        "--config",
        type=_config_arg,
        action="append",
        metavar="NAME=V1,V2,...",
        help=f"{what}: " + "; ".join(f"{o} reads {', '.join(n) or 'none'}" for o, n in SWEPT.items()),
    )


def _ints_arg(text: str) -> list[int]:
    try:
        return [int(value) for value in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"must be integers separated by commas, got {text!r}") from None


def _check(args: argparse.Namespace) -> None:
    """Validate the numeric flags with lrjax's own validation (before any work)."""
    if args.command == "schedules":
        v.check("--peak", args.peak, gt=0)
        return
    v.integer("--cpu-devices", args.cpu_devices)
    for name, _ in getattr(args, "config", None) or []:
        if name not in SWEPT[args.optimizer]:
            readers = [o for o, names in SWEPT.items() if name in names]
            hint = f"use --optimizer {' or '.join(readers)}" if readers else "no --optimizer reads it"
            reads = ", ".join(SWEPT[args.optimizer]) or "only the learning rate"
            raise ValueError(f"--config {name} is not read by --optimizer {args.optimizer} (it reads {reads}): {hint}")
    for flag in ("out_dir", "checkpoint"):  # paths written after training: checked before it
        if getattr(args, flag, None) is not None:
            v.directory(f"--{flag.replace('_', '-')}", getattr(args, flag))
    if args.command == "find-lr":
        v.check("--min-lr", args.min_lr, gt=0)
        v.check_greater("--max-lr", args.max_lr, "--min-lr", args.min_lr)
        v.integer("--verify", args.verify, minimum=0)
        return
    if args.command == "search":
        return
    v.integer("--num", args.num)
    v.check("--lr-min", args.lr_min, gt=0)
    v.check_greater("--lr-max", args.lr_max, "--lr-min", args.lr_min)


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``lrjax`` command. Bad input (a flag out of range, or one lrjax's
    validation refuses) is reported as ``lrjax <command>: error: <message>`` with exit status 2, as
    argparse reports its own errors, not as a traceback."""
    parser = _parser()
    args = parser.parse_args(argv)
    command: argparse.ArgumentParser = args.command_parser
    try:
        _check(args)
        if not args.no_compilation_cache:
            enable_compilation_cache()
        return args.run(args)
    except (ValueError, TypeError) as err:
        command.error(_as_typed(str(err), args, command))


def _as_typed(message: str, args: argparse.Namespace, parser: argparse.ArgumentParser) -> str:
    """``message`` with the argument it starts with named as the flag a user typed (lrjax's
    validation says ``batch_size must be ...``; the command line's flag is ``--batch-size``):
    each flag's name is its destination with dashes (argparse's rule), as its usage shows."""
    usage = parser.format_help()
    for dest in vars(args):
        flag = "--" + dest.replace("_", "-")
        if re.match(rf"{re.escape(dest)} ", message) and re.search(rf"{re.escape(flag)}(?![\w-])", usage):
            return flag + message[len(dest) :]
    return message


if __name__ == "__main__":
    sys.exit(main())
