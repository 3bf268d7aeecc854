"""Matplotlib figures (install the ``plot`` extra: ``pip install 'lrjax[plot]'``)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Mapping, Optional, Sequence, Union

import numpy as np

from lrjax.schedules import Schedule

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Schedules = Union[Schedule, Sequence[Schedule], Mapping[str, Schedule]]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("lrjax.plot needs matplotlib: pip install 'lrjax[plot]'") from err
    return plt


def _labelled(schedules: Schedules, labels: Optional[Sequence[str]]) -> list[tuple[str, Schedule]]:
    if isinstance(schedules, Schedule):
        schedules = [schedules]
    if isinstance(schedules, Mapping):
        items = list(schedules.items())
    else:
        schedules = list(schedules)
        names = labels if labels is not None else [type(s).__name__ for s in schedules]
        if len(names) != len(schedules):
            raise ValueError(f"labels must have {len(schedules)} entries (one per schedule), got {len(names)}")
        items = list(zip(names, schedules))
    for name, s in items:
        if not isinstance(s, Schedule):
            raise TypeError(f"schedule {name!r} must be an lrjax schedule, got {s!r}")
    return items


def schedule(
    schedules: Schedules,
    steps: Union[int, Sequence[int], np.ndarray] = 1000,
    *,
    labels: Optional[Sequence[str]] = None,
    ax: Optional["Axes"] = None,
    log_scale: bool = False,
    title: Optional[str] = None,
) -> "Axes":
    """Draw one or several schedules against the step count.

    Args:
      schedules: a schedule, a sequence of schedules, or a mapping label -> schedule.
      steps: a number of steps (drawn at 0 .. steps − 1) or the steps themselves.
      labels: legend labels for a sequence (default: the schedule class names).
      ax: the axes to draw on (default: a new figure).
      log_scale: logarithmic learning-rate axis.
      title: the axes title.

    Returns:
      The matplotlib axes.
    """
    items = _labelled(schedules, labels)
    if isinstance(steps, (int, np.integer)):
        if steps <= 0:
            raise ValueError(f"steps must be > 0, got {steps}")
        steps = np.arange(int(steps))
    steps = np.asarray(steps)
    if ax is None:
        _, ax = _pyplot().subplots(figsize=(7, 4))
    for name, s in items:
        ax.plot(steps, np.asarray(s(steps)), label=name)
    ax.set_xlabel("step (optimizer updates applied)")
    ax.set_ylabel("learning rate")
    if log_scale:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(items) > 1 or labels is not None or isinstance(schedules, Mapping):
        ax.legend(fontsize="small")
    return ax
