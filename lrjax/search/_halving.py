"""`successive_halving` and `hyperband`: train many trials briefly, keep the best, train longer.

Successive halving (Jamieson & Talwalkar 2016; Li et al., "Hyperband", JMLR 2018, Algorithm 1's
inner loop): a cohort of m trials trains to the first rung r₀; exactly the best ⌊m/η⌋ go on to
r₀·η, and so on up to ``max_steps``. lrjax decides each rung from every value of the cohort at
that rung at once (not trial by trial, so the order in which trials report cannot change who
goes on), and the whole cohort trains as one compiled program.

With ``refill`` the slots of stopped trials start new configurations at once, as a new cohort
that climbs the same rungs: the program stays full, as in asynchronous successive halving (ASHA,
Li et al. 2020), and, as in ASHA, a trial reaching a rung goes on iff it ranks in the best
⌊m/η⌋ of all m values recorded at that rung so far (its cohort's and the earlier cohorts'), so
small refill cohorts still promote their good trials. Without refill there is one cohort and
this is exactly successive halving. Unlike ASHA, a trial that was stopped is not promoted later
when the rung's pool grows (its slot went to a new trial). Hyperband runs its brackets (cohorts
that start at different rungs, trading breadth for depth) side by side in one population.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping
from typing import Any, Unpack

import numpy as np

from lrjax import _configs
from lrjax import _validate as v
from lrjax._task import Task
from lrjax.engine.program import OptimizerFn
from lrjax.search._driver import Common, Driver, SearchOptions, check_common, is_space
from lrjax.search._result import SearchResult
from lrjax.search._space import check_space, sample

__all__ = ["HalvingOptions", "hyperband", "rungs", "successive_halving"]


def rungs(min_steps: int, max_steps: int, reduction_factor: float) -> list[int]:
    """The rungs max_steps·η^(−k), k = K … 0, with K the largest such that the first rung is
    still >= ``min_steps`` (Li et al.'s r_i = R·η^(i−s), counted down from the last rung, so
    the rungs are exactly η apart), rounded to whole steps.

    Example:
      >>> from lrjax.search._halving import rungs
      >>> rungs(100, 900, 3), rungs(100, 1000, 3), rungs(50, 60, 3)
      ([100, 300, 900], [111, 333, 1000], [60])
    """
    k = math.floor(math.log(max_steps / min_steps, reduction_factor) + 1e-9)
    return [max(round(max_steps * reduction_factor**-i), 1) for i in range(k, -1, -1)]


class _Source:
    """Where new trials' configurations come from: a space (sampled) or a list (in order)."""

    def __init__(self, space_or_configs: Mapping[str, Any], seed: int):
        if is_space(space_or_configs):
            self.space: dict[str, Any] | None = check_space(space_or_configs)
            self.rng = np.random.default_rng(seed)
            self.left = math.inf
        else:
            self.space = None
            self.configs, self.left = _configs.check_configs(space_or_configs)
            self.used = 0

    def take(self, k: int) -> dict[str, Any]:
        if self.space is not None:
            return sample(self.space, k, self.rng)
        index = np.arange(self.used, self.used + k)
        self.used += k
        self.left -= k
        return _configs.take(self.configs, index)


@dataclasses.dataclass
class _Cohort:
    slots: np.ndarray
    start: int
    rungs: list[int]
    bracket: int
    id: int = 0
    k: int = 0

    @property
    def due(self) -> int:
        return self.start + self.rungs[self.k]


class HalvingOptions(SearchOptions, total=False):
    """The optional arguments `successive_halving` and `hyperband` share, with the
    `SearchOptions`.

    Keys:
      reduction_factor: η >= 2 (default 3): the rungs are η apart and each keeps the best
        ⌊m/η⌋ of its m trials.
      refill: start a new trial in every slot a stopped trial frees (default: yes for
        `successive_halving`, as ASHA; no for `hyperband`, as Li et al.).
      steps: the length of the search in steps of the population's clock (default
        ``max_steps``: as long as one trial's full training).

    Example:
      >>> import optax, lrjax
      >>> from lrjax.search import HalvingOptions, hyperband, log_uniform
      >>> options: HalvingOptions = {"reduction_factor": 2, "refill": True, "steps": 160, "progress": False}
      >>> result = hyperband(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                    {"learning_rate": log_uniform(1e-3, 1.0)}, min_steps=20, max_steps=80, **options)
      >>> [rungs for _, rungs in result.info["brackets"]], result.info["refill"]
      ([[20, 40, 80], [40, 80], [80]], True)
    """

    reduction_factor: float
    refill: bool
    steps: int | None


@dataclasses.dataclass(frozen=True)
class _Ladder:
    """The rung arguments both policies take, checked; ``steps`` is the search's length."""

    min_steps: int
    max_steps: int
    reduction_factor: float
    refill: bool
    steps: int


