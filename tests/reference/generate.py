"""Regenerate ``values.json``: learning rates from real PyTorch and Keras schedulers.

Not run by the test suite (PyTorch and Keras are not lrjax dependencies). Run it in an
environment with ``torch`` and ``keras`` (JAX backend) installed:

    KERAS_BACKEND=jax python tests/reference/generate.py

For PyTorch, entry t is the learning rate after t calls of ``scheduler.step()``; for Keras it is
``schedule(t)``. ``tests/schedules/test_reference.py`` builds the lrjax schedule with the same
name and compares every step under ``jax.jit``.
"""

from __future__ import annotations

import json
import os
import pathlib

os.environ.setdefault("KERAS_BACKEND", "jax")

import keras
import numpy as np
import torch
from torch.optim import lr_scheduler as S

STEPS = 131  # steps 0..130
BASE = 0.1


def _sgd(lr=BASE):
    return torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=lr)


def torch_values(make, steps=STEPS, every=1):
    """LR after t scheduler steps, t = 0..steps-1 (stepping the scheduler every ``every`` steps)."""
    opt = _sgd()
    sched = make(opt)
    out = [opt.param_groups[0]["lr"]]
    for t in range(1, steps):
        opt.step()
        if t % every == 0:
            sched.step()
        out.append(opt.param_groups[0]["lr"])
    return out


def keras_values(schedule, steps=STEPS):
    return [float(schedule(t)) for t in range(steps)]


TORCH = {
    "torch_exponential": lambda: torch_values(lambda o: S.ExponentialLR(o, gamma=0.95)),
    "torch_step": lambda: torch_values(lambda o: S.StepLR(o, step_size=30, gamma=0.1)),
    "torch_multistep": lambda: torch_values(lambda o: S.MultiStepLR(o, milestones=[80, 30, 80], gamma=0.5)),
    "torch_linear_warmup": lambda: torch_values(
        lambda o: S.LinearLR(o, start_factor=0.25, end_factor=1.0, total_iters=40)
    ),
    "torch_linear_decay": lambda: torch_values(
        lambda o: S.LinearLR(o, start_factor=1.0, end_factor=0.1, total_iters=100)
    ),
    "torch_polynomial": lambda: torch_values(lambda o: S.PolynomialLR(o, total_iters=100, power=2.0)),
    "torch_cosine": lambda: torch_values(lambda o: S.CosineAnnealingLR(o, T_max=130, eta_min=0.001)),
    "torch_restarts_mult2": lambda: torch_values(
        lambda o: S.CosineAnnealingWarmRestarts(o, T_0=10, T_mult=2, eta_min=0.001)
    ),
    "torch_restarts_mult1": lambda: torch_values(lambda o: S.CosineAnnealingWarmRestarts(o, T_0=25)),
    "torch_cyclic_triangular": lambda: torch_values(
        lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=10, step_size_down=15, cycle_momentum=False)
    ),
    "torch_cyclic_triangular2": lambda: torch_values(
        lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=8, mode="triangular2", cycle_momentum=False)
    ),
    "torch_cyclic_exp_range": lambda: torch_values(
        lambda o: S.CyclicLR(o, 0.01, 0.1, step_size_up=12, mode="exp_range", gamma=0.99, cycle_momentum=False)
    ),
    "torch_one_cycle_cos": lambda: torch_values(
        lambda o: S.OneCycleLR(o, max_lr=0.1, total_steps=131, cycle_momentum=False)
    ),
    "torch_one_cycle_linear": lambda: torch_values(
        lambda o: S.OneCycleLR(
            o, max_lr=0.1, total_steps=131, pct_start=0.25, anneal_strategy="linear", cycle_momentum=False
        )
    ),
    "torch_one_cycle_three_phase": lambda: torch_values(
        lambda o: S.OneCycleLR(
            o,
            max_lr=0.1,
            total_steps=131,
            pct_start=0.2,
            div_factor=10.0,
            final_div_factor=100.0,
            three_phase=True,
            cycle_momentum=False,
        )
    ),
    "torch_sequential": lambda: torch_values(
        lambda o: S.SequentialLR(
            o, [S.LinearLR(o, start_factor=0.1, total_iters=10), S.ExponentialLR(o, gamma=0.97)], milestones=[10]
        )
    ),
    "torch_chained": lambda: torch_values(
        lambda o: S.ChainedScheduler([S.LinearLR(o, start_factor=0.5, total_iters=20), S.ExponentialLR(o, gamma=0.98)])
    ),
    "torch_lambda_per_epoch": lambda: torch_values(lambda o: S.LambdaLR(o, lambda e: 0.9**e), every=7),
}

