"""A supervised `Task` from a model's training and evaluation forward passes: the loss by name
or function, accuracy for classification, and the checks that keep a model adapter from a
silent wrong result (targets of the wrong shape, a train/eval switch that does not switch).
The Flax and Equinox adapters build on it."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
import optax

from lrjax import _validate as v
from lrjax._dataflow import flow
from lrjax._stream import first_batch, stream_seed
from lrjax._task import LossArg, SupervisedOptions, Task, TrainData, key_shape

Predictions = jax.Array


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


def resolve_loss(loss: LossArg) -> tuple[str | None, Callable[[jax.Array, jax.Array], jax.Array]]:
    """``(name, function)`` of a supervised loss given by name (`SUPERVISED_LOSSES`) or as a
    function (name None); `supervised` checks it before it builds the model."""
    if isinstance(loss, str):
        if loss not in SUPERVISED_LOSSES:
            raise ValueError(f"loss must be one of {tuple(SUPERVISED_LOSSES)} or a callable, got {loss!r}")
        return loss, SUPERVISED_LOSSES[loss]
    if callable(loss):
        return None, loss
    raise TypeError(f"loss must be a name or a callable, got {loss!r}")


@dataclasses.dataclass(frozen=True)
class Model:
    """A model as an adapter sees it.

    Attributes:
      init: ``init(key) -> (params, model_state)``, ``model_state`` None without state.
      train: ``train(params, model_state, inputs, key) -> (predictions, new_model_state)``, in
        training mode (dropout, batch statistics); ``key`` None without ``rng``.
      eval: ``eval(params, model_state, inputs) -> predictions``, in evaluation mode.
      rng: whether ``train`` uses its key.
      stateful: whether there is model state.
      switched: the state leaves training must update and evaluation must read (a
        BatchNorm's statistics): leaf index among the state's leaves -> the name of the layer
        it belongs to. `supervised` checks, from the traced functions, that training updates
        some leaf of every such layer and evaluation reads some leaf of each.
      train_hint, eval_hint: how to switch the model to training / evaluation, for the errors.
    """

    init: Callable[[jax.Array], tuple[Any, Any]]
    train: Callable[[Any, Any, Any, Any], tuple[Predictions, Any]]
    eval: Callable[[Any, Any, Any], Predictions]
    rng: bool = False
    stateful: bool = False
    switched: dict[int, str] = dataclasses.field(default_factory=dict)
    train_hint: str = ""
    eval_hint: str = ""


def supervised(
    build: Callable[[tuple[Any, Any]], Model],
    train_data: TrainData,
    adapter: str,
    default_name: str,
    options: SupervisedOptions,
) -> Task:
    """A `Task` that trains the model ``build`` makes on ``(inputs, targets)`` pairs.

    Args:
      build: ``build(sample) -> `` the adapter's `Model`, given `pair` of ``train_data`` (a
        model that infers its shapes from a batch, as linen's, reads it); called once the
        loss is checked.
      train_data: ``(inputs, targets)``, or a stream of such batches (`Task`).
      adapter: the adapter's name, for the errors.
      default_name: the task's name when ``options`` names none.
      options: the adapter's `SupervisedOptions` (a key that is not one is the TypeError
        Python raises for an unknown keyword).

    Returns:
      The `Task`, with ``rng`` and ``stateful`` as the model has them.

    Raises:
      ValueError: targets whose shape does not fit the model's outputs (``"mse"``: the same
        shape; ``"cross_entropy"``: the outputs' shape less the class axis), labels outside the
        model's classes (a stream's: in its first batch), or a mode switch that does not switch
        (see `Model`).
    """
    v.check_keywords(adapter, options, SupervisedOptions.__annotations__)
    eval_data = options.get("eval_data")
    loss_name, loss_fn = resolve_loss(options.get("loss", "cross_entropy"))
    train_pair = pair("train_data", train_data, adapter)
    model = build(train_pair)
    eval_pair = None if eval_data is None else pair("eval_data", eval_data, adapter)

    def train_loss(params: Any, *rest: Any) -> Any:
        state = rest[0] if model.stateful else None
        inputs, targets = rest[1 if model.stateful else 0]
        predictions, new_state = model.train(params, state, inputs, rest[-1] if model.rng else None)
        value = loss_fn(predictions, targets)
        return (value, new_state) if model.stateful else value

    def metrics(params: Any, *rest: Any) -> dict[str, jax.Array]:
        inputs, targets = rest[-1]
        predictions = model.eval(params, rest[0] if model.stateful else None, inputs)
        out = {"loss": loss_fn(predictions, targets)}
        if loss_name == "cross_entropy":
            out["accuracy"] = jnp.mean(jnp.argmax(predictions, -1) == targets)
        return out

    if loss_name is not None:
        _check_targets(model, loss_name, train_pair, eval_pair)
    if model.switched:
        _check_switch(model, train_pair)
    return Task(
        model.init if model.stateful else (lambda key: model.init(key)[0]),
        train_loss,
        train_data if callable(train_data) else tuple(train_data),
        eval_data if eval_data is None or callable(eval_data) else tuple(eval_data),
        metrics,
        options.get("name") or default_name,
        rng=model.rng,
        stateful=model.stateful,
        eval_batch_size=options.get("eval_batch_size"),
        augment=options.get("augment"),
    )


def pair(where: str, data: Any, adapter: str) -> tuple[Any, Any]:
    """``data`` itself, an ``(inputs, targets)`` pair, or for a stream (``train_data(seed)``,
    ``eval_data()``) its first batch, which must be one: what the adapter's checks read."""
    if callable(data):
        make: Callable[..., Any] = data
        call = f"{where}(seed)" if where == "train_data" else f"{where}()"
        batch = first_batch(call, make(stream_seed(0, 0)) if where == "train_data" else make())
        if not (isinstance(batch, (tuple, list)) and len(batch) == 2):
            raise ValueError(f"{call} must yield (inputs, targets) batches for {adapter}")
        return tuple(batch)
    if not (isinstance(data, (tuple, list)) and len(data) == 2):
        raise ValueError(f"{where} must be an (inputs, targets) pair, or a stream of them, for {adapter}")
    return tuple(data)


