"""The compiled sweep programs: init, a scanned chunk of training steps, and evaluation.

Layout of every member array: ``(seeds, members, ...)``. Members that share a seed share their
initial parameters and their batches (common random numbers). The batch is gathered once per
seed and broadcast to that seed's members, so a layer that reads the data runs as one matmul
across members. A member whose loss or update turns non-finite is frozen (its parameters and
optimizer state stop changing) and flagged with the step; the other members never see it.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
from typing import Any, Callable, NamedTuple, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax.engine.shuffle import epoch_order
from lrjax.task import Task

OptimizerFn = Callable[[Any], optax.GradientTransformation]

# XLA:CPU compile options (other platforms compile with their defaults). Measured on the digits
# MLP sweep (2-core CPU): the MLIR fusion emitters spend ~8 ms compiling each fusion, the classic
# ones about half; the backend optimisation level trades compile time against run time.
# Init runs once per sweep: threefry draws compile at level 0 in 0.12 s instead of 0.24 s.
_INIT_OPTIONS = {"xla_backend_optimization_level": 0, "xla_cpu_use_fusion_emitters": False}
_CHUNK_OPTIONS = {"xla_cpu_use_fusion_emitters": False, "xla_backend_optimization_level": 1}
_EVALUATE_OPTIONS = {"xla_cpu_use_fusion_emitters": False}


class MemberState(NamedTuple):
    """Training state of every member, leaves shaped (seeds, members, ...)."""

    params: Any
    opt_state: Any
    diverged: jax.Array
    diverged_at: jax.Array


class SweepState(NamedTuple):
    """Members' state and, per seed, the current epoch's example order (seeds, examples) and the
    key words (seeds, 2) that draw it (see `lrjax.engine.shuffle`)."""

    members: MemberState
    order: jax.Array
    shuffle: jax.Array


@dataclasses.dataclass(frozen=True)
class Layout:
    """The static shape of a sweep program: one compiled program per distinct layout."""

    seeds: int
    members: int  # configurations per program run, a multiple of the device count
    batch_size: Optional[int]  # None: full batch
    chunk: int  # steps per scanned chunk
    devices: tuple


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
        cpu = all(d.platform == "cpu" for d in layout.devices)
        state_sharding = SweepState(self.member_sharding, self.replicated, self.replicated)
        self.init = jax.jit(self._init, out_shardings=state_sharding, compiler_options=_INIT_OPTIONS if cpu else None)
        self.chunk = jax.jit(
            self._chunk,
            donate_argnums=0,
            out_shardings=(state_sharding, NamedSharding(self.mesh, P(None, None, "members"))),
            compiler_options=_CHUNK_OPTIONS if cpu else None,
        )
        self.evaluate = jax.jit(
            self._evaluate, out_shardings=self.member_sharding, compiler_options=_EVALUATE_OPTIONS if cpu else None
        )
        self._compiled: set = set()

    def compile(self, hps: Any, keys: jax.Array, train_data: Any, eval_data: Any) -> None:
        """Compile the three programs for these arguments concurrently, once per argument signature.

        Tracing runs in this thread; XLA compiles in worker threads (it releases the GIL), so
        the small init and evaluate programs compile while the chunk program does. Later calls
        with arrays of the same shapes, dtypes and shardings find the programs in jit's cache."""
        signature = jax.tree.structure((hps, train_data, eval_data)), tuple(
            (x.shape, x.dtype, getattr(x, "sharding", None)) for x in jax.tree.leaves((hps, keys, train_data, eval_data))
        )
        if signature in self._compiled:
            return
        with concurrent.futures.ThreadPoolExecutor(3) as pool:
            init = self.init.lower(hps, keys)
            jobs = [pool.submit(init.compile)]
            state = init.out_info
            jobs.append(pool.submit(self.chunk.lower(state, hps, train_data, 0, 1).compile))
            jobs.append(pool.submit(self.evaluate.lower(state.members.params, eval_data).compile))
            for job in jobs:
                job.result()
        self._compiled.add(signature)

    def _example_batch(self) -> Any:
        b = self.layout.batch_size
        data = self.task.train_data
        return data if b is None else jax.tree.map(lambda x: x[:b], data)

    def _init(self, hps: Any, keys: jax.Array) -> SweepState:
        def per_seed(key: jax.Array) -> MemberState:
            params = self.task.init(_keys(key)[0])

            def per_member(hp: Any) -> MemberState:
                opt_state = self.optimizer(hp).init(params)
                return MemberState(params, opt_state, jnp.zeros((), bool), jnp.full((), -1, jnp.int32))

            return jax.vmap(per_member)(hps)

        examples = 1 if self.layout.batch_size is None else self.task.num_train
        order = jnp.zeros((self.layout.seeds, examples), jnp.int32)  # drawn at step 0
        shuffle = jax.vmap(lambda key: jax.random.key_data(_keys(key)[1]).astype(jnp.uint32))(keys)
        return SweepState(jax.vmap(per_seed)(keys), order, shuffle)

    def _batch(self, order: jax.Array, t: jax.Array, data: Any) -> Any:
        """Batch ``t`` of one seed's epoch ``order``; the last partial batch of an epoch is dropped."""
        b = self.layout.batch_size
        idx = jax.lax.dynamic_slice_in_dim(order, (t % (self.task.num_train // b)) * b, b)
        return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)

    def _member_step(self, state: MemberState, hp: Any, batch: Any, t: jax.Array, active: jax.Array):
        loss_and_grad = jax.value_and_grad(self.task.loss, has_aux=self.has_aux)
        loss, grads = loss_and_grad(state.params, batch)
        if self.has_aux:
            loss = loss[0]
        updates, opt_state = self.optimizer(hp).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # One scalar: the sum is non-finite iff some update is (or they overflow together).
        # Checking the updates rather than the new parameters lets XLA fuse the check and the
        # freeze below into the optimizer's own elementwise loops (~15% faster on CPU).
        healthy = jnp.isfinite(loss + sum(jnp.sum(u) for u in jax.tree.leaves(updates)))
        newly = active & ~state.diverged & ~healthy
        keep = ~active | state.diverged | ~healthy
        frozen = lambda old, new: jnp.where(keep, old, new)
        new_state = MemberState(
            jax.tree.map(frozen, state.params, params),
            jax.tree.map(frozen, state.opt_state, opt_state),
            state.diverged | newly,
            jnp.where(newly, t, state.diverged_at).astype(jnp.int32),
        )
        return new_state, jnp.where(state.diverged, jnp.nan, loss).astype(jnp.float32)

    def _chunk(self, state: SweepState, hps: Any, data: Any, start: jax.Array, total: jax.Array):
        full_batch = self.layout.batch_size is None
        over_members = jax.vmap(self._member_step, in_axes=(0, 0, None, None, None))
        over_seeds = jax.vmap(over_members, in_axes=(0, None, None if full_batch else 0, None, None))

        def body(state: SweepState, i: jax.Array):
            t = start + i
            order, batches = state.order, data
            if not full_batch:
                per_epoch = self.task.num_train // self.layout.batch_size
                new_epoch = lambda: jax.vmap(epoch_order, in_axes=(0, None, None))(state.shuffle, t // per_epoch, self.task.num_train)
                order = jax.lax.cond(t % per_epoch == 0, new_epoch, lambda: order)
                batches = jax.vmap(self._batch, in_axes=(0, None, None))(order, t, data)
            members, losses = over_seeds(state.members, hps, batches, t, t < total)
            return SweepState(members, order, state.shuffle), losses

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
