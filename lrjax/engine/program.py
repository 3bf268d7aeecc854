"""The traced programs behind a population: init, reset, a chunk of training steps, evaluation,
plateau observation and copy.

Every member-state leaf is stored ``(seeds, ...)`` with a member axis placed by `member_axis`: a
dense kernel (in, out) is stored (seeds, in, members, out). Hyperparameters, flags and counters
are stored (seeds, members). Members that share a seed share their initial parameters and their
batches (common random numbers). The batch is gathered once per seed and broadcast to that
seed's members, so a layer that reads the data runs as one matmul across members, with no
transposes around it.

Each training step of member m, with ``run = active[m] & ~diverged[m]``:

    key      = fold_in(fold_in(seed_key, 2), steps)            only for a task with ``rng``
    (loss, model_state'), g = value_and_grad(loss)(params, model_state, batch, key)
                                                               batch: the seed's batch at the clock
    u, opt   = optimizer(hp).update(g, opt_state, params, value=loss)
    u        = scale · u                                       (plateau on evaluations, else 1)
    params   = params + u         if run and loss and u are finite, else unchanged
    model_state = model_state'    likewise (a task's model state, if it is ``stateful``)
    opt      = opt                if active, else unchanged   (a frozen member's is never read)
    steps   += 1                  if the update was applied
    diverged = True, diverged_at = steps   the first time loss or u is non-finite, or the loss
                                           exceeds the member's first loss ℓ₀ by more than
                                           (f − 1)·|ℓ₀| (f = ``divergence_factor``, if not None)

The data order follows the population's clock (steps of `advance` so far), shared by every
member of a seed; schedules see the member's own count (Optax's, in its optimizer state).
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable
from typing import Any, NamedTuple, Protocol

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax._task import Task, key_shape
from lrjax._validate import first_line
from lrjax.engine import rewrite
from lrjax.engine.conv import rewrite_convs
from lrjax.engine.dots import canonical_dots
from lrjax.engine.shuffle import epoch_order
from lrjax.engine.sink import sink_transposes


class OptimizerFn(Protocol):
    """``optimizer(hp)``: one member's Optax optimizer from its hyperparameters (a dict of
    scalars or schedules), called inside the traced program."""

    def __call__(self, hp: Any, /) -> optax.GradientTransformation: ...


class PlateauFn(Protocol):
    """``plateau(hp)``: one member's plateau transformation (`lrjax.reduce_on_plateau`, or
    ``optax.contrib.reduce_on_plateau``), whose ``update`` takes ``value=``."""

    def __call__(self, hp: Any, /) -> optax.GradientTransformation: ...


CHUNK = 100  # steps per call of the chunk program (at most; the count is a runtime value)
# A member whose loss exceeds its first loss by more than (f − 1)·|first| diverged (see `Layout`).
DIVERGENCE_FACTOR = 100.0


class MemberState(NamedTuple):
    """Training state of every member: each leaf stored (seeds, ...) with its member axis where
    `member_axis` puts it.

    Attributes:
      params, opt_state: the task's parameters and the optimizer's state.
      model_state: the task's model state (None unless it is ``stateful``).
      diverged: whether the loss or an update turned non-finite, or the loss exceeded the
        layout's ``divergence_factor`` times its first loss (the member is then frozen).
      diverged_at: the member's step count when it did, or −1.
      steps: updates applied to the member.
      first_loss: the member's loss at its step 0 (the reference of ``divergence_factor``).
      plateau: the plateau transformation's state (None without one).
      scale: the factor the plateau applies to the updates (None without one).
    """

    params: Any
    model_state: Any
    opt_state: Any
    diverged: jax.Array
    diverged_at: jax.Array
    steps: jax.Array
    first_loss: jax.Array
    plateau: Any
    scale: Any


class PopulationState(NamedTuple):
    """Members' state; per seed, the current epoch's example order (seeds, examples), the key
    words (seeds, 2) that draw it (see `lrjax.engine.shuffle`) and the key words (seeds, 2) of
    the members' per-step keys (`step_key`); and the clock, the number of steps taken by the
    population, which decides the batches."""

    members: MemberState
    order: jax.Array
    shuffle: jax.Array
    keys: jax.Array
    clock: jax.Array


@dataclasses.dataclass(frozen=True)
class Layout:
    """The static shape and choices of a population's programs: one set of programs per
    distinct layout. ``divergence_factor`` f (None: off) freezes a member whose training loss
    ℓ exceeds its first loss ℓ₀ by more than (f − 1)·|ℓ₀| (sign-aware, as the range test's
    ``stop_factor``; never when ℓ₀ = 0)."""

    seeds: int
    slots: int  # configuration slots, a multiple of the devices sharding them
    batch_size: int | None  # None: full batch
    devices: tuple
    parts: tuple[int, int] = (1, 1)  # (seed parts, slot parts) a chunk runs in: `lrjax.engine.parts`
    seed_devices: int = 1  # the devices as a (seed_devices, slot_devices) mesh: `seed_devices`
    divergence_factor: float | None = DIVERGENCE_FACTOR

    @property
    def on_cpu(self) -> bool:
        """Whether every device is a CPU (the engine's XLA:CPU-specific choices apply)."""
        return all(d.platform == "cpu" for d in self.devices)

    @property
    def slot_devices(self) -> int:
        """Devices the configuration slots are sharded over (the mesh's second axis)."""
        return len(self.devices) // self.seed_devices


def seed_devices(configs: int, seeds: int, devices: int) -> int:
    """How many devices to shard the seed axis over, the rest of the ``devices`` sharding the
    configurations: the divisor ``d`` of ``devices`` that divides ``seeds`` and gives each
    device the fewest members, ``(seeds / d) · ceil(configs / (devices / d))``, the smallest
    such ``d`` on a tie. Configurations alone when there are enough of them; with fewer
    configurations than devices (a range test: one configuration, many seeds) the seeds fill
    the devices instead of padding copies of the configurations.

    Args:
      configs: configurations of the population.
      seeds: seeds per configuration.
      devices: devices the population is sharded over.

    Returns:
      A divisor of both ``devices`` and ``seeds``.

    Example:
      >>> from lrjax.engine.program import seed_devices
      >>> seed_devices(64, 2, 4), seed_devices(1, 8, 4), seed_devices(2, 4, 4)
      (1, 4, 2)
    """
    per_device = lambda d: seeds // d * -(-configs // (devices // d))
    candidates = [d for d in range(1, devices + 1) if devices % d == 0 and seeds % d == 0]
    return min(candidates, key=lambda d: (per_device(d), d))


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


def _where_members(mask: jax.Array, new: Any, old: Any) -> Any:
    """Per member, ``new`` where ``mask`` (seeds, members) else ``old`` (stored state trees)."""

    def select(a: jax.Array, b: jax.Array) -> jax.Array:
        axis = stacked_axis(a)
        shape = [1] * a.ndim
        shape[0], shape[axis] = mask.shape
        return jnp.where(mask.reshape(shape), a, b)

    return jax.tree.map(select, new, old)


def _keys(key: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    """Per-seed keys: one for parameter init, one for batch order, one for the loss's keys."""
    return jax.random.fold_in(key, 0), jax.random.fold_in(key, 1), jax.random.fold_in(key, 2)


def seed_keys(seed: int, seeds: int) -> jax.Array:
    """The per-seed keys of a population with ``seed`` and ``seeds``."""
    return jax.random.split(jax.random.key(seed), seeds)


def init_key(seed: int, seeds: int, index: int) -> jax.Array:
    """The key passed to ``task.init`` for seed ``index`` of a population with ``seed`` and ``seeds``.

    Args:
      seed: the population's ``seed``.
      seeds: its ``seeds`` (seeds per configuration).
      index: the seed index, in ``[0, seeds)``; member ``i * seeds + index`` starts from it.

    Returns:
      A typed JAX key: ``task.init(init_key(seed, seeds, index))`` are those members'
      initial parameters.

    Example:
      >>> import jax, optax, lrjax
      >>> from lrjax.engine import init_key
      >>> task = lrjax.datasets.linear_regression()
      >>> pop = lrjax.Population(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.1, 0.2]},
      ...                        seed=3, seeds=2)
      >>> member = 1 * 2 + 1                                 # configuration 1, seed index 1
      >>> start = task.init(init_key(3, 2, 1))
      >>> bool(all(jax.tree.leaves(jax.tree.map(lambda a, b: a[member] == b, pop.params, start))))
      True
    """
    return _keys(seed_keys(seed, seeds)[index])[0]


def order_words(key: jax.Array) -> jax.Array:
    """The uint32[2] words that draw a seed's data order (`lrjax.engine.shuffle`) from its key."""
    return jax.random.key_data(_keys(key)[1]).astype(jnp.uint32)


def key_words(key: jax.Array) -> jax.Array:
    """The uint32[2] words of the key a seed's members' per-step keys are folded from."""
    return jax.random.key_data(_keys(key)[2]).astype(jnp.uint32)


def step_key_of(words: jax.Array, steps: jax.Array) -> jax.Array:
    """The per-step key at ``steps`` from a seed's `key_words` (traced): see `step_key`."""
    return jax.random.fold_in(jax.random.wrap_key_data(words, impl="threefry2x32"), steps)


# The stream a seed's augmentation keys are folded from: fold_in(K, 2³² − 1) of the key K its
# members' per-step keys come from, a number no step count (int32) takes.
_AUGMENT = 0xFFFFFFFF


def augment_key_of(words: jax.Array, clock: jax.Array) -> jax.Array:
    """The augmentation key at the population's ``clock`` from a seed's `key_words` (traced):
    see `augment_key`."""
    stream = jax.random.fold_in(jax.random.wrap_key_data(words, impl="threefry2x32"), jnp.uint32(_AUGMENT))
    return jax.random.fold_in(stream, clock)


def take_batch(order: jax.Array, t: jax.Array, data: Any, batch_size: int) -> Any:
    """Batch ``t`` of one seed's epoch ``order`` (traced): examples ``order[j·B : (j+1)·B]``
    of ``data`` with ``j = t mod ⌊n/B⌋``; the last partial batch of an epoch is dropped."""
    n = jax.tree.leaves(data)[0].shape[0]
    idx = jax.lax.dynamic_slice_in_dim(order, (t % (n // batch_size)) * batch_size, batch_size)
    return jax.tree.map(lambda x: jnp.take(x, idx, axis=0), data)


def augmented(task: Task, words: jax.Array, clock: jax.Array, batch: Any) -> Any:
    """One seed's batch at the population's ``clock`` through the task's ``augment``, keyed by
    `augment_key_of` the seed's `key_words` (traced)."""
    assert task.augment is not None, "called only for a task with augment"
    return task.augment(augment_key_of(words, clock), batch)


def augment_key(seed: int, seeds: int, index: int, step: int) -> jax.Array:
    """The key passed to a task's ``augment`` (`lrjax.Task`) for the batch of the population's
    ``step`` (steps taken by the population before it), for seed ``index`` of a population with
    ``seed`` and ``seeds``: ``fold_in(fold_in(fold_in(seed_key, 2), 2³² − 1), step)``, where
    ``seed_key = jax.random.split(jax.random.key(seed), seeds)[index]``. Members that share a
    seed share it, as they share the batch; it never equals a `step_key`.

    Args:
      seed: the population's base seed.
      seeds: its seeds per configuration.
      index: the seed index, in ``[0, seeds)``.
      step: the population's step (its clock) whose batch is augmented.

    Returns:
      A typed key (threefry2x32).

    Example:
      >>> import jax
      >>> from lrjax.engine import augment_key, step_key
      >>> same = lambda a, b: bool((jax.random.key_data(a) == jax.random.key_data(b)).all())
      >>> same(augment_key(0, 2, 1, 3), augment_key(0, 2, 1, 3)), same(augment_key(0, 1, 0, 3), step_key(0, 1, 0, 3))
      (True, False)
    """
    return augment_key_of(key_words(seed_keys(seed, seeds)[index]), jnp.int32(step))


def step_key(seed: int, seeds: int, index: int, step: int) -> jax.Array:
    """The key passed to the loss of a task with ``rng`` (`lrjax.Task`) at a member's ``step``
    (updates it had applied before), for seed ``index`` of a population with ``seed`` and
    ``seeds``: ``fold_in(fold_in(seed_key, 2), step)``, where ``seed_key =
    jax.random.split(jax.random.key(seed), seeds)[index]``. It depends on the member's seed and
    its own step count only, so members sharing a seed draw the same dropout masks (common
    random numbers), and training split across calls draws what one call would.

    Args:
      seed: the population's base seed.
      seeds: its seeds per configuration.
      index: the member's seed index, in ``[0, seeds)``.
      step: the member's step count.

    Returns:
      A typed key (threefry2x32).

    Example:
      >>> import jax
      >>> from lrjax.engine import step_key
      >>> k = step_key(0, 1, 0, 5)
      >>> bool((jax.random.key_data(k) == jax.random.key_data(step_key(0, 1, 0, 5))).all())
      True
    """
    return step_key_of(key_words(seed_keys(seed, seeds)[index]), jnp.int32(step))


def _with_value(tx: optax.GradientTransformation) -> optax.GradientTransformationExtraArgs:
    """``tx`` accepting ``value=`` in ``update`` (plain transformations ignore it)."""
    return optax.with_extra_args_support(tx)


def _signature(tree: Any) -> list[str]:
    """A state tree's leaves as ``path: dtype[shape]`` lines (weak types aside)."""
    leaves = jax.tree_util.tree_flatten_with_path(tree)[0]
    return [f"model_state{jax.tree_util.keystr(path)}: {x.dtype}{list(x.shape)}" for path, x in leaves]


def _check_model_state(before: Any, after: Any, b: int) -> None:
    """A stateful loss returns model state like the one it took, or a `ValueError` names the
    first leaf that differs."""
    if jax.tree.structure(before) != jax.tree.structure(after):
        raise ValueError(
            f"task.loss must return model state with the structure init gives, got {jax.tree.structure(after)} "
            f"for {jax.tree.structure(before)} (on a batch of {b} train_data examples)"
        )
    for was, now in zip(_signature(before), _signature(after), strict=True):
        if was != now:
            raise ValueError(
                f"task.loss must return model state with the shapes and dtypes init gives: {was} became "
                f"{now.split(': ')[1]} (on a batch of {b} train_data examples); cast it back, or keep it fixed"
            )


def _check_augment(augment: Callable[[jax.Array, Any], Any], batch: Any) -> None:
    """`ValueError` unless ``augment(key, batch)`` returns arrays like ``batch`` (from shapes)."""
    try:
        out = jax.eval_shape(augment, key_shape(), batch)
    except Exception as err:
        raise ValueError(f"task.augment fails on a batch of train_data: {first_line(err)}") from err
    if jax.tree.structure(out) != jax.tree.structure(batch):
        raise ValueError(
            f"augment must return a batch of train_data's structure {jax.tree.structure(batch)}, "
            f"got {jax.tree.structure(out)}"
        )
    for (path, before), after in zip(jax.tree_util.tree_flatten_with_path(batch)[0], jax.tree.leaves(out), strict=True):
        if (before.shape, before.dtype) != (after.shape, after.dtype):
            where = f"train_data{jax.tree_util.keystr(path)}"
            raise ValueError(
                f"augment must keep each array's shape and dtype: {where} {before.dtype}{list(before.shape)} "
                f"became {after.dtype}{list(after.shape)} (pad or crop back, cast back)"
            )


def trace_metric_names(task: Task, batch_size: int | None) -> list[str]:
    """Names of the metrics an evaluation reports, after checking from shapes (nothing runs)
    that the loss takes a batch of ``batch_size`` training examples and returns a scalar (and,
    for a stateful task, model state like its input), and that the metrics take the eval data:
    a `ValueError` names what does not fit."""
    try:
        params, model_state = jax.eval_shape(task.initial, key_shape())
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"task.init fails: {first_line(err)}") from err
    batch = task.batch_like(batch_size)
    b = jax.tree.leaves(batch)[0].shape[0]
    try:
        value, new_state = jax.eval_shape(task.step_loss, params, model_state, batch, key_shape())
    except ValueError:
        raise
    except Exception as err:
        raise ValueError(f"task.loss fails on a batch of train_data: {first_line(err)}") from err
    if value.shape != ():
        raise ValueError(
            f"task.loss must return a scalar (or (scalar, aux)), got shape {value.shape} from a batch of {b} "
            "train_data examples: average the per-example losses (e.g. .mean())"
        )
    if task.stateful:
        _check_model_state(model_state, new_state, b)
    if task.augment is not None:
        _check_augment(task.augment, batch)
    name = "train_data" if task.eval_data is None else "eval_data"
    try:
        return sorted(jax.eval_shape(task.evaluate, params, model_state, task.eval_like()))
    except ValueError as err:
        if str(err).startswith("metrics must report"):
            raise
        raise ValueError(f"{name} does not fit the task's model, loss or metrics: {first_line(err)}") from err
    except Exception as err:
        raise ValueError(f"{name} does not fit the task's model, loss or metrics: {first_line(err)}") from err


def mean_over_batches(fn: Callable[[Any], dict[str, jax.Array]], data: Any, batch_size: int | None) -> dict:
    """``fn(data)`` computed batch by batch: Σ_k n_k · fn(batch_k) / Σ_k n_k over consecutive
    batches of ``batch_size`` examples, the last one partial (its own shape, traced once more).
    Equal to ``fn(data)`` where ``fn``'s values are means over the examples.

    Args:
      fn: data -> {name: array}, each value a mean over the leading axis of ``data``.
      data: a pytree of arrays with a leading examples axis.
      batch_size: examples per batch; None: all at once.

    Returns:
      ``{name: array}`` like ``fn``'s.

    Example:
      >>> from lrjax.engine.program import mean_over_batches
      >>> import jax.numpy as jnp
      >>> x = jnp.arange(10.0)
      >>> mean_over_batches(lambda b: {"mean": b.mean()}, x, 4)["mean"]
      Array(4.5, dtype=float32)
    """
    n = len(jax.tree.leaves(data)[0])
    if batch_size is None or batch_size >= n:
        return fn(data)
    full, rest = divmod(n, batch_size)
    head = jax.tree.map(lambda x: x[: full * batch_size].reshape(full, batch_size, *x.shape[1:]), data)
    totals = jax.tree.map(lambda v: v.sum(0) * batch_size, jax.lax.map(fn, head))
    if rest:
        tail = fn(jax.tree.map(lambda x: x[full * batch_size :], data))
        totals = jax.tree.map(lambda total, v: total + v * rest, totals, tail)
    return jax.tree.map(lambda total: total / n, totals)


class Programs:
    """The traced functions of one task, optimizer, plateau and layout, and their shardings.

    ``plateau`` is None or a function ``hp -> transformation`` whose ``update(u, state,
    value=metric)`` scales ``u`` (e.g. `lrjax.reduce_on_plateau`). The functions are jitted and
    compiled by `lrjax.engine.cache`; this class only defines them."""

    def __init__(self, task: Task, optimizer: OptimizerFn, plateau: PlateauFn | None, layout: Layout):
        self.task, self.optimizer, self.plateau, self.layout = task, optimizer, plateau, layout
        grid = np.array(layout.devices, dtype=object).reshape(layout.seed_devices, layout.slot_devices)
        self.mesh = Mesh(grid, ("seeds", "slots"))
        self.slots = NamedSharding(self.mesh, P("seeds", "slots"))  # (seeds, slots) arrays
        self.replicated = NamedSharding(self.mesh, P())
        self.per_seed = NamedSharding(self.mesh, P("seeds"))  # (seeds, ...) data-order arrays
        # The jaxpr rewrites (`lrjax.engine.rewrite`) were measured on XLA:CPU only: on a GPU the
        # convolution's would replace cuDNN with k² times the memory. ``LRJAX_REWRITES=0`` turns
        # them off everywhere.
        self.rewrites = layout.on_cpu and rewrite.enabled()
        self._metric_names: list[str] | None = None

    # -- shapes and shardings -------------------------------------------------------------

    def member_shapes(self, hp: Any) -> MemberState:
        """Shapes and dtypes of one member's state for a hyperparameter tree like ``hp``."""
        return jax.eval_shape(lambda hp: self._fresh_member(self.task.initial(jax.random.key(0)), hp), hp)

    def state_shapes(self, hps: Any) -> PopulationState:
        """The population state's shapes, dtypes and shardings for hyperparameters like ``hps``
        (leaves (seeds, slots)). Every member leaf is sharded along its seed and slot axes
        over the layout's (seed devices, slot devices) mesh, and each seed's data order lives
        on the devices of its seed."""
        hp = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape[2:], x.dtype), hps)
        seeds, slots = self.layout.seeds, self.layout.slots

        def stacked(x: jax.ShapeDtypeStruct) -> jax.ShapeDtypeStruct:
            a = member_axis(x.ndim)
            spec = P("seeds", *([None] * a), "slots")
            shape = (seeds, *x.shape[:a], slots, *x.shape[a:])
            return jax.ShapeDtypeStruct(shape, x.dtype, sharding=NamedSharding(self.mesh, spec))

        shapes: list[Any] = [  # ShapeDtypeStructs where the state will hold arrays
            jax.tree.map(stacked, self.member_shapes(hp)),
            jax.ShapeDtypeStruct((seeds, self.examples), jnp.int32, sharding=self.per_seed),
            jax.ShapeDtypeStruct((seeds, 2), jnp.uint32, sharding=self.per_seed),
            jax.ShapeDtypeStruct((seeds, 2), jnp.uint32, sharding=self.per_seed),
            jax.ShapeDtypeStruct((), jnp.int32, sharding=self.replicated),
        ]
        return PopulationState(*shapes)

    @property
    def examples(self) -> int:
        """Length of a seed's example order: the training set, or 1 in full-batch mode (unused)."""
        return 1 if self.layout.batch_size is None or self.task.streamed else self.task.num_train

    # -- the traced functions -------------------------------------------------------------

    def _fresh_member(self, start: tuple[Any, Any], hp: Any) -> MemberState:
        params, model_state = start
        plateau, scale = None, None
        if self.plateau is not None:
            plateau, scale = self.plateau(hp).init(jnp.ones((), jnp.float32)), jnp.ones((), jnp.float32)
        opt_state = _with_value(self.optimizer(hp)).init(params)
        zero = jnp.zeros((), jnp.int32)
        return MemberState(
            params, model_state, opt_state, jnp.zeros((), bool), zero - 1, zero, jnp.zeros(()), plateau, scale
        )

    def _fresh_members(self, hps: Any, keys: jax.Array) -> MemberState:
        def per_seed(key: jax.Array, hps: Any) -> MemberState:
            start = self.task.initial(_keys(key)[0])
            one = jax.eval_shape(self._fresh_member, start, jax.tree.map(lambda x: x[0], hps))
            out_axes = jax.tree.map(lambda x: member_axis(x.ndim), one)
            return jax.vmap(self._fresh_member, in_axes=(None, 0), out_axes=out_axes)(start, hps)

        return jax.vmap(per_seed)(keys, hps)

    def init(self, hps: Any, keys: jax.Array) -> PopulationState:
        """Fresh members (each seed's initial parameters), the clock at 0."""
        order = jnp.zeros((self.layout.seeds, self.examples), jnp.int32)  # drawn at the first step
        shuffle, words = jax.vmap(order_words)(keys), jax.vmap(key_words)(keys)
        return PopulationState(self._fresh_members(hps, keys), order, shuffle, words, jnp.zeros((), jnp.int32))

    def reset(self, state: PopulationState, hps: Any, keys: jax.Array, mask: jax.Array) -> PopulationState:
        """Members where ``mask`` start afresh with ``hps``: their seed's initial parameters and
        model state, a new optimizer (and plateau) state, no steps (so their keys restart), not
        diverged."""
        members = _where_members(mask, self._fresh_members(hps, keys), state.members)
        return state._replace(members=members)

    def copy(self, state: PopulationState, source_seed: jax.Array, source_member: jax.Array) -> PopulationState:
        """Every member slot (s, m) takes the whole state of slot (source_seed[s, m], source_member[s, m])."""

        def gather(x: jax.Array) -> jax.Array:
            axis = stacked_axis(x)
            y = jnp.moveaxis(x, axis, 1)[source_seed, source_member]
            return jnp.moveaxis(y, 1, axis)

        return state._replace(members=jax.tree.map(gather, state.members))

    @functools.cached_property
    def _rewritten(self) -> tuple[Callable[..., Any], Callable[..., Any]]:
        """The task's loss and metrics with their convolutions as slices and matmuls
        (`lrjax.engine.conv`: XLA:CPU's convolution is slow under a vmap over members), traced
        once from shapes, at first use; the task's own functions when they have none or
        `rewrites` is off."""
        loss, metrics = self.task.step_loss, self.task.evaluate
        if not self.rewrites:
            return loss, metrics
        params, model_state = jax.eval_shape(self.task.initial, key_shape())
        batch = self.task.batch_like(self.layout.batch_size)
        key = key_shape() if self.task.rng else None
        return (
            rewrite_convs(loss, params, model_state, batch, key),
            rewrite_convs(metrics, params, model_state, self.task.eval_like()),
        )

    def _loss(self, params: Any, model_state: Any, batch: Any, key: Any) -> tuple[jax.Array, Any]:
        return self._rewritten[0](params, model_state, batch, key)

    def _member_step(
        self, state: MemberState, hp: Any, active: jax.Array, batch: Any, words: jax.Array
    ) -> tuple[MemberState, jax.Array]:
        key = step_key_of(words, state.steps) if self.task.rng else None
        (loss, model_state), grads = jax.value_and_grad(self._loss, has_aux=True)(
            state.params, state.model_state, batch, key
        )
        updates, opt_state = _with_value(self.optimizer(hp)).update(grads, state.opt_state, state.params, value=loss)
        if state.scale is not None:
            updates = jax.tree.map(lambda u: (state.scale * u).astype(u.dtype), updates)
        params = optax.apply_updates(state.params, updates)
        # One scalar: the sum is non-finite iff some update is (or they overflow together).
        # Checking the updates rather than the new parameters lets XLA fuse the check and the
        # selects below into the optimizer's own elementwise loops.
        healthy = jnp.isfinite(loss + sum(jnp.sum(u) for u in jax.tree.leaves(updates)))
        first = jnp.where(state.steps == 0, loss, state.first_loss).astype(jnp.float32)
        factor = self.layout.divergence_factor
        if factor is not None:
            healthy &= (first == 0) | (loss - first <= (factor - 1) * jnp.abs(first))
        run = active & ~state.diverged
        applied = run & healthy
        newly = run & ~healthy
        new_state = state._replace(
            params=jax.tree.map(lambda new, old: jnp.where(applied, new, old), params, state.params),
            model_state=jax.tree.map(lambda new, old: jnp.where(applied, new, old), model_state, state.model_state),
            # A frozen member's optimizer state is never read for anything kept, so it is written
            # through; an inactive member's is held, since it may be activated again.
            opt_state=jax.tree.map(lambda new, old: jnp.where(active, new, old), opt_state, state.opt_state),
            diverged=state.diverged | newly,
            diverged_at=jnp.where(newly, state.steps, state.diverged_at).astype(jnp.int32),
            steps=(state.steps + applied).astype(jnp.int32),
            first_loss=jnp.where(run, first, state.first_loss),
        )
        return new_state, jnp.where(run, loss, jnp.nan).astype(jnp.float32)

    def chunk(self, state: PopulationState, hps: Any, active: jax.Array, data: Any, n: jax.Array):
        """``n`` (<= `CHUNK`, a runtime value) training steps of every member.

        The loop runs on the state with its seed and member axes of length 1 squeezed out (one
        seed, or one member per device): XLA:CPU ran the 64-member MLP sweep 1.4× slower with a
        unit seed axis in the loop. A ``vmap`` maps the axes that remain.

        ``data`` is the training set, or, for a streamed task, the chunk's batches (CHUNK, seeds,
        batch, ...), step-major, read by step ``i`` of the chunk.

        Returns the new state and the losses (CHUNK, seeds, slots): the loss before each
        step's update, NaN where a member is inactive or diverged and after step ``n``."""
        streamed = self.task.streamed
        full_batch = self.layout.batch_size is None and not streamed
        shared = full_batch and self.task.augment is None  # one batch for every seed
        seeds, slots = self.layout.seeds, self.layout.slots
        step, draw = self._member_step, epoch_order
        batch = functools.partial(take_batch, batch_size=self.layout.batch_size or 0)
        augment = functools.partial(augmented, self.task)
        if slots > 1:
            axes = _per_seed_axes(state.members)
            step = jax.vmap(step, in_axes=(axes, 0, 0, None, None), out_axes=(axes, 0))
        if seeds > 1:
            step = jax.vmap(step, in_axes=(0, 0, 0, None if shared else 0, 0))
            draw = jax.vmap(draw, in_axes=(0, None, None))
            batch = jax.vmap(batch, in_axes=(0, None, None))
            augment = jax.vmap(augment, in_axes=(0, None, None if full_batch else 0))
        if self.rewrites:
            # Every matmul of the step (forward, gradients) in the operand layout of XLA:CPU's
            # fast kernels; `lrjax.engine.operations` compiles the chunk with the options this needs.
            # Then the transposes vmap puts around the update (members first) moved past its
            # elementwise operations, where they cancel: the update runs in the stored order.
            step = sink_transposes(canonical_dots(step))

        def squeeze(x: jax.Array, member_axis: int | None) -> jax.Array:
            """``x`` (seed axis first, member axis at ``member_axis`` if any) without the axes
            of length 1."""
            drop = {0} if seeds == 1 else set()
            if member_axis is not None and slots == 1:
                drop.add(member_axis)
            return x.reshape(tuple(d for i, d in enumerate(x.shape) if i not in drop))

        hps, active = jax.tree.map(lambda x: squeeze(x, 1), (hps, active))  # (seeds, members) arrays
        shuffle, words = squeeze(state.shuffle, None), squeeze(state.keys, None)

        def body(i: jax.Array, carry: tuple[Any, jax.Array, jax.Array, jax.Array]):
            members_state, order, t, losses = carry
            batches = data
            if streamed:
                batches = jax.tree.map(lambda x: squeeze(jax.lax.dynamic_index_in_dim(x, i, 0, False), None), data)
            elif not full_batch:
                assert self.layout.batch_size is not None  # not full_batch
                per_epoch = self.task.num_train // self.layout.batch_size
                new_epoch = lambda: draw(shuffle, t // per_epoch, self.task.num_train)
                order = jax.lax.cond(t % per_epoch == 0, new_epoch, lambda: order)
                batches = batch(order, t, data)
            if self.task.augment is not None:
                batches = augment(words, t, batches)
            members_state, loss = step(members_state, hps, active, batches, words)
            losses = jax.lax.dynamic_update_index_in_dim(losses, loss.reshape(seeds, slots), i, 0)
            return members_state, order, t + 1, losses

        losses = jnp.full((CHUNK, seeds, slots), jnp.nan, jnp.float32)
        members_in = jax.tree.map(lambda x: squeeze(x, stacked_axis(x)), state.members)
        carry = (members_in, squeeze(state.order, None), state.clock, losses)
        members_out, order, clock, losses = jax.lax.fori_loop(0, n, body, carry)
        restored = jax.tree.map(lambda new, old: new.reshape(old.shape), members_out, state.members)
        return state._replace(members=restored, order=order.reshape(state.order.shape), clock=clock), losses

    def metric_names(self) -> list[str]:
        """Names of the metrics `evaluate` reports, after checking from shapes (nothing runs)
        that the loss takes a batch of the training data and the metrics the eval data: a
        `ValueError` names the data that does not fit. Traced once per `Programs`."""
        if self._metric_names is None:
            self._metric_names = trace_metric_names(self.task, self.layout.batch_size)
        return list(self._metric_names)

    def _metrics(self, params: Any, model_state: Any, data: Any) -> dict[str, jax.Array]:
        return self._rewritten[1](params, model_state, data)

    def evaluate(self, params: Any, model_state: Any, data: Any) -> dict[str, jax.Array]:
        """Every member's metrics on ``data`` with its parameters and model state: name ->
        (seeds, members); in batches of the task's ``eval_batch_size`` (`mean_over_batches`),
        each read once for all members. For a streamed ``eval_data``, ``data`` is one of its
        batches (the population weights them)."""
        axes = (_per_seed_axes(params), _per_seed_axes(model_state), None)
        on = lambda batch: jax.vmap(jax.vmap(self._metrics, in_axes=axes), in_axes=(0, 0, None))(
            params, model_state, batch
        )
        return mean_over_batches(on, data, self.task.eval_batch_size)

    def observe(self, state: PopulationState, hps: Any, values: jax.Array, active: jax.Array) -> PopulationState:
        """Each active, not diverged member's plateau observes its value (seeds, members); its
        scale becomes the factor the plateau applies to a unit update."""

        def one(plateau: Any, hp: Any, value: jax.Array) -> tuple[Any, jax.Array]:
            assert self.plateau is not None, "observe is compiled only with a plateau"
            transform = optax.with_extra_args_support(self.plateau(hp))
            scaled, plateau = transform.update(jnp.ones((), jnp.float32), plateau, value=value)
            return plateau, jnp.asarray(scaled, jnp.float32)

        members = state.members
        axes = (_per_seed_axes(members.plateau), _per_seed_axes(members.scale))
        over_members = jax.vmap(one, in_axes=(axes[0], 0, 0), out_axes=axes)
        plateau, scale = jax.vmap(over_members)(members.plateau, hps, values)
        observed = members._replace(plateau=plateau, scale=scale)
        return state._replace(members=_where_members(active & ~members.diverged, observed, members))