def _check_targets(model: Model, loss_name: str, train_data: Any, eval_data: Any) -> None:
    """The targets fit the model's outputs, checked from shapes (``jax.eval_shape``: nothing
    runs): ``mse`` wants the outputs' shape (broadcasting a (n,) target against (n, 1) outputs
    trains every pair's difference); ``cross_entropy`` wants integer labels of the outputs'
    shape less their class axis, each below the number of classes (a label past them gives a
    silent loss of 0 through the one-hot encoding)."""
    example = np.asarray(train_data[0][:1])
    out = jax.eval_shape(lambda key: model.eval(*model.init(key), example), key_shape()).shape
    for where, data in (("train_data", train_data), ("eval_data", eval_data)):
        if data is None:
            continue
        targets = np.asarray(data[1])
        n = len(targets)
        outputs = (n, *out[1:])
        if loss_name == "mse":
            if targets.shape != outputs:
                fix = (
                    f"reshape the targets to {outputs}"
                    if np.prod(targets.shape) == np.prod(outputs)
                    else "give targets with one value per output"
                )
                raise ValueError(
                    f"{where}[1] has shape {targets.shape}, but the model's outputs have shape {outputs}: "
                    f"loss='mse' compares them elementwise and would broadcast; {fix}"
                )
            continue
        if not np.issubdtype(targets.dtype, np.integer):
            raise TypeError(
                f"{where}[1] must hold integer class labels for loss='cross_entropy', got dtype {targets.dtype}"
            )
        if targets.shape != outputs[:-1]:
            raise ValueError(
                f"{where}[1] has shape {targets.shape}, but the model's outputs have shape {outputs}: "
                f"loss='cross_entropy' takes one integer label per output row, shape {outputs[:-1]}"
                + (" (flatten the labels: y.reshape(-1))" if targets.size == np.prod(outputs[:-1]) else "")
            )
        classes = out[-1]
        bad = (targets < 0) | (targets >= classes)
        if bad.any():
            raise ValueError(
                f"{where}[1] must hold class labels in [0, {classes}) (the model's outputs), "
                f"got {targets[bad].flat[0]} ({int(bad.sum())} such labels)"
            )


def _check_switch(model: Model, train_data: Any) -> None:
    """Training updates every `Model.switched` state leaf's collection and evaluation reads
    them, checked on the traced functions (`lrjax._dataflow`): otherwise the model runs in one
    mode for both (a BatchNorm that never updates its statistics, or one that evaluates with
    the eval batch's own), a silent wrong result."""
    example = jax.tree.map(lambda x: jax.ShapeDtypeStruct((2, *np.shape(x)[1:]), np.asarray(x).dtype), train_data[0])
    params, state = jax.eval_shape(model.init, key_shape())
    key = key_shape() if model.rng else None
    n_params = len(jax.tree.leaves(params))
    labels = sorted(set(model.switched.values()))
    leaves = {label: [n_params + i for i, name in model.switched.items() if name == label] for label in labels}
    trained = flow(lambda p, s, x, k: model.train(p, s, x, k)[1], params, state, example, key)
    kept = [label for label in labels if all(trained.forwarded[i - n_params] == i for i in leaves[label])]
    if kept:
        raise ValueError(
            f"training never updates {kept}: the model runs in evaluation mode while it trains "
            f"(a BatchNorm would keep its initial statistics); {model.train_hint}"
        )
    read = frozenset().union(*flow(model.eval, params, state, example).reads)
    unread = [label for label in labels if not read.intersection(leaves[label])]
    if unread:
        raise ValueError(
            f"evaluation never reads {unread}: the model runs in training mode when it is evaluated "
            f"(a BatchNorm would normalise with the eval data's own statistics); {model.eval_hint}"
        )
