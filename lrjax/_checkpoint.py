"""Checkpoints of host arrays and JSON metadata with orbax-checkpoint, verified on load.

A checkpoint directory is an orbax ``CheckpointManager`` directory keeping one step: each save
writes a new step to a temporary directory, commits it (orbax renames it into place) and only
then removes the previous one, so a process killed at any moment leaves the last complete
checkpoint readable. Every array's SHA-256 is stored in the metadata and checked on load: a
corrupt or partial checkpoint raises `ValueError` and is never silently used.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Mapping
from typing import Any

import numpy as np

FORMAT = 1


def _digest(arr: np.ndarray) -> str:
    return hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() + f":{arr.dtype.str}:{list(arr.shape)}"


def _like(digest: str) -> np.ndarray:
    """An empty array of the shape and dtype a `_digest` records."""
    _, dtype, shape = digest.split(":", 2)
    return np.zeros(json.loads(shape), np.dtype(dtype))


def _flat(tree: Mapping[str, Any], prefix: str = "") -> dict[str, np.ndarray]:
    out = {}
    for key, value in tree.items():
        if isinstance(value, Mapping):
            out.update(_flat(value, f"{prefix}{key}/"))
        else:
            out[f"{prefix}{key}"] = np.asarray(value)
    return out


def _nest(flat: Mapping[str, np.ndarray]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in flat.items():
        *parents, leaf = key.split("/")
        node = out
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return out


def _manager(directory: str) -> Any:
    import orbax.checkpoint as ocp

    options = ocp.CheckpointManagerOptions(
        max_to_keep=1, enable_async_checkpointing=False, cleanup_tmp_directories=True
    )
    return ocp.CheckpointManager(os.path.abspath(directory), options=options)


def save(directory: str, arrays: Mapping[str, Any], meta: Mapping[str, Any]) -> None:
    """Write ``arrays`` (nested dicts of host arrays; keys without ``/``) and ``meta`` (JSON) as
    the newest checkpoint in ``directory``, replacing the previous one once committed."""
    import orbax.checkpoint as ocp

    flat = _flat(arrays)
    empty = {k: [list(v.shape), v.dtype.str] for k, v in flat.items() if v.size == 0}  # orbax refuses them
    stored = {k: v for k, v in flat.items() if v.size}
    meta = {**meta, "format": FORMAT, "empty": empty, "checksums": {k: _digest(v) for k, v in stored.items()}}
    with _manager(directory) as manager:
        latest = manager.latest_step()
        step = 0 if latest is None else latest + 1
        manager.save(
            step, args=ocp.args.Composite(arrays=ocp.args.StandardSave(_nest(stored)), meta=ocp.args.JsonSave(meta))
        )
        manager.wait_until_finished()


def exists(directory: str) -> bool:
    """Whether ``directory`` holds a complete checkpoint."""
    if not os.path.isdir(directory):
        return False
    with _manager(directory) as manager:
        return manager.latest_step() is not None


def load(directory: str) -> tuple[dict[str, Any], dict[str, Any]]:
    """The newest complete checkpoint in ``directory``: (nested arrays, metadata).

    Raises:
      FileNotFoundError: ``directory`` does not exist.
      ValueError: it holds no complete checkpoint, or the newest one is corrupt.
    """
    import orbax.checkpoint as ocp

    directory = os.fspath(directory)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoint directory at {directory!r}")
    with _manager(directory) as manager:
        step = manager.latest_step()
        if step is None:
            raise ValueError(
                f"{directory!r} holds no complete checkpoint (a save interrupted before its commit leaves none)"
            )
        where = os.path.join(directory, str(step))
        try:
            meta = dict(manager.restore(step, args=ocp.args.Composite(meta=ocp.args.JsonRestore()))["meta"])
            # The arrays' shapes and dtypes, from their checksums: orbax restores onto that target.
            target = _nest({k: _like(digest) for k, digest in meta.get("checksums", {}).items()})
            out = manager.restore(step, args=ocp.args.Composite(arrays=ocp.args.StandardRestore(target)))
            flat = _flat(out["arrays"])
        except Exception as err:
            raise ValueError(f"checkpoint {where!r} is corrupt or incomplete: {type(err).__name__}: {err}") from err
    if meta.get("format") != FORMAT:
        raise ValueError(f"checkpoint {where!r} has format {meta.get('format')!r}; this lrjax reads format {FORMAT}")
    checksums = meta.pop("checksums")
    if set(flat) != set(checksums):
        raise ValueError(
            f"checkpoint {where!r} is corrupt: arrays {sorted(set(flat) ^ set(checksums))} missing or unexpected"
        )
    bad = [k for k, v in flat.items() if _digest(np.asarray(v)) != checksums[k]]
    if bad:
        raise ValueError(f"checkpoint {where!r} is corrupt: the checksums of {bad} do not match")
    for key, (shape, dtype) in meta.pop("empty").items():
        flat[key] = np.zeros(shape, np.dtype(dtype))
    return _nest(flat), meta
