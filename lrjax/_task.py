"""`Task`: what a sweep trains. An init function, a loss, data, and optional metrics; optionally
a random key per step (dropout) and model state carried between steps (BatchNorm)."""

from __future__ import annotations

import dataclasses
import inspect
from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _validate as v

Params = Any
ModelState = Any
Batch = Any
LossFn = Callable[..., Any]
MetricsFn = Callable[..., Mapping[str, jax.Array]]


def _check_data(name: str, data: Any) -> Any:
    """``data`` as a pytree of host arrays sharing a leading (examples) axis, all finite."""
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
      train_data: a pytree of arrays whose leading axes (examples) agree.
      eval_data: optional held-out data with the same structure.
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
        if not isinstance(self.metric_modes, Mapping):
            raise TypeError(f"metric_modes must be a dict of metric name -> 'min' or 'max', got {self.metric_modes!r}")
        for name, mode in self.metric_modes.items():
            if mode not in ("min", "max"):
                raise ValueError(f"metric_modes[{name!r}] must be 'min' or 'max', got {mode!r}")
        train_data = _check_data("train_data", self.train_data)
        eval_data = None if self.eval_data is None else _check_data("eval_data", self.eval_data)
        if eval_data is not None and jax.tree.structure(eval_data) != jax.tree.structure(train_data):
            raise ValueError("eval_data must have the same pytree structure as train_data")
        # Only now, with everything checked, move the data to the device (once per task).
        object.__setattr__(self, "train_data", jax.tree.map(jnp.asarray, train_data))
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
        shapes = lambda data: [tuple(x.shape[1:]) for x in jax.tree.leaves(data)]
        evals = "none" if self.eval_data is None else f"{jax.tree.leaves(self.eval_data)[0].shape[0]} examples"
        return (
            f"Task({self.name!r}, train={self.num_train} examples of shapes {shapes(self.train_data)}, eval={evals}, "
            f"metrics={'yes' if self.metrics is not None else 'loss only'})"
        )

    @property
    def num_train(self) -> int:
        """Number of training examples."""
        return int(jax.tree.leaves(self.train_data)[0].shape[0])

    @classmethod
    def from_linen(
        cls,
        module: Any,
        train_data: tuple[Any, Any],
        *,
        loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "cross_entropy",
        eval_data: tuple[Any, Any] | None = None,
        name: str | None = None,
    ) -> Task:
        """A supervised task from a stateless ``flax.linen`` module and ``(inputs, targets)`` data.

        Parameters are ``module.init(rng, inputs[:1])["params"]``; predictions are
        ``module.apply({"params": params}, inputs)``. ``loss`` is ``"cross_entropy"``
        (logits and integer labels; accuracy is reported too), ``"mse"``, or a function
        ``loss(predictions, targets) -> scalar``.
        """
        example = train_data[0][:1]

        def init(rng: jax.Array) -> Params:
            variables = module.init(rng, example)
            extra = set(variables) - {"params"}
            if extra:
                raise ValueError(f"module must be stateless (only 'params'), it also has collections {sorted(extra)}")
            return variables["params"]

        def apply(params: Params, inputs: jax.Array) -> jax.Array:
            return module.apply({"params": params}, inputs)

        return cls._supervised(init, apply, train_data, eval_data, loss, name or type(module).__name__)

    @classmethod
    def from_nnx(
        cls,
        make_model: Callable[[Any], Any],
        train_data: tuple[Any, Any],
        *,
        loss: str | Callable[[jax.Array, jax.Array], jax.Array] = "cross_entropy",
        eval_data: tuple[Any, Any] | None = None,
        name: str | None = None,
    ) -> Task:
        """A supervised task from a ``flax.nnx`` module: ``make_model(rngs: nnx.Rngs) -> Module``.

        Parameters are the module's ``nnx.State`` (a pytree); predictions are
        ``nnx.merge(graphdef, params)(inputs)``. ``loss`` as in `from_linen`.
        """
        from flax import nnx

        graphdef, _ = nnx.split(nnx.eval_shape(lambda: make_model(nnx.Rngs(0))))

        def init(rng: jax.Array) -> Params:
            return nnx.split(make_model(nnx.Rngs(params=rng)))[1]

        def apply(params: Params, inputs: jax.Array) -> jax.Array:
            return nnx.merge(graphdef, params)(inputs)

        return cls._supervised(init, apply, train_data, eval_data, loss, name or "nnx")

    @classmethod
    def _supervised(cls, init, apply, train_data, eval_data, loss, name) -> Task:
        if not (isinstance(train_data, (tuple, list)) and len(train_data) == 2):
            raise ValueError("train_data must be an (inputs, targets) pair for a Flax task")
        if isinstance(loss, str):
            if loss not in SUPERVISED_LOSSES:
                raise ValueError(f"loss must be one of {tuple(SUPERVISED_LOSSES)} or a callable, got {loss!r}")
            loss_name, loss = loss, SUPERVISED_LOSSES[loss]
        elif callable(loss):
            loss_name = None
        else:
            raise TypeError(f"loss must be a name or a callable, got {loss!r}")

        def loss_fn(params: Params, batch: tuple[Any, Any]) -> jax.Array:
            inputs, targets = batch
            return loss(apply(params, inputs), targets)

        def metrics(params: Params, data: tuple[Any, Any]) -> dict[str, jax.Array]:
            inputs, targets = data
            predictions = apply(params, inputs)
            out = {"loss": loss(predictions, targets)}
            if loss_name == "cross_entropy":
                out["accuracy"] = jnp.mean(jnp.argmax(predictions, -1) == targets)
            return out

        if loss_name == "cross_entropy":
            _check_labels(init, apply, train_data, eval_data)
        return cls(init, loss_fn, tuple(train_data), tuple(eval_data) if eval_data is not None else None, metrics, name)


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


def _check_labels(init: Callable, apply: Callable, train_data: Any, eval_data: Any) -> None:
    """Cross-entropy's targets must be integer classes the model has outputs for (a label past
    them gives a silent loss of 0 through the one-hot encoding). The number of classes comes from
    the model's output shape (``jax.eval_shape``: nothing runs)."""
    example = np.asarray(train_data[0][:1])
    classes = jax.eval_shape(lambda key: apply(init(key), example), jax.random.key(0)).shape[-1]
    for where, data in (("train_data", train_data), ("eval_data", eval_data)):
        if data is None:
            continue
        labels = np.asarray(data[1])
        if not np.issubdtype(labels.dtype, np.integer):
            raise TypeError(
                f"{where}[1] must hold integer class labels for loss='cross_entropy', got dtype {labels.dtype}"
            )
        bad = (labels < 0) | (labels >= classes)
        if bad.any():
            raise ValueError(
                f"{where}[1] must hold class labels in [0, {classes}) (the model's outputs), "
                f"got {labels[bad].flat[0]} ({int(bad.sum())} such labels)"
            )


def cross_entropy(logits: jax.Array, labels: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of ``logits`` against integer ``labels``: mean_i(-log softmax(z_i)[y_i]).

    Written with one-hot targets: its gradient (softmax - one_hot) is elementwise, where the
    integer-label gather's gradient is a scatter-add, which XLA:CPU runs as a loop over the
    batch (10% of a digits sweep step)."""
    return jnp.mean(optax.softmax_cross_entropy(logits, jax.nn.one_hot(labels, logits.shape[-1], dtype=logits.dtype)))


def mse(predictions: jax.Array, targets: jax.Array) -> jax.Array:
    """Mean squared error."""
    return jnp.mean((predictions - targets) ** 2)


SUPERVISED_LOSSES = {"cross_entropy": cross_entropy, "mse": mse}
