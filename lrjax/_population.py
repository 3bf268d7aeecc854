"""`Population`: a live set of members training as one compiled program, to advance, inspect,
change, save and resume.

Every policy above a plain sweep (plateau on validation, range tests, halving, PBT, Bayesian
rounds, resuming after a crash) stops a population, looks at it, changes some members and goes
on; `lrjax.sweep` is the simplest such driver.
"""

from __future__ import annotations

import copy
import json
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from lrjax import _checkpoint, _configs
from lrjax import _validate as v
from lrjax._checks import check_batch_size, check_divergence_factor, check_task_and_optimizer, resolve_plateau
from lrjax._result import SweepResult, evaluated_on
from lrjax._stream import Streams, eval_batches
from lrjax._task import Task
from lrjax.engine import cache, hosts
from lrjax.engine.plan import DEFAULT_MEMORY_BUDGET, plan
from lrjax.engine.program import (
    CHUNK,
    DIVERGENCE_FACTOR,
    Layout,
    OptimizerFn,
    PlateauFn,
    PopulationState,
    Programs,
    seed_keys,
    stacked_axis,
)

Members = int | Sequence[int] | np.ndarray


def _state_difference(saved: Mapping[str, Any], given: Mapping[str, Any], most: int = 5) -> str:
    """Where a checkpoint's member state and the given task's and optimizer's differ, a few
    lines: the state leaves (path, dtype and shape) only one side has, and the example count."""
    lines = []
    if saved.get("examples") != given["examples"]:
        lines.append(f"  training examples: {saved.get('examples')} in the checkpoint, {given['examples']} given")
    if "paths" in saved:
        for side, mine, other in (
            ("checkpoint", saved["paths"], given["paths"]),
            ("given", given["paths"], saved["paths"]),
        ):
            only = [leaf for leaf in mine if leaf not in other]
            shown = ", ".join(only[:most]) + (f", … ({len(only) - most} more)" if len(only) > most else "")
            if only:
                lines.append(f"  only in the {side} state: {shown}")
    elif saved.get("structure") != given["structure"] or saved.get("leaves") != given["leaves"]:
        lines.append(f"  member state of {len(saved.get('leaves', []))} leaves saved, {len(given['leaves'])} given")
    return "\n".join(lines)


def _json_metadata(metadata: Mapping[str, Any] | None) -> dict[str, Any]:
    """``metadata`` as `Population.save` stores it: JSON that reads back equal to what was given
    (str keys, lists rather than tuples, finite numbers), else a `ValueError`."""
    if metadata is None:
        return {}
    if not isinstance(metadata, Mapping):
        raise ValueError(f"metadata must be a mapping of str keys to JSON values, got {type(metadata).__name__}")
    given = dict(metadata)
    try:
        stored = json.loads(json.dumps(given, allow_nan=False))
    except (TypeError, ValueError) as err:
        raise ValueError(f"metadata must be a mapping of str keys to JSON values: {err}") from None
    if stored != given:
        raise ValueError(
            "metadata must read back as given from JSON: str keys, lists rather than tuples, no "
            f"NumPy scalars; it would read back as {stored!r}"
        )
    return stored