KS = keras.optimizers.schedules
KERAS = {
    "keras_exponential": lambda: keras_values(KS.ExponentialDecay(0.1, decay_steps=10, decay_rate=0.5)),
    "keras_exponential_staircase": lambda: keras_values(KS.ExponentialDecay(0.1, 7, 0.5, staircase=True)),
    "keras_inverse_time": lambda: keras_values(KS.InverseTimeDecay(0.1, decay_steps=5, decay_rate=0.5)),
    "keras_inverse_time_staircase": lambda: keras_values(KS.InverseTimeDecay(0.1, 5, 0.5, staircase=True)),
    "keras_polynomial": lambda: keras_values(KS.PolynomialDecay(0.1, 100, end_learning_rate=0.01, power=0.5)),
    "keras_polynomial_cycle": lambda: keras_values(
        KS.PolynomialDecay(0.1, 30, end_learning_rate=0.01, power=2.0, cycle=True)
    ),
    "keras_cosine": lambda: keras_values(KS.CosineDecay(0.1, decay_steps=100, alpha=0.1)),
    "keras_cosine_warmup": lambda: keras_values(
        KS.CosineDecay(0.0, decay_steps=100, alpha=0.05, warmup_target=0.1, warmup_steps=20)
    ),
    "keras_restarts": lambda: keras_values(KS.CosineDecayRestarts(0.1, 10, t_mul=2.0, m_mul=0.8, alpha=0.01)),
    "keras_restarts_float_mult": lambda: keras_values(KS.CosineDecayRestarts(0.1, 8.0, t_mul=1.5, m_mul=0.9)),
    "keras_piecewise": lambda: keras_values(KS.PiecewiseConstantDecay([30, 70], [0.1, 0.05, 0.01])),
}


def plateau_scales(metrics, **kwargs):
    """ReduceLROnPlateau: LR / base after each ``step(metric)``."""
    opt = _sgd(1.0)
    sched = S.ReduceLROnPlateau(opt, **kwargs)
    out = []
    for m in metrics:
        opt.step()
        sched.step(m)
        out.append(opt.param_groups[0]["lr"])
    return out


_rng = np.random.default_rng(0)
_noisy = (1.0 + 0.3 * np.exp(-np.arange(60) / 8.0) + 0.01 * _rng.standard_normal(60)).tolist()
_plateau_then_drop = [1.0, 0.9, 0.9, 0.9, 0.9, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2, 0.2]
_rising = [0.1, 0.2, 0.3, 0.3, 0.31, 0.3, 0.29, 0.5, 0.5, 0.5, 0.5, 0.5, 0.505, 0.5, 0.5, 0.5]
PLATEAU = {
    "min_rel_patience2": (_plateau_then_drop, dict(mode="min", patience=2, factor=0.5)),
    "min_rel_threshold": (_noisy, dict(mode="min", patience=3, factor=0.5, threshold=0.01)),
    "min_abs_threshold": (_noisy, dict(mode="min", patience=2, factor=0.3, threshold=0.02, threshold_mode="abs")),
    "max_rel": (_rising, dict(mode="max", patience=1, factor=0.5, threshold=0.05)),
    "max_abs": (_rising, dict(mode="max", patience=1, factor=0.5, threshold=0.02, threshold_mode="abs")),
    "cooldown": (_noisy, dict(mode="min", patience=1, factor=0.5, cooldown=3)),
    "floor": (_plateau_then_drop + [0.2] * 20, dict(mode="min", patience=0, factor=0.5, min_lr=0.01)),
    "patience0_cooldown1": (_noisy, dict(mode="min", patience=0, factor=0.9, cooldown=1, threshold=0.0)),
}


def main() -> None:
    out = {
        "versions": {"torch": torch.__version__, "keras": keras.__version__},
        "schedules": {name: fn() for name, fn in {**TORCH, **KERAS}.items()},
        "plateau": {
            name: {"metrics": metrics, "kwargs": kwargs, "scales": plateau_scales(metrics, **kwargs)}
            for name, (metrics, kwargs) in PLATEAU.items()
        },
    }
    path = pathlib.Path(__file__).with_name("values.json")
    path.write_text(json.dumps(out, indent=1) + "\n")
    print(f"wrote {path} ({len(out['schedules'])} schedules, {len(out['plateau'])} plateau streams)")


if __name__ == "__main__":
    main()
