"""Matplotlib figures (install the ``plot`` extra: ``pip install 'lrjax[plot]'``).

Every function returns a `matplotlib.figure.Figure` made through pyplot, as ``plt.subplots``
makes one: in a script ``plt.show()`` shows it and ``fig.savefig`` writes it; headless (Agg) it
stays open until ``plt.close``; in Jupyter it is shown once when the cell ends, whether or not
the cell's last expression returns it (a figure no longer open in pyplot shows when returned).
Given ``ax=``, a function draws there and returns that axes' figure.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

import jax
import numpy as np

from lrjax import _validate as v
from lrjax._result import metric_label
from lrjax.schedules import Schedule

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

Schedules = Schedule | Sequence[Schedule] | Mapping[str, Schedule]


__all__ = ["batch_size", "catalogue", "finder", "heatmap", "moving_average", "schedule", "search", "sweep"]


def _pyplot() -> Any:
    try:
        import matplotlib.pyplot as plt
    except ImportError as err:  # pragma: no cover - depends on the environment
        raise ImportError("lrjax.plot needs matplotlib: pip install 'lrjax[plot]'") from err
    return plt


def _subplots(*args: Any, **kwargs: Any) -> tuple[Figure, Any]:
    """``plt.subplots``, with one difference in Jupyter's inline backend: the figure is shown
    once when the cell ends, or when the cell returns it, not twice (see `_figure_class`)."""
    plt = _pyplot()
    fig, axes = plt.subplots(*args, FigureClass=_figure_class(), **kwargs)
    if _inline():
        plt.close(fig)  # not drawn again by the inline backend's own pass when the cell ends
        _show_when_the_cell_ends(fig)
    return fig, axes


def _axes(**kwargs: Any) -> Axes:
    """One `_subplots` axes."""
    _, ax = _subplots(**kwargs)
    return ax


def _figure(ax: Axes) -> Figure:
    """The figure ``ax`` is drawn in: the top-level one when ``ax`` is in a subfigure."""
    from matplotlib.figure import Figure

    fig = ax.figure
    while not isinstance(fig, Figure):
        fig = fig.figure  # a subfigure's parent
    return fig


def _inline() -> bool:
    """Whether pyplot draws into Jupyter's output (the inline backend)."""
    import matplotlib

    return "inline" in matplotlib.get_backend()


def _show_when_the_cell_ends(fig: Any) -> None:
    from IPython import get_ipython
    from IPython.display import display

    shell = get_ipython()
    if shell is None:
        return

    def show(*_: Any) -> None:
        shell.events.unregister("post_execute", show)
        if not fig.shown:
            display(fig)

    shell.events.register("post_execute", show)


@functools.cache
def _figure_class() -> type:
    from matplotlib.figure import Figure as Base

    class Figure(Base):
        """A matplotlib figure that Jupyter's inline backend shows once: as the cell's value if
        it is returned, else when the cell ends."""

        shown = False

        def _ipython_display_(self) -> None:
            from IPython.core.pylabtools import print_figure
            from IPython.display import Image, display

            if not _inline():
                display({"text/plain": repr(self)}, raw=True)
                return
            self.shown = True
            display(Image(print_figure(self, "png")))

    return Figure


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


def _steps(steps: int | Sequence[int] | np.ndarray) -> np.ndarray:
    if isinstance(steps, (int, np.integer)):
        if steps <= 0:
            raise ValueError(f"steps must be > 0, got {steps}")
        return np.arange(int(steps))
    return np.asarray(steps)


@jax.jit
def _evaluate(schedules: list[Schedule], steps: Any) -> list[Any]:
    return [s(steps) for s in schedules]


def values(items: Sequence[tuple[str, Schedule]], steps: np.ndarray) -> dict[str, np.ndarray]:
    """Every schedule's values at ``steps``, computed as one compiled program (evaluated one
    by one, eagerly, a catalogue of 16 schedules dispatched and compiled 150-odd small
    operations). The schedules are arguments of the program (their numbers are pytree
    leaves), so schedules of the same kinds at the same steps reuse it."""
    computed = _evaluate([s for _, s in items], np.asarray(steps))
    return {name: np.asarray(v) for (name, _), v in zip(items, computed, strict=True)}


