"""Host <-> device transfers that work in one process and across several (`jax.distributed`).

With several processes each holds only its own devices' shards of a global array, so neither
``jax.device_put`` of a host value nor ``np.asarray`` of a result works as in one process. Every
process of a multi-process run holds the same host values (each passes the same task, configs
and calls), so:

- `put` places a host value on a sharding by letting each process fill its own shards from it
  (``jax.make_array_from_callback``), or by ``jax.device_put`` when the sharding is local;
- `host` brings a device value back whole to every process: a replicated array from its local
  copy, a sharded one gathered across processes (``multihost_utils.process_allgather``), one
  collective per call; the engine calls it once per `Population.advance`, evaluation or result,
  never per training step.
"""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import multihost_utils
from jax.sharding import Sharding

__all__ = ["default_devices", "host", "put"]


def default_devices() -> tuple[Any, ...]:
    """All global devices when `jax.distributed` runs several processes, else the local ones."""
    return tuple(jax.devices() if jax.process_count() > 1 else jax.local_devices())


def _put_leaf(x: Any, sharding: Sharding) -> jax.Array:
    if sharding.is_fully_addressable:
        return jax.device_put(x, sharding)
    if isinstance(x, jax.Array) and jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        data = _put_leaf(np.asarray(jax.random.key_data(x)), sharding)
        return jax.jit(jax.random.wrap_key_data, out_shardings=sharding)(data)
    value = np.asarray(x)
    return jax.make_array_from_callback(value.shape, sharding, lambda index: value[index])


def put(tree: Any, sharding: Sharding) -> Any:
    """Every leaf of ``tree`` (the same host value in every process) placed on ``sharding``."""
    return jax.tree.map(lambda x: _put_leaf(x, sharding), tree)


def _host_leaf(x: Any) -> np.ndarray:
    if not isinstance(x, jax.Array) or x.is_fully_addressable:
        return np.asarray(x)
    if x.is_fully_replicated:
        return np.asarray(x.addressable_data(0))
    return np.asarray(multihost_utils.process_allgather(x, tiled=True))


def host(tree: Any) -> Any:
    """Every leaf of ``tree`` as a whole host array, in every process."""
    return jax.tree.map(_host_leaf, tree)
