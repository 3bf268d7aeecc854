"""Training data read from a data pipeline: one stream of host batches per seed.

A `lrjax.Task` whose ``train_data`` is a function ``make(seed) -> iterable of batches`` trains on
the batches that iterable yields, in order: a Grain dataset or loader (``grain.MapDataset``,
``grain.IterDataset``, ``grain.DataLoader``), a generator over files, ``tf.data`` or Hugging
Face ``datasets`` turned into NumPy batches. Each seed of a population reads a stream of its
own, made with `stream_seed` of the population's seed and the seed's index; the members of a
seed share its batches, as they share an epoch order with arrays. A task whose ``eval_data`` is
a function ``make() -> iterable of batches`` is evaluated on one whole pass of a new iterable
each time (`eval_batches`).

Where a stream is: the number of batches read from it, and, for an iterator with
``get_state`` / ``set_state`` (Grain's), that state. Restoring sets the state, or, for any other
iterable, makes the stream again and skips the batches already read.
"""

from __future__ import annotations

import base64
import json
import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import jax
import numpy as np

from lrjax import _validate as v

StreamFn = Callable[[int], Iterable[Any]]


def stream_seed(seed: int, index: int) -> int:
    """The integer passed to a task's ``train_data(seed)`` for seed ``index`` of a population
    with base ``seed``: a 32-bit number from NumPy's ``SeedSequence([seed, index])``, distinct
    for every pair.

    Args:
      seed: the population's base seed.
      index: the seed's index, in ``[0, seeds)``.

    Returns:
      An int in ``[0, 2**32)``.

    Example:
      >>> stream_seed(0, 0) == stream_seed(0, 0), stream_seed(0, 0) == stream_seed(0, 1)
      (True, False)
    """
    return int(np.random.SeedSequence([seed, index]).generate_state(1, np.uint32)[0])


def first_batch(where: str, iterable: Iterable[Any]) -> Any:
    """The first batch of ``iterable``, checked: what a task's shapes come from.

    Args:
      where: how the errors name the stream, e.g. ``"train_data(seed)"``.
      iterable: the stream.

    Returns:
      The batch, a pytree of NumPy arrays.

    Raises:
      ValueError: a stream that yields nothing, or a batch that is not a pytree of finite
        numeric arrays sharing a leading (batch) axis.
    """
    try:
        batch = next(iter(iterable))
    except StopIteration:
        raise ValueError(f"{where} yielded no batch: the stream is empty") from None
    return _arrays(f"{where}'s first batch", batch)


def eval_batches(make: Callable[[], Iterable[Any]], like: Any) -> Iterator[tuple[Any, int]]:
    """The batches of one pass over a streamed ``eval_data``, checked, with their sizes.

    Every batch has the structure, trailing shapes and dtypes of ``like`` (the first batch)
    and its batch size, except the last, which may be smaller: the evaluation compiles once
    for the full batches and once for a partial last one.

    Args:
      make: the task's ``eval_data``, ``eval_data() -> iterable of batches``.
      like: the first batch's shapes and dtypes (`jax.ShapeDtypeStruct` leaves).

    Yields:
      ``(batch, size)``: a pytree of host arrays and its number of examples.

    Raises:
      ValueError: naming the batch: another structure, shape or dtype; a batch after a
        partial one; a batch larger than the first; values that are not finite.
    """
    treedef, wanted = jax.tree.structure(like), jax.tree.leaves(like)
    full = wanted[0].shape[0]
    partial = None
    for k, batch in enumerate(make()):
        where = f"eval_data's batch {k}"
        if partial is not None:
            raise ValueError(
                f"{where} follows batch {partial}, which was partial: only the last batch may have fewer than "
                f"{full} examples"
            )
        leaves, structure = jax.tree.flatten(batch)
        if structure != treedef:
            raise ValueError(f"{where} has structure {structure}, not the first batch's {treedef}")
        paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(batch)[0]]
        arrays = [np.asarray(leaf) for leaf in leaves]
        size = arrays[0].shape[0] if arrays[0].ndim else 0
        for path, got, want in zip(paths, arrays, wanted, strict=True):
            name = f"{where}{jax.tree_util.keystr(path)}"
            if got.dtype != want.dtype or got.shape[1:] != want.shape[1:] or got.ndim != len(want.shape):
                raise ValueError(
                    f"{name} is {got.dtype}{list(got.shape)}, not {np.dtype(want.dtype)}{['n', *want.shape[1:]]} "
                    "as the first batch"
                )
            if got.shape[0] != size or not 0 < size <= full:
                raise ValueError(
                    f"{name} has {got.shape[0]} examples: every batch has the first one's {full} (the last may "
                    "have fewer), the same number in every array"
                )
            if np.issubdtype(got.dtype, np.inexact) and not np.isfinite(got).all():
                raise ValueError(f"{name} must be finite, got NaN or infinite values")
        if size < full:
            partial = k
        yield jax.tree.unflatten(treedef, arrays), size


def _arrays(where: str, batch: Any) -> Any:
    leaves = jax.tree_util.tree_flatten_with_path(batch)[0]
    if not leaves:
        raise ValueError(f"{where} must be a pytree of arrays with a leading batch axis, got {batch!r}")
    arrays = []
    for path, leaf in leaves:
        arr = v.numeric_array(f"{where}{jax.tree_util.keystr(path)}", leaf)
        if arr.ndim == 0:
            raise ValueError(f"{where}{jax.tree_util.keystr(path)} must have a leading batch axis, got a scalar")
        arrays.append(arr)
    if len({a.shape[0] for a in arrays}) != 1:
        raise ValueError(f"{where}'s arrays must share their leading (batch) axis, got {[a.shape for a in arrays]}")
    return jax.tree.unflatten(jax.tree.structure(batch), arrays)


