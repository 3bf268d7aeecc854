"""Built-in problems on embedded or synthetic data: nothing is downloaded.

- `load_digits` / `digits_mlp` / `digits_cnn`: the UCI "Optical Recognition of Handwritten
  Digits" set (1797 8×8 images, 10 classes; Alpaydin & Kaynak 1998, CC BY 4.0), as shipped
  in scikit-learn, embedded in ``lrjax/data/digits.npz`` (45 KB).
- `digits_resnet`: the digits with a small ResNet (He et al. 2016) with BatchNorm and dropout.
- `load_tempest` / `tempest_lm`: Shakespeare's *The Tempest* (public domain; the Project
  Gutenberg text without its header, 98 KB, in ``lrjax/data/tempest.txt``) and a character-level
  causal transformer language model on it (Vaswani et al. 2017; pre-LayerNorm as in GPT-2).
- `linear_regression`: y = 2x + 1 + noise.
- `quadratic`: f(w) = ½ mean_i (w − x_i)ᵀ H (w − x_i) with a known Hessian H, so gradient
  descent converges iff the learning rate is below 2/λ_max(H).
"""

from __future__ import annotations

import dataclasses
import importlib.resources
from collections.abc import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from lrjax import _validate as v
from lrjax._task import Task

Split = tuple[np.ndarray, np.ndarray]


__all__ = [
    "MLP",
    "CharTransformer",
    "ResNet",
    "SmallCNN",
    "digits_cnn",
    "digits_mlp",
    "digits_resnet",
    "linear_regression",
    "load_digits",
    "load_tempest",
    "quadratic",
    "tempest_lm",
]


def load_digits(*, eval_fraction: float = 0.2, seed: int = 0) -> tuple[Split, Split]:
    """The digits as ``((x_train, y_train), (x_eval, y_eval))``.

    Images are float32 in [0, 1] of shape (n, 8, 8); labels are int32 in 0..9. The split is
    a fixed permutation drawn from ``seed``.

    Returns:
      ((train inputs, labels), (eval inputs, labels)): float32 images scaled to [0, 1] and int32 labels.

    Example:
      >>> import lrjax
      >>> (x, y), (x_eval, y_eval) = lrjax.datasets.load_digits()
      >>> x.shape, y.shape, x_eval.shape
      ((1438, 8, 8), (1438,), (359, 8, 8))
    """
    v.check("eval_fraction", eval_fraction, gt=0, lt=1)
    with importlib.resources.files("lrjax").joinpath("data/digits.npz").open("rb") as f:
        data = np.load(f)
        images, labels = data["images"].astype(np.float32) / 16.0, data["labels"].astype(np.int32)
    order = np.random.default_rng(seed).permutation(len(labels))
    n_eval = round(eval_fraction * len(labels))
    train, held_out = order[n_eval:], order[:n_eval]
    return (images[train], labels[train]), (images[held_out], labels[held_out])


class MLP(nn.Module):
    """Flatten, then ReLU dense layers, then a linear read-out.

    Example:
      >>> import jax, jax.numpy as jnp, lrjax
      >>> model = lrjax.datasets.MLP(hidden=(16,))
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8)))
      >>> model.apply(params, jnp.zeros((5, 8, 8))).shape
      (5, 10)
    """

    hidden: Sequence[int] = (64,)
    outputs: int = 10

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x.reshape(x.shape[0], -1)
        for width in self.hidden:
            x = nn.relu(nn.Dense(width)(x))
        return nn.Dense(self.outputs)(x)


class SmallCNN(nn.Module):
    """Two 3×3 convolutions (the second with stride 2) and a linear read-out, for 8×8 images.

    Example:
      >>> import jax, jax.numpy as jnp, lrjax
      >>> model = lrjax.datasets.SmallCNN()
      >>> params = model.init(jax.random.key(0), jnp.zeros((1, 8, 8)))
      >>> model.apply(params, jnp.zeros((5, 8, 8))).shape
      (5, 10)
    """

    channels: Sequence[int] = (8, 16)
    outputs: int = 10

    @nn.compact
    def __call__(self, x: jax.Array) -> jax.Array:
        x = x[..., None]
        x = nn.relu(nn.Conv(self.channels[0], (3, 3))(x))
        x = nn.relu(nn.Conv(self.channels[1], (3, 3), strides=(2, 2))(x))
        return nn.Dense(self.outputs)(x.reshape(x.shape[0], -1))


