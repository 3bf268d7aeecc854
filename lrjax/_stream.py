"""Training data read from a data pipeline: one stream of host batches per seed.

A `lrjax.Task` whose ``train_data`` is a function ``make(seed) -> iterable of batches`` trains on
the batches that iterable yields, in order: a Grain dataset or loader (``grain.MapDataset``,
``grain.IterDataset``, ``grain.DataLoader``), a generator over files, ``tf.data`` or Hugging
Face ``datasets`` turned into NumPy batches. Each seed of a population reads a stream of its
own, made with `stream_seed` of the population's seed and the seed's index; the members of a
seed share its batches, as they share an epoch order with arrays. A task whose ``eval_data`` is
a function ``make() -> iterable of batches`` is evaluated on one whole pass of a new iterable
each time (`eval_batches`).

Where a stream is: the number of batches trained on, and, for an iterator with ``get_state`` /
``set_state`` (Grain's), its state after the last of them. Restoring sets the state, or, for any
other iterable, makes the stream again and skips the batches already trained on. Batches read
ahead but not trained on do not count.
"""

from __future__ import annotations

import base64
import collections
import concurrent.futures
import json
import pickle
from collections.abc import Callable, Iterable, Iterator
from typing import Any, NamedTuple

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
      >>> from lrjax.engine import stream_seed
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


class _Chunk(NamedTuple):
    """A chunk's batches of every seed, stacked and placed: ``steps`` steps from the
    population's step ``clock``, and the first non-finite (step, seed, leaf) among them."""

    clock: int
    steps: int
    batches: Any
    bad: tuple[int, int, int] | None