def _ladder(min_steps: Any, max_steps: Any, options: HalvingOptions, refill: bool) -> _Ladder:
    """The rung arguments, checked, and taken out of ``options`` (which keeps its `SearchOptions`)."""
    min_steps = v.integer("min_steps", min_steps)
    max_steps = v.integer("max_steps", max_steps)
    if max_steps < min_steps:
        raise ValueError(f"max_steps must be >= min_steps ({min_steps}), got {max_steps}")
    eta = options.pop("reduction_factor", 3)
    v.check("reduction_factor", eta, ge=2)
    steps = options.pop("steps", None)
    steps = max_steps if steps is None else v.integer("steps", steps)
    return _Ladder(min_steps, max_steps, float(eta), bool(options.pop("refill", refill)), steps)


def _run(driver: Driver, source: _Source, cohorts: list[_Cohort], eta: float, refill: bool, horizon: int) -> None:
    """Advance rung by rung until every cohort has finished or the clock reaches ``horizon``."""
    pop = driver.pop
    pools: dict[tuple[int, int], tuple[list[float], list[int]]] = {}  # (bracket, rung) -> (values, slots' trials)
    while True:
        alive = [c for c in cohorts if c.k < len(c.rungs) and c.due <= horizon]
        if not alive:
            driver.advance(horizon - pop.clock if any(c.k < len(c.rungs) for c in cohorts) else 0)
            return
        now = min(c.due for c in alive)
        driver.advance(now - pop.clock)
        values, diverged = driver.measure()
        freed: dict[int, list[int]] = {}
        for cohort in [c for c in alive if c.due == now]:
            last = cohort.k == len(cohort.rungs) - 1
            # The rung's pool: every value recorded at this rung of this bracket so far, this
            # cohort's included; a trial goes on iff it ranks in the pool's best floor(m/eta).
            pool_values, pool_trials = pools.setdefault((cohort.bracket, cohort.k), ([], []))
            pool_values.extend(values[cohort.slots].tolist())
            pool_trials.extend(driver.trial_of[cohort.slots].tolist())
            keep = 0 if last else math.floor(len(pool_values) / eta)
            best = {pool_trials[i] for i in driver.ranking(np.asarray(pool_values))[:keep]}
            promoted = {int(slot) for slot in cohort.slots if driver.trial_of[slot] in best}
            for slot in cohort.slots:
                driver.record(
                    int(slot),
                    float(values[slot]),
                    bool(diverged[slot]),
                    cohort.k,
                    bracket=cohort.bracket,
                    cohort=cohort.id,
                    promoted=slot in promoted,
                )
            stopped = [int(s) for s in cohort.slots if s not in promoted]
            freed.setdefault(cohort.bracket, []).extend(stopped)
            cohort.slots = cohort.slots[np.isin(cohort.slots, list(promoted))]
            cohort.k = len(cohort.rungs) if not promoted else cohort.k + 1
        for bracket, slots in freed.items():
            if not slots:
                continue
            pop.deactivate(driver.members(slots))
            template = next(c for c in cohorts if c.bracket == bracket).rungs
            count = min(len(slots), source.left)
            if refill and count and now + template[0] <= horizon:
                slots = np.asarray(slots[: int(count)])
                new = source.take(len(slots))
                members = driver.members(slots)
                pop.replace(
                    members,
                    {k: _configs.take(x, np.repeat(np.arange(len(slots)), driver.seeds)) for k, x in new.items()},
                )
                pop.activate(members)
                driver.start_trials(slots)
                cohorts.append(_Cohort(slots, now, template, bracket, id=len(cohorts)))


def _start(common: Common, source: _Source, slots: int, total: int) -> Driver:
    """A `Driver` of ``slots`` trial slots filled from ``source``."""
    if source.left < slots:
        raise ValueError(
            f"space_or_configs must hold at least {slots} configurations (one per slot), got {source.left}"
        )
    out = Driver(common, source.take(slots), stage="rung", total=total)
    out.start_trials(np.arange(slots))
    return out


