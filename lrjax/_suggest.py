"""The range test's curve arithmetic: fastai's smoothing, its stop rule, its four suggestions.

All on the host, in float64 NumPy, on curves that may hold NaN (a curve that stopped) or be
short. The suggestions are those of fastai 2.8 (``fastai.callback.schedule``), applied as
``Learner.lr_find`` applies them: to the smoothed losses recorded, without the first
``steps // 10`` and the last 5 recorded, cut at the first NaN. Where fastai would raise (too
few points), the suggestion is NaN.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["METHODS", "minimum", "slide", "smooth", "steep", "stop_steps", "suggest", "valley", "window"]


def smooth(raw: np.ndarray, beta: float) -> np.ndarray:
    """fastai's debiased exponential moving average along the last axis.

    a_t = β·a_{t−1} + (1 − β)·x_t, a_{−1} = 0, and s_t = a_t / (1 − β^{t+1}) (as Adam debiases
    its moments). A NaN propagates to every later value.
    """
    raw = np.asarray(raw, np.float64)
    avg = np.zeros(raw.shape[:-1])
    out = np.empty_like(raw)
    for t in range(raw.shape[-1]):
        avg = beta * avg + (1.0 - beta) * raw[..., t]
        out[..., t] = avg / (1.0 - beta ** (t + 1))
    return out


def stop_steps(smoothed: np.ndarray, stop_factor: float) -> np.ndarray:
    """The first step at which each curve diverges, or −1: its smoothed loss is not finite, or
    rose above its best so far by more than (stop_factor − 1)·|best|.

    For positive losses that is fastai's rule, s_t > stop_factor · best; the absolute value keeps
    it meaningful for negative losses (a log-likelihood), where stop_factor · best < best.
    """
    s = np.asarray(smoothed, np.float64)
    with np.errstate(invalid="ignore"):
        best = np.minimum.accumulate(s, axis=-1)
        stopped = ~np.isfinite(s) | (s - best > (stop_factor - 1.0) * np.abs(best))
    return np.where(stopped.any(-1), stopped.argmax(-1), -1)


def window(lrs: np.ndarray, losses: np.ndarray, recorded: int, steps: int) -> tuple[np.ndarray, np.ndarray]:
    """The part of a curve fastai's suggestions look at: ``[steps // 10 : recorded − 5]`` of the
    values recorded, cut at the first NaN."""
    lo, hi = steps // 10, max(recorded - 5, 0)
    lrs, losses = np.asarray(lrs, np.float64)[lo:hi], np.asarray(losses, np.float64)[lo:hi]
    bad = ~np.isfinite(losses)
    if bad.any():
        cut = int(bad.argmax())
        lrs, losses = lrs[:cut], losses[:cut]
    return lrs, losses


def valley(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``valley``: the start of the longest decreasing run of the loss (its longest
    decreasing subsequence), moved forward by half of its length, as fastai counts it."""
    n = len(losses)
    if n == 0:
        return float("nan")
    lds = np.ones(n, np.int64)
    max_start = max_end = 0
    for i in range(1, n):
        # lds[i] after each j of fastai's inner loop, and where it first overtakes lds[max_end].
        run = np.maximum.accumulate(np.where(losses[:i] > losses[i], lds[:i] + 1, 1))
        lds[i] = run[-1]
        if run[-1] > lds[max_end]:
            first = run[int(np.argmax(run > lds[max_end]))]
            max_end, max_start = i, i - int(first)
    sections = (max_end - max_start) / 3
    return float(lrs[max_start + int(sections) + int(sections / 2)])


def slide(lrs: np.ndarray, losses: np.ndarray, lr_diff: int = 15, thresh: float = 0.005) -> float:
    """fastai's ``slide``: walk an interval of ``lr_diff`` points left from the end until the
    loss gradient differs by at most ``thresh`` across it; the interval's left learning rate."""
    if len(losses) < lr_diff + 1:
        return float("nan")
    grad = np.gradient(losses)
    right, left = -1, -1 - lr_diff
    found = lrs[left]
    while left >= -len(losses) and abs(grad[right] - grad[left]) > thresh:
        found = lrs[left]
        right -= 1
        left -= 1
    return float(found)


def steep(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``steep``: the learning rate where the loss falls fastest against log(lr)."""
    if len(losses) < 2:
        return float("nan")
    slopes = np.diff(losses) / np.diff(np.log(lrs))
    return float(lrs[int(np.argmin(slopes))])


def minimum(lrs: np.ndarray, losses: np.ndarray) -> float:
    """fastai's ``minimum``: a tenth of the learning rate at the lowest loss."""
    if len(losses) == 0:
        return float("nan")
    return float(lrs[int(np.argmin(losses))] / 10)


METHODS: dict[str, Callable[[np.ndarray, np.ndarray], float]] = {
    "valley": valley,
    "slide": slide,
    "steep": steep,
    "minimum": minimum,
}


def suggest(lrs: np.ndarray, losses: np.ndarray, recorded: int, steps: int) -> dict[str, float]:
    """Every method's learning rate for one smoothed curve of which ``recorded`` values were
    recorded (the rest NaN), from a test of ``steps`` steps."""
    x, y = window(lrs, losses, recorded, steps)
    return {name: method(x, y) for name, method in METHODS.items()}
