"""The compiled sweep programs: init, a scanned chunk of training steps, and evaluation.

Every state leaf is stored ``(seeds, ...)`` with a member axis placed by `member_axis`: a dense
kernel (in, out) is stored (seeds, in, members, out). Members that share a seed share their
initial parameters and their batches (common random numbers). The batch is gathered once per
seed and broadcast to that seed's members, so a layer that reads the data runs as one matmul
across members, with no transposes around it. A member whose loss or update turns non-finite is
frozen (its parameters stop changing) and flagged with the step; the other members never see it.
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
    """Training state of every member: each leaf stored (seeds, ...) with its member axis where
    `member_axis` puts it."""

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


def member_axis(ndim: int) -> int:
    """Where the member axis goes in a leaf whose per-member value has ``ndim`` axes: just
    before its last axis. A dense kernel (in, out) is stored (in, members, out), so a layer that
    reads data shared by the members multiplies it by one (in, members·out) matrix, and its
    gradient comes out in that layout, with no transposes in between."""
    return max(ndim - 1, 0)


def stacked_axis(x: Any) -> int:
    """The member axis of a state leaf stored (seeds, ...), see `member_axis`."""
    return 1 + member_axis(jnp.ndim(x) - 2)


def _per_seed_axes(tree: Any) -> Any:
    """For a tree of state leaves stored (seeds, ...): each leaf's member axis once the seed
    axis is mapped away, as ``jax.vmap`` in_axes/out_axes."""
    return jax.tree.map(lambda x: stacked_axis(x) - 1, tree)


def _keys(key: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Per-seed keys: one for parameter init, one for batch order."""
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1)


def init_key(seed: int, seeds: int, index: int) -> jax.Array:
    """The key passed to ``task.init`` for seed ``index`` of a sweep with ``seed`` and ``seeds``."""
    return _keys(jax.random.split(jax.random.key(seed), seeds)[index])[0]


def member_shapes(task: Task, optimizer: OptimizerFn, hp: Any) -> MemberState:
    """Shapes and dtypes of one member's state (from ``jax.eval_shape``; nothing runs)."""

    def one(hp: Any) -> MemberState:
        params = task.init(jax.random.key(0))
        return MemberState(params, optimizer(hp).init(params), jnp.zeros((), bool), jnp.zeros((), jnp.int32))

    return jax.eval_shape(one, hp)


def member_bytes(task: Task, optimizer: OptimizerFn, hp: Any) -> int:
    """Bytes of one member's parameters and optimizer state."""
    shapes = member_shapes(task, optimizer, hp)
    return sum(x.size * x.dtype.itemsize for x in jax.tree.leaves((shapes.params, shapes.opt_state)))


class Jitted(NamedTuple):
    """The three jitted programs for one member-state structure (see `Programs.compile`), and
    that state's shapes, dtypes and shardings."""

    state: SweepState
    init: Callable[..., SweepState]
    chunk: Callable[..., tuple[SweepState, jax.Array]]
    evaluate: Callable[..., dict[str, jax.Array]]


