"""`bayesian`: Bayesian optimization through Optuna's ask/tell, one round per compiled population.

Each round asks Optuna for ``batch`` trials (TPE by default, with ``constant_liar`` so the trials
of one batch spread out instead of piling onto one point; any Optuna sampler can be passed),
trains them as one population, and tells Optuna each trial's final metric, the mean over its
seeds. A trial with a diverged seed is told as FAILED (``user_attrs["diverged"]``), not as an
infinite loss, which would distort the sampler's model. Rounds have one shape (a short last
round is padded with inactive slots), so the training program compiles once for the whole study.

With ``storage`` (any Optuna storage URL, e.g. ``sqlite:///study.db``) the study outlives the
process: run the same call again after a crash and it goes on. Several processes, on one machine
or several, may run the same call on one storage at once, as Optuna's workers do. Each marks the
trials it trains with itself and a heartbeat (`lrjax.search._workers`); a trial whose worker is
gone (its process ended, or no heartbeat for ``grace_period`` seconds) is marked FAILED and its
parameters enqueued again (as a trial with ``user_attrs["requeued_from"]``), as Optuna's
``RetryFailedTrialCallback`` does, and only such trials: those of live workers go on. No trial is
lost and none is counted twice: the study ends with exactly ``trials`` told trials, every worker
waiting for the others' last trials (and taking over those of a worker that died).
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Mapping
from typing import Any, Unpack

import jax
import numpy as np

from lrjax import _configs
from lrjax import _validate as v
from lrjax._task import Task
from lrjax.engine.program import OptimizerFn
from lrjax.search._driver import Driver, SearchOptions, check_common
from lrjax.search._result import SearchResult
from lrjax.search._space import Choice, Distribution, IntUniform, LogUniform, Uniform, check_space
from lrjax.search._workers import WORKER, Heartbeat, stale, this_worker

__all__ = ["bayesian", "optuna_distributions"]


def _optuna() -> Any:
    try:
        import optuna
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("lrjax.search.bayesian needs Optuna: pip install 'lrjax[search]'") from err
    return optuna


def _plain(value: Any) -> bool:
    return isinstance(value, (bool, int, float, str, np.integer, np.floating)) or value is None


def optuna_distributions(space: Mapping[str, Any]) -> dict[str, Any]:
    """Optuna's distribution for each searched name of ``space`` (constants are not searched).
    A `choice` of numbers is a categorical over them; of schedules, over their indices.

    Example:
      >>> from lrjax.search import log_uniform, int_uniform
      >>> from lrjax.search._bayesian import optuna_distributions
      >>> optuna_distributions({"lr": log_uniform(1e-4, 1e-1), "warmup": int_uniform(0, 100), "b2": 0.999})
      {'lr': FloatDistribution(high=0.1, log=True, low=0.0001, step=None), 'warmup': IntDistribution(high=100, log=False, low=0, step=1)}
    """
    optuna = _optuna()
    out = {}
    for name, dist in space.items():
        if isinstance(dist, LogUniform):
            out[name] = optuna.distributions.FloatDistribution(dist.low, dist.high, log=True)
        elif isinstance(dist, Uniform):
            out[name] = optuna.distributions.FloatDistribution(dist.low, dist.high)
        elif isinstance(dist, IntUniform):
            out[name] = optuna.distributions.IntDistribution(dist.low, dist.high)
        elif isinstance(dist, Choice):
            plain = all(_plain(x) for x in dist.values)
            choices = (
                tuple(x.item() if hasattr(x, "item") else x for x in dist.values)
                if plain
                else tuple(range(len(dist.values)))
            )
            out[name] = optuna.distributions.CategoricalDistribution(choices)
    return out


def _values(space: Mapping[str, Any], params: Mapping[str, Any]) -> dict[str, Any]:
    """One configuration (name -> value) from a trial's Optuna parameters."""
    out = {}
    for name, dist in space.items():
        if not isinstance(dist, Distribution):
            out[name] = dist
        elif isinstance(dist, Choice) and not all(_plain(x) for x in dist.values):
            out[name] = dist.values[params[name]]
        else:
            out[name] = params[name]
    return out


def _tell(study: Any, trial: Any, **kwargs: Any) -> bool:
    """Tell ``trial``; False if it is finished already (another worker failed it as abandoned,
    or told it first)."""
    optuna = _optuna()
    try:
        study.tell(trial, **kwargs)
    except (ValueError, optuna.exceptions.UpdateFinishedTrialError):
        number = trial if isinstance(trial, int) else trial.number
        if next(t for t in study.get_trials(deepcopy=False) if t.number == number).state.is_finished():
            return False
        raise
    return True


