"""`gradient_noise_scale`: McCandlish et al.'s simple noise scale from micro-batch gradients.

S. McCandlish, J. Kaplan, D. Amodei and the OpenAI Dota team, "An Empirical Model of
Large-Batch Training" (2018), §2.2 and appendix A.1. With G the true gradient, Σ the per-example
gradient covariance and G_B the mean gradient of a batch of B examples, E|G_B|² = |G|² + tr(Σ)/B,
so two batch sizes b < B give unbiased estimates

    |G|²  ≈ (B·|G_B|² − b·|G_b|²) / (B − b)
    tr(Σ) ≈ (|G_b|² − |G_B|²) / (1/b − 1/B)

and the simple noise scale B_simple = tr(Σ)/|G|², the batch size beyond which a larger batch
mostly averages noise away. Batches drawn without replacement from n training examples (as
here, with Σ the covariance over those n) have E|G_b|² = |G|² + c(b)·tr(Σ) with
c(b) = (n − b)/((n − 1)·b) instead of 1/b; solving the same two equations with c(b),

    tr(Σ) ≈ (|G_b|² − |G_B|²) / (c(b) − c(B)),      |G|² ≈ |G_B|² − c(B)·tr(Σ),

is unbiased for any n and equals the formulas above as n → ∞ (it matters when B is a sizeable
fraction of the data: at B = n/3 the uncorrected |G|² is low by about B_simple/n). Here the small batches are the big batch's micro-batches: their
gradients come from one vmapped backward pass, and their mean is the big batch's gradient, so
no example is evaluated twice. Both estimates are averaged over ``steps`` batches before the
ratio is taken (the paper's advice: the ratio of averages, not the average of ratios).
"""

from __future__ import annotations

import dataclasses
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _validate as v
from lrjax._task import Task
from lrjax.engine import cache, program
from lrjax.engine.program import init_key, key_words, order_words, seed_keys
from lrjax.engine.shuffle import epoch_order

__all__ = ["NoiseScale", "gradient_noise_scale"]


@dataclasses.dataclass(repr=False)
class NoiseScale:
    """What `gradient_noise_scale` measured.

    Attributes:
      b_simple: tr(Σ)/|G|² from the step-averaged estimates.
      gradient_norm_sq: the averaged estimate of |G|².
      trace: the averaged estimate of tr(Σ).
      per_step: ``{"gradient_norm_sq": (steps,), "trace": (steps,)}``, each batch's estimates
        (their spread says how far to trust the averages).
      batch_size, micro_batch_size: B and b.

    Example:
      >>> import lrjax
      >>> noise = lrjax.gradient_noise_scale(lrjax.datasets.linear_regression(), batch_size=64,
      ...                                               micro_batches=8, steps=10)
      >>> noise.micro_batch_size, noise.per_step["trace"].shape
      (8, (10,))
    """

    b_simple: float
    gradient_norm_sq: float
    trace: float
    per_step: dict[str, np.ndarray]
    batch_size: int
    micro_batch_size: int

    def __repr__(self) -> str:
        return (
            f"NoiseScale(b_simple={self.b_simple:.4g}, gradient_norm_sq={self.gradient_norm_sq:.4g}, "
            f"trace={self.trace:.4g}, batch_size={self.batch_size}, micro_batch_size={self.micro_batch_size}, "
            f"steps={len(self.per_step['trace'])})"
        )


def _sq_norm(tree: Any) -> jax.Array:
    return sum((jnp.sum(jnp.square(x.astype(jnp.float32))) for x in jax.tree.leaves(tree)), jnp.zeros((), jnp.float32))


