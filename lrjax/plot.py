"""Matplotlib figures (install the ``plot`` extra: ``pip install 'lrjax[plot]'``)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from lrjax import _validate as v
from lrjax.schedules import Schedule

if TYPE_CHECKING:
    from matplotlib.axes import Axes

Schedules = Schedule | Sequence[Schedule] | Mapping[str, Schedule]


__all__ = ["moving_average", "schedule", "sweep"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("lrjax.plot needs matplotlib: pip install 'lrjax[plot]'") from err
    return plt


def _labelled(schedules: Schedules, labels: Sequence[str] | None) -> list[tuple[str, Schedule]]:
    if isinstance(schedules, Schedule):
        schedules = [schedules]
    if isinstance(schedules, Mapping):
        items = list(schedules.items())
    else:
        schedules = list(schedules)
        names = labels if labels is not None else [type(s).__name__ for s in schedules]
        if len(names) != len(schedules):
            raise ValueError(f"labels must have {len(schedules)} entries (one per schedule), got {len(names)}")
        items = list(zip(names, schedules, strict=True))
    for name, s in items:
        if not isinstance(s, Schedule):
            raise TypeError(f"schedule {name!r} must be an lrjax schedule, got {s!r}")
    return items


def schedule(
    schedules: Schedules,
    steps: int | Sequence[int] | np.ndarray = 1000,
    *,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    log_scale: bool = False,
    title: str | None = None,
) -> Axes:
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

    Example:
      >>> import lrjax, lrjax.schedules as S
      >>> ax = lrjax.plot.schedule({"cosine": S.cosine_decay(0.1, decay_steps=100)}, 100)
      >>> [line.get_label() for line in ax.get_lines()]
      ['cosine']
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


def _hyperparameter(result: Any, name: str | None) -> str:
    candidates = [k for k in result.configs if k != "seed"]
    if name is None:
        varying = [k for k in candidates if np.unique(result.configs[k]).size > 1] or candidates
        name = next((k for k in varying if v.is_learning_rate(k)), varying[0])
    if name not in result.configs:
        raise ValueError(f"hyperparameter must be one of {candidates}, got {name!r}")
    return name


def moving_average(values: np.ndarray, window: int) -> np.ndarray:
    """Trailing mean over ``window`` steps along the last axis (length shrinks by window − 1).

    Returns:
      An array with the last axis shorter by ``window - 1``.

    Example:
      >>> import numpy as np, lrjax
      >>> lrjax.plot.moving_average(np.arange(6.0)[None], 3)
      array([[1., 2., 3., 4.]])
    """
    total = np.cumsum(np.pad(values, [(0, 0)] * (values.ndim - 1) + [(1, 0)]), axis=-1)
    return (total[..., window:] - total[..., :-window]) / window


def sweep(result: Any, *, hyperparameter: str | None = None, metric: str = "loss") -> Any:
    """Two panels: training-loss curves coloured by a hyperparameter (log colour scale), and
    each member's final ``metric`` against it, with diverged members marked at the top.

    Args:
      result: a `lrjax.SweepResult`.
      hyperparameter: the config to colour by and put on the x axis (default: the learning rate).
      metric: an eval metric name or ``"train_loss"``.

    Returns:
      The matplotlib figure.

    Example:
      >>> import optax, lrjax
      >>> result = lrjax.sweep(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                      {"learning_rate": [0.01, 0.1, 1.0]}, steps=50, progress=False)
      >>> len(lrjax.plot.sweep(result).axes)  # the curves, their colour bar, final loss vs learning rate
      3
    """
    plt = _pyplot()
    from matplotlib.colors import LogNorm, Normalize

    name = _hyperparameter(result, hyperparameter)
    x = np.asarray(result.configs[name], np.float64)
    positive = bool(np.all(x > 0))
    norm = LogNorm(x.min(), x.max()) if positive and x.max() > x.min() else Normalize(x.min(), x.max() + 1e-12)
    cmap = plt.get_cmap("viridis")
    fig, (curves, final) = plt.subplots(1, 2, figsize=(12, 4.5), constrained_layout=True)

    window = max(1, result.train_loss.shape[1] // 50)
    smooth = moving_average(result.train_loss, window)
    steps = np.arange(smooth.shape[1]) + window - 1
    for i in np.argsort(x):
        curves.plot(steps, smooth[i], color=cmap(norm(x[i])), lw=1, alpha=0.8)
    curves.set_yscale("log")
    curves.set_xlabel("step")
    curves.set_ylabel("training loss" + (f" (mean of last {window} steps)" if window > 1 else ""))
    curves.set_title(f"{result.info.get('task', '')}: training loss per member")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=curves, label=name)

    scores = result.final(metric)
    ok = ~result.diverged
    final.scatter(x[ok], scores[ok], c=[cmap(norm(value)) for value in x[ok]], s=25, zorder=3, label="trained")
    order = np.argsort(x[ok])
    final.plot(x[ok][order], scores[ok][order], color="0.6", lw=1, zorder=2)
    if np.any(~ok):
        top = np.nanmax(scores) if np.any(ok) else 1.0
        final.scatter(x[~ok], np.full((~ok).sum(), top), marker="x", color="red", s=40, zorder=4, label="diverged")
    if positive:
        final.set_xscale("log")
    if metric in ("loss", "train_loss") and np.all(scores[ok] > 0):
        final.set_yscale("log")
    final.set_xlabel(name)
    final.set_ylabel(f"final {metric}" if metric == "train_loss" else f"final eval {metric}")
    final.set_title(f"final {metric} vs {name}")
    final.grid(True, alpha=0.3)
    final.legend(fontsize="small")
    return fig