class Streams:
    """The seeds' streams of a population: read ahead on a background thread, taken a chunk
    of steps at a time.

    Batches are read a step at a time (one batch of every seed) into a buffer of steps read but
    not yet trained, with where every stream is after each. `take` returns the next steps'
    batches and starts, on the background thread, reading the ones after them and putting them
    on the devices (stacked into one array a leaf, checked for non-finite values), while the
    caller trains; `commit` marks them trained. `where` is the position after the last
    committed step, whatever was read ahead, so a checkpoint resumes exactly there.

    Args:
      make: ``make(seed) -> iterable of batches``, the task's ``train_data``.
      like: one batch's shapes and dtypes (`jax.ShapeDtypeStruct` leaves): every batch must match.
      seed, seeds: the population's base seed and its number of seeds.
      place: puts a chunk's stacked host arrays on the devices (default: leaves them on the host).
    """

    def __init__(self, make: StreamFn, like: Any, seed: int, seeds: int, place: Callable[[Any], Any] = lambda x: x):
        self.make, self.like, self.seed, self.seeds, self.place = make, like, seed, seeds, place
        self._paths = [path for path, _ in jax.tree_util.tree_flatten_with_path(like)[0]]
        self._shapes = [x.shape for x in jax.tree.leaves(like)]
        self._treedef = jax.tree.structure(like)
        self._iterators: list[Iterator[Any]] = [self._open(i) for i in range(seeds)]
        self._read = [0] * seeds  # batches read from each iterator
        # Steps read, not committed: (each seed's batch as a list of leaves, the position after it).
        self._rows: collections.deque[tuple[list[list[np.ndarray]], list[dict[str, Any]]]] = collections.deque()
        self._committed = self._position()
        self._pool = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="lrjax-stream")
        self._pending: concurrent.futures.Future | None = None
        self._prepared: _Chunk | None = None  # the next chunk's batches, on the devices

    def _open(self, index: int) -> Iterator[Any]:
        return iter(self.make(stream_seed(self.seed, index)))

    def _position(self) -> list[dict[str, Any]]:
        """Where every iterator is now: batches read and, if it has ``get_state``, its state."""
        out = []
        for read, iterator in zip(self._read, self._iterators, strict=True):
            entry: dict[str, Any] = {"read": read}
            state_of = getattr(iterator, "get_state", None)  # Grain's iterators have it
            if state_of is not None:
                entry["state"] = state_of()
            out.append(entry)
        return out

    def _settle(self) -> None:
        """Wait for the background reading; keep the chunk it placed (its reading errors are
        left for `take` to meet again)."""
        if self._pending is not None:
            job, self._pending = self._pending, None
            concurrent.futures.wait([job])
            self._prepared = job.result() if job.exception() is None else None

    def _last(self) -> list[dict[str, Any]]:
        """The position after the last buffered step (called with no reading under way)."""
        return self._rows[-1][1] if self._rows else self._committed

    def _read_step(self, step: int, back: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """Read one batch of every seed into the buffer and return the position after it; or
        raise with every iterator back at ``back``, the position after the last buffered step."""
        try:
            row = [self._next(index, step) for index in range(self.seeds)]
        except Exception:
            self._seek(back)
            raise
        position = self._position()
        self._rows.append((row, position))
        return position

    def _fill(self, count: int, clock: int, back: list[dict[str, Any]]) -> list[list[list[np.ndarray]]]:
        """Read ``count`` more steps, the first of them the population's step ``clock``; stop
        quietly at a batch that fails (`take` reads it again and raises). Returns the rows read."""
        read = []
        for k in range(count):
            try:
                back = self._read_step(clock + k, back)
            except Exception:
                break
            read.append(self._rows[-1][0])
        return read

    def _stack(self, clock: int, rows: list[list[list[np.ndarray]]], pad_to: int) -> _Chunk:
        """``rows``, from the population's step ``clock`` on, as one array a leaf, (max(len(rows), pad_to), seeds, batch, ...) with zeros
        after them, put on the devices; and the first non-finite (step, seed, leaf), if any."""
        stacked, bad = [], None
        for k, (shape, like) in enumerate(zip(self._shapes, jax.tree.leaves(self.like), strict=True)):
            out = np.zeros((max(len(rows), pad_to), self.seeds, *shape), like.dtype)
            np.stack([row[s][k] for row in rows for s in range(self.seeds)], out=out[: len(rows)].reshape(-1, *shape))
            leaf = out[: len(rows)]
            if np.issubdtype(leaf.dtype, np.inexact) and not np.isfinite(leaf).all():
                t, index = (int(i) for i in np.argwhere(~np.isfinite(leaf))[0][:2])
                bad = min(bad, (t, index, k)) if bad is not None else (t, index, k)
            stacked.append(out)
        return _Chunk(clock, len(rows), self.place(jax.tree.unflatten(self._treedef, stacked)), bad)

    def _ahead(self, start: int, have: list, count: int, back: list[dict[str, Any]], pad_to: int) -> _Chunk:
        """Background: read ``count`` more steps, then stack and place the chunk from the
        population's step ``start`` on: the rows ``have`` already buffered and those read."""
        rows = have + self._fill(count, start + len(have), back)
        return self._stack(start, rows[:pad_to] if pad_to else rows, pad_to)

    def take(self, steps: int, clock: int, ahead: int = 0, pad_to: int = 0) -> Any:
        """The next ``steps`` batches of every seed, arrays ``(steps, seeds, batch, ...)`` put
        on the devices by ``place``; then reading the ``ahead`` steps after them, and placing
        them, starts in the background. Nothing is committed.

        Args:
          steps: batches to take from each stream.
          clock: the population's step of the first of them (for the errors).
          ahead: steps to read ahead, after these, while the caller trains on them.
          pad_to: at least this many rows in the arrays (zeros, or later batches, after them).

        Raises:
          ValueError: a stream that ends, or a batch of another structure, shape or dtype than
            the first, or with values that are not finite. `where` is then unchanged.
        """
        self._settle()
        chunk, self._prepared = self._prepared, None
        if chunk is None or chunk.clock != clock or chunk.steps < steps:
            while len(self._rows) < steps:
                self._read_step(clock + len(self._rows), self._last())
            chunk = self._stack(clock, [self._rows[t][0] for t in range(steps)], pad_to)
        if chunk.bad is not None and chunk.bad[0] < steps:
            t, index, k = chunk.bad
            raise ValueError(
                f"train_data's batch {self._committed[index]['read'] + t} for seed {index} (step {clock + t})"
                f"{jax.tree_util.keystr(self._paths[k])} must be finite, got NaN or infinite values"
            )
        if ahead:
            have = [self._rows[t][0] for t in range(steps, len(self._rows))]
            self._pending = self._pool.submit(self._ahead, clock + steps, have, ahead - len(have), self._last(), pad_to)
        return chunk.batches

    def commit(self, steps: int) -> None:
        """Mark the next ``steps`` taken steps trained: `where` moves past them."""
        for _ in range(steps):
            _, self._committed = self._rows.popleft()

    def _next(self, index: int, step: int) -> list[np.ndarray]:
        """Seed ``index``'s next batch as a list of leaves, checked against the first batch."""
        try:
            batch = next(self._iterators[index])
        except StopIteration:
            raise ValueError(
                f"train_data's stream for seed {index} (train_data({stream_seed(self.seed, index)})) ended at the "
                f"population's step {step}, after {self._read[index]} batches: make it longer (repeat epochs), or "
                "train fewer steps"
            ) from None
        where = f"train_data's batch {self._read[index]} for seed {index} (step {step})"
        self._read[index] += 1  # read, whatever it holds: the iterator has moved past it
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
        return arrays

    def where(self) -> list[dict[str, Any]]:
        """Each seed's position after the last committed step, JSON-able: the batches read
        and, for an iterator that has ``get_state`` (Grain's), its state."""
        self._settle()
        return [
            {**entry, "state": _encode(entry["state"])} if "state" in entry else dict(entry)
            for entry in self._committed
        ]

    def restore(self, where: list[dict[str, Any]]) -> None:
        """Put every stream back where `where` said it was, forgetting what was read ahead."""
        if len(where) != self.seeds:
            raise ValueError(f"the saved data position has {len(where)} streams, the population {self.seeds} seeds")
        self._settle()
        decoded = [{**entry, "state": _decode(entry["state"])} if "state" in entry else dict(entry) for entry in where]
        self._rows.clear()
        self._prepared = None
        self._seek(decoded)
        self._committed = decoded

    def _seek(self, position: list[dict[str, Any]]) -> None:
        """Move every iterator that is elsewhere to ``position``: its state set, or the stream
        made again and ``read`` batches skipped."""
        for index, entry in enumerate(position):
            if self._read[index] == entry["read"]:
                continue
            iterator = self._iterators[index]
            set_state = getattr(iterator, "set_state", None)
            if "state" in entry and set_state is not None:
                set_state(entry["state"])
            else:
                iterator = self._open(index)
                for _ in range(entry["read"]):
                    next(iterator)
                self._iterators[index] = iterator
            self._read[index] = entry["read"]


def _encode(state: Any) -> Any:
    """An iterator's state as JSON: itself if it is JSON, else its pickle in base64."""
    try:
        json.dumps(state)
        return {"json": state}
    except TypeError:
        return {"pickle": base64.b64encode(pickle.dumps(state)).decode()}


def _decode(saved: dict[str, Any]) -> Any:
    return saved["json"] if "json" in saved else pickle.loads(base64.b64decode(saved["pickle"]))
