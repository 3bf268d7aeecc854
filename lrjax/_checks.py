"""The checks every entry point (`lrjax.Population`, `lrjax.sweep`, the range test, the
search policies) makes of its arguments before anything compiles: the task and optimizer (by
tracing from shapes: the hyperparameters the optimizer reads), the batch size, the divergence
factor and the plateau. Each raises naming the argument and what to do."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any, cast

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _validate as v
from lrjax._task import Task, key_shape
from lrjax.engine import cache
from lrjax.engine.program import OptimizerFn, PlateauFn

__all__ = ["check_batch_size", "check_divergence_factor", "check_task_and_optimizer", "resolve_plateau"]


def check_divergence_factor(divergence_factor: Any) -> float | None:
    """``divergence_factor`` as a float > 1, or None (off); a `ValueError` naming it otherwise."""
    if divergence_factor is None:
        return None
    v.check("divergence_factor", divergence_factor, gt=1)
    return float(divergence_factor)


class _Missing(KeyError):
    """A hyperparameter that the configs do not have, asked of `_Reads` (told apart from a
    ``KeyError`` of the user's or Optax's own code)."""


class _Reads(dict):
    """A dict of hyperparameters that records which of them a function reads."""

    def __init__(self, values: Mapping[str, Any]):
        super().__init__(values)
        self.read: set[str] = set()

    def __getitem__(self, key: str) -> Any:
        self.read.add(key)
        if key not in self:
            raise _Missing(key)
        return super().__getitem__(key)

    def get(self, key: str, default: Any = None) -> Any:
        self.read.add(key)
        return super().get(key, default)

    def __iter__(self) -> Any:
        self.read.update(self.keys())
        return super().__iter__()

    def items(self) -> Any:
        self.read.update(self.keys())
        return super().items()

    def values(self) -> Any:
        self.read.update(self.keys())
        return super().values()


def _shown(hp: Mapping[str, Any]) -> str:
    """``hp`` as a short dict literal: scalars by value, anything else by shape."""

    def one(value: Any) -> str:
        if isinstance(value, np.ndarray | np.generic | jax.Array | float | int) and np.ndim(value) == 0:
            return f"{np.asarray(value).item():.6g}"
        return f"<{type(value).__name__} {tuple(np.shape(value)) if hasattr(value, 'shape') else ''}>"

    return "{" + ", ".join(f"{k!r}: {one(v)}" for k, v in hp.items()) + "}"


def _probe(name: str, fn: Any, hp: Mapping[str, Any], params: Any) -> tuple[Any, set[str] | None]:
    """``fn(hp)`` on the host, then its transformation's ``init`` and ``update`` traced on the
    parameters' shapes (``jax.eval_shape``: nothing runs), recording the names read on the way,
    also those read lazily inside ``update``. A name the configs lack is a `ValueError`; an
    error of ``fn``'s own reaches the caller as it is, with a note naming ``hp``; if only the
    tracing of ``update`` fails, the reads are unknown (None) and the engine reports the error
    when it traces the training step."""
    reads = _Reads(hp)

    def missing(err: _Missing) -> ValueError:
        return ValueError(f"{name}(hp) reads hp[{err.args[0]!r}], which configs do not have (they have {sorted(hp)})")

    try:
        out = fn(reads)
    except _Missing as err:
        raise missing(err) from err
    except Exception as err:
        err.add_note(f"lrjax: raised by {name}(hp) with hp = {_shown(hp)} (the first configuration)")
        raise
    if not isinstance(out, optax.GradientTransformation):
        return out, None
    try:
        tx = optax.with_extra_args_support(out)
        jax.eval_shape(lambda p: tx.update(p, tx.init(p), p, value=jnp.zeros((), jnp.float32)), params)
    except _Missing as err:
        raise missing(err) from err
    except Exception:
        return out, None
    return out, reads.read


def check_batch_size(task: Task, batch_size: Any) -> int | None:
    """``batch_size`` as an int in ``[1, task.num_train]``, or None (full batch); for a
    streamed task, None or the stream's own batch size, which it returns. A `ValueError`
    names it otherwise."""
    if task.streamed:
        if batch_size not in (None, task.stream_batch_size):
            raise ValueError(
                f"batch_size must be None or {task.stream_batch_size}, the size of train_data's batches "
                f"(the stream decides it), got {batch_size!r}"
            )
        return task.stream_batch_size
    if batch_size is None:
        return None
    batch_size = v.integer("batch_size", batch_size)
    if batch_size > task.num_train:
        raise ValueError(f"batch_size must be <= the number of training examples ({task.num_train}), got {batch_size}")
    return batch_size


def check_task_and_optimizer(task: Any, optimizer: Any, hp: Mapping[str, Any], plateau: Any = None) -> None:
    """`TypeError` unless ``task`` is a `Task` and ``optimizer(hp)`` an Optax transformation;
    `ValueError` if it reads a hyperparameter the configs lack, or if a config is read by
    neither the optimizer nor a plateau function (a sweep over a value nobody uses)."""
    if not isinstance(task, Task):
        raise TypeError(f"task must be an lrjax.Task, got {task!r}")
    if not callable(optimizer):
        raise TypeError(f"optimizer must be a function hp -> optax.GradientTransformation, got {optimizer!r}")
    # The check follows from tracing alone: a population of the same functions and config
    # structure that passed it passes again (the engine's trace cache remembers it).
    optimizer = cast(OptimizerFn, optimizer)  # callable, checked above
    cache.traced("checked", task, optimizer, plateau, hp, lambda: _check_reads(task, optimizer, hp, plateau))


def _check_reads(task: Task, optimizer: Any, hp: Mapping[str, Any], plateau: Any) -> bool:
    params = jax.eval_shape(task.initial, key_shape())[0]
    probe, read = _probe("optimizer", optimizer, hp, params)
    if not isinstance(probe, optax.GradientTransformation):
        raise TypeError(f"optimizer(hp) must return an optax.GradientTransformation, got {type(probe).__name__}")
    if callable(plateau) and not isinstance(plateau, optax.GradientTransformation):
        plateau_read = _probe("plateau", plateau, hp, jax.ShapeDtypeStruct((), jnp.float32))[1]
        read = None if read is None or plateau_read is None else read | plateau_read
    if read is None:
        return True
    unread = sorted(set(hp) - read)
    if unread:
        raise ValueError(
            f"configs[{unread[0]!r}] is never read by optimizer(hp){' or plateau(hp)' if plateau is not None else ''}: "
            f"remove it, or use it (unread: {unread})"
        )
    return True


@dataclasses.dataclass(frozen=True)
class _Fixed:
    """``hp -> tx`` for one transformation shared by every member (hashable, so the engine's
    program cache finds it again)."""

    tx: optax.GradientTransformation

    def __call__(self, hp: Any) -> optax.GradientTransformation:
        return self.tx


def resolve_plateau(plateau: Any) -> PlateauFn | None:
    if plateau is None:
        return None
    if isinstance(plateau, optax.GradientTransformation):
        return _Fixed(plateau)
    if callable(plateau):
        return cast(PlateauFn, plateau)
    raise TypeError(
        f"plateau must be an Optax transformation (e.g. lrjax.reduce_on_plateau()) or a function hp -> one, got {plateau!r}"
    )
