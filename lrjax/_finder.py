"""`find_lr`: the learning-rate range test, many curves in one program; `FinderResult`.

Smith's range test (L. N. Smith, "Cyclical Learning Rates for Training Neural Networks", 2017,
§3.3; "A disciplined approach to neural network hyper-parameters", 2018) as fastai's
``Learner.lr_find`` runs it: the learning rate grows from ``min_lr`` to ``max_lr`` over
``steps`` updates while the loss is recorded, smoothed, and read for a suggestion. fastai runs
one curve; here every seed (and every extra configuration, Smith's multi-curve test) is a member
of one `lrjax.Population`, so the spread of the suggestion across seeds costs little more than
one curve.
"""

from __future__ import annotations

import dataclasses
import functools
import math
import warnings
from collections.abc import Mapping, Sequence
from typing import Any

import jax.numpy as jnp
import numpy as np

from lrjax import _configs, _suggest
from lrjax import _validate as v
from lrjax._checks import check_divergence_factor
from lrjax._drive import progress_bar, run
from lrjax._population import Population
from lrjax._result import METRIC_MODES, SweepResult, readable
from lrjax._task import Task
from lrjax.engine.program import DIVERGENCE_FACTOR, OptimizerFn
from lrjax.schedules import Schedule, exponential_decay, linear

__all__ = ["FinderResult", "Verification", "find_lr", "ramp"]

DEFAULT_METHOD = "valley"
FACTORS = 2.0 ** np.arange(-3, 4)  # verify(): the suggestion × 2^-3 … 2^3


def ramp(min_lr: float, max_lr: float, steps: int, mode: str = "exp") -> Schedule:
    """The range test's learning rate at step t (0 ≤ t < steps).

    ``exp``: min · (max/min)^(t/(steps − 1)); ``linear``: min + (max − min) · t/(steps − 1).
    Both reach ``max_lr`` at the last step (fastai's stops one step short of it).

    Example:
      >>> import numpy as np
      >>> from lrjax._finder import ramp
      >>> ramp(1e-4, 1.0, 5)(np.arange(5)).round(6).tolist()
      [9.999999747378752e-05, 0.0010000000474974513, 0.009999999776482582, 0.10000000149011612, 1.0]
    """
    if mode == "exp":
        return exponential_decay(min_lr, decay_rate=max_lr / min_lr, decay_steps=steps - 1)
    return linear(min_lr, end_value=max_lr, steps=steps - 1)


def _one_or_many(values: np.ndarray) -> float | np.ndarray:
    """A per-configuration array as a float when there is one configuration."""
    return float(values[0]) if values.shape == (1,) else values


@dataclasses.dataclass(frozen=True)
class _Setup:
    """What `FinderResult.verify` trains again: the range test's task, optimizer, extra
    configurations and devices."""

    task: Task
    optimizer: OptimizerFn
    hps: dict[str, Any]
    devices: Sequence[Any] | None


@dataclasses.dataclass(repr=False)
class Verification:
    """`FinderResult.verify`: the suggestion and its neighbours, trained.

    Attributes:
      lrs: (C, 7) the learning rates trained, suggestion × 2^−3 … 2^3, per configuration.
      values: (C, 7) the final ``metric`` averaged over seeds (+inf where a seed diverged, for
        ``mode="min"``; −inf for ``"max"``).
      metric, mode: what was compared.
      result: the `SweepResult` of the sweep (configuration-major: configuration c, factor k is
        row ``c * 7 + k`` of the configurations).

    ``best_lr``, ``regret`` and ``ratio`` are floats for one configuration, else (C,) arrays.

    Example:
      >>> import optax, lrjax
      >>> finder = lrjax.find_lr(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                        min_lr=1e-3, max_lr=10.0, progress=False)
      >>> check = finder.verify(steps=100, progress=False)
      >>> (check.lrs / check.lrs[:, 3:4]).round(3).tolist()  # the suggestion × 2^-3 … 2^3
      [[0.125, 0.25, 0.5, 1.0, 2.0, 4.0, 8.0]]
      >>> bool(check.regret == check.values[0, 3] - check.values[0].min())  # above the best of the seven
      True
    """

    lrs: np.ndarray
    values: np.ndarray
    metric: str
    mode: str
    result: SweepResult

    def _best(self) -> np.ndarray:
        return np.argmin(self.values, 1) if self.mode == "min" else np.argmax(self.values, 1)

    @property
    def best_lr(self) -> float | np.ndarray:
        """The learning rate among the seven with the best metric."""
        return _one_or_many(self.lrs[np.arange(len(self.lrs)), self._best()])

    @property
    def regret(self) -> float | np.ndarray:
        """How much worse the suggestion did than the best of the seven (>= 0, in the metric's units)."""
        best = self.values[np.arange(len(self.values)), self._best()]
        return _one_or_many(np.abs(self.values[:, 3] - best))

    @property
    def ratio(self) -> float | np.ndarray:
        """The suggestion's metric over the best one's (for a positive loss: 1 is no regret)."""
        best = self.values[np.arange(len(self.values)), self._best()]
        return _one_or_many(self.values[:, 3] / best)

    def __repr__(self) -> str:
        return f"Verification(metric={self.metric!r}, best_lr={self.best_lr}, regret={self.regret})"