def digits_mlp(hidden: Sequence[int] = (64,)) -> Task:
    """Digits classification with a Flax linen MLP (64 → hidden → 10), cross-entropy loss.

    Returns:
      A `lrjax.Task` (linen MLP, cross-entropy; eval metrics loss and accuracy).

    Example:
      >>> import lrjax
      >>> task = lrjax.datasets.digits_mlp(hidden=(32,))
      >>> task.name, task.num_train
      ('digits_mlp', 1438)
    """
    train, held_out = load_digits()
    return Task.from_linen(MLP(tuple(hidden)), train, eval_data=held_out, name="digits_mlp")


def digits_cnn(channels: Sequence[int] = (8, 16)) -> Task:
    """Digits classification with a small Flax linen CNN, cross-entropy loss.

    Returns:
      A `lrjax.Task` (linen CNN, cross-entropy; eval metrics loss and accuracy).

    Example:
      >>> import lrjax
      >>> lrjax.datasets.digits_cnn().num_train
      1438
    """
    train, held_out = load_digits()
    return Task.from_linen(SmallCNN(tuple(channels)), train, eval_data=held_out, name="digits_cnn")


class ResNet(nn.Module):
    """A small ResNet for 8×8 images: a 3×3 convolution, ``blocks`` residual blocks (3×3
    convolution, BatchNorm, ReLU, 3×3 convolution, BatchNorm, added to the block's input, ReLU;
    He et al. 2016), global average pooling, dropout and a linear read-out. ``train`` switches
    BatchNorm to batch statistics (updating its running averages) and dropout on.

    Example:
      >>> import jax, jax.numpy as jnp, lrjax
      >>> model = lrjax.datasets.ResNet(channels=8)
      >>> variables = model.init(jax.random.key(0), jnp.zeros((1, 8, 8)))
      >>> sorted(variables), model.apply(variables, jnp.zeros((5, 8, 8))).shape
      (['batch_stats', 'params'], (5, 10))
    """

    channels: int = 16
    blocks: int = 2
    dropout: float = 0.2
    momentum: float = 0.9
    outputs: int = 10

    @nn.compact
    def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
        norm = lambda: nn.BatchNorm(use_running_average=not train, momentum=self.momentum)
        conv = lambda: nn.Conv(self.channels, (3, 3), use_bias=False)
        x = nn.relu(norm()(conv()(x[..., None])))
        for _ in range(self.blocks):
            y = nn.relu(norm()(conv()(x)))
            x = nn.relu(x + norm()(conv()(y)))
        x = nn.Dropout(self.dropout, deterministic=not train)(x.mean(axis=(1, 2)))
        return nn.Dense(self.outputs)(x)


def digits_resnet(channels: int = 16, blocks: int = 2, dropout: float = 0.2) -> Task:
    """Digits classification with `ResNet`: BatchNorm statistics as model state, dropout keys
    per member and step, cross-entropy loss.

    Args:
      channels: the convolutions' channels.
      blocks: residual blocks.
      dropout: the dropout rate before the read-out.

    Returns:
      A `lrjax.Task` with ``rng`` and ``stateful`` (eval metrics loss and accuracy, with the
      running statistics and no dropout).

    Example:
      >>> import lrjax
      >>> task = lrjax.datasets.digits_resnet(channels=8)
      >>> task.name, task.rng, task.stateful
      ('digits_resnet', True, True)
    """
    train, held_out = load_digits()
    return Task.from_linen(
        ResNet(channels, blocks, dropout),
        train,
        eval_data=held_out,
        name="digits_resnet",
        rngs=("dropout",),
        train_kwargs={"train": True},
        eval_kwargs={"train": False},
    )


