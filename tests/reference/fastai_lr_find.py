"""A direct transcription of fastai 2.8's range-test arithmetic (``fastai/callback/schedule.py``:
``valley``, ``slide``, ``steep``, ``minimum`` and the windowing in ``Learner.lr_find``; and
``fastai/learner.py``: ``AvgSmoothLoss``), with NumPy in place of torch, loop for loop. The tests
hold lrjax's vectorized versions to it; fastai itself is not a dependency."""

import numpy as np


def avg_smooth_loss(raw, beta=0.98):
    """AvgSmoothLoss: val = torch.lerp(loss, val, beta); value = val / (1 - beta**count)."""
    val, count, out = 0.0, 0, []
    for loss in raw:
        count += 1
        val = loss + beta * (val - loss)
        out.append(val / (1 - beta**count))
    return np.asarray(out)


def lr_find_window(lrs, losses, num_it):
    """Learner.lr_find: recorder values [num_it//10:-5], cut at the first NaN."""
    lrs, losses = np.asarray(lrs[num_it // 10 : -5]), np.asarray(losses[num_it // 10 : -5])
    nan_idxs = np.nonzero(np.isnan(losses.reshape(-1)))[0]
    if len(nan_idxs) > 0:
        drop_idx = min(nan_idxs)
        lrs = lrs[:drop_idx]
        losses = losses[:drop_idx]
    return lrs, losses


def valley(lrs, losses, num_it):
    n = len(losses)
    max_start, max_end = 0, 0
    lds = [1] * n
    for i in range(1, n):
        for j in range(0, i):
            if (losses[i] < losses[j]) and (lds[i] < lds[j] + 1):
                lds[i] = lds[j] + 1
            if lds[max_end] < lds[i]:
                max_end = i
                max_start = max_end - lds[max_end]
    sections = (max_end - max_start) / 3
    idx = max_start + int(sections) + int(sections / 2)
    return float(lrs[idx])


def slide(lrs, losses, num_it, lr_diff=15, thresh=0.005, adjust_value=1.0):
    loss_grad = np.gradient(losses)
    r_idx = -1
    l_idx = r_idx - lr_diff
    local_min_lr = lrs[l_idx]
    while (l_idx >= -len(losses)) and (abs(loss_grad[r_idx] - loss_grad[l_idx]) > thresh):
        local_min_lr = lrs[l_idx]
        r_idx -= 1
        l_idx -= 1
    return float(local_min_lr) * adjust_value


def minimum(lrs, losses, num_it):
    lr_min = lrs[losses.argmin()].item()
    return lr_min / 10


def steep(lrs, losses, num_it):
    grads = (losses[1:] - losses[:-1]) / (np.log(lrs[1:]) - np.log(lrs[:-1]))
    return lrs[grads.argmin()].item()