@dataclasses.dataclass(repr=False)
class FinderResult:
    """What a range test recorded: one curve per member (configuration-major, seeds inner).

    Attributes:
      lrs: (steps,) the learning rate of each step (the ramp).
      raw_losses: (M, steps) the training loss before each update; NaN after the curve stopped.
      losses: (M, steps) fastai's debiased moving average of ``raw_losses``; NaN after the stop.
      diverged_at: (M,) the step at which each curve stopped (its smoothed loss not finite or
        above ``stop_factor`` × its best, sign-aware), or −1 if it never did.
      configs: name -> (M,) the extra configuration of each member, plus ``seed``.
      info: the test's arguments and the task.

    ``member_suggestions`` are fastai's four suggestions on each member's curve. Per
    configuration (C of them, one when ``configs`` was not given), over its seeds: ``median``
    and ``band`` of the curves, ``suggestions`` (the seeds' median suggestion of each method),
    ``spread`` (how many decades the seeds' own suggestions span).

    Example:
      >>> import optax, lrjax
      >>> finder = lrjax.find_lr(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                        min_lr=1e-3, max_lr=10.0, seeds=4, progress=False)
      >>> finder.losses.shape, sorted(finder.suggestions)
      ((4, 100), ['minimum', 'slide', 'steep', 'valley'])
      >>> 0.01 < finder.suggestion < 1.0
      True
    """

    lrs: np.ndarray
    raw_losses: np.ndarray
    losses: np.ndarray
    diverged_at: np.ndarray
    configs: dict[str, np.ndarray]
    info: dict[str, Any]
    _setup: _Setup | None = dataclasses.field(default=None, compare=False)

    @property
    def seeds(self) -> int:
        return int(self.info["seeds"])

    @property
    def num_configs(self) -> int:
        return len(self.diverged_at) // self.seeds

    def per_config(self, x: np.ndarray) -> np.ndarray:
        """Per-curve values grouped by configuration: (M, ...) -> (configurations, seeds, ...).

        Args:
          x: one row per curve (configuration-major, seeds inner), e.g. `losses` or `diverged_at`.

        Returns:
          ``x`` reshaped so that ``[c, s]`` is configuration ``c``'s seed ``s``.

        Example:
          >>> import optax, lrjax
          >>> finder = lrjax.find_lr(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
          ...                        min_lr=1e-3, max_lr=10.0, seeds=2, progress=False)
          >>> finder.losses.shape, finder.per_config(finder.losses).shape
          ((2, 100), (1, 2, 100))
        """
        x = np.asarray(x)
        return x.reshape(self.num_configs, self.seeds, *x.shape[1:])

    @property
    def diverged_lr(self) -> np.ndarray:
        """(M,) the learning rate at each curve's stop; NaN for a curve that never stopped."""
        return np.where(self.diverged_at >= 0, self.lrs[np.maximum(self.diverged_at, 0)], np.nan)

    def _stopped_as_inf(self) -> np.ndarray:
        """(C, seeds, steps) smoothed curves, +inf from each curve's stop on: a stopped curve's
        loss is above any other, so order statistics across seeds stay defined."""
        steps = np.arange(len(self.lrs))
        stopped = (self.diverged_at[:, None] >= 0) & (steps[None] >= self.diverged_at[:, None])
        return self.per_config(np.where(stopped | ~np.isfinite(self.losses), np.inf, self.losses))

    def _quantile(self, q: float) -> np.ndarray:
        """(C, steps) the q-quantile across seeds, interpolated linearly (NumPy's default);
        NaN where it reaches a stopped curve."""
        ordered = np.sort(self._stopped_as_inf(), axis=1)
        position = q * (self.seeds - 1)
        lo, hi, frac = ordered[:, math.floor(position)], ordered[:, math.ceil(position)], position % 1
        with np.errstate(invalid="ignore"):
            out = lo if frac == 0 else np.where(np.isinf(hi), np.inf, lo + frac * (hi - lo))
        return np.where(np.isfinite(out), out, np.nan)

    @property
    def median(self) -> np.ndarray:
        """(C, steps) the median smoothed curve across seeds (a stopped curve counts as above
        all others; NaN once half the seeds stopped)."""
        return self._quantile(0.5)

    @property
    def band(self) -> tuple[np.ndarray, np.ndarray]:
        """The 25th and 75th percentiles across seeds, (lower, upper), each of shape (C, steps)."""
        return self._quantile(0.25), self._quantile(0.75)

    @functools.cached_property
    def member_suggestions(self) -> dict[str, np.ndarray]:
        """method -> (M,): fastai's ``valley``, ``slide``, ``steep`` and ``minimum`` on each
        member's smoothed curve; NaN where too little of the curve was recorded."""
        recorded = np.where(self.diverged_at >= 0, self.diverged_at + 1, len(self.lrs))
        rows = [
            _suggest.suggest(self.lrs, c, int(n), len(self.lrs)) for c, n in zip(self.losses, recorded, strict=True)
        ]
        return {name: np.asarray([r[name] for r in rows]) for name in _suggest.METHODS}

    def _log_per_config(self) -> dict[str, np.ndarray]:
        return {name: self.per_config(np.log10(x)) for name, x in self.member_suggestions.items()}

    @property
    def suggestions(self) -> dict[str, np.ndarray]:
        """method -> (C,): the median across a configuration's seeds of their own suggestions
        (taken in log space, so with an even number of seeds it is the geometric mean of the two
        middle ones; seeds without a suggestion left out; NaN if none has one). With one seed
        this is fastai's suggestion of the one curve."""
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
            return {name: 10 ** np.nanmedian(logs, 1) for name, logs in self._log_per_config().items()}

    @property
    def spread(self) -> dict[str, np.ndarray]:
        """method -> (C,): decades spanned by the seeds' own suggestions, log10(max/min)
        (0 for one seed; NaN where no seed has one)."""
        with warnings.catch_warnings(action="ignore", category=RuntimeWarning):
            return {name: np.nanmax(logs, 1) - np.nanmin(logs, 1) for name, logs in self._log_per_config().items()}

    @property
    def suggestion(self) -> float | np.ndarray:
        """The ``valley`` suggestion (fastai's default), the seeds' median: a float, or (C,)
        values with several configurations."""
        return _one_or_many(self.suggestions[DEFAULT_METHOD])

    def verify(
        self,
        steps: int | None = None,
        *,
        method: str = DEFAULT_METHOD,
        metric: str = "loss",
        mode: str | None = None,
        batch_size: int | None = None,
        progress: bool = True,
    ) -> Verification:
        """Train the suggestion and its neighbours, suggestion × 2^−3 … 2^3, over the same seeds
        (one sweep, one program), and compare their final evaluation ``metric``.

        Args:
          steps: training steps (default: 5 × the range test's steps).
          method: the suggestion to verify, one of ``valley``, ``slide``, ``steep``, ``minimum``.
          metric: the evaluation metric compared (``task.metrics`` or ``loss``).
          mode: ``"min"`` or ``"max"`` (default: the metric's known direction).
          batch_size: examples per step (default: the range test's).
          progress: show a progress bar.

        Returns:
          A `Verification`: the best of the seven learning rates and the suggestion's regret.
        """
        from lrjax._sweep import sweep

        v.check_choice("method", method, tuple(_suggest.METHODS))
        steps = 5 * len(self.lrs) if steps is None else v.integer("steps", steps)
        if self._setup is None:
            raise ValueError("verify() needs the task and optimizer of find_lr; this result was built without them")
        suggested = np.asarray(self.suggestions[method], np.float64)
        if not np.all(np.isfinite(suggested)):
            raise ValueError(
                f"the {method!r} suggestion is not defined for every configuration ({suggested.tolist()}): "
                "the curves stopped too early; lower min_lr or use more steps"
            )
        lrs = suggested[:, None] * FACTORS[None, :]
        setup = self._setup
        extra = _configs.take(setup.hps, np.repeat(np.arange(self.num_configs), len(FACTORS)))
        result = sweep(
            setup.task,
            setup.optimizer,
            {**extra, "learning_rate": lrs.reshape(-1)},
            steps=steps,
            batch_size=self.info["batch_size"] if batch_size is None else batch_size,
            seed=self.info["seed"],
            seeds=self.seeds,
            devices=setup.devices,
            progress=progress,
        )
        mode = result.direction(metric, mode)
        worst = np.inf if mode == "min" else -np.inf
        final = np.where(np.isfinite(result.final(metric)), result.final(metric), worst)
        values = final.reshape(self.num_configs, len(FACTORS), self.seeds).mean(-1)
        return Verification(lrs=lrs, values=values, metric=metric, mode=mode, result=result)

    def summary(self) -> Any:
        """A pandas table, one row per configuration: each method's suggestion, its spread across
        seeds (decades), and how many seeds' curves stopped."""
        import pandas as pd

        frame = pd.DataFrame({k: self.per_config(np.asarray(x))[:, 0] for k, x in self.configs.items() if k != "seed"})
        for name, values in self.suggestions.items():
            frame[name] = values
            frame[f"{name}_spread"] = self.spread[name]
        frame["stopped"] = (self.per_config(self.diverged_at) >= 0).sum(1)
        return frame

    def to_pandas(self) -> Any:
        """The curves as a long pandas table: one row per member and step, with the member's
        configuration, ``seed``, ``step``, ``lr``, ``raw_loss`` and ``loss`` (smoothed)."""
        import pandas as pd

        members, steps = self.losses.shape
        frame = pd.DataFrame({k: np.repeat(np.asarray(x), steps) for k, x in self.configs.items()})
        frame.insert(0, "member", np.repeat(np.arange(members), steps))
        frame["step"] = np.tile(np.arange(steps), members)
        frame["lr"] = np.tile(self.lrs, members)
        frame["raw_loss"] = self.raw_losses.reshape(-1)
        frame["loss"] = self.losses.reshape(-1)
        return frame

    def plot(self) -> Any:
        """Curves, their band and median, each suggestion marked (`lrjax.plot.finder`).

        Returns:
          The matplotlib figure (``lrjax.plot.finder(result, ax=...)`` draws on given axes).
        """
        from lrjax import plot

        return plot.finder(self)

    def __repr__(self) -> str:
        stopped = int(np.sum(self.diverged_at >= 0))
        suggestion = self.suggestion
        shown = (
            f"{suggestion:.3g}"
            if isinstance(suggestion, float)
            else np.array2string(np.asarray(suggestion), precision=3)
        )
        return (
            f"FinderResult(task={self.info.get('task')!r}, members={len(self.diverged_at)}, seeds={self.seeds}, "
            f"steps={len(self.lrs)}, lr={self.lrs[0]:.3g}..{self.lrs[-1]:.3g}, stopped={stopped}, "
            f"suggestion={shown})"
        )