def load_tempest() -> str:
    """Shakespeare's *The Tempest* (public domain), as Project Gutenberg transcribed it, without
    Project Gutenberg's header and license: 98,439 ASCII characters.

    Returns:
      The text.

    Example:
      >>> import lrjax
      >>> text = lrjax.datasets.load_tempest()
      >>> text[:11], len(text)
      ('THE TEMPEST', 98439)
    """
    return importlib.resources.files("lrjax").joinpath("data/tempest.txt").read_text(encoding="ascii")


class _Block(nnx.Module):
    """Pre-LayerNorm transformer block: x + drop(attention(norm(x))), then x + drop(mlp(norm(x)))."""

    def __init__(self, width: int, heads: int, dropout: float, *, rngs: nnx.Rngs):
        self.attention_norm = nnx.LayerNorm(width, rngs=rngs)
        self.attention = nnx.MultiHeadAttention(heads, width, decode=False, rngs=rngs)
        self.mlp_norm = nnx.LayerNorm(width, rngs=rngs)
        self.up = nnx.Linear(width, 4 * width, rngs=rngs)
        self.down = nnx.Linear(4 * width, width, rngs=rngs)
        self.drop = nnx.Dropout(dropout, rngs=rngs)

    def __call__(self, x: jax.Array, mask: jax.Array) -> jax.Array:
        x = x + self.drop(self.attention(self.attention_norm(x), mask=mask))
        return x + self.drop(self.down(nnx.gelu(self.up(self.mlp_norm(x)))))


class CharTransformer(nnx.Module):
    """A causal transformer language model over characters (Flax NNX): token and learned
    position embeddings, ``blocks`` pre-LayerNorm blocks of multi-head self-attention and a
    4×-wide GELU MLP with residual dropout (as GPT-2), a final LayerNorm and a linear read-out
    to ``vocab`` logits at every position.

    Example:
      >>> import jax.numpy as jnp, lrjax
      >>> from flax import nnx
      >>> model = lrjax.datasets.CharTransformer(vocab=30, context=16, width=32, rngs=nnx.Rngs(0))
      >>> model(jnp.zeros((2, 16), jnp.int32)).shape
      (2, 16, 30)
    """

    def __init__(
        self,
        vocab: int,
        context: int,
        width: int = 64,
        heads: int = 4,
        blocks: int = 2,
        dropout: float = 0.1,
        *,
        rngs: nnx.Rngs,
    ):
        self.embed = nnx.Embed(vocab, width, rngs=rngs)
        self.position = nnx.Param(jax.random.normal(rngs.params(), (context, width)) * 0.02)
        self.blocks = nnx.Sequential(*(_Block(width, heads, dropout, rngs=rngs) for _ in range(blocks)))
        self.norm = nnx.LayerNorm(width, rngs=rngs)
        self.head = nnx.Linear(width, vocab, rngs=rngs)

    def __call__(self, tokens: jax.Array) -> jax.Array:
        x = self.embed(tokens) + self.position[: tokens.shape[-1]]
        mask = nnx.make_causal_mask(tokens)
        for block in self.blocks.layers:
            x = block(x, mask)
        return self.head(self.norm(x))