def _reconcile(study: Any, grace_period: float) -> int:
    """Fail the running trials whose worker is gone (`stale`) and enqueue their parameters
    again. Returns how many this call failed."""
    states = _optuna().trial.TrialState
    now = time.time()
    gone = [t for t in study.get_trials(deepcopy=False, states=(states.RUNNING,)) if stale(t, now, grace_period)]
    failed = 0
    for t in gone:
        if _tell(study, t.number, state=states.FAIL):  # first, so that two workers never both requeue it
            study.enqueue_trial(t.params, user_attrs={"requeued_from": t.number})
            failed += 1
    return failed


def _counted(trial: Any) -> bool:
    """Whether ``trial`` holds one of the study's ``trials``: told by lrjax (completed, or failed
    because it diverged) or running."""
    states = _optuna().trial.TrialState
    return trial.state in (states.COMPLETE, states.RUNNING) or (
        trial.state == states.FAIL and bool(trial.user_attrs.get("diverged"))
    )


def _told(study: Any) -> int:
    """Trials lrjax has told: completed ones and those failed because they diverged."""
    running = _optuna().trial.TrialState.RUNNING
    return sum(_counted(t) and t.state != running for t in study.get_trials(deepcopy=False))


def _ask(study: Any, distributions: Mapping[str, Any], want: int, trials: int) -> list[Any]:
    """Up to ``want`` new trials, marked as this worker's, each within the study's ``trials``:
    one that another worker's ask made surplus (the two asked at once for the last place) is
    failed at once, untrained, with ``user_attrs["lrjax_surplus"]``, and its parameters, if they
    were a retry, enqueued again."""
    states = _optuna().trial.TrialState
    asked = []
    for _ in range(want):
        trial = study.ask(distributions)
        trial.set_user_attr(WORKER, this_worker())
        before = sum(_counted(t) for t in study.get_trials(deepcopy=False) if t.number < trial.number)
        if before < trials:
            asked.append(trial)
            continue
        trial.set_user_attr("lrjax_surplus", True)
        _tell(study, trial, state=states.FAIL)
        if "requeued_from" in trial.user_attrs:
            study.enqueue_trial(trial.params, user_attrs={"requeued_from": trial.user_attrs["requeued_from"]})
        break
    return asked


def _default_sampler(seed: int) -> Any:
    """TPE with ``constant_liar``: a batch's trials, asked before any is told, are spread out
    instead of piling onto the same region. Optuna before 5.0 marks the argument experimental;
    its warning would be about lrjax's choice, not the user's, so it is not shown."""
    import optuna

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
        return optuna.samplers.TPESampler(seed=seed, constant_liar=True)


