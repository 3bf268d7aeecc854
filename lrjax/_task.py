"""`Task`: what a sweep trains. An init function, a loss, data, and optional metrics; optionally
a random key per step (dropout) and model state carried between steps (BatchNorm)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, TypedDict, Unpack

import jax
import jax.numpy as jnp
import numpy as np

from lrjax import _validate as v
from lrjax._stream import first_batch, stream_seed

Params = Any
ModelState = Any
Batch = Any
LossFn = Callable[..., Any]
MetricsFn = Callable[..., Mapping[str, jax.Array]]
TrainData = tuple[Any, Any] | Callable[[int], Iterable[Any]]
LossArg = str | Callable[[jax.Array, jax.Array], jax.Array]


class SupervisedOptions(TypedDict, total=False):
    """The keyword arguments `Task.from_linen`, `Task.from_nnx` and `Task.from_equinox` share,
    all optional.

    Keys:
      loss: ``"cross_entropy"`` (the default: logits against integer labels of the outputs'
        shape less the class axis; accuracy is reported too), ``"mse"`` (targets of the
        outputs' shape), or ``loss(predictions, targets) -> scalar``.
      eval_data: held-out ``(inputs, targets)``, or a stream of them, ``eval_data()`` (`Task`);
        default none.
      name: the task's name (default: the module's class name for linen, ``"nnx"``,
        ``"equinox"``).
      eval_batch_size: evaluate in batches of this many examples (`Task`).
      augment: ``augment(key, batch) -> batch`` on every training batch, on the device (`Task`).

    Example:
      >>> import equinox as eqx, lrjax
      >>> train, held_out = lrjax.datasets.load_digits()
      >>> options: lrjax.SupervisedOptions = {"eval_data": held_out, "name": "linear", "eval_batch_size": 100}
      >>> make = lambda key: eqx.nn.Sequential([eqx.nn.Lambda(lambda x: x.reshape(-1)),
      ...                                       eqx.nn.Linear(64, 10, key=key)])
      >>> task = lrjax.Task.from_equinox(make, train, **options)
      >>> task.name, task.eval_batch_size, task.eval_data[0].shape
      ('linear', 100, (359, 8, 8))
    """

    loss: LossArg
    eval_data: tuple[Any, Any] | Callable[[], Iterable[Any]] | None
    name: str | None
    eval_batch_size: int | None
    augment: Callable[[jax.Array, Any], Any] | None


def key_shape() -> jax.ShapeDtypeStruct:
    """The shape and dtype of a key from ``jax.random.key``, to trace a function that takes one
    (``jax.eval_shape``) without making one: a concrete key is an eager computation, which
    compiles the first time a process makes it.

    Returns:
      A scalar `jax.ShapeDtypeStruct` of the default key dtype.
    """
    return jax.eval_shape(lambda: jax.random.key(0))


def _check_data(name: str, data: Any) -> Any:
    """``data`` as a pytree of host arrays sharing a leading (examples) axis, all finite."""
    if not isinstance(data, (tuple, list, Mapping)) and hasattr(data, "__iter__") and not hasattr(data, "__array__"):
        make = "lambda seed: <the pipeline for seed>" if name == "train_data" else "lambda: <one pass over it>"
        raise ValueError(
            f"{name} is an iterable of batches ({type(data).__name__}), not arrays: pass a function that makes "
            f"the stream, {name}={make}, so it can be made again (each seed, each evaluation, on resume)"
        )
    leaves, treedef = jax.tree.flatten(data)
    if not leaves:
        raise ValueError(f"{name} must be a pytree of arrays with a leading examples axis, got {data!r}")
    arrays = []
    for path, leaf in jax.tree_util.tree_flatten_with_path(data)[0]:
        where = f"{name}{jax.tree_util.keystr(path)}"
        arr = v.numeric_array(where, leaf)
        if arr.ndim == 0:
            raise ValueError(f"{where} must have a leading examples axis, got a scalar")
        arrays.append(arr)
    sizes = {a.shape[0] for a in arrays}
    if len(sizes) != 1:
        shapes = [a.shape for a in arrays]
        raise ValueError(f"{name} arrays must share their leading (examples) axis, got shapes {shapes}")
    if sizes == {0}:
        raise ValueError(f"{name} must contain at least one example, got 0")
    return jax.tree.unflatten(treedef, arrays)


@dataclasses.dataclass(frozen=True, eq=False, repr=False)
class Task:
    """A training problem for `lrjax.sweep`.

    The functions' signatures follow the two flags, which the task states (lrjax does not
    guess them from signatures)::

        init(key) -> params                                   (stateful: (params, model_state))
        loss(params, [model_state,] batch, [key]) -> scalar   (stateful: (scalar, new_model_state))
        metrics(params, [model_state,] data) -> {name: scalar}

    Attributes:
      init: ``init(key) -> params``, any pytree of arrays; with ``stateful``, ``(params,
        model_state)``.
      loss: ``loss(params, batch) -> scalar`` or ``(scalar, aux)``; ``batch`` has the structure
        of ``train_data`` with a leading batch axis. With ``rng`` a key comes last; with
        ``stateful`` the model state comes second and the loss returns ``(scalar,
        new_model_state)``.
      train_data: a pytree of arrays whose leading axes (examples) agree; or a stream,
        ``train_data(seed) -> iterable of batches`` (a Grain dataset or loader, a generator over
        files): each seed of a population trains on ``train_data(lrjax.engine.stream_seed(seed,
        index))``, batch after batch, every batch of the first one's shapes (the stream decides
        the batch size; ``eval_data`` is then required). See `lrjax.Population` for where a
        stream resumes.
      eval_data: optional held-out data with the same structure: arrays, or a stream,
        ``eval_data() -> iterable of batches`` called for each evaluation, one whole pass over
        the held-out set (a Grain dataset without shuffling or repeating): every batch of the
        first one's size except the last, which may be smaller. The metrics are then the means
        of the batches' values weighted by their sizes, as with ``eval_batch_size``.
      metrics: optional ``metrics(params, data) -> {name: scalar}`` evaluated on ``eval_data``
        (or ``train_data``) at each evaluation; the mean ``loss`` is always reported too. With
        ``rng`` or ``stateful`` it is required and reports ``loss`` itself, computed as the
        model is evaluated (no dropout, running statistics): the engine cannot switch the
        training loss to evaluation.
      name: used in tables and plots.
      info: facts about the problem (e.g. a quadratic's Hessian and eigenvalues).
      metric_modes: ``{name: "min" | "max"}`` for metrics whose direction lrjax does not know
        by name (`lrjax.SweepResult.best` knows ``loss``, ``accuracy``, ...).
      rng: the loss takes a key last, for dropout and other noise. A member's key at a step is
        ``fold_in(fold_in(seed_key, 2), step)`` with its seed's key and its own step count
        (`lrjax.engine.step_key`): members that share a seed draw the same masks (common random
        numbers, as they share batches), and `lrjax.Population.replace` restarts the sequence.
      stateful: the task carries non-trainable model state per member (BatchNorm's running
        statistics, EMA weights, counters): ``init`` returns it beside the parameters, the loss
        takes it and returns its new value, the optimizer never sees it, and evaluation reads it.
      eval_batch_size: evaluate in batches of this many examples (the last one partial)
        instead of the whole set at once, for eval data too large for one batch (a streamed
        ``eval_data`` decides its own batches). Each metric
        is then the mean of its batch values weighted by their sizes: equal to the whole-set
        value for metrics that are means over examples (loss, accuracy), which metrics must be
        to be batched.
      augment: ``augment(key, batch) -> batch``, applied to every training batch on the device,
        inside the compiled step (random crops, flips, noise), never to evaluation. Its key is
        per seed and per step of the population's clock (`lrjax.engine.augment_key`): members
        that share a seed train on the same augmented batch, as they share the batch. It must
        return arrays of the batch's structure, shapes and dtypes.

    Equality is identity. Compiled programs live in the engine's bounded cache
    (`lrjax.engine.cache`), keyed by the task; a new task whose programs lower to the same XLA
    computation reuses the compiled executables.

    Example:
      >>> import jax, jax.numpy as jnp, numpy as np, lrjax
      >>> x = np.linspace(-1, 1, 64, dtype=np.float32)
      >>> task = lrjax.Task(init=lambda key: jnp.zeros(2),
      ...                   loss=lambda w, batch: jnp.mean((w[0] * batch[0] + w[1] - batch[1]) ** 2),
      ...                   train_data=(x, 3 * x - 1), name="line")
      >>> task.num_train, round(float(task.loss(task.init(jax.random.key(0)), task.train_data)), 4)
      (64, 4.0952)
    """

    init: Callable[[jax.Array], Params]
    loss: LossFn
    train_data: Any
    eval_data: Any = None
    metrics: MetricsFn | None = None
    name: str = "task"
    info: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    metric_modes: Mapping[str, str] = dataclasses.field(default_factory=dict)
    rng: bool = dataclasses.field(default=False, kw_only=True)
    stateful: bool = dataclasses.field(default=False, kw_only=True)
    eval_batch_size: int | None = dataclasses.field(default=None, kw_only=True)
    augment: Callable[[jax.Array, Any], Any] | None = dataclasses.field(default=None, kw_only=True)
    # Set by __post_init__: the shapes of the training data (a stream's first batch) and the eval data's.
    _first: Any = dataclasses.field(init=False, repr=False)
    _eval_first: Any = dataclasses.field(init=False, repr=False)

    def __post_init__(self) -> None:
        for field in ("init", "loss"):
            if not callable(getattr(self, field)):
                raise TypeError(f"{field} must be callable, got {getattr(self, field)!r}")
        if self.metrics is not None and not callable(self.metrics):
            raise TypeError(f"metrics must be callable or None, got {self.metrics!r}")
        for flag in ("rng", "stateful"):
            if not isinstance(getattr(self, flag), bool):
                raise TypeError(f"{flag} must be True or False, got {getattr(self, flag)!r}")
        self._check_signatures()
        if self.eval_batch_size is not None:
            v.integer("eval_batch_size", self.eval_batch_size)
        if self.augment is not None and not callable(self.augment):
            raise TypeError(f"augment must be callable (augment(key, batch) -> batch) or None, got {self.augment!r}")
        if not isinstance(self.metric_modes, Mapping):
            raise TypeError(f"metric_modes must be a dict of metric name -> 'min' or 'max', got {self.metric_modes!r}")
        for name, mode in self.metric_modes.items():
            if mode not in ("min", "max"):
                raise ValueError(f"metric_modes[{name!r}] must be 'min' or 'max', got {mode!r}")
        if self.streamed:  # a batch of the stream, for shapes only
            train_data = first_batch("train_data(seed)", self.train_data(stream_seed(0, 0)))
            if self.eval_data is None:
                raise ValueError(
                    "eval_data is required when train_data is a stream (train_data(seed) -> batches): "
                    "evaluation needs data of its own, arrays or a stream eval_data() -> batches"
                )
        else:
            train_data = _check_data("train_data", self.train_data)
        if self.eval_streamed:
            if self.eval_batch_size is not None:
                raise ValueError(
                    "eval_batch_size is for eval_data as arrays; a streamed eval_data (eval_data() -> batches) "
                    "decides its own batches: drop eval_batch_size"
                )
            eval_data = first_batch("eval_data()", self.eval_data())
        else:
            eval_data = None if self.eval_data is None else _check_data("eval_data", self.eval_data)
        if eval_data is not None and jax.tree.structure(eval_data) != jax.tree.structure(train_data):
            raise ValueError("eval_data must have the same pytree structure as train_data")
        shapes = lambda data: jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), data)
        object.__setattr__(self, "_first", shapes(train_data))  # the stream's batch, or the whole training set
        object.__setattr__(self, "_eval_first", None if eval_data is None else shapes(eval_data))
        # Only now, with everything checked, move the data to the device (once per task).
        if not self.streamed:
            object.__setattr__(self, "train_data", jax.tree.map(jnp.asarray, train_data))
        if not self.eval_streamed:
            object.__setattr__(self, "eval_data", None if eval_data is None else jax.tree.map(jnp.asarray, eval_data))

    def _check_signatures(self) -> None:
        """The loss and metrics take the arguments the flags say, or a `ValueError` says what
        to change (a function whose signature Python cannot read is not checked)."""
        state = ["model_state"] if self.stateful else []
        loss_args = ["params", *state, "batch"] + (["key"] if self.rng else [])
        flags = f"Task(rng={self.rng}, stateful={self.stateful})"
        if not _binds(self.loss, len(loss_args)):
            hints = []
            if _binds(self.loss, len(loss_args) + 1):
                hints += [] if self.rng else ["if it takes a random key last, pass rng=True"]
                hints += [] if self.stateful else ["if it takes model state second, pass stateful=True"]
            elif _binds(self.loss, len(loss_args) - 1):
                hints += ["if it takes no key, drop rng=True"] if self.rng else []
                hints += ["if it takes no model state, drop stateful=True"] if self.stateful else []
            hint = f": {'; '.join(hints)}" if hints else ""
            raise ValueError(f"loss must take ({', '.join(loss_args)}) as {flags} calls it{hint}")
        if self.metrics is None:
            if self.rng or self.stateful:
                raise ValueError(
                    f"metrics is required with {flags}: give metrics(params, {'model_state, ' * self.stateful}data) "
                    "reporting 'loss' as the model is evaluated (no dropout, running statistics)"
                )
        elif not _binds(self.metrics, 2 + self.stateful):
            raise ValueError(f"metrics must take (params, {'model_state, ' * self.stateful}data) as {flags} calls it")

    def initial(self, key: jax.Array) -> tuple[Params, ModelState]:
        """A member's starting point: ``(params, model_state)``, ``model_state`` None unless the
        task is ``stateful``.

        Args:
          key: the member's initialization key (`lrjax.engine.init_key`).

        Returns:
          ``(params, model_state)``.
        """
        out = self.init(key)
        if not self.stateful:
            return out, None
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(
                f"init must return (params, model_state) for a stateful Task, got {type(out).__name__}: "
                "return the model state beside the parameters, or drop stateful=True"
            )
        return out

    def step_loss(self, params: Params, model_state: ModelState, batch: Batch, key: jax.Array | None) -> tuple:
        """The training loss of one step and the model state after it.

        Args:
          params: the parameters.
          model_state: the model state (None unless ``stateful``).
          batch: a batch of ``train_data``.
          key: the member's key at this step (unused unless ``rng``).

        Returns:
          ``(loss, new_model_state)``: a scalar and, unless ``stateful``, None.
        """
        args = (params, *([model_state] if self.stateful else []), batch, *([key] if self.rng else []))
        out = self.loss(*args)
        if not self.stateful:
            return (out[0] if isinstance(out, tuple) else out), None
        if not (isinstance(out, tuple) and len(out) == 2):
            raise ValueError(
                f"loss must return (scalar, new_model_state) for a stateful Task, got {type(out).__name__}: "
                "return the model state after the step (the same state if nothing changes)"
            )
        return out

    def evaluate(self, params: Params, model_state: ModelState, data: Any) -> dict[str, jax.Array]:
        """The metrics on ``data`` as float32 scalars, always with ``loss``.

        Args:
          params: the parameters.
          model_state: the model state (None unless ``stateful``).
          data: evaluation data, like ``eval_data``.

        Returns:
          ``{name: float32 scalar}``: ``metrics``' values, and the loss on ``data`` as ``loss``
          unless ``metrics`` reports it.
        """
        out = {}
        if self.metrics is not None:
            out = dict(self.metrics(params, *([model_state] if self.stateful else []), data))
        if "loss" not in out:
            if self.rng or self.stateful:
                raise ValueError(
                    f"metrics must report 'loss' for a Task with rng={self.rng}, stateful={self.stateful} "
                    f"(it reports {sorted(out)}): the training loss cannot be switched to evaluation"
                )
            out["loss"] = self.step_loss(params, None, data, None)[0]
        return {k: jnp.asarray(value, jnp.float32) for k, value in out.items()}

    def __repr__(self) -> str:
        shapes = [tuple(x.shape[1:]) for x in jax.tree.leaves(self._first)]
        evals = "none"
        if self.eval_data is not None:
            n = jax.tree.leaves(self._eval_first)[0].shape[0]
            evals = f"a stream of batches of {n}" if self.eval_streamed else f"{n} examples"
        train = f"a stream of batches of {self.stream_batch_size}" if self.streamed else f"{self.num_train} examples"
        return (
            f"Task({self.name!r}, train={train} of shapes {shapes}, eval={evals}, "
            f"metrics={'yes' if self.metrics is not None else 'loss only'})"
        )

    @property
    def streamed(self) -> bool:
        """Whether ``train_data`` is a stream, ``train_data(seed) -> iterable of batches``."""
        return callable(self.train_data)

    @property
    def eval_streamed(self) -> bool:
        """Whether ``eval_data`` is a stream, ``eval_data() -> iterable of batches``."""
        return callable(self.eval_data)

    def eval_like(self) -> Any:
        """Shapes and dtypes (`jax.ShapeDtypeStruct`) of the data the metrics see at once: a
        streamed ``eval_data``'s first batch, ``eval_batch_size`` examples of it, all of it, or
        the training data for a task without ``eval_data``.

        Returns:
          A pytree of `jax.ShapeDtypeStruct` like ``train_data``.
        """
        data = self._first if self.eval_data is None else self._eval_first
        if self.eval_streamed or self.eval_batch_size is None:
            return data
        b = self.eval_batch_size
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct((min(b, x.shape[0]), *x.shape[1:]), x.dtype), data)

    @property
    def num_train(self) -> int:
        """Number of training examples (arrays only: a stream's is not known).

        Raises:
          ValueError: ``train_data`` is a stream.
        """
        if self.streamed:
            raise ValueError("train_data is a stream: it has no number of examples; this needs train_data as arrays")
        return int(jax.tree.leaves(self.train_data)[0].shape[0])

    @property
    def stream_batch_size(self) -> int:
        """Examples in each batch of a streamed ``train_data`` (its first batch's leading axis)."""
        return int(jax.tree.leaves(self._first)[0].shape[0])

    def batch_like(self, batch_size: int | None) -> Any:
        """Shapes and dtypes (`jax.ShapeDtypeStruct`) of one training batch: of ``batch_size``
        examples (None: all of them), or the stream's batches.

        Args:
          batch_size: examples per step, None for the full batch (or a stream's own).

        Returns:
          A pytree of `jax.ShapeDtypeStruct` like ``train_data``.
        """
        if self.streamed:
            return self._first
        b = batch_size or self.num_train
        return jax.tree.map(lambda x: jax.ShapeDtypeStruct((b, *x.shape[1:]), x.dtype), self._first)

    @classmethod
    def from_linen(
        cls,
        module: Any,
        train_data: TrainData,
        *,
        rngs: Sequence[str] = (),
        mutable: Sequence[str] | None = None,
        train_kwargs: Mapping[str, Any] | None = None,
        eval_kwargs: Mapping[str, Any] | None = None,
        **options: Unpack[SupervisedOptions],
    ) -> Task:
        """A supervised task from a ``flax.linen`` module and ``(inputs, targets)`` data.

        Parameters are ``module.init({"params": key}, inputs[:1], **eval_kwargs)["params"]``;
        every other collection it creates (``batch_stats``) is model state. Training computes
        ``module.apply(variables, inputs, rngs={stream: key}, mutable=mutable, **train_kwargs)``
        with the member's key at the step (`lrjax.engine.step_key`; several streams split it in
        the order given) and keeps the updated collections; evaluation computes
        ``module.apply(variables, inputs, **eval_kwargs)``, no dropout, running statistics.

        Args:
          module: the ``flax.linen.Module``.
          train_data: ``(inputs, targets)`` with a leading examples axis, or a stream of such
            batches, ``train_data(seed)`` (`Task`).
          rngs: the rng streams the module draws from in training, e.g. ``("dropout",)``.
          mutable: the collections training updates (default: every collection besides
            ``params``); the others are carried unchanged.
          train_kwargs, eval_kwargs: the module's train/eval switch as keyword arguments of its
            ``__call__``, e.g. ``{"train": True}`` and ``{"train": False}``, or
            ``{"deterministic": False}`` and ``{"deterministic": True}``.
          **options: `SupervisedOptions`: ``loss`` (default ``"cross_entropy"``), ``eval_data``,
            ``name`` (default: the module's class name), ``eval_batch_size``, ``augment``.

        Returns:
          A `Task` with ``rng`` when ``rngs`` names a stream and ``stateful`` when the module has
          collections besides ``params``.

        Raises:
          ValueError: targets of a shape that does not fit the outputs; a stream the module
            draws from that ``rngs`` lacks; a collection it updates that ``mutable`` lacks; a
            switch that does not switch (training that never updates ``batch_stats``, or an
            evaluation that never reads it).

        Example:
          >>> import flax.linen as nn, lrjax
          >>> class Net(nn.Module):
          ...     @nn.compact
          ...     def __call__(self, x, train: bool):
          ...         x = nn.Dense(32)(x.reshape(x.shape[0], -1))
          ...         x = nn.BatchNorm(use_running_average=not train)(x)
          ...         x = nn.Dropout(0.2, deterministic=not train)(nn.relu(x))
          ...         return nn.Dense(10)(x)
          >>> train, held_out = lrjax.datasets.load_digits()
          >>> task = lrjax.Task.from_linen(Net(), train, eval_data=held_out, rngs=("dropout",),
          ...                              train_kwargs={"train": True}, eval_kwargs={"train": False})
          >>> task.rng, task.stateful
          (True, True)
        """
        from lrjax import _flax, _supervised

        def build(sample: tuple[Any, Any]) -> Any:
            x = np.asarray(sample[0][:1])
            return _flax.linen_model(
                module, x, rngs=rngs, mutable=mutable, train_kwargs=train_kwargs, eval_kwargs=eval_kwargs
            )

        return _supervised.supervised(build, train_data, "Task.from_linen", type(module).__name__, options)

    @classmethod
    def from_nnx(
        cls,
        make_model: Callable[[Any], Any],
        train_data: TrainData,
        *,
        rngs: Sequence[str] = (),
        **options: Unpack[SupervisedOptions],
    ) -> Task:
        """A supervised task from a ``flax.nnx`` module: ``make_model(rngs: nnx.Rngs) -> Module``.

        ``make_model`` receives ``nnx.Rngs(params=key, **{stream: ...})`` for each stream in
        ``rngs``. The module's ``nnx.Param`` variables are the parameters; its other variables
        (``nnx.BatchStat``, counters) are model state. Training runs the module after
        ``model.train()``, each stream reseeded with the member's key at the step (as
        ``nnx.reseed(model, dropout=key)``; several streams split it in the order given);
        evaluation runs it after ``model.eval()``.

        Args:
          make_model: builds the module from its ``nnx.Rngs``.
          train_data: ``(inputs, targets)`` with a leading examples axis, or a stream of such
            batches, ``train_data(seed)`` (`Task`).
          rngs: the streams the module draws from in training, e.g. ``("dropout",)``.
          **options: `SupervisedOptions`: ``loss``, ``eval_data``, ``name`` (default
            ``"nnx"``), ``eval_batch_size``, ``augment``.

        Returns:
          A `Task` with ``rng`` when ``rngs`` names a stream and ``stateful`` when the module has
          variables besides its parameters and rng state.

        Raises:
          ValueError: targets of a shape that does not fit the outputs; a stream the module
            asks for or holds that ``rngs`` lacks; a BatchNorm that ``train()`` / ``eval()`` do
            not switch.

        Example:
          >>> from flax import nnx
          >>> import lrjax
          >>> class Net(nnx.Module):
          ...     def __init__(self, rngs):
          ...         self.hidden = nnx.Linear(64, 32, rngs=rngs)
          ...         self.norm = nnx.BatchNorm(32, rngs=rngs)
          ...         self.drop = nnx.Dropout(0.2, rngs=rngs)
          ...         self.out = nnx.Linear(32, 10, rngs=rngs)
          ...     def __call__(self, x):
          ...         x = self.norm(self.hidden(x.reshape(x.shape[0], -1)))
          ...         return self.out(self.drop(nnx.relu(x)))
          >>> train, held_out = lrjax.datasets.load_digits()
          >>> task = lrjax.Task.from_nnx(Net, train, eval_data=held_out, rngs=("dropout",))
          >>> task.rng, task.stateful
          (True, True)
        """
        from lrjax import _flax, _supervised

        build = lambda _: _flax.nnx_model(make_model, rngs=rngs)
        return _supervised.supervised(build, train_data, "Task.from_nnx", "nnx", options)

    @classmethod
    def from_equinox(
        cls,
        make_model: Callable[[jax.Array], Any],
        train_data: TrainData,
        *,
        rng: bool = False,
        **options: Unpack[SupervisedOptions],
    ) -> Task:
        """A supervised task from an ``equinox.Module`` (``pip install 'lrjax[equinox]'``).

        ``make_model(key)`` returns the module, or ``(module, state)`` for stateful layers
        (``lambda key: equinox.nn.make_with_state(Net)(key=key)``). The module's floating-point
        arrays are the parameters (``equinox.filter(module, equinox.is_inexact_array)``), the
        rest is static, and the ``equinox.nn.State`` is model state. The module takes one
        example, as Equinox modules do: training computes ``jax.vmap(module, axis_name="batch")``
        over the batch (``module(x, state)`` with state, returning ``(y, state)``; ``key=`` of
        ``jax.random.split(key, batch)`` with ``rng``), so a BatchNorm is given
        ``axis_name="batch"``; evaluation runs ``equinox.nn.inference_mode(module)``.

        Args:
          make_model: builds the module (and state) from a key.
          train_data: ``(inputs, targets)`` with a leading examples axis, or a stream of such
            batches, ``train_data(seed)`` (`Task`).
          rng: the module takes ``key=`` in training (``equinox.nn.Dropout``).
          **options: `SupervisedOptions`: ``loss``, ``eval_data``, ``name`` (default
            ``"equinox"``), ``eval_batch_size``, ``augment``.

        Returns:
          A `Task` with ``rng`` as given and ``stateful`` when ``make_model`` returns a state.

        Raises:
          ValueError: targets of a shape that does not fit the outputs; a non-float array in the
            module (lrjax cannot train it or carry it there); a stateful layer that
            ``inference_mode`` does not switch.

        Example:
          >>> import equinox as eqx, jax, lrjax
          >>> train, held_out = lrjax.datasets.load_digits()
          >>> make = lambda key: eqx.nn.Sequential([eqx.nn.Lambda(lambda x: x.reshape(-1)),
          ...                                       eqx.nn.Linear(64, 10, key=key)])
          >>> task = lrjax.Task.from_equinox(make, train, eval_data=held_out)
          >>> task.rng, task.stateful
          (False, False)
        """
        from lrjax import _equinox, _supervised

        build = lambda _: _equinox.equinox_model(make_model, rng=rng)
        return _supervised.supervised(build, train_data, "Task.from_equinox", "equinox", options)


def _binds(fn: Callable, count: int) -> bool:
    """Whether ``fn`` accepts ``count`` positional arguments (True where Python cannot tell)."""
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return True
    try:
        signature.bind(*range(count))
    except TypeError:
        return False
    return True
