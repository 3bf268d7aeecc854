"""`pbt`: population-based training (Jaderberg et al., "Population Based Training of Neural
Networks", 2017), as one compiled population.

Every ``interval`` steps the population is evaluated; each member in the bottom ``quantile``
*exploits* a member drawn at random from the top ``quantile`` (its parameters, optimizer state,
step count and hyperparameters are copied, `lrjax.Population.copy`) and *explores*: each
hyperparameter is, with probability ``resample_probability``, drawn afresh from the space, and
otherwise multiplied by a factor drawn from ``perturb`` (for a `choice`, moved to the
neighbouring value) and kept in its range (`lrjax.Population.set_configs`). The copied member
becomes a new trial whose ``parent`` is the trial it copied, so the lineage of every member can
be followed back to generation 0.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any, Unpack

import numpy as np

from lrjax import _configs
from lrjax import _validate as v
from lrjax._task import Task
from lrjax.engine.program import OptimizerFn
from lrjax.search._driver import Driver, SearchOptions, check_common
from lrjax.search._result import SearchResult
from lrjax.search._space import Distribution, check_space, random

__all__ = ["pbt"]


def _explore(
    space: Mapping[str, Any], hp: Mapping[str, Any], rng: np.random.Generator, perturb: Sequence[float], resample: float
) -> tuple[dict[str, Any], str]:
    """New values for one member's hyperparameters, and how each was found."""
    out, how = {}, []
    for name, dist in space.items():
        if not isinstance(dist, Distribution):
            continue  # a constant
        if rng.random() < resample:
            out[name] = _configs.take(dist.sample(rng, 1), 0)
            how.append(f"{name}:resample")
        else:
            factor = float(rng.choice(perturb))
            out[name] = dist.perturb(hp[name], factor, rng)
            how.append(f"{name}:x{factor:g}")
    return out, " ".join(how)


def pbt(
    task: Task,
    optimizer: OptimizerFn,
    space: Mapping[str, Any],
    *,
    population: int,
    steps: int,
    interval: int,
    quantile: float = 0.25,
    perturb: Sequence[float] = (0.8, 1.2),
    resample_probability: float = 0.25,
    **options: Unpack[SearchOptions],
) -> SearchResult:
    """Population-based training of ``population`` members drawn from ``space``.

    Args:
      task: the `lrjax.Task` to train.
      optimizer: ``hp -> optax.GradientTransformation``.
      space: name -> distribution or constant; a `choice` of schedules makes the schedule itself
        a hyperparameter (explored by moving to a neighbouring choice).
      population: members (trial slots), >= 2.
      steps: the clock steps to train.
      interval: steps between exploit/explore rounds (each a generation).
      quantile: in (0, 0.5]: the bottom and top fractions, at least one member each.
      perturb: the factors an explored value is multiplied by, one drawn per value.
      resample_probability: in [0, 1], the chance a value is drawn afresh instead.
      **options: `SearchOptions` (``metric``, ``mode``, ``seeds``, ``eval_every``, ...); the
        generations' evaluations decide, and an exploit copies all seeds of a member.

    Returns:
      A `SearchResult`: ``history`` has a row per member per generation with ``parent`` (the
      trial it copied at the start of this generation, or −1) and ``explore`` (how each value
      changed).

    Example:
      >>> import optax, lrjax
      >>> from lrjax.search import log_uniform, pbt
      >>> result = pbt(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...              {"learning_rate": log_uniform(1e-3, 0.5)}, population=8, steps=100, interval=25,
      ...              progress=False)
      >>> sorted(set(result.history["generation"])), bool((result.history["parent"] >= 0).any())
      ([1, 2, 3, 4], True)
    """
    space = check_space(space)
    population = v.integer("population", population, minimum=2)
    steps = v.integer("steps", steps)
    interval = v.integer("interval", interval)
    v.check("quantile", quantile, gt=0, le=0.5)
    v.check_vector("perturb", list(perturb), gt=0)
    v.check("resample_probability", resample_probability, ge=0, le=1)
    common = check_common("pbt", task, optimizer, options)
    rng, seeds = np.random.default_rng(common.seed), common.seeds
    driver = Driver(common, random(space, population, seed=common.seed), stage="generation", total=steps)
    pop = driver.pop
    driver.start_trials(np.arange(population))
    count = max(1, math.floor(quantile * population))
    parent = np.full(population, -1)
    explored = [""] * population
    generation = 0
    while pop.clock < steps:
        driver.advance(min(interval, steps - pop.clock))
        generation += 1
        values, diverged = driver.measure()
        for slot in range(population):
            driver.record(
                slot, values[slot], diverged[slot], generation, parent=int(parent[slot]), explore=explored[slot]
            )
        if pop.clock >= steps:
            break
        order = driver.ranking(values)
        top, bottom = order[:count], order[population - count :]
        sources = rng.choice(top, size=count)
        pop.copy(driver.members(bottom), driver.members(sources))
        parent[:] = -1
        explored = [""] * population
        configs = pop.configs
        for dst, src in zip(bottom, sources, strict=True):
            hp = {k: _configs.take(x, dst * seeds) for k, x in configs.items() if k != "seed"}
            new, how = _explore(space, hp, rng, perturb, resample_probability)
            members = driver.members([dst])
            pop.set_configs(
                members, {k: _configs.take(_configs.as_tree(k, [x]), np.zeros(seeds, int)) for k, x in new.items()}
            )
            parent[dst] = driver.trial_of[src]
            explored[dst] = how
        driver.start_trials(bottom)
    info = dict(
        population=population,
        steps=steps,
        interval=interval,
        quantile=quantile,
        perturb=tuple(perturb),
        resample_probability=resample_probability,
    )
    return driver.finish(info)