def bayesian(
    task: Task,
    optimizer: OptimizerFn,
    space: Mapping[str, Any],
    *,
    trials: int,
    batch: int,
    steps: int,
    sampler: Any = None,
    storage: Any = None,
    study_name: str | None = None,
    study: Any = None,
    heartbeat_interval: float = 60.0,
    grace_period: float | None = None,
    **options: Unpack[SearchOptions],
) -> SearchResult:
    """Bayesian optimization with Optuna: rounds of ``batch`` trials, each round one program.

    Args:
      task: the `lrjax.Task` to train.
      optimizer: ``hp -> optax.GradientTransformation``.
      space: name -> distribution (`log_uniform`, `uniform`, `int_uniform`, `choice`) or constant.
      trials: the trials the study should hold when done (told by lrjax: completed, or failed
        by diverging); a resumed study runs only the rest.
      batch: trials per round, trained together.
      steps: training steps of every trial.
      sampler: an Optuna sampler (default ``TPESampler(seed=seed, constant_liar=True)``).
      storage: an Optuna storage (URL or object): the study is loaded from it if it exists.
      study_name: the study's name in ``storage``.
      study: an existing ``optuna.Study`` to continue (instead of sampler/storage/name).
      heartbeat_interval: seconds between the heartbeats of the trials being trained, which tell
        other workers on the same study that this one is alive (Optuna's default interval).
      grace_period: seconds without a heartbeat after which another worker's running trial
        counts as abandoned and is retried (default twice ``heartbeat_interval``, as Optuna's).
        A trial whose worker was a process of this host that has ended is retried at once.
      **options: `SearchOptions`: ``metric`` and ``mode`` are the value told to Optuna and its
        direction; the evaluations of ``eval_every`` are also reported (``trial.report``), so
        a study's plots show the curves.

    Returns:
      A `SearchResult` of the trials trained by this call (``round`` is the round); the whole
      study, earlier runs included, is ``result.study``.

    Example:
      >>> import optax, lrjax
      >>> from lrjax.search import bayesian, log_uniform
      >>> result = bayesian(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                   {"learning_rate": log_uniform(1e-3, 1.0)}, trials=8, batch=4, steps=50, progress=False)
      >>> len(result.study.trials), sorted(set(result.history["round"]))
      (8, [1, 2])
    """
    optuna = _optuna()
    space = check_space(space)
    trials = v.integer("trials", trials)
    batch = v.integer("batch", batch)
    steps = v.integer("steps", steps)
    common = check_common("bayesian", task, optimizer, options)
    metric, mode = common.metric, common.mode
    direction = "minimize" if mode == "min" else "maximize"
    distributions = optuna_distributions(space)
    if not distributions:
        raise ValueError(f"space must have at least one distribution to search, got only constants {sorted(space)}")
    if jax.process_count() > 1 and (storage is not None or study is not None):
        raise ValueError(
            "with several jax.distributed processes, bayesian() keeps an identical in-memory study in each "
            "(same seed, same trials); a storage or study shared between them would record every trial twice"
        )
    if study is None:
        study = optuna.create_study(
            storage=storage,
            sampler=sampler or _default_sampler(common.seed),
            study_name=study_name,
            direction=direction,
            load_if_exists=True,
        )
    elif study.direction.name.lower() != direction:
        raise ValueError(f"study optimizes in direction {study.direction.name.lower()!r}, but mode={mode!r}")
    v.check("heartbeat_interval", heartbeat_interval, gt=0)
    if grace_period is not None:
        v.check("grace_period", grace_period, gt=0)
    grace = 2.0 * heartbeat_interval if grace_period is None else grace_period

    def configs_of(params: list[dict[str, Any]]) -> dict[str, Any]:
        rows = [_values(space, p) for p in params]
        rows += [rows[-1]] * (batch - len(rows))  # padding slots repeat the last trial
        return {name: _configs.as_tree(f"space[{name!r}]", [r[name] for r in rows]) for name in space}

    driver = None
    rounds = interrupted = 0
    while True:
        interrupted += _reconcile(study, grace)
        counted = sum(_counted(t) for t in study.get_trials(deepcopy=False))
        if counted >= trials:
            if _told(study) >= trials:
                break
            time.sleep(min(heartbeat_interval, 1.0))  # other workers' last trials: wait, or take them over
            continue
        asked = _ask(study, distributions, min(batch, trials - counted), trials)
        if not asked:
            continue
        rounds += 1
        for trial in asked:
            trial.set_user_attr("lrjax_round", rounds)
        configs = configs_of([t.params for t in asked])
        if driver is None:
            total = steps * -(-(trials - counted) // batch)
            driver = Driver(common, configs, stage="round", total=total)
        else:
            driver.new_population(configs)
        slots = np.arange(len(asked))
        if len(asked) < batch:
            driver.pop.deactivate(driver.members(np.arange(len(asked), batch)))
        driver.start_trials(slots, ids=[t.number for t in asked])
        first_curve = len(driver.curves)
        heartbeat = Heartbeat(asked, heartbeat_interval)
        try:
            driver.advance(steps)
            values, diverged = driver.measure()
        finally:
            heartbeat.stop()
        for slot in slots:
            driver.record(int(slot), float(values[slot]), bool(diverged[slot]), rounds)
        # A trial another worker failed meanwhile (no heartbeat for grace_period: this process
        # was stopped that long) has been retried there: it is not told here.
        finished = {t.number for t in study.get_trials(deepcopy=False) if t.state.is_finished()}
        by_number = {t.number: t for t in asked if t.number not in finished}
        for row in driver.curves[first_curve:]:  # the evaluations along the way, for Optuna's plots
            if row["steps"] < steps and not row["diverged"] and row["trial"] in by_number:
                by_number[row["trial"]].report(row[metric], row["steps"])
        for slot, trial in zip(slots, asked, strict=True):
            if trial.number in finished:
                continue
            if diverged[slot]:
                trial.set_user_attr("diverged", True)
                _tell(study, trial, state=optuna.trial.TrialState.FAIL)
            else:
                _tell(study, trial, values=float(values[slot]))
    info = dict(trials=trials, batch=batch, steps=steps, rounds=rounds, interrupted=interrupted)
    if driver is None:  # the study was already complete
        return SearchResult("bayesian", [], metric, mode, "round", {**info, "utilization": float("nan")}, {}, study)
    return driver.finish(info, study=study)