def tempest_lm(
    context: int = 64,
    *,
    width: int = 64,
    heads: int = 4,
    blocks: int = 2,
    dropout: float = 0.1,
    stride: int = 32,
    eval_fraction: float = 0.1,
) -> Task:
    """Next-character prediction on *The Tempest* with `CharTransformer` (Flax NNX, dropout keys
    per member and step): cross-entropy at every position, accuracy reported too.

    The text's first ``1 - eval_fraction`` is cut into windows of ``context + 1`` characters
    starting every ``stride`` characters (inputs: the first ``context``, targets: the next
    character at each); the rest gives the eval windows the same way. Characters are numbered in
    sorted order (``task.info["vocab"]`` decodes them).

    Args:
      context: characters a model sees.
      width, heads, blocks, dropout: the `CharTransformer`'s.
      stride: characters between window starts.
      eval_fraction: the held-out end of the text.

    Returns:
      A `lrjax.Task` with ``rng``.

    Example:
      >>> import lrjax
      >>> task = lrjax.datasets.tempest_lm(context=32, width=32, blocks=1)
      >>> task.num_train, len(task.info["vocab"]), task.rng
      (2768, 70, True)
    """
    v.integer("context", context)
    v.integer("stride", stride)
    v.check("eval_fraction", eval_fraction, gt=0, lt=1)
    text = load_tempest()
    vocab = sorted(set(text))
    codes = np.searchsorted(np.asarray(vocab), np.asarray(list(text))).astype(np.int32)
    cut = round(len(codes) * (1 - eval_fraction))

    def windows(part: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        starts = np.arange(0, len(part) - context, stride)
        idx = starts[:, None] + np.arange(context + 1)
        return part[idx[:, :-1]], part[idx[:, 1:]]

    make = lambda rngs: CharTransformer(len(vocab), context, width, heads, blocks, dropout, rngs=rngs)
    task = Task.from_nnx(
        make, windows(codes[:cut]), eval_data=windows(codes[cut:]), name="tempest_lm", rngs=("dropout",)
    )
    return dataclasses.replace(task, info={"vocab": "".join(vocab)})


def linear_regression(num_examples: int = 256, *, noise: float = 0.1, seed: int = 0) -> Task:
    """Fit y = w·x + b to y = 2x + 1 + noise, x ~ U(−1, 1), by mean squared error.

    Parameters are ``{"w": scalar, "b": scalar}`` drawn from N(0, 1) by the init key.

    Returns:
      A `lrjax.Task`.

    Example:
      >>> import jax, lrjax
      >>> task = lrjax.datasets.linear_regression()
      >>> sorted(task.init(jax.random.key(0)))
      ['b', 'w']
    """
    v.check("num_examples", num_examples, ge=2)
    v.check("noise", noise, ge=0)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-1.0, 1.0, num_examples).astype(np.float32)
    y = (2.0 * x + 1.0 + noise * rng.standard_normal(num_examples)).astype(np.float32)

    def init(key: jax.Array) -> dict[str, jax.Array]:
        w, b = jax.random.normal(key, (2,))
        return {"w": w, "b": b}

    def loss(params: dict[str, jax.Array], batch: tuple[jax.Array, jax.Array]) -> jax.Array:
        xs, ys = batch
        return jnp.mean((params["w"] * xs + params["b"] - ys) ** 2)

    return Task(init, loss, (x, y), name="linear_regression", info={"true_w": 2.0, "true_b": 1.0})


def quadratic(eigenvalues: Sequence[float] = (1.0, 10.0), *, num_examples: int = 64, seed: int = 0) -> Task:
    """f(w) = ½ mean_i (w − x_i)ᵀ H (w − x_i), H = Q diag(eigenvalues) Qᵀ with a random rotation Q.

    The full-batch Hessian is exactly H; plain gradient descent with learning rate η converges
    iff η < 2/λ_max. ``task.info`` holds ``hessian``, ``eigenvalues``, ``max_eigenvalue`` and
    ``minimizer`` (the mean of the x_i). Parameters start at N(0, 9 I).

    Returns:
      A `lrjax.Task` whose ``info`` holds the Hessian and its eigenvalues.

    Example:
      >>> import lrjax
      >>> task = lrjax.datasets.quadratic((1.0, 10.0))
      >>> task.info['max_eigenvalue']
      10.0
    """
    values = np.asarray(eigenvalues, np.float64)
    v.check_vector("eigenvalues", values, gt=0)
    dim = len(values)
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((dim, dim)))
    hessian = (q * values) @ q.T
    targets = rng.standard_normal((num_examples, dim)).astype(np.float32)
    h = jnp.asarray(hessian, jnp.float32)

    def init(key: jax.Array) -> jax.Array:
        return 3.0 * jax.random.normal(key, (dim,))

    def loss(w: jax.Array, x: jax.Array) -> jax.Array:
        d = w - x
        return 0.5 * jnp.mean(jnp.einsum("bi,ij,bj->b", d, h, d))

    info = {
        "hessian": hessian,
        "eigenvalues": values,
        "max_eigenvalue": float(values.max()),
        "minimizer": targets.mean(0),
    }
    return Task(init, loss, targets, name="quadratic", info=info)