class Streams:
    """The seeds' streams of a population, read a chunk of steps at a time.

    Args:
      make: ``make(seed) -> iterable of batches``, the task's ``train_data``.
      like: one batch's shapes and dtypes (`jax.ShapeDtypeStruct` leaves): every batch must match.
      seed, seeds: the population's base seed and its number of seeds.
    """

    def __init__(self, make: StreamFn, like: Any, seed: int, seeds: int):
        self.make, self.like, self.seed, self.seeds = make, like, seed, seeds
        self._paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(like)[0]]
        self._treedef = jax.tree.structure(like)
        self.read = [0] * seeds
        self._iterators: list[Iterator[Any]] = [self._open(i) for i in range(seeds)]

    def _open(self, index: int) -> Iterator[Any]:
        return iter(self.make(stream_seed(self.seed, index)))

    def take(self, steps: int, clock: int) -> Any:
        """The next ``steps`` batches of every seed: arrays ``(steps, seeds, batch, ...)``.

        Args:
          steps: batches to read from each stream.
          clock: the population's step of the first of them (for the errors).

        Raises:
          ValueError: a stream that ends, or a batch of another structure, shape or dtype than
            the first, or with values that are not finite. The streams are then where they were
            (`where` before the call).
        """
        before = self.where()
        try:
            rows = [[self._next(s, clock + t) for s in range(self.seeds)] for t in range(steps)]
            # One stacked array a leaf, checked for NaN and infinity at once.
            batches = [batch for row in rows for batch in row]
            stacked = [
                np.stack(leaves).reshape(steps, self.seeds, *leaves[0].shape) for leaves in zip(*batches, strict=True)
            ]
            for k, leaf in enumerate(stacked):
                if np.issubdtype(leaf.dtype, np.inexact) and not np.isfinite(leaf).all():
                    t, index = (int(i) for i in np.argwhere(~np.isfinite(leaf))[0][:2])
                    path = jax.tree_util.keystr(self._paths[k])
                    raise ValueError(
                        f"train_data's batch {before[index]['read'] + t} for seed {index} (step {clock + t}){path} "
                        "must be finite, got NaN or infinite values"
                    )
        except Exception:
            self.restore(before)
            raise
        return jax.tree.unflatten(self._treedef, stacked)

    def _next(self, index: int, step: int) -> list[np.ndarray]:
        """Seed ``index``'s next batch as a list of leaves, checked against the first batch."""
        try:
            batch = next(self._iterators[index])
        except StopIteration:
            raise ValueError(
                f"train_data's stream for seed {index} (train_data({stream_seed(self.seed, index)})) ended at the "
                f"population's step {step}, after {self.read[index]} batches: make it longer (repeat epochs), or "
                "train fewer steps"
            ) from None
        where = f"train_data's batch {self.read[index]} for seed {index} (step {step})"
        leaves, treedef = jax.tree.flatten(batch)
        if treedef != self._treedef:
            raise ValueError(f"{where} has structure {treedef}, not the first batch's {self._treedef}")
        arrays = [np.asarray(leaf) for leaf in leaves]
        for path, got, want in zip(self._paths, arrays, jax.tree.leaves(self.like), strict=True):
            if (got.shape, got.dtype) != (want.shape, want.dtype):
                raise ValueError(
                    f"{where}{jax.tree_util.keystr(path)} is {got.dtype}{list(got.shape)}, not "
                    f"{np.dtype(want.dtype)}{list(want.shape)} as the first batch (every batch must have one "
                    "shape: drop the last partial batch, e.g. drop_remainder=True)"
                )
        self.read[index] += 1
        return arrays

    def where(self) -> list[dict[str, Any]]:
        """Each seed's position, JSON-able: the batches read and, for an iterator that has
        ``get_state`` (Grain's), its state."""
        out = []
        for read, iterator in zip(self.read, self._iterators, strict=True):
            entry: dict[str, Any] = {"read": read}
            if hasattr(iterator, "get_state"):
                entry["state"] = _encode(iterator.get_state())
            out.append(entry)
        return out

    def restore(self, where: list[dict[str, Any]]) -> None:
        """Put every stream back where `where` said it was: its iterator's state set, or the
        stream made again and ``read`` batches skipped."""
        if len(where) != self.seeds:
            raise ValueError(f"the saved data position has {len(where)} streams, the population {self.seeds} seeds")
        for index, entry in enumerate(where):
            iterator = self._iterators[index]
            if "state" in entry and hasattr(iterator, "set_state"):
                iterator.set_state(_decode(entry["state"]))
            else:
                iterator = self._open(index)
                for _ in range(entry["read"]):
                    next(iterator)
                self._iterators[index] = iterator
            self.read[index] = entry["read"]


def _encode(state: Any) -> Any:
    """An iterator's state as JSON: itself if it is JSON, else its pickle in base64."""
    try:
        json.dumps(state)
        return {"json": state}
    except TypeError:
        return {"pickle": base64.b64encode(pickle.dumps(state)).decode()}


def _decode(saved: dict[str, Any]) -> Any:
    return saved["json"] if "json" in saved else pickle.loads(base64.b64decode(saved["pickle"]))
