"""Driving a population to a step count in stretches, with a progress bar: the one loop under
`lrjax.sweep`, `lrjax.find_lr`, the search policies and the batch-size tools.

A driver names the clock values where it must act (evaluate, save, promote trials); `run`
advances the population from stop to stop, pausing also after every chunk of the engine (so a
driver can watch the losses as they come: the range test stops curves there), and yields each
stretch's losses for the driver to act on before it goes on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any

import numpy as np
from tqdm.auto import tqdm

from lrjax.engine.program import CHUNK

if TYPE_CHECKING:
    from lrjax._population import Population

__all__ = ["progress_bar", "run"]


def progress_bar(total: int, desc: str, enabled: bool) -> Any:
    """A tqdm progress bar over ``total`` steps (disabled, and silent, unless ``enabled``)."""
    return tqdm(total=total, desc=desc, unit="step", disable=not enabled)


def run(pop: Population, until: int, *, stops: Iterable[int] = (), bar: Any = None) -> Iterator[np.ndarray]:
    """Advance ``pop`` to clock ``until``, pausing at every clock of ``stops`` and after every
    chunk of the engine (`lrjax.engine.CHUNK` steps).

    Args:
      pop: the population; whatever the caller changes between stretches (deactivated members,
        new configurations) holds for the next.
      until: the clock to reach (nothing happens if ``pop.clock`` is there already).
      stops: clocks at which to pause (those outside ``(pop.clock, until)`` are ignored).
      bar: a progress bar, advanced by each stretch's steps.

    Yields:
      Each stretch's training losses, (members, steps of the stretch); ``pop.clock`` is the
      clock at its end. The caller may stop early by leaving the loop.

    Example:
      >>> import optax, lrjax
      >>> from lrjax._drive import run
      >>> pop = lrjax.Population(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                        {"learning_rate": [0.01, 0.1]})
      >>> [(pop.clock, losses.shape) for losses in run(pop, 250, stops=[30])]
      [(30, (2, 30)), (130, (2, 100)), (230, (2, 100)), (250, (2, 20))]
    """
    pauses = sorted({int(s) for s in stops if pop.clock < s < until} | {until})
    for pause in pauses:
        while pop.clock < pause:
            n = min(CHUNK, pause - pop.clock)
            losses = pop.advance(n)
            if bar is not None:
                bar.update(n)
            yield losses