def schedule(
    schedules: Schedules,
    steps: int | Sequence[int] | np.ndarray = 1000,
    *,
    labels: Sequence[str] | None = None,
    ax: Axes | None = None,
    log_scale: bool = False,
    title: str | None = None,
) -> Figure:
    """Draw one or several schedules against the step count.

    Args:
      schedules: a schedule, a sequence of schedules, or a mapping label -> schedule.
      steps: a number of steps (drawn at 0 .. steps − 1) or the steps themselves.
      labels: legend labels for a sequence (default: the schedule class names).
      ax: the axes to draw on (default: a new figure).
      log_scale: logarithmic learning-rate axis.
      title: the axes title.

    Returns:
      The matplotlib figure (of ``ax`` if given).

    Example:
      >>> import lrjax, lrjax.schedules as S
      >>> fig = lrjax.plot.schedule({"cosine": S.cosine_decay(0.1, decay_steps=100)}, 100)
      >>> [line.get_label() for line in fig.axes[0].get_lines()]
      ['cosine']
    """
    items = _labelled(schedules, labels)
    steps = _steps(steps)
    if ax is None:
        ax = _axes(figsize=(7, 4))
    for name, value in values(items, steps).items():
        ax.plot(steps, value, label=name)
    ax.set_xlabel("step (optimizer updates applied)")
    ax.set_ylabel("learning rate")
    if log_scale:
        ax.set_yscale("log")
    if title:
        ax.set_title(title)
    ax.grid(True, alpha=0.3)
    if len(items) > 1 or labels is not None or isinstance(schedules, Mapping):
        ax.legend(fontsize="small")
    return _figure(ax)


