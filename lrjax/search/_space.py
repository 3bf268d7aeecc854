"""Search spaces: distributions over hyperparameters, sampled on the host.

A space is a dict ``name -> distribution`` (`log_uniform`, `uniform`, `int_uniform`, `choice`)
or ``name -> value`` (a constant, passed to every configuration). `random` draws configurations
from it for `lrjax.sweep`; the search policies draw from it to start, refill and resample trials.
Each name is drawn from its own stream, seeded by the seed and the name, so adding a
hyperparameter to a space does not change the values drawn for the others.
"""

from __future__ import annotations

import dataclasses
import math
import zlib
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np

from lrjax import _configs
from lrjax import _validate as v

__all__ = [
    "Choice",
    "Distribution",
    "IntUniform",
    "LogUniform",
    "Uniform",
    "check_space",
    "choice",
    "int_uniform",
    "log_uniform",
    "random",
    "sample",
    "uniform",
]


class Distribution:
    """A distribution over one hyperparameter's values."""

    def sample(self, rng: np.random.Generator, n: int) -> Any:
        """``n`` values drawn with ``rng``: a 1-D array (or a stacked pytree for `Choice`)."""
        raise NotImplementedError

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        """PBT's explore step for one value: scaled by ``factor`` and kept in range (for
        `Choice`: a neighbouring value, up or down as ``factor`` > 1 or < 1)."""
        raise NotImplementedError


@dataclasses.dataclass(frozen=True)
class _Interval(Distribution):
    """A distribution on the real interval [low, high]; explored by scaling, clipped to it."""

    low: float
    high: float

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        return np.float32(np.clip(float(value) * factor, self.low, self.high))


