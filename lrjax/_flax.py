"""Flax models as lrjax sees them (`lrjax._supervised.Model`): ``flax.linen`` modules with
their variable collections, rng streams and train/eval switch, and ``flax.nnx`` modules with
their ``nnx.Rngs`` streams, non-``Param`` variables (``nnx.BatchStat``) and
``train()`` / ``eval()``."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import jax
import jax.numpy as jnp

from lrjax._supervised import Model
from lrjax._task import key_shape
from lrjax._validate import first_line


def _streams(name: str, rngs: Sequence[str]) -> tuple[str, ...]:
    if isinstance(rngs, str) or not all(isinstance(s, str) for s in rngs):
        raise TypeError(f"{name} must be a sequence of stream names such as ('dropout',), got {rngs!r}")
    return tuple(rngs)


def stream_keys(streams: Sequence[str], key: jax.Array) -> dict[str, jax.Array]:
    """The keys of a step's rng ``streams`` from the member's key: the key itself for one
    stream, else ``jax.random.split(key, len(streams))`` in the order given.

    Args:
      streams: stream names, e.g. ``("dropout",)``.
      key: the member's key at the step (`lrjax.engine.step_key`).

    Returns:
      ``{stream: key}``.
    """
    if len(streams) == 1:
        return {streams[0]: key}
    return dict(zip(streams, jax.random.split(key, len(streams)), strict=True))


def linen_model(
    module: Any,
    example: Any,
    *,
    rngs: Sequence[str],
    mutable: Sequence[str] | None,
    train_kwargs: Mapping[str, Any] | None,
    eval_kwargs: Mapping[str, Any] | None,
) -> Model:
    """A ``flax.linen`` module: parameters are ``variables["params"]``, every other collection
    ``module.init`` creates is model state, those in ``mutable`` (default: all of them) updated
    by training. Training calls ``module.apply(variables, x, rngs=..., mutable=...,
    **train_kwargs)``; evaluation ``module.apply(variables, x, **eval_kwargs)``; init
    ``module.init({"params": key}, x[:1], **eval_kwargs)``."""
    streams = _streams("rngs", rngs)
    train_kwargs, eval_kwargs = dict(train_kwargs or {}), dict(eval_kwargs or {})
    switch_hint = "pass train_kwargs and eval_kwargs, e.g. train_kwargs={'train': True}, eval_kwargs={'train': False}"

    def variables_of(key: jax.Array) -> dict[str, Any]:
        return dict(module.init({"params": key}, example, **eval_kwargs))

    try:
        shapes = jax.eval_shape(variables_of, key_shape())
    except Exception as err:
        raise ValueError(
            f"module.init fails on train_data[0][:1] with eval_kwargs={eval_kwargs}: {first_line(err)}"
            + (f"; if the module takes a train/eval switch, {switch_hint}" if isinstance(err, TypeError) else "")
        ) from err
    if "params" not in shapes:
        raise ValueError(f"module has no parameters to train: module.init creates only {sorted(shapes)}")
    collections = sorted(set(shapes) - {"params"})
    if mutable is None:
        mutable = collections
    for c in _streams("mutable", mutable):
        if c not in collections:
            raise ValueError(
                f"mutable names {c!r}, a collection module.init does not create (it creates {collections})"
            )
    mutable = list(mutable)
    stateful = bool(collections)

    def init(key: jax.Array) -> tuple[Any, Any]:
        variables = variables_of(key)
        return variables["params"], ({c: variables[c] for c in collections} if stateful else None)

    def train(params: Any, state: Any, inputs: Any, key: Any) -> tuple[Any, Any]:
        import flax.errors

        variables = {"params": params, **(state or {})}
        kwargs = {**train_kwargs, **({"rngs": stream_keys(streams, key)} if streams else {})}
        try:
            if not mutable:
                return module.apply(variables, inputs, **kwargs), state
            out, updates = module.apply(variables, inputs, mutable=mutable, **kwargs)
        except flax.errors.InvalidRngError as err:
            raise ValueError(
                f"the module draws random numbers in training ({first_line(err)}): name the stream in rngs, "
                "e.g. rngs=('dropout',)"
            ) from err
        except flax.errors.ModifyScopeVariableError as err:
            raise ValueError(
                f"the module updates a collection in training that mutable leaves out ({first_line(err)}): "
                f"add it to mutable (now {mutable})"
            ) from err
        return out, {**state, **updates}

    def evaluate(params: Any, state: Any, inputs: Any) -> Any:
        import flax.errors

        try:
            return module.apply({"params": params, **(state or {})}, inputs, **eval_kwargs)
        except flax.errors.ModifyScopeVariableError as err:
            raise ValueError(
                f"evaluation updates {collections}: the module runs in training mode when it is evaluated "
                f"({first_line(err)}); {switch_hint}"
            ) from err

    switched = {}
    if stateful:
        paths = jax.tree_util.tree_flatten_with_path({c: shapes[c] for c in collections})[0]
        for i, (path, _) in enumerate(paths):
            collection, layer = path[0].key, path[1].key if len(path) > 2 else ""
            if collection in mutable:
                switched[i] = f"{collection}/{layer}" if layer else collection
    return Model(
        init,
        train,
        evaluate,
        rng=bool(streams),
        stateful=stateful,
        switched=switched,
        train_hint=switch_hint,
        eval_hint=switch_hint,
    )


def _variables(state: Any) -> list[tuple[tuple, Any]]:
    """An ``nnx.State``'s variables with their paths, one per leaf, in leaf order (Flax 0.10
    holds ``VariableState`` objects, later versions the variables)."""
    from flax import nnx

    is_variable = lambda x: isinstance(x, nnx.Variable) or type(x).__name__ == "VariableState"
    return jax.tree_util.tree_flatten_with_path(state, is_leaf=is_variable)[0]


def _kind(variable: Any) -> type:
    return getattr(variable, "type", type(variable))


def _placeholder(x: jax.ShapeDtypeStruct) -> jax.Array:
    if jnp.issubdtype(x.dtype, jax.dtypes.prng_key):
        return jax.numpy.broadcast_to(jax.random.key(0), x.shape)
    return jax.numpy.zeros(x.shape, x.dtype)


def nnx_model(make_model: Callable[[Any], Any], *, rngs: Sequence[str]) -> Model:
    """A ``flax.nnx`` module built by ``make_model(nnx.Rngs(params=key, **streams))``: its
    ``nnx.Param`` variables are the parameters; every other variable except rng state
    (``nnx.BatchStat``, counters) is model state. Training runs the module after
    ``model.train()`` with each stream in ``rngs`` reseeded from the member's key (`stream_keys`,
    as ``nnx.reseed`` does: key set, count 0); evaluation after ``model.eval()``."""
    from flax import nnx

    streams = _streams("rngs", rngs)

    def build(key: jax.Array) -> Any:
        keys = {s: jax.random.fold_in(key, i + 1) for i, s in enumerate(streams)}
        return make_model(nnx.Rngs(params=key, **keys))

    def missing_stream(err: KeyError) -> ValueError:
        return ValueError(
            f"the model asks nnx.Rngs for a stream it was not given ({first_line(err)}): name it in rngs, "
            "e.g. rngs=('dropout',)"
        )

    try:
        abstract = nnx.eval_shape(lambda: build(jax.random.key(0)))
    except KeyError as err:
        raise missing_stream(err) from err
    filters = (nnx.Param, nnx.RngState, ...)
    abstract.train()
    train_graph, _, rng_shapes, state_shapes = nnx.split(abstract, *filters)
    abstract.eval()
    eval_graph = nnx.split(abstract, *filters)[0]
    held = sorted({v.tag for _, v in _variables(rng_shapes) if issubclass(_kind(v), nnx.RngKey)} - {"params"})
    unnamed = [s for s in held if s not in streams]
    if unnamed:
        raise ValueError(f"the model holds rng streams {unnamed} that rngs does not name: add them to rngs")
    stateful = bool(jax.tree.leaves(state_shapes))

    def init(key: jax.Array) -> tuple[Any, Any]:
        _, params, _, state = nnx.split(build(key), *filters)
        return params, (state if stateful else None)

    def placeholder_rngs() -> Any:
        # Every stream but "params" is reseeded before the model runs, and "params" is not
        # drawn from after init.
        return jax.tree.map(_placeholder, rng_shapes)

    def train(params: Any, state: Any, inputs: Any, key: Any) -> tuple[Any, Any]:
        # Fresh variables, created in the trace that updates them (nnx refuses to update a
        # variable made in another, e.g. outside the engine's grad).
        state = jax.tree.map(lambda x: x, state) if stateful else state_shapes
        model = nnx.merge(train_graph, params, placeholder_rngs(), state)
        if streams:
            keys: dict[str, Any] = stream_keys(streams, key)
            nnx.reseed(model, **keys)
        try:
            out = model(inputs)
        except KeyError as err:  # Flax 0.10 draws from its nnx.Rngs when called
            raise missing_stream(err) from err
        return out, (nnx.split(model, *filters)[3] if stateful else None)

    def evaluate(params: Any, state: Any, inputs: Any) -> Any:
        return nnx.merge(eval_graph, params, placeholder_rngs(), state if stateful else state_shapes)(inputs)

    switched = {
        i: "/".join(str(getattr(k, "key", k)) for k in path[:-1]) or "model"
        for i, (path, variable) in enumerate(_variables(state_shapes))
        if issubclass(_kind(variable), nnx.BatchStat)
    }
    hint = (
        "nnx's train() and eval() set the attributes deterministic and use_running_average; "
        "give the layer those attributes, not a constant"
    )
    return Model(
        init, train, evaluate, rng=bool(streams), stateful=stateful, switched=switched, train_hint=hint, eval_hint=hint
    )
