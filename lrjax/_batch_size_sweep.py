"""`batch_size_sweep`: the steps/examples trade-off across batch sizes and the critical batch size.

McCandlish et al. ("An Empirical Model of Large-Batch Training", 2018, §2.3, eq. 2.11) find
that the steps S and examples E = B·S needed to reach a given loss follow

    S = S_min (1 + B_noise/B),      E = E_min (1 + B/B_noise),      (S/S_min − 1)(E/E_min − 1) = 1,

where B_noise = E_min/S_min is the critical batch size: below it a larger batch saves steps
almost for free, above it it mostly costs examples. Since E = B·S = S_min·B + E_min, the fit
is a straight line of E against B (weighted least squares on relative residuals), its slope
S_min and intercept E_min. As in the paper, each batch size contributes its best configuration
(the fewest steps to the target among the configurations swept, e.g. learning rates).
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from lrjax import _configs
from lrjax import _validate as v
from lrjax._result import SweepResult, metric_mode, readable
from lrjax._sweep import sweep
from lrjax._task import Task
from lrjax.engine.program import OptimizerFn, trace_metric_names
from lrjax.schedules import Schedule, scale_for_batch_size

__all__ = ["BatchSizeResult", "batch_size_sweep"]


@dataclasses.dataclass(repr=False)
class BatchSizeResult:
    """What `batch_size_sweep` measured: one `SweepResult` per batch size and the trade-off.

    Attributes:
      batch_sizes: (K,) the batch sizes, increasing.
      results: K `SweepResult`\\ s, each the stand-alone sweep of the configurations at that batch
        size (with the learning rates rescaled when ``lr_rule`` was given).
      target, metric, mode: what "reached" means (``metric`` at or below ``target`` for "min").
      examples_per_second: (K,) training examples per second of each sweep's program, all
        members counted (members × B × steps / seconds, compilation excluded).
      critical_batch_size, s_min, e_min: the fit (NaN when fewer than two batch sizes reached
        the target, or the points do not fit the model's positive S_min and E_min).

    Example:
      >>> import optax, lrjax
      >>> result = lrjax.batch_size_sweep(
      ...     lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...     {"learning_rate": [0.05, 0.2]}, [8, 16, 32, 64], examples=4096, target=0.05, progress=False)
      >>> result.to_pandas()[["batch_size", "learning_rate", "reached"]].shape
      (8, 3)
    """

    batch_sizes: np.ndarray
    results: list[SweepResult]
    target: float | None
    metric: str
    mode: str
    examples_per_second: np.ndarray
    critical_batch_size: float
    s_min: float
    e_min: float

    @property
    def seeds(self) -> int:
        return int(self.results[0].info["seeds"])

    def curves(self, k: int) -> np.ndarray:
        """(configurations, evaluations) the seed-mean ``metric`` of batch size ``k``'s sweep."""
        result = self.results[k]
        values = result.eval_metrics[self.metric]
        return values.reshape(-1, self.seeds, values.shape[1]).mean(1)

    def _reached(self, k: int) -> np.ndarray:
        """(configurations,) the step at which the seed-mean metric reached the target: linearly
        interpolated between the last evaluation short of it and the first at or past it (the
        first evaluation's step if that one already reached it); NaN if none did."""
        curves = self.curves(k)
        sign = 1.0 if self.mode == "min" else -1.0
        gap = sign * (curves - self.target)  # <= 0: reached
        steps = self.results[k].eval_steps.astype(np.float64)
        with np.errstate(invalid="ignore"):
            hit = gap <= 0
        first = np.argmax(hit, 1)
        out = np.full(len(curves), np.nan)
        for c in np.flatnonzero(hit.any(1)):
            j = first[c]
            if j == 0 or not np.isfinite(gap[c, j - 1]):
                out[c] = steps[j]
            else:
                before, after = gap[c, j - 1], gap[c, j]
                out[c] = steps[j - 1] + (steps[j] - steps[j - 1]) * before / (before - after)
        return out

    def steps_to_target(self) -> np.ndarray:
        """(K, configurations) steps to reach the target, NaN where not reached."""
        if self.target is None:
            raise ValueError("no target was given: batch_size_sweep(..., target=...)")
        return np.stack([self._reached(k) for k in range(len(self.batch_sizes))])

    def trade_off(self) -> tuple[np.ndarray, np.ndarray]:
        """(steps, examples), each (K,): the best configuration's steps to the target at each
        batch size and the examples that took; NaN where no configuration reached it."""
        steps = self.steps_to_target()
        with np.errstate(invalid="ignore"), warnings.catch_warnings(action="ignore", category=RuntimeWarning):
            best = np.nanmin(steps, 1)
        return best, best * self.batch_sizes

    def to_pandas(self) -> Any:
        """One row per (batch size, configuration): the configuration, ``steps`` trained, the
        seed-mean ``best_<metric>`` over evaluations and ``final_<metric>``, and with a target
        ``reached``, ``steps_to_target`` and ``examples_to_target`` (interpolated between
        evaluations; NaN, and ``reached`` False, when the target was not reached), and
        ``examples_per_second``."""
        import pandas as pd

        frames = []
        for k, (b, result) in enumerate(zip(self.batch_sizes, self.results, strict=True)):
            cols = {n: readable(c)[:: self.seeds] for n, c in result.configs.items() if n != "seed"}
            frame = pd.DataFrame({"batch_size": int(b), **cols})
            curves = self.curves(k)
            frame["steps"] = int(result.train_loss.shape[1])
            with np.errstate(invalid="ignore"), warnings.catch_warnings(action="ignore", category=RuntimeWarning):
                frame[f"best_{self.metric}"] = (np.nanmin if self.mode == "min" else np.nanmax)(curves, 1)
            frame[f"final_{self.metric}"] = curves[:, -1]
            if self.target is not None:
                reached = self._reached(k)
                frame["reached"] = np.isfinite(reached)
                frame["steps_to_target"] = reached
                frame["examples_to_target"] = reached * b
            frame["examples_per_second"] = self.examples_per_second[k]
            frames.append(frame)
        return pd.concat(frames, ignore_index=True)

    def plot(self) -> Any:
        """Loss against examples and against steps per batch size, and the trade-off curve; see
        `lrjax.plot.batch_size`."""
        from lrjax import plot

        return plot.batch_size(self)

    def __repr__(self) -> str:
        return (
            f"BatchSizeResult(batch_sizes={self.batch_sizes.tolist()}, configurations={len(self.curves(0))}, "
            f"seeds={self.seeds}, target={self.target}, critical_batch_size={self.critical_batch_size:.4g})"
        )


def fit_critical_batch_size(batch_sizes: np.ndarray, steps: np.ndarray) -> tuple[float, float, float]:
    """(B_noise, S_min, E_min) from the steps each batch size needed: the line E = S_min·B + E_min
    fitted to E = B·S by least squares on relative residuals; NaNs where it cannot be fitted
    (fewer than two finite points, or a non-positive S_min or E_min).

    Args:
      batch_sizes: (K,) batch sizes B.
      steps: (K,) steps S each needed to reach the target (NaN where it was not reached).

    Returns:
      (B_noise, S_min, E_min) as floats.

    Example:
      >>> import numpy as np
      >>> from lrjax import fit_critical_batch_size
      >>> b = np.array([16, 64, 256, 1024])
      >>> [round(x, 6) for x in fit_critical_batch_size(b, 50 * (1 + 200 / b))]
      [200.0, 50.0, 10000.0]
    """
    ok = np.isfinite(steps)
    b, e = np.asarray(batch_sizes, np.float64)[ok], (np.asarray(steps, np.float64) * batch_sizes)[ok]
    nan = (float("nan"), float("nan"), float("nan"))
    if len(b) < 2 or np.unique(b).size < 2:
        return nan
    s_min, e_min = np.polyfit(b, e, 1, w=1 / e)
    if s_min <= 0 or e_min <= 0:
        return nan
    return float(e_min / s_min), float(s_min), float(e_min)


def _rescaled(hps: Mapping[str, Any], n: int, rule: str, base: int, batch: int) -> dict[str, Any]:
    """The configurations with every learning rate scaled from batch size ``base`` to ``batch``
    (`lrjax.schedules.scale_for_batch_size`'s ``rule``)."""
    ratio = batch / base
    factor = ratio if rule == "linear" else np.sqrt(ratio)
    out = dict(hps)
    for name, value in hps.items():
        if not v.is_learning_rate(name):
            continue
        if isinstance(value, Schedule):
            out[name] = scale_for_batch_size(
                value, base_batch_size=np.full(n, float(base)), batch_size=np.full(n, float(batch)), rule=rule
            )
        else:
            out[name] = (np.asarray(value, np.float64) * factor).astype(np.float32)
    return out


def _check_batch_sizes(task: Task, batch_sizes: Any) -> np.ndarray:
    sizes = np.asarray(batch_sizes)
    if sizes.ndim != 1 or sizes.size == 0 or not np.issubdtype(sizes.dtype, np.integer):
        raise ValueError(f"batch_sizes must be a non-empty sequence of integers, got {batch_sizes!r}")
    if (sizes < 1).any():
        raise ValueError(f"batch_sizes must be >= 1, got {sizes.tolist()}")
    if (np.diff(sizes) <= 0).any():
        raise ValueError(f"batch_sizes must be strictly increasing, got {sizes.tolist()}")
    if sizes[-1] > task.num_train:
        raise ValueError(
            f"batch_sizes must be <= the number of training examples ({task.num_train}), got {sizes.tolist()}"
        )
    return sizes.astype(np.int64)


def batch_size_sweep(
    task: Task,
    optimizer: OptimizerFn,
    configs: Mapping[str, Any],
    batch_sizes: Sequence[int],
    *,
    examples: int | None = None,
    steps: int | None = None,
    target: float | None = None,
    metric: str = "loss",
    mode: str | None = None,
    lr_rule: str | None = None,
    base_batch_size: int | None = None,
    evaluations: int = 100,
    seed: int = 0,
    seeds: int = 1,
    devices: Sequence[Any] | None = None,
    progress: bool = True,
) -> BatchSizeResult:
    """Sweep the configurations at each batch size; measure steps and examples to a target.

    Each batch size B runs one `lrjax.sweep` of ``configs`` (exactly the stand-alone sweep), for
    ``examples // B`` steps (an equal budget of examples) or for ``steps`` steps, evaluating
    ``evaluations`` times along the way. With a ``target``, each (B, configuration) records the
    step at which the seed-mean ``metric`` reached it (interpolated between evaluations), and the critical batch size
    B_noise is fitted from the best configuration's steps at each B (McCandlish et al. 2018):
    S = S_min(1 + B_noise/B), E = E_min(1 + B/B_noise).

    Args:
      task: the `lrjax.Task` to train.
      optimizer: ``hp -> optax.GradientTransformation``.
      configs: the configurations swept at every batch size (e.g. a learning-rate grid).
      batch_sizes: >= 1 strictly increasing batch sizes, at most the data size.
      examples: the budget of training examples per member (steps = examples // B); or
      steps: the same number of steps at every batch size (give one of the two).
      target: the ``metric`` value to reach; None measures no steps-to-target and fits nothing.
      metric: the evaluation metric (``loss`` or one of ``task.metrics``).
      mode: ``"min"`` or ``"max"`` (default: the metric's known direction).
      lr_rule: ``"linear"`` or ``"sqrt"``: scale every learning-rate config from
        ``base_batch_size`` to B (`lrjax.schedules.scale_for_batch_size`); None keeps them.
      base_batch_size: the batch size the learning rates are given for (default: the first).
      evaluations: evaluations per sweep, evenly spaced (>= 1). ``steps_to_target`` is
        interpolated linearly between the two evaluations around the crossing; one reached at
        the first evaluation is reported at that evaluation's step (an upper bound): use more
        evaluations, or a harder target, if that happens.
      seed, seeds, devices, progress: as in `lrjax.sweep`.

    Returns:
      A `BatchSizeResult`.

    Example:
      >>> import optax, lrjax
      >>> result = lrjax.batch_size_sweep(
      ...     lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...     {"learning_rate": [0.1]}, [4, 16, 64], steps=200, target=0.05, progress=False)
      >>> result.trade_off()[0].round(1).tolist()             # steps to reach 0.05 at each B
      [25.7, 27.5, 27.5]
    """
    sizes = _check_batch_sizes(task, batch_sizes)
    if (examples is None) == (steps is None):
        raise ValueError(f"give one of examples= or steps=, got examples={examples!r}, steps={steps!r}")
    if examples is not None:
        examples = v.integer("examples", examples)
        if examples < sizes[-1]:
            raise ValueError(
                f"examples must be >= the largest batch size ({sizes[-1]}) so that every batch size takes a step, "
                f"got {examples}"
            )
        runs = [examples // int(b) for b in sizes]
    else:
        runs = [v.integer("steps", steps)] * len(sizes)
    if target is not None:
        v.check("target", target)
    evaluations = v.integer("evaluations", evaluations)
    hps, n = _configs.check_configs(configs)
    base = int(sizes[0])
    if lr_rule is not None:
        v.check_choice("lr_rule", lr_rule, ("linear", "sqrt"))
        if not any(v.is_learning_rate(name) for name in hps):
            raise ValueError(
                f"lr_rule={lr_rule!r} needs a learning-rate config (e.g. 'learning_rate'), got {list(hps)}"
            )
        base = base if base_batch_size is None else v.integer("base_batch_size", base_batch_size)
    names = trace_metric_names(task, int(sizes[0]))
    if metric not in names:
        raise ValueError(f"metric must be one of the task's metrics {names}, got {metric!r}")
    mode = metric_mode(metric, mode, task.metric_modes)

    results, throughput = [], []
    for b, run in zip(sizes, runs, strict=True):
        swept = hps if lr_rule is None else _rescaled(hps, n, lr_rule, base, int(b))
        result = sweep(
            task,
            optimizer,
            swept,
            steps=run,
            batch_size=int(b),
            seed=seed,
            seeds=seeds,
            eval_every=max(run // evaluations, 1),
            devices=devices,
            progress=progress,
        )
        seconds = max(result.info["seconds"] - result.info["compile_seconds"], 1e-9)
        throughput.append(len(result.diverged) * int(b) * run / seconds)
        results.append(result)
    out = BatchSizeResult(
        batch_sizes=sizes,
        results=results,
        target=None if target is None else float(target),
        metric=metric,
        mode=mode,
        examples_per_second=np.asarray(throughput),
        critical_batch_size=float("nan"),
        s_min=float("nan"),
        e_min=float("nan"),
    )
    if target is not None:
        out.critical_batch_size, out.s_min, out.e_min = fit_critical_batch_size(sizes, out.trade_off()[0])
    return out
