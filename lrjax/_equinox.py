"""Equinox models as lrjax sees them (`lrjax._supervised.Model`): an ``equinox.Module`` whose
floating-point arrays are trained and whose other leaves are static, with an
``equinox.nn.State`` as model state for stateful layers (``equinox.nn.BatchNorm``). Equinox
models take one example; lrjax maps them over the batch as Equinox's examples do, with the axis
named ``"batch"`` (the ``axis_name`` a BatchNorm is given)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import jax

from lrjax._supervised import Model
from lrjax._task import key_shape

BATCH_AXIS = "batch"


def _equinox() -> Any:
    try:
        import equinox
    except ImportError as err:
        raise ImportError("Task.from_equinox needs Equinox: pip install 'lrjax[equinox]'") from err
    return equinox


def equinox_model(make_model: Callable[[jax.Array], Any], *, rng: bool) -> Model:
    """``make_model(key)`` returns the module, or ``(module, state)`` as
    ``equinox.nn.make_with_state(Module)(..., key=key)`` does. Training calls the module on each
    example (``module(x, key=k)`` with ``rng``; ``module(x, state) -> (y, state)`` with state),
    mapped over the batch, each example's key ``jax.random.split(key, batch)[i]``; evaluation
    calls ``equinox.nn.inference_mode(module)`` without keys."""
    eqx = _equinox()
    try:
        shapes = eqx.filter_eval_shape(make_model, key_shape())
    except Exception as err:
        raise ValueError(f"make_model(key) fails: {type(err).__name__}: {str(err).strip()[:300]}") from err
    stateful = isinstance(shapes, tuple) and len(shapes) == 2 and isinstance(shapes[1], eqx.nn.State)
    module_shapes = shapes[0] if stateful else shapes
    if not isinstance(module_shapes, eqx.Module):
        raise TypeError(
            f"make_model(key) must return an equinox.Module or (module, equinox.nn.State), got {type(shapes).__name__}"
        )
    is_array = lambda x: isinstance(x, jax.ShapeDtypeStruct)
    for path, leaf in jax.tree_util.tree_flatten_with_path(module_shapes, is_leaf=is_array)[0]:
        if is_array(leaf) and not jax.numpy.issubdtype(leaf.dtype, jax.numpy.inexact):
            raise ValueError(
                f"model{jax.tree_util.keystr(path)} is a {leaf.dtype} array: lrjax trains floating-point arrays and "
                "cannot carry others in the model; mark it static (equinox.field(static=True)) or keep it in an "
                "equinox.nn.State"
            )
    static = eqx.filter(module_shapes, is_array, inverse=True)

    def init(key: jax.Array) -> tuple[Any, Any]:
        out = make_model(key)
        module, state = out if stateful else (out, None)
        return eqx.filter(module, eqx.is_inexact_array), state

    def train(params: Any, state: Any, inputs: Any, key: Any) -> tuple[Any, Any]:
        module = eqx.combine(params, static)
        n = jax.tree.leaves(inputs)[0].shape[0]
        keys = jax.random.split(key, n) if rng else None
        if not stateful:
            call = lambda x, k: module(x, key=k) if rng else module(x)
            return jax.vmap(call, axis_name=BATCH_AXIS)(inputs, keys), None
        call = lambda x, s, k: module(x, s, key=k) if rng else module(x, s)
        return jax.vmap(call, axis_name=BATCH_AXIS, in_axes=(0, None, 0), out_axes=(0, None))(inputs, state, keys)

    def evaluate(params: Any, state: Any, inputs: Any) -> Any:
        module = eqx.nn.inference_mode(eqx.combine(params, static))
        if not stateful:
            return jax.vmap(module, axis_name=BATCH_AXIS)(inputs)
        return jax.vmap(module, axis_name=BATCH_AXIS, in_axes=(0, None), out_axes=(0, None))(inputs, state)[0]

    switched = dict.fromkeys(range(len(jax.tree.leaves(shapes[1]))), "equinox.nn.State") if stateful else {}
    hint = "equinox.nn.inference_mode switches the layers' `inference` field; give the layer that field"
    return Model(init, train, evaluate, rng=rng, stateful=stateful, switched=switched, train_hint=hint, eval_hint=hint)