class Programs:
    """Jitted init / chunk / evaluate programs for one task, optimizer and layout."""

    def __init__(self, task: Task, optimizer: OptimizerFn, layout: Layout):
        self.task, self.optimizer, self.layout = task, optimizer, layout
        self.mesh = Mesh(list(layout.devices), ("members",))
        self.config_sharding = NamedSharding(self.mesh, P("members"))
        self.replicated = NamedSharding(self.mesh, P())
        self._cpu = all(d.platform == "cpu" for d in layout.devices)
        self._jitted: dict[Any, Jitted] = {}
        self._compiled: set = set()

    def jitted(self, hps: Any) -> Jitted:
        """The programs for hyperparameters like ``hps`` (leaves with a leading member axis).

        Every state leaf is sharded along its member axis, which `member_axis` places by the
        leaf's rank, so the output shardings are built from one member's state shapes."""
        hp = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[1:], x.dtype), hps)
        one = member_shapes(self.task, self.optimizer, hp)
        key = jax.tree.structure(one), tuple((x.shape, x.dtype) for x in jax.tree.leaves(one))
        if key not in self._jitted:
            seeds, members = self.layout.seeds, self.layout.members

            def stacked(x: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
                a = member_axis(x.ndim)
                spec = P(None, *([None] * a), "members")
                shape = (seeds, *x.shape[:a], members, *x.shape[a:])
                return jax.ShapeDtypeStruct(shape, x.dtype, sharding=NamedSharding(self.mesh, spec))

            state = SweepState(
                jax.tree.map(stacked, one),
                jax.ShapeDtypeStruct((seeds, self._examples), jnp.int32, sharding=self.replicated),
                jax.ShapeDtypeStruct((seeds, 2), jnp.uint32, sharding=self.replicated),
            )
            shardings = jax.tree.map(lambda x: x.sharding, state)
            options = lambda o: o if self._cpu else None
            self._jitted[key] = Jitted(
                state,
                jax.jit(self._init, out_shardings=shardings, compiler_options=options(_INIT_OPTIONS)),
                jax.jit(
                    self._chunk,
                    donate_argnums=0,
                    out_shardings=(shardings, NamedSharding(self.mesh, P(None, None, "members"))),
                    compiler_options=options(_CHUNK_OPTIONS),
                ),
                jax.jit(
                    self._evaluate,
                    out_shardings=NamedSharding(self.mesh, P(None, "members")),
                    compiler_options=options(_EVALUATE_OPTIONS),
                ),
            )
        return self._jitted[key]

    def compile(self, hps: Any, keys: jax.Array, train_data: Any, eval_data: Any) -> Jitted:
        """`jitted`, with the three programs compiled for these arguments, once per signature.

        Tracing runs in this thread; XLA compiles in worker threads (it releases the GIL). The
        chunk program, the slowest to compile, is traced first, and the small init and evaluate
        programs are traced and compiled while it compiles. Later calls with arrays of the same
        shapes, dtypes and shardings find the programs in jit's cache."""
        jitted = self.jitted(hps)
        args = (hps, keys, train_data, eval_data)
        signature = jax.tree.structure(args), tuple(
            (x.shape, x.dtype, getattr(x, "sharding", None)) for x in jax.tree.leaves(args)
        )
        if signature not in self._compiled:
            with concurrent.futures.ThreadPoolExecutor(3) as pool:
                jobs = [pool.submit(jitted.chunk.lower(jitted.state, hps, train_data, 0, 1).compile)]
                jobs.append(pool.submit(jitted.init.lower(hps, keys).compile))
                jobs.append(pool.submit(jitted.evaluate.lower(jitted.state.members.params, eval_data).compile))
                for job in jobs:
                    job.result()
            self._compiled.add(signature)
        return jitted

    @property
    def _examples(self) -> int:
        """Length of a seed's example order: the training set, or 1 in full-batch mode (unused)."""
        return 1 if self.layout.batch_size is None else self.task.num_train

    def _init(self, hps: Any, keys: jax.Array) -> SweepState:
        def per_seed(key: jax.Array) -> MemberState:
            params = self.task.init(_keys(key)[0])

            def per_member(hp: Any) -> MemberState:
                opt_state = self.optimizer(hp).init(params)
                return MemberState(params, opt_state, jnp.zeros((), bool), jnp.full((), -1, jnp.int32))

            one = jax.eval_shape(per_member, jax.tree.map(lambda x: x[0], hps))
            return jax.vmap(per_member, out_axes=jax.tree.map(lambda x: member_axis(x.ndim), one))(hps)

        order = jnp.zeros((self.layout.seeds, self._examples), jnp.int32)  # drawn at step 0
        shuffle = jax.vmap(lambda key: jax.random.key_data(_keys(key)[1]).astype(jnp.uint32))(keys)
        return SweepState(jax.vmap(per_seed)(keys), order, shuffle)

    def _loss(self, params: Any, batch: Any) -> tuple[jax.Array, Any]:
        """The task's loss as (loss, aux), aux None for a loss without one."""
        out = self.task.loss(params, batch)
        return (out[0], out[1]) if isinstance(out, tuple) else (out, None)

    def _batch(self, order: jax.Array, t: jax.Array, data: Any) -> Any:
        """Batch ``t`` of one seed's epoch ``order``; the last partial batch of an epoch is dropped."""
        b = self.layout.batch_size
        idx = jax.lax.dynamic_slice_in_dim(order, (t % (self.task.num_train // b)) * b, b)
        return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)

    def _member_step(self, state: MemberState, hp: Any, batch: Any, t: jax.Array, active: jax.Array):
        (loss, _), grads = jax.value_and_grad(self._loss, has_aux=True)(state.params, batch)
        updates, opt_state = self.optimizer(hp).update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        # One scalar: the sum is non-finite iff some update is (or they overflow together).
        # Checking the updates rather than the new parameters lets XLA fuse the check and the
        # freeze below into the optimizer's own elementwise loops (~15% faster on CPU).
        healthy = jnp.isfinite(loss + sum(jnp.sum(u) for u in jax.tree.leaves(updates)))
        newly = active & ~state.diverged & ~healthy
        keep = ~active | state.diverged | ~healthy
        # Only the parameters are held: a frozen member's optimizer state is never read for
        # anything that is kept, so writing it through saves a select per state leaf (~5%).
        new_state = MemberState(
            jax.tree.map(lambda old, new: jnp.where(keep, old, new), state.params, params),
            opt_state,
            state.diverged | newly,
            jnp.where(newly, t, state.diverged_at).astype(jnp.int32),
        )
        return new_state, jnp.where(state.diverged, jnp.nan, loss).astype(jnp.float32)

    def _chunk(self, state: SweepState, hps: Any, data: Any, start: jax.Array, total: jax.Array):
        full_batch = self.layout.batch_size is None
        axes = _per_seed_axes(state.members)
        over_members = jax.vmap(self._member_step, in_axes=(axes, 0, None, None, None), out_axes=(axes, 0))
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
                out["loss"] = self._loss(p, data)[0]
            return {k: jnp.asarray(v, jnp.float32) for k, v in out.items()}

        return jax.vmap(jax.vmap(metrics, in_axes=(_per_seed_axes(params),)))(params)