def successive_halving(
    task: Task,
    optimizer: OptimizerFn,
    space_or_configs: Mapping[str, Any],
    *,
    n: int,
    min_steps: int,
    max_steps: int,
    **options: Unpack[HalvingOptions],
) -> SearchResult:
    """Successive halving over ``n`` trial slots trained as one program.

    ``n`` trials train to the first rung; at each rung (max_steps·η^(−k) down to about
    ``min_steps``, see `rungs`) exactly the best ⌊m/η⌋ of the m trials by ``metric`` (mean over
    seeds, diverged last) go on, the others stop. With ``refill`` each stopped trial's slot
    starts a new configuration at once (drawn from the space, or the next of the
    configurations), as a new cohort with the same rungs, as long as it can reach its first rung
    within ``steps``; a refilled trial at a rung goes on iff it ranks in the best ⌊m/η⌋ of all
    m values recorded at that rung so far (ASHA's rule).

    Args:
      task: the `lrjax.Task` to train.
      optimizer: ``hp -> optax.GradientTransformation``.
      space_or_configs: a space (`lrjax.search.log_uniform`, ...) or configurations (one value
        per configuration, at least ``n``, taken in order).
      n: trial slots, >= reduction_factor.
      min_steps, max_steps: the first and last rung, 1 <= min_steps <= max_steps.
      **options: `HalvingOptions`: ``reduction_factor`` (η, default 3), ``refill`` (default
        True), ``steps`` (default ``max_steps``), and the `SearchOptions` (``metric``,
        ``mode``, ``seeds``, ``eval_every``, ...); the rungs' evaluations decide.

    Returns:
      A `SearchResult` whose ``history`` has a row per trial per rung reached (``cohort``:
      the trials judged together; ``promoted``: who went on) and whose
      ``info["utilization"]`` is the fraction of slot-steps spent on live trials.

    Example:
      >>> import optax, lrjax
      >>> from lrjax.search import log_uniform, successive_halving
      >>> task, space = lrjax.datasets.linear_regression(), {"learning_rate": log_uniform(1e-3, 1.0)}
      >>> sgd = lambda hp: optax.sgd(hp["learning_rate"])
      >>> result = successive_halving(task, sgd, space, n=9, min_steps=10, max_steps=90, refill=False, progress=False)
      >>> result.history.groupby("steps")["promoted"].agg(["size", "sum"]).values.tolist()  # 9 → 3 → 1
      [[9, 3], [3, 1], [1, 0]]
    """
    ladder = _ladder(min_steps, max_steps, options, refill=True)
    eta, horizon = ladder.reduction_factor, ladder.steps
    n = v.integer("n", n)
    if n < eta:
        raise ValueError(f"n must be >= reduction_factor ({eta:g}) so that the first rung promotes a trial, got {n}")
    common = check_common("successive_halving", task, optimizer, options)
    source = _Source(space_or_configs, common.seed)
    driver = _start(common, source, n, horizon)
    schedule = rungs(ladder.min_steps, ladder.max_steps, eta)
    _run(driver, source, [_Cohort(np.arange(n), 0, schedule, 0)], eta, ladder.refill, horizon)
    return driver.finish({"n": n, **dataclasses.asdict(ladder), "rungs": schedule})


def brackets(min_steps: int, max_steps: int, reduction_factor: float) -> list[tuple[int, list[int]]]:
    """Hyperband's brackets (Li et al. 2018, Algorithm 1) as (trials, rungs), from the widest
    (s = s_max: many trials from ``min_steps``) to the deepest (s = 0: few trials, all at
    ``max_steps``): bracket s has ⌈(s_max + 1)/(s + 1)·η^s⌉ trials and rungs max_steps·η^(i−s).

    Example:
      >>> from lrjax.search._halving import brackets
      >>> brackets(10, 90, 3)
      [(9, [10, 30, 90]), (5, [30, 90]), (3, [90])]
    """
    s_max = len(rungs(min_steps, max_steps, reduction_factor)) - 1
    return [
        (
            math.ceil((s_max + 1) / (s + 1) * reduction_factor**s),
            rungs(min_steps, max_steps, reduction_factor)[s_max - s :],
        )
        for s in range(s_max, -1, -1)
    ]


def hyperband(
    task: Task,
    optimizer: OptimizerFn,
    space_or_configs: Mapping[str, Any],
    *,
    min_steps: int,
    max_steps: int,
    **options: Unpack[HalvingOptions],
) -> SearchResult:
    """Hyperband (Li et al. 2018): every bracket of successive halving at once, one program.

    Bracket s starts ⌈(s_max + 1)/(s + 1)·η^s⌉ trials at max_steps·η^(−s) steps and halves
    them up to ``max_steps`` (see `brackets`); all brackets share one population, each a cohort
    with its own rungs. With ``refill`` (not in Li et al.) a freed slot starts a new trial in
    its bracket.

    Args:
      task, optimizer, space_or_configs: as for `successive_halving`.
      min_steps, max_steps: the smallest first rung and the last rung.
      **options: `HalvingOptions`, as for `successive_halving`, but ``refill`` defaults to
        False (as Li et al.).

    Returns:
      A `SearchResult`; ``history`` has ``bracket`` (0 the widest) and ``promoted``.

    Example:
      >>> import optax, lrjax
      >>> from lrjax.search import hyperband, log_uniform
      >>> result = hyperband(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                    {"learning_rate": log_uniform(1e-3, 1.0)}, min_steps=10, max_steps=90, progress=False)
      >>> result.info["slots"], sorted(set(result.history["bracket"]))
      (17, [0, 1, 2])
    """
    ladder = _ladder(min_steps, max_steps, options, refill=False)
    common = check_common("hyperband", task, optimizer, options)
    plan = brackets(ladder.min_steps, ladder.max_steps, ladder.reduction_factor)
    total = sum(trials for trials, _ in plan)
    source = _Source(space_or_configs, common.seed)
    driver = _start(common, source, total, ladder.steps)
    cohorts, first = [], 0
    for b, (trials, schedule) in enumerate(plan):
        cohorts.append(_Cohort(np.arange(first, first + trials), 0, schedule, b, id=b))
        first += trials
    _run(driver, source, cohorts, ladder.reduction_factor, ladder.refill, ladder.steps)
    return driver.finish({**dataclasses.asdict(ladder), "brackets": plan})