def gradient_noise_scale(
    task: Task,
    params: Any = None,
    *,
    batch_size: int,
    micro_batches: int = 8,
    steps: int = 20,
    seed: int = 0,
    model_state: Any = None,
) -> NoiseScale:
    """Estimate the simple gradient noise scale B_simple = tr(Σ)/|G|² at ``params``.

    Each of ``steps`` batches of ``batch_size`` examples (drawn epoch by epoch without
    replacement, in the order of a sweep's first seed) is split into ``micro_batches`` micro-batches of
    b = batch_size/micro_batches examples; the micro-batch gradients give |G_b|² (their mean
    squared norm) and |G_B|² (the squared norm of their mean), hence the unbiased estimates
    |G|² ≈ (B|G_B|² − b|G_b|²)/(B − b) and tr(Σ) ≈ (|G_b|² − |G_B|²)/(1/b − 1/B) (McCandlish
    et al. 2018, appendix A.1; here with the finite-population correction of sampling without
    replacement, see the module's notes), each averaged over the steps.

    Args:
      task: the `lrjax.Task` whose loss is differentiated (a mean over the batch).
      params: where to measure (default: ``task.init`` of ``seed``'s first member, as a sweep
        starts). The noise scale changes during training: measure at a trained point too.
      batch_size: B, examples per batch, a multiple of ``micro_batches``, at most the data size.
      micro_batches: >= 2 micro-batches per batch.
      steps: >= 1 batches to average over.
      seed: the data order's (and default parameters' and keys') seed.
      model_state: a ``stateful`` task's model state at ``params`` (default: ``task.init``'s,
        as a sweep starts). Each micro-batch's loss runs as in training (batch statistics, and
        dropout with micro-batch ``j`` of step ``t`` drawing ``fold_in(step_key(t), j)``); the
        state it returns is not kept.

    Returns:
      A `NoiseScale`.

    Example:
      >>> import lrjax
      >>> noise = lrjax.gradient_noise_scale(lrjax.datasets.linear_regression(), batch_size=128,
      ...                                               micro_batches=16, steps=20)
      >>> bool(noise.b_simple > 0)
      True
    """
    batch_size = v.integer("batch_size", batch_size)
    micro_batches = v.integer("micro_batches", micro_batches, minimum=2)
    steps = v.integer("steps", steps)
    seed = v.integer("seed", seed, minimum=0)
    if batch_size > task.num_train:
        raise ValueError(f"batch_size must be <= the number of training examples ({task.num_train}), got {batch_size}")
    if batch_size % micro_batches:
        raise ValueError(
            f"batch_size must be a multiple of micro_batches ({micro_batches}), got {batch_size}: "
            "the micro-batches split each batch evenly"
        )
    small = batch_size // micro_batches
    if params is None or (task.stateful and model_state is None):
        start_params, start_state = task.initial(init_key(seed, 1, 0))
        params = start_params if params is None else params
        model_state = start_state if task.stateful and model_state is None else model_state
    seed_key = seed_keys(seed, 1)[0]
    per_step = _estimates(task, batch_size, micro_batches, steps)(
        params, model_state, task.train_data, order_words(seed_key), key_words(seed_key)
    )
    per_step = {k: np.asarray(x, np.float64) for k, x in per_step.items()}
    g2, trace = float(per_step["gradient_norm_sq"].mean()), float(per_step["trace"].mean())
    return NoiseScale(
        b_simple=trace / g2,
        gradient_norm_sq=g2,
        trace=trace,
        per_step=per_step,
        batch_size=batch_size,
        micro_batch_size=small,
    )


def _spread(b: int, n: int) -> float:
    """E|G_b|² − |G|² in units of tr(Σ) for b of n examples drawn without replacement:
    (n − b)/((n − 1)·b), the finite-population correction of 1/b."""
    return (n - b) / ((n - 1) * b)


def _estimates(task: Task, big: int, micro: int, steps: int) -> Any:
    """The jitted program: (params, model state, data, order words, key words) -> per-step
    estimates of |G|² and tr(Σ). Step ``t`` takes the batch a population's seed trains on at
    clock ``t`` (`lrjax.engine.program.take_batch` of that epoch's order, through the task's
    ``augment``). Kept in the engine's program cache for the task (by identity) and sizes, so
    measuring again, e.g. at other parameters along training, compiles nothing."""
    return cache.program(("gradient_noise_scale", task, big, micro, steps), lambda: _build(task, big, micro, steps))


def _build(task: Task, big: int, micro: int, steps: int) -> Any:
    small, n = big // micro, task.num_train
    per_epoch = n // big

    @jax.jit
    def run(params: Any, model_state: Any, data: Any, order: jax.Array, words: jax.Array) -> dict[str, jax.Array]:
        def loss(params: Any, batch: Any, j: jax.Array, t: jax.Array) -> jax.Array:
            key = jax.random.fold_in(program.step_key_of(words, t), j) if task.rng else None
            return task.step_loss(params, model_state, batch, key)[0]

        def step(_: None, t: jax.Array) -> tuple[None, dict[str, jax.Array]]:
            batch = program.take_batch(epoch_order(order, t // per_epoch, n), t, data, big)
            if task.augment is not None:
                batch = program.augmented(task, words, t, batch)
            batches = jax.tree.map(lambda x: x.reshape(micro, small, *x.shape[1:]), batch)
            grads = jax.vmap(jax.grad(loss), in_axes=(None, 0, 0, None))(params, batches, jnp.arange(micro), t)
            small_sq = jnp.mean(jax.vmap(_sq_norm)(grads))
            big_sq = _sq_norm(jax.tree.map(lambda g: jnp.mean(g, 0), grads))
            trace = (small_sq - big_sq) / (_spread(small, n) - _spread(big, n))
            return None, {"gradient_norm_sq": big_sq - _spread(big, n) * trace, "trace": trace}

        return jax.lax.scan(step, None, jnp.arange(steps))[1]

    return run