def catalogue(
    schedules: Mapping[str, Schedule], steps: int = 1000, *, columns: int = 4, title: str | None = None
) -> Figure:
    """Draw each schedule in a panel of its own, on a grid (the command line's ``lrjax
    schedules --out``); all values are computed as one compiled program.

    Args:
      schedules: a mapping label -> schedule.
      steps: a number of steps (drawn at 0 .. steps − 1).
      columns: panels per row.
      title: the figure's title.

    Returns:
      The matplotlib figure.

    Example:
      >>> import lrjax, lrjax.schedules as S
      >>> fig = lrjax.plot.catalogue({"cosine": S.cosine_decay(0.1, decay_steps=100),
      ...                             "linear": S.linear(0.1, end_value=0.0, steps=100)}, 100, columns=2)
      >>> [ax.get_title() for ax in fig.axes]
      ['cosine', 'linear']
    """
    items = _labelled(schedules, None)
    v.integer("columns", columns)
    points = _steps(steps)
    computed = values(items, points)
    rows = -(-len(items) // columns)
    fig, axes = _subplots(rows, columns, figsize=(4 * columns, 2.8 * rows), sharex=True, squeeze=False)
    # Fixed margins, in inches: a layout engine measures every panel's labels, a second per 16 panels.
    height = 2.8 * rows
    fig.subplots_adjust(
        left=0.06, right=0.98, bottom=0.5 / height, top=1 - (0.75 if title else 0.4) / height, hspace=0.45, wspace=0.25
    )
    for i, (ax, (name, value)) in enumerate(zip(axes.flat, computed.items(), strict=False)):
        ax.plot(points, value)
        ax.set_title(name)
        ax.grid(True, alpha=0.3)
        ax.set_xlabel("step" if i // columns == rows - 1 else "")
    for ax in list(axes.flat)[len(items) :]:
        fig.delaxes(ax)
    if title:
        fig.suptitle(title)
    return fig


def _varying(result: Any) -> list[str]:
    """The config columns (seed excluded) that take more than one value, in order."""
    return [k for k in result.configs if k != "seed" and np.unique(result.configs[k]).size > 1]


def _hyperparameter(result: Any, name: str | None) -> str:
    candidates = [k for k in result.configs if k != "seed"]
    if name is None:
        varying = _varying(result) or candidates
        name = next((k for k in varying if v.is_learning_rate(k)), varying[0])
    if name is None or name not in result.configs:
        raise ValueError(f"hyperparameter must be one of {candidates}, got {name!r}")
    return name


def _axis_scale(ax: Any, axis: str, values: np.ndarray) -> None:
    """A log axis where positive values span at least a decade; symlog when they include 0."""
    values = np.asarray(values, np.float64)
    positive = values[values > 0]
    if positive.size < 2 or positive.max() / positive.min() < 10 or np.any(values < 0):
        return
    setter = ax.set_xscale if axis == "x" else ax.set_yscale
    if np.all(values > 0):
        setter("log")
    else:
        setter("symlog", linthresh=positive.min())


def _nanmean(values: np.ndarray, axis: int) -> np.ndarray:
    """Mean ignoring NaN; NaN (without a warning) where every value is NaN (diverged)."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)
        return np.nanmean(values, axis=axis)


def _final_label(result: Any, metric: str) -> str:
    """``final eval loss``, ``final train data loss`` or ``final train loss``: what the number is."""
    label = result.column(metric).replace("_", " ")
    return label if label.startswith("final") else f"final {label}"


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


def sweep(result: Any, *, hyperparameter: str | None = None, metric: str = "loss", max_curves: int = 24) -> Figure:
    """A sweep at a glance: the training-loss curves of each configuration (mean over seeds),
    coloured by ``hyperparameter``; the evaluation ``metric`` over training when it was recorded
    more than once; the final ``metric`` against ``hyperparameter`` with one line per value of
    each other swept hyperparameter, the mean over seeds and a band from the lowest to the
    highest seed, the best configuration starred and diverged ones crossed; and, when exactly
    two hyperparameters were swept, a heat map of the final metric (`heatmap`). Axes are
    logarithmic where values span decades (symlog when they include 0).

    Args:
      result: a `lrjax.SweepResult`.
      hyperparameter: the config to colour by and put on the x axis (default: the learning rate
        if swept, else the first swept config).
      metric: an eval metric name or ``"train_loss"``.
      max_curves: draw at most this many configurations' curves (every k-th, by ``hyperparameter``).

    Returns:
      The matplotlib figure.

    Example:
      >>> import optax, lrjax
      >>> result = lrjax.sweep(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                      {"learning_rate": [0.01, 0.1, 1.0]}, steps=50, progress=False)
      >>> [ax.get_title() for ax in lrjax.plot.sweep(result).axes if ax.get_title()]
      ['linear_regression: training loss (mean over seeds)', 'final train data loss vs learning_rate']
    """
    plt = _pyplot()
    from matplotlib.colors import LogNorm, Normalize

    name = _hyperparameter(result, hyperparameter)
    others = [k for k in _varying(result) if k != name]
    x = result.by_configuration(np.asarray(result.configs[name], np.float64))[:, 0]
    positive = bool(np.all(x > 0))
    span = positive and x.max() / x.min() >= 10
    norm = LogNorm(x.min(), x.max()) if span else Normalize(x.min(), x.max() + 1e-12)
    cmap = plt.get_cmap("viridis")
    has_evals = len(result.eval_steps) > 1 and metric in result.eval_metrics
    panels = 2 + has_evals + (len(others) == 1)
    fig, axes = _subplots(1, panels, figsize=(5.5 * panels + 1, 4.5), layout="constrained")
    curves, *rest = axes
    evals = rest.pop(0) if has_evals else None
    final = rest.pop(0)

    # Configurations grouped by the values of the other swept hyperparameters: one line style
    # per group in the curve panels (up to four), one line per group in the final panel.
    groups = {(): np.arange(len(x))} if not others else {}
    if others:
        keys = np.stack([result.by_configuration(np.asarray(result.configs[k]))[:, 0] for k in others], axis=1)
        for key in sorted({tuple(row) for row in keys.tolist()}):
            groups[key] = np.flatnonzero((keys == np.asarray(key)).all(axis=1))
    styles = dict(zip(groups, ["-", "--", ":", "-."], strict=False)) if len(groups) <= 4 else {}
    style_of = {int(i): styles.get(key, "-") for key, members in groups.items() for i in members}
    # Thinned within each group, so that every group keeps curves across the whole x range.
    every = max(1, -(-len(x) // max_curves))
    shown = np.concatenate([members[np.argsort(x[members], kind="stable")][::every] for members in groups.values()])
    window = max(1, result.train_loss.shape[1] // 50)
    smooth = moving_average(_nanmean(result.by_configuration(result.train_loss), axis=1), window)
    steps = np.arange(smooth.shape[1]) + window - 1
    for i in shown:
        curves.plot(steps, smooth[i], color=cmap(norm(x[i])), ls=style_of[int(i)], lw=1, alpha=0.8)
    if len(styles) > 1:
        from matplotlib.lines import Line2D

        handles = [Line2D([], [], color="0.3", ls=ls, lw=1) for ls in styles.values()]
        labels = [", ".join(f"{k}={value:.3g}" for k, value in zip(others, key, strict=True)) for key in styles]
        curves.legend(handles, labels, fontsize="small")
    curves.set_yscale("log")
    calm = ~result.by_configuration(np.asarray(result.diverged)).any(axis=1)
    kept = smooth[calm][np.isfinite(smooth[calm]) & (smooth[calm] > 0)]
    if kept.size and not calm.all():  # a diverging curve would squash the others: it leaves the top
        curves.set_ylim(kept.min() / 2, kept.max() * 3)
    curves.set_xlabel("step")
    thinned = f"; {len(shown)} of {len(x)} configurations" if len(shown) < len(x) else ""
    curves.set_ylabel("training loss" + (f" (mean of last {window} steps)" if window > 1 else ""))
    curves.set_title(f"{result.info.get('task', '')}: training loss (mean over seeds{thinned})")
    fig.colorbar(plt.cm.ScalarMappable(norm=norm, cmap=cmap), ax=curves, label=name)

    if evals is not None:
        recorded = _nanmean(result.by_configuration(result.eval_metrics[metric]), axis=1)
        for i in shown:
            evals.plot(result.eval_steps, recorded[i], color=cmap(norm(x[i])), ls=style_of[int(i)], marker=".", lw=1)
        evals.set_xlabel("step")
        evals.set_ylabel(metric_label(metric, result.evaluated_on))
        evals.set_title(f"{metric_label(metric, result.evaluated_on)} during training")
        if metric == "loss" and np.all(recorded[np.isfinite(recorded)] > 0):
            evals.set_yscale("log")

    scores = result.by_configuration(result.final(metric))
    diverged = result.by_configuration(np.asarray(result.diverged)).any(axis=1)
    colors = plt.get_cmap("tab10")
    for g, (key, members) in enumerate(groups.items()):
        members = members[np.argsort(x[members], kind="stable")]
        ok = members[~diverged[members]]
        label = ", ".join(f"{k}={value:.3g}" for k, value in zip(others, key, strict=True)) or "mean over seeds"
        color = colors(g % 10) if others else "0.3"
        mean = _nanmean(scores[ok], axis=1) if ok.size else np.array([])
        final.plot(x[ok], mean, marker="o", ms=4, color=color, ls=styles.get(key, "-"), label=label)
        if scores.shape[1] > 1 and ok.size:
            final.fill_between(
                x[ok], np.nanmin(scores[ok], axis=1), np.nanmax(scores[ok], axis=1), color=color, alpha=0.2, lw=0
            )
    finite = scores[np.isfinite(scores)]
    if diverged.any():
        top = finite.max() if finite.size else 1.0
        final.scatter(
            x[diverged], np.full(diverged.sum(), top), marker="x", color="red", s=40, zorder=4, label="diverged"
        )
    try:
        best = result.best(metric)
        i = next(c for c, members in enumerate(result.configurations()) if best["members"][0] in members)
        where = ", ".join([f"{name}={x[i]:.3g}"] + [f"{k}={best[k]:.3g}" for k in others])
        final.scatter(
            [x[i]],
            [best[metric]],
            marker="*",
            s=220,
            color="gold",
            edgecolor="black",
            zorder=5,
            label=f"best: {where}",
        )
    except ValueError:  # every configuration diverged, or the metric's direction is unknown
        pass
    _axis_scale(final, "x", x)
    if metric in ("loss", "train_loss") and finite.size and np.all(finite > 0):
        final.set_yscale("log")
    final.set_xlabel(name)
    final.set_ylabel(_final_label(result, metric))
    final.set_title(f"{_final_label(result, metric)} vs {name}")
    final.grid(True, alpha=0.3)
    final.legend(fontsize="small")
    if len(others) == 1:
        heatmap(result, x=name, y=others[0], metric=metric, ax=rest.pop(0))
    return fig


def heatmap(result: Any, *, x: str, y: str, metric: str = "loss", ax: Axes | None = None) -> Figure:
    """The final ``metric`` (mean over seeds) of a two-hyperparameter grid as a heat map, the
    best configuration outlined; diverged cells are blank.

    Args:
      result: a `lrjax.SweepResult` of a grid over ``x`` and ``y``.
      x, y: the two swept config names.
      metric: an eval metric name or ``"train_loss"``.
      ax: the axes to draw on (default: a new figure).

    Returns:
      The matplotlib figure (of ``ax`` if given).

    Example:
      >>> import optax, lrjax
      >>> configs = lrjax.search.grid({"learning_rate": [0.01, 0.1], "momentum": [0.0, 0.9]})
      >>> result = lrjax.sweep(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"], momentum=hp["momentum"]),
      ...                      configs, steps=50, progress=False)
      >>> ax = lrjax.plot.heatmap(result, x="learning_rate", y="momentum").axes[0]
      >>> ax.get_xlabel(), ax.get_ylabel(), ax.images[0].get_array().shape
      ('learning_rate', 'momentum', (2, 2))
    """
    for name in (x, y):
        if name not in result.configs:
            raise ValueError(f"{name!r} must be one of the configs {[k for k in result.configs if k != 'seed']}")
    xs = result.by_configuration(np.asarray(result.configs[x]))[:, 0]
    ys = result.by_configuration(np.asarray(result.configs[y]))[:, 0]
    scores = _nanmean(result.by_configuration(result.final(metric)), axis=1)
    columns, rows = np.unique(xs), np.unique(ys)
    table = np.full((rows.size, columns.size), np.nan)
    for value, a, b in zip(scores, xs, ys, strict=True):
        table[np.searchsorted(rows, b), np.searchsorted(columns, a)] = value
    if ax is None:
        ax = _axes(figsize=(6, 4.5), layout="constrained")
    from matplotlib.colors import LogNorm

    finite = table[np.isfinite(table)]
    spans = finite.size > 1 and np.all(finite > 0) and finite.max() / finite.min() >= 10
    image = ax.imshow(
        table,
        origin="lower",
        aspect="auto",
        cmap="viridis_r" if metric in ("loss", "train_loss") else "viridis",
        norm=LogNorm(finite.min(), finite.max()) if spans else None,
    )
    _figure(ax).colorbar(image, ax=ax, label=_final_label(result, metric))
    # A value in each cell only where it fits (about 4 characters of 7-point text), and at most
    # `_TICKS` labelled ticks an axis: readable at 8, 24 or 64 values an axis.
    box = ax.get_position()
    width, height = (72 * _figure(ax).get_size_inches() * [box.width, box.height]) / [columns.size, rows.size]
    if width >= 26 and height >= 12:
        for (r, c), value in np.ndenumerate(table):
            if np.isfinite(value):
                red, green, blue, _ = image.cmap(image.norm(value))
                ink = "black" if 0.299 * red + 0.587 * green + 0.114 * blue > 0.5 else "white"
                ax.text(c, r, f"{value:.2g}", ha="center", va="center", fontsize=7, color=ink)
    for set_ticks, values, rotation in ((ax.set_xticks, columns, 45), (ax.set_yticks, rows, 0)):
        at = np.arange(0, values.size, -(-values.size // _TICKS))
        set_ticks(at, [f"{values[i]:.3g}" for i in at], rotation=rotation)
    ax.set_xlabel(x)
    ax.set_ylabel(y)
    ax.set_title(f"{_final_label(result, metric)}: {y} vs {x}")
    from matplotlib.patches import Rectangle

    try:
        best = result.best(metric)
        i = next(c for c, members in enumerate(result.configurations()) if best["members"][0] in members)
        r, c = np.searchsorted(rows, ys[i]), np.searchsorted(columns, xs[i])
        ax.add_patch(Rectangle((c - 0.5, r - 0.5), 1, 1, fill=False, lw=2.5, ec="red"))
    except ValueError:
        pass
    return _figure(ax)


_TICKS = 10  # labelled ticks an axis of a heat map, at most

_MARKERS = {"valley": "v", "slide": "D", "steep": "o", "minimum": "s"}


def finder(result: Any, *, ax: Axes | None = None) -> Figure:
    """A range test at a glance: every seed's smoothed loss against the learning rate (thin),
    the median across seeds (thick) inside the band of the 25th to 75th percentiles, each
    curve's stop crossed, and every suggestion (the seeds' median) marked on the median curve
    with its spread across seeds in the legend. One colour per configuration; log-x axis for an
    exponential ramp.

    Args:
      result: a `lrjax.FinderResult`.
      ax: the axes to draw on (default: a new figure).

    Returns:
      The matplotlib figure (of ``ax`` if given).

    Example:
      >>> import optax, lrjax
      >>> finder = lrjax.find_lr(lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...                        min_lr=1e-3, max_lr=10.0, seeds=2, progress=False)
      >>> ax = lrjax.plot.finder(finder).axes[0]
      >>> ax.get_xscale(), ax.get_xlabel()
      ('log', 'learning rate')
    """
    plt = _pyplot()
    if ax is None:
        others = [k for k in result.configs if k != "seed"]
        ax = _axes(figsize=(10, 4.5) if others else (7, 4.5), layout="constrained")
    lrs, losses = result.lrs, result.losses
    curves = result.per_config(losses)
    lower, upper = result.band
    median = result.median
    suggestions, spread = result.suggestions, result.spread
    others = [k for k in result.configs if k != "seed"]
    colors = plt.get_cmap("tab10")
    for c in range(result.num_configs):
        color = colors(c % 10)
        label = ", ".join(f"{k}={result.configs[k][c * result.seeds]:.3g}" for k in others) or "median over seeds"
        for curve in curves[c]:
            ax.plot(lrs, curve, color=color, lw=0.7, alpha=0.35)
        if result.seeds > 1:
            ax.fill_between(lrs, lower[c], upper[c], color=color, alpha=0.2, lw=0)
        ax.plot(lrs, median[c], color=color, lw=2.2, label=label)
        for name, marker in _MARKERS.items():
            lr = suggestions[name][c]
            if not np.isfinite(lr):
                continue
            finite = np.isfinite(median[c])
            y = np.interp(np.log(lr), np.log(lrs[finite]), median[c][finite]) if finite.any() else np.nan
            ax.scatter(
                [lr],
                [y],
                marker=marker,
                s=70,
                color=color,
                edgecolor="black",
                zorder=5,
                label=f"{name} {lr:.2g} (seeds span {spread[name][c]:.2f} decades)" if c == 0 or others else None,
            )
    stopped = result.diverged_at >= 0
    finite = losses[np.isfinite(losses)]
    if finite.size:
        start = losses[:, : max(len(lrs) // 10, 1)]
        top = np.nanmax(np.where(np.isfinite(start), start, np.nan)) if np.isfinite(start).any() else finite.max()
        bottom = finite.min()
        margin = 0.08 * (top - bottom or abs(top) or 1.0)
        ax.set_ylim(bottom - margin, top + 3 * margin)
        if stopped.any():
            at = result.diverged_at[stopped]
            ys = np.minimum(losses[stopped, at], top + 2 * margin)
            ys = np.where(np.isfinite(ys), ys, top + 2 * margin)
            ax.scatter(
                lrs[at], ys, marker="x", color="red", s=30, zorder=4, label=f"stopped ({int(stopped.sum())} curves)"
            )
    if result.info.get("mode", "exp") == "exp":
        ax.set_xscale("log")
    ax.set_xlabel("learning rate")
    ax.set_ylabel("smoothed training loss")
    ax.set_title(f"range test: {result.info.get('task', '')}, {result.seeds} seeds")
    ax.grid(True, alpha=0.3)
    if others:  # a legend block per configuration: beside the axes, not over the curves
        ax.legend(fontsize="x-small", loc="upper left", bbox_to_anchor=(1.01, 1.0))
    else:
        ax.legend(fontsize="small")
    return _figure(ax)


def batch_size(result: Any) -> Figure:
    """A batch-size sweep at a glance: the evaluation metric against examples seen and against
    steps, one line per batch size (its best configuration: the fewest steps to the target, or
    the best final metric without one), the target dashed; and, with a target, the steps against
    the examples each batch size needed, with McCandlish et al.'s fitted trade-off curve
    S = S_min(1 + B_noise/B), E = E_min(1 + B/B_noise) and its asymptotes S_min and E_min.

    Args:
      result: a `lrjax.BatchSizeResult`.

    Returns:
      The matplotlib figure.

    Example:
      >>> import optax, lrjax
      >>> result = lrjax.batch_size_sweep(
      ...     lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"]),
      ...     {"learning_rate": [0.1]}, [4, 16, 64], steps=200, target=0.05, progress=False)
      >>> [ax.get_xlabel() for ax in lrjax.plot.batch_size(result).axes]
      ['examples', 'steps', 'examples to target']
    """
    plt = _pyplot()
    has_target = result.target is not None
    fig, axes = _subplots(1, 3 if has_target else 2, figsize=(15 if has_target else 10, 4.2))
    sizes = result.batch_sizes
    colors = plt.get_cmap("viridis")
    steps_needed = result.steps_to_target() if has_target else np.full((len(sizes), 0), np.nan)
    everything = []
    for k, b in enumerate(sizes):
        curves = result.curves(k)
        if has_target and np.isfinite(steps_needed[k]).any():
            c = int(np.nanargmin(steps_needed[k]))
        else:
            finals = np.where(np.isfinite(curves[:, -1]), curves[:, -1], np.inf if result.mode == "min" else -np.inf)
            c = int(np.argmin(finals) if result.mode == "min" else np.argmax(finals))
        steps = result.results[k].eval_steps
        color = colors(k / max(len(sizes) - 1, 1))
        axes[0].plot(steps * b, curves[c], color=color, label=f"B={b}")
        axes[1].plot(steps, curves[c], color=color, label=f"B={b}")
        everything.append(curves[c])
    values = np.concatenate(everything)
    for ax, xlabel in zip(axes[:2], ("examples", "steps"), strict=True):
        if has_target:
            ax.axhline(result.target, color="black", ls="--", lw=1, label=f"target {result.target:g}")
        ax.set_xscale("log")
        if result.metric == "loss" and np.all(values[np.isfinite(values)] > 0):
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(f"{metric_label(result.metric, result.results[0].evaluated_on)} (mean over seeds)")
        ax.grid(True, alpha=0.3)
    axes[0].set_title(f"{result.metric} against examples seen")
    axes[1].set_title(f"{result.metric} against steps")
    axes[1].legend(fontsize="small", ncol=2)
    if has_target:
        ax = axes[2]
        steps, examples = result.trade_off()
        ok = np.isfinite(steps)
        ax.scatter(
            examples[ok], steps[ok], c=[colors(k / max(len(sizes) - 1, 1)) for k in np.flatnonzero(ok)], zorder=3
        )
        for b, x, y in zip(sizes[ok], examples[ok], steps[ok], strict=True):
            ax.annotate(f"B={b}", (x, y), textcoords="offset points", xytext=(5, 4), fontsize="small")
        if np.isfinite(result.critical_batch_size):
            noise, s_min, e_min = result.critical_batch_size, result.s_min, result.e_min
            b = np.geomspace(sizes[0] / 4, sizes[-1] * 4, 200)
            ax.plot(
                e_min * (1 + b / noise),
                s_min * (1 + noise / b),
                color="0.3",
                label=f"fit: B_noise = {noise:.3g}",
            )
            ax.axhline(s_min, color="0.5", ls=":", lw=1, label=f"S_min = {s_min:.3g}")
            ax.axvline(e_min, color="0.5", ls="-.", lw=1, label=f"E_min = {e_min:.3g}")
        if ok.any():
            from matplotlib.ticker import NullFormatter

            ax.set_xscale("log")
            ax.set_yscale("log")
            ax.xaxis.set_minor_formatter(NullFormatter())
        else:
            ax.text(0.5, 0.5, "no batch size reached the target", ha="center", va="center", transform=ax.transAxes)
        ax.set_xlabel("examples to target")
        ax.set_ylabel("steps to target")
        ax.set_title(f"steps vs examples to {result.metric} = {result.target:g}")
        ax.grid(True, alpha=0.3, which="both")
        if np.isfinite(result.critical_batch_size):
            ax.legend(fontsize="small")
    fig.tight_layout()
    return fig


_RECORD_COLUMNS = {
    "trial",
    "round",
    "rung",
    "generation",
    "steps",
    "member",
    "diverged",
    "promoted",
    "bracket",
    "cohort",
    "parent",
    "explore",
}


def search(result: Any) -> Figure:
    """A search at a glance. For Bayesian optimization and halving: each trial's last recorded
    metric against its trial number (coloured by the steps it trained, the running best of the
    fully trained trials as a line), and one panel per hyperparameter with the metric against it.
    For population-based training: each member's metric over the generations, and each
    hyperparameter's trajectory across the population (one line per member slot).

    Args:
      result: a `lrjax.search.SearchResult`.

    Returns:
      The matplotlib figure.

    Example:
      >>> import optax, lrjax
      >>> task, sgd = lrjax.datasets.linear_regression(), lambda hp: optax.sgd(hp["learning_rate"])
      >>> result = lrjax.search.hyperband(task, sgd, {"learning_rate": lrjax.search.log_uniform(1e-3, 1.0)},
      ...                                 min_steps=10, max_steps=90, progress=False)
      >>> [ax.get_xlabel() for ax in lrjax.plot.search(result).axes][:2]
      ['trial', 'learning_rate']
    """
    frame = result.history
    metric = result.metric
    names = [
        c
        for c in frame.columns
        if c not in _RECORD_COLUMNS and c != metric and np.issubdtype(frame[c].dtype, np.number)
    ]
    fig, axes = _subplots(1, 1 + len(names), figsize=(4.6 * (1 + len(names)), 4), squeeze=False)
    axes = axes[0]
    values = frame[metric].to_numpy(np.float64)
    positive = np.all(values[np.isfinite(values)] > 0)
    if result.method == "pbt":
        for _, rows in frame.groupby("member"):
            axes[0].plot(rows["steps"], rows[metric], lw=1, alpha=0.7)
            for ax, name in zip(axes[1:], names, strict=True):
                ax.plot(rows["steps"], rows[name], lw=1, alpha=0.7, drawstyle="steps-post")
        axes[0].set_xlabel("steps")
        axes[0].set_title(f"{metric} of each member over generations")
        for ax, name in zip(axes[1:], names, strict=True):
            _axis_scale(ax, "y", frame[name].to_numpy())
            ax.set_xlabel("steps")
            ax.set_ylabel(name)
            ax.set_title(f"{name} across the population")
            ax.grid(True, alpha=0.3)
    else:
        last = frame.groupby("trial").tail(1)
        longest = last["steps"].max()
        varied = last["steps"].nunique() > 1  # colour by steps only where they differ (halving)
        color = {"c": last["steps"], "cmap": "viridis"} if varied else {"color": "C0"}
        scatter = axes[0].scatter(last["trial"], last[metric], s=18, **color)
        finished = last[last["steps"] == longest].sort_values("trial")
        ok = finished[metric].to_numpy(np.float64)
        ok = np.where(np.isfinite(ok), ok, np.inf if result.mode == "min" else -np.inf)
        running = np.minimum.accumulate(ok) if result.mode == "min" else np.maximum.accumulate(ok)
        axes[0].step(
            finished["trial"],
            np.where(np.isfinite(running), running, np.nan),
            where="post",
            color="C3",
            label=f"best at {longest} steps",
        )
        if varied:
            fig.colorbar(scatter, ax=axes[0], label="steps trained")
        axes[0].set_xlabel("trial")
        axes[0].set_title(f"{result.method}: {metric} of each trial")
        axes[0].legend(fontsize="small")
        for ax, name in zip(axes[1:], names, strict=True):
            ax.scatter(last[name], last[metric], s=18, **color)
            _axis_scale(ax, "x", last[name].to_numpy())
            ax.set_xlabel(name)
            ax.set_title(f"{metric} against {name}")
            ax.grid(True, alpha=0.3)
    for ax in axes[: 1 if result.method == "pbt" else len(axes)]:
        if metric in ("loss", "train_loss") and positive:
            ax.set_yscale("log")
        ax.set_ylabel(metric_label(metric, result.info.get("evaluated_on", "eval_data")))
        ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
