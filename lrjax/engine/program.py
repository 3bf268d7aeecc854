"""The compiled sweep programs: init, a scanned chunk of training steps, and evaluation.

Layout of every member array: ``(seeds, members, ...)``. Members that share a seed share their
initial parameters and their batches (common random numbers). The batch is gathered once per
seed and broadcast to that seed's members, so a layer that reads the data runs as one matmul
across members. A member whose loss or parameters turn non-finite is frozen (its parameters
and optimizer state stop changing) and flagged with the step; the other members never see it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

from lrjax.task import Task

OptimizerFn = Callable[[Any], optax.GradientTransformation]


class MemberState(NamedTuple):
    """Training state of every member, leaves shaped (seeds, members, ...)."""

    params: Any
    opt_state: Any
    diverged: jax.Array
    diverged_at: jax.Array


@dataclasses.dataclass(frozen=True)
class Layout:
    """The static shape of a sweep program: one compiled program per distinct layout."""

    seeds: int
    members: int  # configurations per program run, a multiple of the device count
    batch_size: Optional[int]  # None: full batch
    chunk: int  # steps per scanned chunk
    devices: tuple


def _all_finite(tree: Any) -> jax.Array:
    return jnp.all(jnp.asarray([jnp.all(jnp.isfinite(x)) for x in jax.tree.leaves(tree)]))


def _keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-seed keys: one for parameter init, one for batch order."""
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def init_key(seed: int, seeds: int, index: int) -> jax.Array:
    """The key passed to ``task.init`` for seed ``index`` of a sweep with ``seed`` and ``seeds``."""
    return _keys(jax.random.split(jax.random.key(seed), seeds)[index])[0]


class Programs:
    """Jitted init / chunk / evaluate programs for one task, optimizer and layout."""

    def __init__(self, task: Task, optimizer: OptimizerFn, layout: Layout):
        self.task, self.optimizer, self.layout = task, optimizer, layout
        self.mesh = Mesh(list(layout.devices), ("members",))
        self.member_sharding = NamedSharding(self.mesh, P(None, "members"))
        self.config_sharding = NamedSharding(self.mesh, P("members"))
        self.replicated = NamedSharding(self.mesh, P())
        shape = jax.eval_shape(task.loss, jax.eval_shape(task.init, jax.random.key(0)), self._example_batch())
        self.has_aux = isinstance(shape, tuple)
        self.init = jax.jit(self._init, out_shardings=self.member_sharding)
        self.chunk = jax.jit(
            self._chunk,
            donate_argnums=0,
            out_shardings=(self.member_sharding, NamedSharding(self.mesh, P(None, None, "members"))),
        )
        self.evaluate = jax.jit(self._evaluate, out_shardings=self.member_sharding)

    def _example_batch(self) -> Any:
        b = self.layout.batch_size
        data = self.task.train_data
        return data if b is None else jax.tree.map(lambda x: x[:b], data)

    def _init(self, hps: Any, keys: jax.Array) -> MemberState:
        def per_seed(key: jax.Array) -> MemberState:
            params = self.task.init(_keys(key)[0])

            def per_member(hp: Any) -> MemberState:
                opt_state = self.optimizer(hp).init(params)
                return MemberState(params, opt_state, jnp.zeros((), bool), jnp.full((), -1, jnp.int32))

            return jax.vmap(per_member)(hps)

        return jax.vmap(per_seed)(keys)

    def _batch(self, key: jax.Array, t: jax.Array, data: Any) -> Any:
        """Batch ``t`` for one seed: epochs are fixed-key permutations, the last partial batch dropped."""
        b = self.layout.batch_size
        n = jax.tree.leaves(data)[0].shape[0]
        per_epoch = n // b
        order = jax.random.permutation(jax.random.fold_in(_keys(key)[1], t // per_epoch), n)
        idx = jax.lax.dynamic_slice_in_dim(order, (t % per_epoch) * b, b)
        return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)

    def _member_step(self, state: MemberState, hp: Any, batch: Any, t: jax.Array, active: jax.Array):
        loss_and_grad = jax.value_and_grad(self.task.loss, has_aux=self.has_aux)
        loss, grads = loss_and_grad(state.params, batch)
        if self.has_aux:
            loss = loss[0]
        updates, opt_state = self.optimizer(hp).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        healthy = jnp.isfinite(loss) & _all_finite(params)
        newly = active & ~state.diverged & ~healthy
        keep = ~active | state.diverged | ~healthy
        frozen = lambda old, new: jnp.where(keep, old, new)  # noqa: E731
        new_state = MemberState(
            jax.tree.map(frozen, state.params, params),
            jax.tree.map(frozen, state.opt_state, opt_state),
            state.diverged | newly,
            jnp.where(newly, t, state.diverged_at).astype(jnp.int32),
        )
        return new_state, jnp.where(state.diverged, jnp.nan, loss).astype(jnp.float32)

    def _chunk(self, state: MemberState, hps: Any, keys: jax.Array, data: Any, start: jax.Array, total: jax.Array):
        full_batch = self.layout.batch_size is None
        over_members = jax.vmap(self._member_step, in_axes=(0, 0, None, None, None))
        over_seeds = jax.vmap(over_members, in_axes=(0, None, None if full_batch else 0, None, None))

        def body(state: MemberState, i: jax.Array):
            t = start + i
            batches = data if full_batch else jax.vmap(self._batch, in_axes=(0, None, None))(keys, t, data)
            return over_seeds(state, hps, batches, t, t < total)

        return jax.lax.scan(body, state, jnp.arange(self.layout.chunk))

    def _evaluate(self, params: Any, data: Any) -> dict[str, jax.Array]:
        def metrics(p: Any) -> dict[str, jax.Array]:
            out = dict(self.task.metrics(p, data)) if self.task.metrics is not None else {}
            if "loss" not in out:
                loss = self.task.loss(p, data)
                out["loss"] = loss[0] if self.has_aux else loss
            return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}

        return jax.vmap(jax.vmap(metrics))(params)


def member_bytes(task: Task, optimizer: OptimizerFn, hp: Any) -> int:
    """Bytes of one member's parameters and optimizer state (from shapes; nothing runs)."""

    def one() -> Any:
        params = task.init(jax.random.key(0))
        return params, optimizer(hp).init(params)

    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves(jax.eval_shape(one)))