def _check(min_lr: Any, max_lr: Any, steps: Any, mode: str, smoothing: Any, stop_factor: Any) -> int:
    v.check("min_lr", min_lr, gt=0)
    v.check("max_lr", max_lr, gt=0)
    if not min_lr < max_lr:
        raise ValueError(f"min_lr must be < max_lr, got min_lr={min_lr!r}, max_lr={max_lr!r}")
    steps = v.integer("steps", steps, minimum=10)
    v.check_choice("mode", mode, ("exp", "linear"))
    v.check("smoothing", smoothing, ge=0, lt=1)
    v.check("stop_factor", stop_factor, gt=1)
    return steps


def find_lr(
    task: Task,
    optimizer: OptimizerFn,
    *,
    min_lr: float = 1e-7,
    max_lr: float = 10.0,
    steps: int = 100,
    mode: str = "exp",
    smoothing: float = 0.98,
    seeds: int = 1,
    batch_size: int | None = None,
    configs: Mapping[str, Any] | None = None,
    stop_factor: float = 4.0,
    seed: int = 0,
    devices: Sequence[Any] | None = None,
    progress: bool = True,
    divergence_factor: float | None = DIVERGENCE_FACTOR,
) -> FinderResult:
    """The learning-rate range test: train while the learning rate grows, and read the loss.

    The optimizer receives the ramp, a schedule, as ``hp["learning_rate"]`` (pass it to any Optax
    optimizer as its learning rate): exponential, η_t = min · (max/min)^(t/(steps − 1)), or linear.
    Every seed, and every extra configuration (e.g. weight decays or momenta: Smith's multi-curve
    test), is one member of one compiled program. Each curve is smoothed as fastai smooths it,
    s_t = a_t/(1 − β^{t+1}) with a_t = β·a_{t−1} + (1 − β)·loss_t, and stops at divergence: s_t not
    finite or above its best by more than (stop_factor − 1)·|best| (fastai's s_t > 4·best for
    positive losses). The test ends when every curve has stopped. Parameters start fresh from
    ``task.init`` and nothing of the task is changed.

    Args:
      task: the `lrjax.Task` to train.
      optimizer: ``hp -> optax.GradientTransformation``; ``hp["learning_rate"]`` is the ramp.
      min_lr, max_lr: the ramp's ends, 0 < min_lr < max_lr.
      steps: >= 10 steps of the ramp.
      mode: ``"exp"`` or ``"linear"``.
      smoothing: β in [0, 1) of the moving average (fastai's 0.98).
      seeds: curves per configuration, each with its own initial parameters and data order.
      batch_size: examples per step; None trains on the full batch.
      configs: optional extra hyperparameters, one value per configuration (no
        ``learning_rate``); each configuration is tested with every seed.
      stop_factor: > 1, the divergence threshold (fastai: 4).
      seed: the base seed.
      devices: devices to shard the members over (default: all local devices; all global
        devices when `jax.distributed` runs several processes).
      progress: show a progress bar.
      divergence_factor: f > 1 or None: the engine also freezes a curve whose raw loss
        exceeds its first loss by more than (f − 1)·|first| (`lrjax.Population`), as in a
        sweep; ``stop_factor`` on the smoothed loss usually stops it earlier.

    Returns:
      A `FinderResult`: curves, their median and band, the suggestions and their spread,
      ``verify()``, ``plot()`` and ``to_pandas()``.

    Example:
      >>> import numpy as np
      >>> import optax, lrjax
      >>> task = lrjax.datasets.quadratic((1.0, 10.0))
      >>> finder = lrjax.find_lr(task, lambda hp: optax.sgd(hp["learning_rate"]), min_lr=1e-3, max_lr=1.0,
      ...                        seeds=3, progress=False)
      >>> bool(np.all(finder.diverged_lr > 2 / task.info["max_eigenvalue"]))   # GD diverges above 2/L
      True
    """
    steps = _check(min_lr, max_lr, steps, mode, smoothing, stop_factor)
    seeds = v.integer("seeds", seeds)
    divergence_factor = check_divergence_factor(divergence_factor)
    if configs is None:
        hps, num_configs = {}, 1
    else:
        hps, num_configs = _configs.check_configs(configs)
        if "learning_rate" in hps:
            raise ValueError("configs must not hold 'learning_rate': the range test sets it (the ramp)")
    schedule = ramp(float(min_lr), float(max_lr), steps, mode)
    pop = Population(
        task,
        optimizer,
        {**hps, "learning_rate": [schedule] * num_configs},
        batch_size=batch_size,
        seed=seed,
        seeds=seeds,
        devices=devices,
        divergence_factor=divergence_factor,
    )
    raw = np.full((pop.size, steps), np.nan)
    stop = np.full(pop.size, -1)
    bar = progress_bar(steps, f"find_lr {task.name} · {pop.size} curves", progress)
    for losses in run(pop, steps, bar=bar):
        raw[:, pop.clock - losses.shape[1] : pop.clock] = losses
        # A curve stops where its smoothed loss diverges, or where the engine froze it (an
        # update turned non-finite): the step whose learning rate did it.
        engine = np.where(pop.diverged, pop.diverged_at, -1)
        rule = _suggest.stop_steps(_suggest.smooth(raw[:, : pop.clock], smoothing), stop_factor)
        both = np.where((engine >= 0) & (rule >= 0), np.minimum(engine, rule), np.maximum(engine, rule))
        stop = np.where(stop >= 0, stop, both)
        if (stop >= 0).any():
            pop.deactivate(np.flatnonzero((stop >= 0) & pop.active))
        bar.set_postfix(stopped=int((stop >= 0).sum()), refresh=False)
        if not pop.active.any():
            break
    bar.close()
    after = np.arange(steps)[None, :] > np.where(stop >= 0, stop, steps)[:, None]
    raw[after] = np.nan
    smoothed = _suggest.smooth(raw, smoothing)
    lrs = np.asarray(schedule(jnp.arange(steps)), np.float64)
    member_configs = {
        k: readable(col)
        for k, col in _configs.columns(_configs.take(hps, np.repeat(np.arange(num_configs), seeds))).items()
    }
    member_configs["seed"] = pop.configs["seed"]
    info = {
        "task": task.name,
        "min_lr": float(min_lr),
        "max_lr": float(max_lr),
        "steps": steps,
        "mode": mode,
        "smoothing": float(smoothing),
        "stop_factor": float(stop_factor),
        "seeds": seeds,
        "seed": seed,
        "batch_size": batch_size,
        "devices": len(pop.devices),
        "metric_modes": {**METRIC_MODES, **task.metric_modes},
    }
    return FinderResult(
        lrs=lrs,
        raw_losses=raw,
        losses=smoothed,
        diverged_at=stop.astype(np.int64),
        configs=member_configs,
        info=info,
        _setup=_Setup(task, optimizer, hps, devices),
    )