class Population:
    """Members (configurations × seeds) training simultaneously in one compiled program.

    Member ``i * seeds + s`` starts as configuration ``i`` with seed ``s``; members sharing a seed
    share their initial parameters and, at every step of `advance`, their batch (the data order
    follows the population's clock, whatever each member's own step count). Schedules in the
    optimizer see the member's own count. Each operation compiles at its first use; afterwards
    nothing recompiles, whatever `advance`'s length or which members change.

    A task whose ``train_data`` is a stream (``train_data(seed) -> batches``) trains each seed
    on its own stream, batch after batch. A background thread reads the next chunk of 100
    steps' batches, checks them and puts them on the devices while a chunk trains, also
    between calls of `advance`; a chunk's batches
    count as read once it has trained. `save` records where every stream is after the last
    trained batch: a Grain iterator's state (``get_state``), which `restore` sets again; for any
    other iterable, the batches read, which `restore` skips on a stream made anew (exact when
    ``train_data(seed)`` yields the same batches each time it is called).

    Args:
      task: the `lrjax.Task` to train.
      optimizer: ``optimizer(hp) -> optax.GradientTransformation``, called inside the traced
        program with one member's hyperparameters (a dict of scalars, or schedules). It also
        receives ``value=`` (the member's training loss) in ``update``.
      configs: name -> one value per configuration (1-D arrays, or pytrees of them).
      batch_size: examples per step, drawn epoch by epoch without replacement; None: full batch.
      seed: the base seed of parameters and data order.
      seeds: seeds per configuration.
      devices: devices to shard the members over (default: all local devices; all global
        devices when `jax.distributed` runs several processes).
      memory_budget: bytes the state may take (`lrjax.engine.plan.state_bytes`); more raises `ValueError`. On
        CPU each device's members train in parts, one per core, at once (`lrjax.engine.parts`),
        which takes two more copies of the state; a population they do not fit trains whole.
      plateau: optional `lrjax.reduce_on_plateau(...)` (or ``optax.contrib.reduce_on_plateau``, or
        a function ``hp -> `` one, to sweep its arguments): each `evaluate` is one observation of
        each member's ``plateau_metric``, and the member's updates are multiplied by its scale
        until the next.
      plateau_metric: the evaluation metric the plateau observes.
      divergence_factor: f > 1, or None to switch it off. A member diverges (it is frozen and
        flagged, as when its loss or update is not finite) when its training loss ℓ exceeds
        its first loss ℓ₀ (at its own step 0) by more than (f − 1)·|ℓ₀|: with the default
        f = 100, a loss a hundred times its start, far above any minibatch noise (fastai's range
        test stops at 4 times its best smoothed loss).

    Example:
      >>> import optax, lrjax
      >>> task = lrjax.datasets.linear_regression()
      >>> pop = lrjax.Population(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.01, 0.1]})
      >>> pop.advance(50).shape
      (2, 50)
      >>> pop.copy(0, 1)                                     # the better into the worse
      >>> pop.set_configs(0, {"learning_rate": 0.2})        # perturb, keep its parameters
      >>> pop.steps.tolist()
      [50, 50]
    """

    def __init__(
        self,
        task: Task,
        optimizer: OptimizerFn,
        configs: Mapping[str, Any],
        *,
        batch_size: int | None = None,
        seed: int = 0,
        seeds: int = 1,
        devices: Sequence[Any] | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        plateau: Any = None,
        plateau_metric: str = "loss",
        divergence_factor: float | None = DIVERGENCE_FACTOR,
    ):
        hps, num_configs = _configs.check_configs(configs)
        divergence_factor = check_divergence_factor(divergence_factor)
        seeds = v.integer("seeds", seeds)
        seed = v.integer("seed", seed, minimum=0)
        memory_budget = v.integer("memory_budget", memory_budget)
        batch_size = check_batch_size(task, batch_size)
        hp = _configs.take(hps, 0)
        check_task_and_optimizer(task, optimizer, hp, plateau)
        plateau_fn = resolve_plateau(plateau)
        devices = tuple(devices or hosts.default_devices())
        layout = plan(
            task, optimizer, hp, num_configs, seeds, batch_size, devices, memory_budget, divergence_factor
        ).layout
        programs = cache.program_set(task, optimizer, plateau_fn, layout)
        self._metric_names = programs.programs.metric_names()
        if plateau_fn is not None and plateau_metric not in self._metric_names:
            raise ValueError(
                f"plateau_metric must be one of the task's metrics {self._metric_names}, got {plateau_metric!r}"
            )

        self.task, self.optimizer, self.plateau, self.plateau_metric = task, optimizer, plateau_fn, plateau_metric
        self.batch_size, self.seed, self.seeds, self.devices = batch_size, seed, seeds, devices
        self.divergence_factor = divergence_factor
        self._programs, self._layout = programs, layout
        self._configs = {k: _configs.take(value, np.repeat(np.arange(num_configs), seeds)) for k, value in hps.items()}
        self._active = np.ones(num_configs * seeds, bool)
        replicated = programs.programs.replicated
        self._keys = hosts.put(seed_keys(seed, seeds), replicated)
        if task.streamed:
            # The chunk reads (CHUNK, seeds, batch, ...) batches, each seed's on its seed's devices.
            per_step = NamedSharding(programs.programs.mesh, P(None, "seeds"))
            place = lambda batches: hosts.put(batches, per_step)
            self._streams: Streams | None = Streams(task.train_data, task.batch_like(None), seed, seeds, place)
            self._train_data = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct((CHUNK, seeds, *x.shape), x.dtype, sharding=per_step),
                task.batch_like(None),
            )
        else:
            self._streams = None
            self._train_data = hosts.put(task.train_data, replicated)
        if task.eval_streamed:  # evaluation compiles for the first batch's shapes, and the last's
            self._eval_data = jax.tree.map(
                lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=replicated), task.eval_like()
            )
        else:
            self._eval_data = self._train_data if task.eval_data is None else hosts.put(task.eval_data, replicated)
        self._clock = 0
        self._losses: list[np.ndarray] = []
        self._eval_steps: list[int] = []
        self._eval_metrics: list[dict[str, np.ndarray]] = []
        self._plateau_scale: list[np.ndarray] = []
        self._compile_seconds = 0.0
        self._metadata: dict[str, Any] = {}
        self._upload()
        self._ensure(["chunk", "init", "evaluate"] + (["observe"] if plateau_fn else []))
        self._state = self._run("init", self._device_hps, self._keys)

    # -- layout: members (size,) on the host <-> slots (seeds, configurations) on device -----

    def _to_slots(self, x: np.ndarray, pad: Any = None) -> np.ndarray:
        """(size, ...) -> (seeds, slots, ...); padding slots repeat the last configuration or hold ``pad``."""
        x = np.asarray(x)
        y = x.reshape((-1, self.seeds, *x.shape[1:])).swapaxes(0, 1)
        extra = self._layout.slots - y.shape[1]
        if extra:
            fill = (
                np.repeat(y[:, -1:], extra, axis=1)
                if pad is None
                else np.full((self.seeds, extra, *y.shape[2:]), pad, y.dtype)
            )
            y = np.concatenate([y, fill], axis=1)
        return np.ascontiguousarray(y)

    def _to_members(self, y: Any) -> np.ndarray:
        """(seeds, slots, ...) -> (size, ...), dropping padding slots."""
        y = hosts.host(y)[:, : self.size // self.seeds]
        return y.swapaxes(0, 1).reshape((self.size, *y.shape[2:]))

    def _upload(self) -> None:
        """Put the host's hyperparameters and active flags on the devices (no compilation)."""
        slots = self._programs.programs.slots
        self._device_hps = hosts.put(jax.tree.map(self._to_slots, self._configs), slots)
        self._device_active = hosts.put(self._to_slots(self._active, pad=False), slots)

    def _ensure(self, names: Sequence[str], eval_data: Any = None) -> None:
        eval_data = self._eval_data if eval_data is None else eval_data
        if all(self._programs.compiled(n, self._device_hps, eval_data) for n in names):
            return
        started = time.perf_counter()
        self._programs.ensure(names, self._device_hps, self._keys, self._train_data, eval_data)
        self._compile_seconds += time.perf_counter() - started

    def _run(self, name: str, *args: Any) -> Any:
        """Operation ``name`` on ``args``, compiled first if it is not (``evaluate``: for data
        like its last argument)."""
        if not self._programs.compiled(name, self._device_hps, args[-1]):
            self._ensure([name], args[-1] if name == "evaluate" else None)
        return self._programs(name, self._device_hps, *args)

    # -- inspection ---------------------------------------------------------------------------

    @property
    def size(self) -> int:
        """Number of members: configurations × seeds."""
        return int(self._active.size)

    @property
    def configs(self) -> dict[str, Any]:
        """Each member's hyperparameters: name -> (size,) host arrays (pytrees of them for
        pytree-valued configs), plus ``seed``, the member's seed index (a copy)."""
        out = {k: jax.tree.map(np.copy, value) for k, value in self._configs.items()}
        out["seed"] = np.tile(np.arange(self.seeds), self.size // self.seeds)
        return out

    @property
    def steps(self) -> np.ndarray:
        """(size,) updates each member has applied (a diverged member stops counting)."""
        return self._to_members(self._state.members.steps)

    @property
    def clock(self) -> int:
        """Steps the population has taken (`advance` calls summed): the position in the data."""
        return self._clock

    @property
    def active(self) -> np.ndarray:
        """(size,) whether each member trains in `advance`."""
        return self._active.copy()

    @property
    def diverged(self) -> np.ndarray:
        """(size,) whether each member diverged: its loss or update turned non-finite, or its loss
        exceeded ``divergence_factor`` times its first loss. It is then frozen."""
        return self._to_members(self._state.members.diverged)

    @property
    def diverged_at(self) -> np.ndarray:
        """(size,) the member's step count when it diverged, or −1."""
        return self._to_members(self._state.members.diverged_at)

    @property
    def params(self) -> Any:
        """Every member's parameters as host arrays with a leading (size,) axis."""
        return jax.tree.map(lambda x: self._to_members(self._to_slots_host(x)), self._state.members.params)

    @property
    def model_state(self) -> Any:
        """Every member's model state (`lrjax.Task`'s ``stateful``) as host arrays with a leading
        (size,) axis; None for a task without."""
        return jax.tree.map(lambda x: self._to_members(self._to_slots_host(x)), self._state.members.model_state)

    def __repr__(self) -> str:
        return (
            f"Population(task={self.task.name!r}, size={self.size}, seeds={self.seeds}, clock={self._clock}, "
            f"active={int(self._active.sum())}, diverged={int(self.diverged.sum())}, configs={sorted(self._configs)})"
        )

    # -- training -----------------------------------------------------------------------------

    def advance(self, steps: int) -> np.ndarray:
        """Train every active member for ``steps`` steps of the population's clock.

        Args:
          steps: >= 0 steps.

        Returns:
          (size, steps) training loss before each update; NaN where a member is inactive or
          diverged.
        """
        steps = v.integer("steps", steps, minimum=0)
        buffers = []
        counts = [min(CHUNK, steps - start) for start in range(0, steps, CHUNK)]
        try:
            for n, data in zip(counts, self._chunks_of_data(counts), strict=True):
                self._state, losses = self._run(
                    "chunk", self._state, self._device_hps, self._device_active, data, np.int32(n)
                )
                buffers.append((losses, n))
        finally:  # a stream that fails keeps the chunks trained before it
            done = sum(n for _, n in buffers)
            self._clock += done
            seeds_slots = (self.seeds, self._layout.slots)
            stacked = (
                np.concatenate([hosts.host(b)[:n] for b, n in buffers])
                if buffers
                else np.zeros((0, *seeds_slots), np.float32)
            )
            losses = self._to_members(np.moveaxis(stacked, 0, -1))
            self._losses.append(losses)
        return losses.copy()

    def _chunks_of_data(self, counts: Sequence[int]) -> Iterator[Any]:
        """The training data of each chunk of ``counts`` steps: the arrays on the devices, or a
        stream's next batches (`lrjax._stream.Streams`, read a chunk ahead on a background
        thread); a chunk's batches count as trained (a checkpoint resumes after them) once it
        has run."""
        if self._streams is None:
            yield from (self._train_data for _ in counts)
            return
        clock = self._clock
        for n in counts:
            yield self._streams.take(n, clock, ahead=CHUNK, pad_to=CHUNK)  # a stream's error surfaces here
            self._streams.commit(n)
            clock += n

    def evaluate(self) -> dict[str, np.ndarray]:
        """Every member's metrics on the task's eval data (or its training data).

        With a ``plateau``, this is one observation of ``plateau_metric`` for each active,
        not diverged member. The evaluation is recorded in `result`.

        Returns:
          name -> (size,) values; always ``loss``. A diverged member is evaluated at its last
          finite parameters.
        """
        members = self._state.members
        if self.task.eval_streamed:
            metrics = self._evaluate_stream(members.params, members.model_state)
        else:
            metrics = self._run("evaluate", members.params, members.model_state, self._eval_data)
        if self.plateau is not None:
            values = metrics[self.plateau_metric]
            self._state = self._run("observe", self._state, self._device_hps, values, self._device_active)
            self._plateau_scale.append(self._to_members(self._state.members.scale))
        host = {k: self._to_members(value) for k, value in hosts.host(metrics).items()}
        self._eval_steps.append(self._clock)
        self._eval_metrics.append(host)
        return {k: value.copy() for k, value in host.items()}

    def _evaluate_stream(self, params: Any, model_state: Any) -> dict[str, jax.Array]:
        """The metrics on one pass of the task's streamed ``eval_data``: Σ_k n_k · m_k / Σ_k n_k
        over its batches k of n_k examples, as `lrjax.engine.program.mean_over_batches` weighs
        arrays' batches. A batch is read and moved to the devices while the last one computes."""
        replicated = self._programs.programs.replicated
        totals, count = None, 0
        for batch, size in eval_batches(self.task.eval_data, self.task.eval_like()):
            values = self._run("evaluate", params, model_state, hosts.put(batch, replicated))
            weighted = {k: value * size for k, value in values.items()}
            totals = weighted if totals is None else {k: totals[k] + value for k, value in weighted.items()}
            count += size
        if totals is None:
            raise ValueError("eval_data() yielded no batch: each evaluation needs a whole pass over the eval set")
        return {k: total / count for k, total in totals.items()}

    # -- changes ------------------------------------------------------------------------------

    def _members_arg(self, name: str, members: Members, *, unique: bool = True) -> np.ndarray:
        """``members`` as an int array of member indices; raises naming ``name``."""
        arr = np.atleast_1d(np.asarray(members))
        if arr.ndim != 1 or not (np.issubdtype(arr.dtype, np.integer) or arr.size == 0):
            raise ValueError(f"{name} must be a member index or a 1-D sequence of them, got {members!r}")
        if np.any((arr < 0) | (arr >= self.size)):
            bad = arr[(arr < 0) | (arr >= self.size)]
            raise ValueError(
                f"{name} must be member indices in [0, {self.size}), got {bad[0].item()} in {arr.tolist()}"
            )
        if unique and len(np.unique(arr)) != arr.size:
            raise ValueError(f"{name} must not repeat a member, got {arr.tolist()}")
        return arr.astype(np.int64)

    def _updated_configs(self, name: str, configs: Mapping[str, Any], index: np.ndarray) -> dict[str, Any]:
        """The members' hyperparameters with ``configs`` written at ``index`` (a new dict; the
        population is untouched). A config not named keeps its values; a scalar leaf applies to
        every member in ``index``."""
        if not isinstance(configs, Mapping):
            raise ValueError(f"{name} must be a dict of name -> values, got {configs!r}")
        new = dict(self._configs)
        for key, value in configs.items():
            where = f"{name}[{key!r}]"
            if key not in self._configs:
                raise ValueError(
                    f"{name} has unknown name {key!r}; the population's configs are {sorted(self._configs)}"
                )
            value = _configs.as_tree(where, value)
            expected = jax.tree.structure(self._configs[key])
            if jax.tree.structure(value) != expected:
                raise ValueError(
                    f"{where} must have the structure of the population's {key!r} ({expected}), got {jax.tree.structure(value)}"
                )

            def write(old: np.ndarray, leaf: Any, where: str = where, key: str = key) -> np.ndarray:
                arr = _configs.check_values(where, key, leaf)
                if arr.ndim > 0 and arr.shape[0] != index.size:
                    raise ValueError(f"{where} must have one value per member ({index.size}), got {arr.shape[0]}")
                cast = arr.astype(old.dtype)
                if not np.array_equal(cast, arr):
                    raise TypeError(f"{where} must be of dtype {old.dtype} like the population's, got {arr.tolist()}")
                out = old.copy()
                out[index] = cast
                return out

            new[key] = jax.tree.map(write, self._configs[key], value)
        return new

    def replace(self, members: Members, configs: Mapping[str, Any]) -> None:
        """Start ``members`` afresh with new hyperparameters: their seed's initial parameters and
        model state, a new optimizer state, steps at 0 (so a task's per-step keys restart), not
        diverged. Configs not named keep their values.

        Args:
          members: member indices.
          configs: name -> one value per member in ``members`` (or one value for all).
        """
        index = self._members_arg("members", members)
        new = self._updated_configs("configs", configs, index)
        mask = np.zeros(self.size, bool)
        mask[index] = True
        old = self._configs
        self._configs = new
        self._upload()
        try:
            mask = hosts.put(self._to_slots(mask, pad=False), self._programs.programs.slots)
            self._state = self._run("reset", self._state, self._device_hps, self._keys, mask)
        except Exception:
            self._configs = old
            self._upload()
            raise

    def copy(self, dst: Members, src: Members) -> None:
        """Copy members ``src`` into ``dst``: parameters, model state, optimizer state, steps,
        divergence flags and hyperparameters (all reads happen before any write). ``dst`` keeps its
        seed's data stream and per-step keys (drawn at the step count it takes from ``src``) and its
        active flag.

        Args:
          dst: member indices to overwrite (no repeats).
          src: member indices to copy from, as many as ``dst``.
        """
        dst_index = self._members_arg("dst", dst)
        src_index = self._members_arg("src", src, unique=False)
        if dst_index.size != src_index.size:
            raise ValueError(f"dst and src must have the same length, got {dst_index.size} and {src_index.size}")
        source = np.arange(self.size)
        source[dst_index] = src_index
        configs, slots = self.size // self.seeds, self._layout.slots
        seed_of = np.tile(np.arange(self.seeds), configs)
        config_of = np.repeat(np.arange(configs), self.seeds)
        src_seed = np.tile(np.arange(self.seeds)[:, None], (1, slots)).astype(np.int32)
        src_slot = np.tile(np.arange(slots)[None, :], (self.seeds, 1)).astype(np.int32)
        src_seed[:, :configs] = self._to_slots(seed_of[source])[:, :configs]
        src_slot[:, :configs] = self._to_slots(config_of[source])[:, :configs]
        sharding = self._programs.programs.slots
        self._state = self._run("copy", self._state, hosts.put(src_seed, sharding), hosts.put(src_slot, sharding))
        self._configs = _configs.take(self._configs, source)
        self._upload()

    def set_configs(self, members: Members, configs: Mapping[str, Any]) -> None:
        """Give ``members`` new hyperparameter values; parameters, optimizer state and steps are
        untouched. Configs not named keep their values.

        Args:
          members: member indices.
          configs: name -> one value per member in ``members`` (or one value for all).
        """
        index = self._members_arg("members", members)
        self._configs = self._updated_configs("configs", configs, index)
        self._upload()

    def deactivate(self, members: Members) -> None:
        """Stop training ``members``: `advance` leaves their state as it is (their loss is NaN)."""
        self._active[self._members_arg("members", members, unique=False)] = False
        self._upload()

    def activate(self, members: Members) -> None:
        """Train ``members`` again from where they stopped."""
        self._active[self._members_arg("members", members, unique=False)] = True
        self._upload()

    # -- results ------------------------------------------------------------------------------

    def result(self) -> SweepResult:
        """A `SweepResult` of everything recorded so far: one row per member (slot), the training
        loss at every step of the clock, every evaluation, the current configs and parameters."""
        return SweepResult(
            configs={**_configs.columns(self._configs), "seed": self.configs["seed"]},
            train_loss=self._train_loss(),
            eval_steps=np.asarray(self._eval_steps, np.int64),
            eval_metrics=self._eval_history(),
            final_params=self.params,
            final_model_state=self.model_state,
            diverged=self.diverged,
            diverged_at=self.diverged_at,
            plateau_scale=self._by_evaluation(self._plateau_scale) if self.plateau is not None else None,
            info={
                "task": self.task.name,
                "steps": self._clock,
                "batch_size": self.batch_size,
                "seed": self.seed,
                "seeds": self.seeds,
                "devices": len(self.devices),
                "compile_seconds": self._compile_seconds,
                "metric_modes": dict(self.task.metric_modes),
                "evaluated_on": evaluated_on(self.task),
            },
        )

    # -- checkpoints --------------------------------------------------------------------------

    def save(self, path: str, *, metadata: Mapping[str, Any] | None = None) -> None:
        """Checkpoint everything that decides the future to the directory ``path`` (orbax-checkpoint):
        parameters, model states, optimizer and plateau states, hyperparameters, per-member steps and flags, the
        data-order keys and position, and the recorded history. Saving again replaces the
        checkpoint only once the new one is complete. See `restore`.

        ``metadata`` is stored beside them as JSON, and the restored population's `metadata`
        returns it: what a driver needs to know about the run (`lrjax.sweep` records which
        sweep and memory group a checkpoint belongs to).

        A streamed task's streams are saved where they are: the batches each seed has read and,
        for an iterator with ``get_state`` (Grain's), its state, which `restore` sets again
        (exact resume). Any other iterable is made again by ``train_data(seed)`` and the batches
        already read are skipped: exact if the stream yields the same batches each time it is
        made from the same seed.

        Args:
          path: a directory (made if needed; not an existing file).
          metadata: a mapping of str keys to JSON values (numbers, strings, booleans, None, lists
            and mappings of them).

        Raises:
          ValueError: ``path`` is an existing file, or ``metadata`` is not JSON (checked before
            anything is written).

        Example:
          >>> import optax, lrjax, tempfile
          >>> task = lrjax.datasets.linear_regression()
          >>> pop = lrjax.Population(task, lambda hp: optax.sgd(hp["learning_rate"]), {"learning_rate": [0.1]})
          >>> _ = pop.advance(20)
          >>> path = tempfile.mkdtemp()
          >>> pop.save(path, metadata={"run": "baseline", "steps_planned": 100})
          >>> again = lrjax.Population.restore(path, task, lambda hp: optax.sgd(hp["learning_rate"]))
          >>> again.metadata, again.clock
          ({'run': 'baseline', 'steps_planned': 100}, 20)
        """
        path = v.directory("path", path)
        extra = _json_metadata(metadata)
        names = sorted(self._configs)
        members = [self._to_slots_host(x) for x in jax.tree.leaves(self._state.members)]
        arrays = {
            "members": {str(i): x for i, x in enumerate(members)},
            "configs": {
                str(i): {str(j): leaf for j, leaf in enumerate(jax.tree.leaves(self._configs[n]))}
                for i, n in enumerate(names)
            },
            "data": {
                "order": hosts.host(self._state.order),
                "shuffle": hosts.host(self._state.shuffle),
                "keys": hosts.host(self._state.keys),
                "clock": hosts.host(self._state.clock),
            },
            "active": self._active,
            "train_loss": self._train_loss(),
            "eval_steps": np.asarray(self._eval_steps, np.int64),
            "eval": {str(i): values for i, values in enumerate(self._eval_history().values())},
        }
        if self.plateau is not None:
            arrays["plateau_scale"] = self._by_evaluation(self._plateau_scale)
        meta = {
            "task": self.task.name,
            "size": self.size,
            "seed": self.seed,
            "seeds": self.seeds,
            "batch_size": self.batch_size,
            "clock": self._clock,
            "plateau_metric": self.plateau_metric,
            "divergence_factor": self.divergence_factor,
            "streams": None if self._streams is None else self._streams.where(),
            "metrics": self._metric_names,
            "config_names": names,
            "config_structures": [str(jax.tree.structure(self._configs[n])) for n in names],
            "fingerprint": self._fingerprint(self.task, self.optimizer, self.plateau, self._configs, self.batch_size),
            "extra": extra,
        }
        _checkpoint.save(path, arrays, meta)

    @property
    def metadata(self) -> dict[str, Any]:
        """The ``metadata`` given to `save` for the checkpoint this population was restored from
        (a copy); ``{}`` for a population made by the constructor."""
        return copy.deepcopy(self._metadata)

    def _by_evaluation(self, values: Sequence[np.ndarray]) -> np.ndarray:
        """(size, evaluations) from one (size,) array per evaluation."""
        return np.stack(values, -1) if values else np.zeros((self.size, 0), np.float32)

    def _eval_history(self) -> dict[str, np.ndarray]:
        """name -> (size, evaluations), in `metric_names` order."""
        return {k: self._by_evaluation([m[k] for m in self._eval_metrics]) for k in self._metric_names}

    def _train_loss(self) -> np.ndarray:
        """(size, clock) the training loss recorded by every `advance`."""
        return np.concatenate(self._losses, axis=1) if self._losses else np.zeros((self.size, 0), np.float32)

    def _to_slots_host(self, x: jax.Array) -> np.ndarray:
        """A member-state leaf as a host array (seeds, configurations, ...), padding dropped."""
        return np.moveaxis(hosts.host(x), stacked_axis(x), 1)[:, : self.size // self.seeds]

    @staticmethod
    def _fingerprint(
        task: Task,
        optimizer: OptimizerFn,
        plateau: PlateauFn | None,
        configs: Mapping[str, Any],
        batch_size: int | None,
    ) -> dict:
        """What a checkpoint's state must match: one member's state structure, shapes and dtypes
        (from shapes; nothing runs), the number of training examples and the batch size."""
        programs = Programs(task, optimizer, plateau, Layout(1, 1, batch_size, tuple(jax.local_devices()[:1])))
        one = programs.member_shapes(_configs.take(configs, 0))
        with_paths = jax.tree_util.tree_flatten_with_path(one)[0]
        return {
            "structure": str(jax.tree.structure(one)),
            "leaves": [[list(x.shape), np.dtype(x.dtype).str] for x in jax.tree.leaves(one)],
            "examples": None if task.streamed else task.num_train,
            # For the error message only (checkpoints written before it lack it):
            "paths": [f"{jax.tree_util.keystr(k)} {np.dtype(x.dtype).name}{list(x.shape)}" for k, x in with_paths],
        }

    @classmethod
    def restore(
        cls,
        path: str,
        task: Task,
        optimizer: OptimizerFn,
        *,
        configs: Mapping[str, Any] | None = None,
        devices: Sequence[Any] | None = None,
        memory_budget: int = DEFAULT_MEMORY_BUDGET,
        plateau: Any = None,
    ) -> Population:
        """The population saved in ``path`` by `save`, continuing exactly where it stopped.

        On the same number of devices it continues bitwise identically to a population never
        interrupted; on another, within float32 summation order.

        Args:
          path: a directory written by `save`.
          task, optimizer, plateau: as given to the saved population (the same structure; the
            checkpoint is checked against them).
          configs: needed only when a config value is a pytree other than an array (e.g. a
            batch of schedules): any configs of the same structure, such as those the
            population was created with; their values are ignored.
          devices, memory_budget: as for `Population`.

        Raises:
          FileNotFoundError: no such directory.
          ValueError: no complete checkpoint, a corrupt one, or one written for a different
            task, optimizer, plateau or config structure.
        """
        path = os.fspath(path)
        arrays, meta = _checkpoint.load(path)
        names, structures = meta["config_names"], meta["config_structures"]
        if configs is not None:
            like, _ = _configs.check_configs(configs)
            if sorted(like) != names:
                raise ValueError(f"configs must have the checkpoint's names {names}, got {sorted(like)}")
            trees = [jax.tree.structure(like[n]) for n in names]
        else:
            trees = [jax.tree.structure(np.zeros(1))] * len(names)
        for name, tree, saved in zip(names, trees, structures, strict=True):
            if str(tree) != saved:
                hint = "" if configs is not None else "; pass configs= with that structure"
                raise ValueError(f"config {name!r} in {path!r} has structure {saved}, got {tree}{hint}")
        member_configs = {
            n: jax.tree.unflatten(tree, [arrays["configs"][str(i)][str(j)] for j in range(tree.num_leaves)])
            for i, (n, tree) in enumerate(zip(names, trees, strict=True))
        }
        plateau_fn = resolve_plateau(plateau)
        if (plateau_fn is None) != ("plateau_scale" not in arrays):
            raise ValueError(
                f"the checkpoint in {path!r} was saved {'with' if 'plateau_scale' in arrays else 'without'} a plateau; "
                f"restore it {'with' if 'plateau_scale' in arrays else 'without'} one"
            )
        fingerprint = cls._fingerprint(task, optimizer, plateau_fn, member_configs, meta["batch_size"])
        saved = meta["fingerprint"]
        if any(fingerprint[k] != saved.get(k) for k in ("structure", "leaves", "examples")):
            raise ValueError(
                f"the checkpoint in {path!r} was written for a different task, optimizer or plateau:\n"
                + _state_difference(saved, fingerprint)
            )
        seeds = meta["seeds"]
        pop = cls(
            task,
            optimizer,
            _configs.take(member_configs, np.arange(0, meta["size"], seeds)),
            batch_size=meta["batch_size"],
            seed=meta["seed"],
            seeds=seeds,
            devices=devices,
            memory_budget=memory_budget,
            plateau=plateau,
            plateau_metric=meta["plateau_metric"],
            divergence_factor=meta["divergence_factor"],
        )
        pop._load(arrays, meta, member_configs)
        if pop._streams is not None:
            pop._streams.restore(meta["streams"])
        return pop

    def _load(self, arrays: Mapping[str, Any], meta: Mapping[str, Any], member_configs: Mapping[str, Any]) -> None:
        """Take the state and history of a checkpoint (see `restore`)."""
        self._configs = dict(member_configs)
        self._active = np.asarray(arrays["active"], bool)
        self._upload()
        shapes = self._programs.programs.state_shapes(self._device_hps)
        slots = self._layout.slots

        def place(saved: np.ndarray, like: jax.ShapeDtypeStruct) -> jax.Array:
            extra = slots - saved.shape[1]
            padded = np.concatenate([saved, np.repeat(saved[:, -1:], extra, axis=1)], axis=1) if extra else saved
            return hosts.put(np.moveaxis(padded, 1, stacked_axis(padded)), like.sharding)

        members = [arrays["members"][str(i)] for i in range(len(arrays["members"]))]
        members = jax.tree.unflatten(
            jax.tree.structure(shapes.members),
            [place(x, s) for x, s in zip(members, jax.tree.leaves(shapes.members), strict=True)],
        )
        data = arrays["data"]
        self._state = PopulationState(
            members,
            *(
                hosts.put(data[k], like.sharding)
                for k, like in zip(("order", "shuffle", "keys", "clock"), shapes[1:], strict=True)
            ),
        )
        self._clock = int(meta["clock"])
        self._metadata = meta["extra"]
        self._losses = [np.asarray(arrays["train_loss"], np.float32)]
        self._eval_steps = [int(t) for t in arrays["eval_steps"]]
        evals = [arrays["eval"][str(i)] for i in range(len(self._metric_names))]
        self._eval_metrics = [
            {k: value[:, e] for k, value in zip(self._metric_names, evals, strict=True)}
            for e in range(len(self._eval_steps))
        ]
        if self.plateau is not None:
            self._plateau_scale = [arrays["plateau_scale"][:, e] for e in range(len(self._eval_steps))]