@dataclasses.dataclass(frozen=True)
class LogUniform(_Interval):
    """Uniform in log scale on [low, high]: exp(U(log low, log high)). Built by `log_uniform`."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return np.exp(rng.uniform(math.log(self.low), math.log(self.high), n)).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class Uniform(_Interval):
    """Uniform on [low, high]. Built by `uniform`."""

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.uniform(self.low, self.high, n).astype(np.float32)


@dataclasses.dataclass(frozen=True)
class IntUniform(Distribution):
    """Uniform over the integers low … high (both included). Built by `int_uniform`."""

    low: int
    high: int

    def sample(self, rng: np.random.Generator, n: int) -> np.ndarray:
        return rng.integers(self.low, self.high, n, endpoint=True).astype(np.int32)

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        scaled = round(int(value) * factor)
        if scaled == int(value):  # a small integer would never move
            scaled += 1 if factor > 1 else -1
        return np.int32(np.clip(scaled, self.low, self.high))


@dataclasses.dataclass(frozen=True)
class Choice(Distribution):
    """One of ``values`` (numbers, or pytrees of one structure such as schedules), each equally
    likely. Built by `choice`."""

    values: tuple

    def sample(self, rng: np.random.Generator, n: int) -> Any:
        index = rng.integers(0, len(self.values), n)
        return self.take(index)

    def take(self, index: Any) -> Any:
        """The values at ``index`` as one config column (an array, or a stacked pytree)."""
        picked = [self.values[i] for i in np.asarray(index).reshape(-1)]
        if all(jax.tree.leaves(x) == [x] for x in picked):
            return _configs.check_values("choice", "", np.asarray(picked))
        return _configs.stack("choice", picked)

    def index_of(self, value: Any) -> int:
        """The position of ``value`` (a number, or a pytree) among the choices."""
        leaves = [np.asarray(x) for x in jax.tree.leaves(value)]
        for i, candidate in enumerate(self.values):
            theirs = [np.asarray(x) for x in jax.tree.leaves(candidate)]
            if len(theirs) == len(leaves) and all(
                np.allclose(a, b, rtol=1e-6) for a, b in zip(theirs, leaves, strict=True)
            ):
                return i
        raise ValueError(f"{value!r} is not one of the choices {self.values!r}")

    def perturb(self, value: Any, factor: float, rng: np.random.Generator) -> Any:
        i = self.index_of(value) + (1 if factor > 1 else -1)
        return self.values[int(np.clip(i, 0, len(self.values) - 1))]


def _bounds(low: Any, high: Any, *, log: bool) -> tuple[float, float]:
    v.check("low", low, **({"gt": 0} if log else {}))
    v.check("high", high)
    if not float(low) < float(high):
        raise ValueError(f"high must be > low (an empty or inverted range), got low={low!r}, high={high!r}")
    return float(low), float(high)


def log_uniform(low: float, high: float) -> LogUniform:
    """Log-uniform on [low, high]: every decade equally likely (learning rates, weight decays).

    Args:
      low: > 0 (a log range cannot touch 0).
      high: > low.

    Returns:
      A `LogUniform`.

    Example:
      >>> import numpy as np, lrjax
      >>> lrjax.search.log_uniform(1e-4, 1e-1).sample(np.random.default_rng(0), 3).round(5)
      array([0.00814, 0.00064, 0.00013], dtype=float32)
    """
    return LogUniform(*_bounds(low, high, log=True))


def uniform(low: float, high: float) -> Uniform:
    """Uniform on [low, high] (momenta, dropout rates).

    Args:
      low: a finite number.
      high: > low.

    Returns:
      A `Uniform`.

    Example:
      >>> import numpy as np, lrjax
      >>> lrjax.search.uniform(0.8, 0.99).sample(np.random.default_rng(0), 2).round(4)
      array([0.921 , 0.8513], dtype=float32)
    """
    return Uniform(*_bounds(low, high, log=False))


def int_uniform(low: int, high: int) -> IntUniform:
    """Uniform over the integers low … high, both included (layer widths, warmup steps).

    Args:
      low: an integer.
      high: an integer >= low.

    Returns:
      An `IntUniform`.

    Example:
      >>> import numpy as np, lrjax
      >>> lrjax.search.int_uniform(1, 3).sample(np.random.default_rng(0), 5)
      array([3, 2, 2, 1, 1], dtype=int32)
    """
    for name, value in (("low", low), ("high", high)):
        if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
            raise TypeError(f"{name} must be an integer, got {value!r}")
    if high < low:
        raise ValueError(f"high must be >= low (an empty range), got low={low}, high={high}")
    return IntUniform(int(low), int(high))


def choice(values: Sequence[Any]) -> Choice:
    """One of ``values``, equally likely: numbers, or schedules (of one structure).

    Args:
      values: a non-empty sequence.

    Returns:
      A `Choice`.

    Example:
      >>> import numpy as np, lrjax
      >>> lrjax.search.choice([0.0, 0.9, 0.99]).sample(np.random.default_rng(0), 4)
      array([0.99, 0.9 , 0.9 , 0.  ], dtype=float32)
    """
    given = tuple(values) if isinstance(values, (list, tuple, np.ndarray)) else ()
    if not given:
        raise ValueError("values must be a non-empty sequence of choices")
    values = given
    structures = {jax.tree.structure(x) for x in values}
    if len(structures) != 1:
        raise ValueError(f"values must share one structure (numbers, or schedules of one kind), got {values!r}")
    return Choice(values)


def check_space(space: Mapping[str, Any]) -> dict[str, Any]:
    """A space checked: a non-empty dict of string names to distributions or constant numbers."""
    if not isinstance(space, Mapping) or not space:
        raise ValueError(f"space must be a non-empty dict of name -> distribution or value, got {space!r}")
    out = {}
    for name, value in space.items():
        if not isinstance(name, str):
            raise TypeError(f"space names must be strings, got {name!r}")
        if not isinstance(value, Distribution):
            _configs.check_values(f"space[{name!r}]", name, np.asarray(value))
            if np.ndim(value) != 0:
                raise ValueError(
                    f"space[{name!r}] must be a distribution (log_uniform, uniform, int_uniform, choice) "
                    f"or one number, got {value!r}; use choice([...]) for a list of values"
                )
        out[name] = value
    return out


def _stream(seed: int, name: str) -> np.random.Generator:
    return np.random.default_rng([seed, zlib.crc32(name.encode())])


def sample(space: Mapping[str, Any], n: int, rng: np.random.Generator) -> dict[str, Any]:
    """``n`` configurations from ``rng`` (one stream for all names; the policies use it)."""
    return {
        name: dist.sample(rng, n)
        if isinstance(dist, Distribution)
        else _configs.check_values(name, name, np.full(n, dist))
        for name, dist in space.items()
    }


def random(space: Mapping[str, Any], n: int, *, seed: int = 0) -> dict[str, Any]:
    """``n`` configurations drawn independently from ``space``, for `lrjax.sweep` (random search,
    Bergstra & Bengio 2012).

    Args:
      space: name -> distribution (`log_uniform`, `uniform`, `int_uniform`, `choice`) or a
        constant.
      n: >= 1 configurations.
      seed: the seed; each name draws from its own stream of it.

    Returns:
      name -> (n,) values (a stacked pytree for a choice of schedules).

    Example:
      >>> import lrjax
      >>> configs = lrjax.search.random({"learning_rate": lrjax.search.log_uniform(1e-4, 1e-1),
      ...                                "momentum": 0.9}, 4, seed=0)
      >>> configs["learning_rate"].shape, configs["momentum"]
      ((4,), array([0.9, 0.9, 0.9, 0.9], dtype=float32))
    """
    space = check_space(space)
    n = v.integer("n", n)
    seed = v.integer("seed", seed, minimum=0)
    return {name: sample({name: dist}, n, _stream(seed, name))[name] for name, dist in space.items()}
