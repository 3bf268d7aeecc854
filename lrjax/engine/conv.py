"""Convolutions as shifted slices and one matmul, put in place of XLA's convolution in a task.

Under ``jax.vmap`` over members whose inputs and kernels both differ (every convolution after
the first layer), a convolution becomes a grouped convolution that XLA:CPU runs slowly, its
kernel gradient worst of all. Written as its patches times the kernel, it is a batched matmul
like any dense layer. Measured here (jax 0.10.2, 2 cores; digits CNN 8×8, 8 and 16 channels,
batch 64, forward and backward): one member 0.69 ms with XLA's convolution against 0.50 ms as
slices; 16 vmapped members 15.1 ms against 4.0 ms. (``lax.conv_general_dilated_patches`` is
itself a convolution, and was slower still: 4.0 and 46 ms.)

`rewrite_convs` applies this to a user's function without asking them to change it: it traces
the function to a jaxpr and evaluates it (`lrjax.engine.rewrite`) with every ``conv_general_dilated`` that has no
dilation and no feature or batch groups replaced by `slice_conv`; everything else is bound as
traced, so values and gradients are the same up to float summation order.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Callable, Sequence
from typing import Any

import jax
import jax.extend.core as jcore
import jax.numpy as jnp
from jax import lax

from lrjax.engine.rewrite import contains, rewrite

__all__ = ["has_convs", "rewrite_convs", "slice_conv"]


@functools.partial(jax.custom_vjp, nondiff_argnums=(1, 2, 3, 4))
def _patches(
    x: jax.Array,
    spatial: tuple[int, ...],
    window: tuple[int, ...],
    strides: tuple[int, ...],
    padding: tuple[tuple[int, int], ...],
) -> jax.Array:
    """``x`` (N, spatial…, C) padded and its k₁·k₂·… shifted strided slices concatenated along
    the feature axis, kernel-offset major: (N, out spatial…, k₁·k₂·…·C). ``spatial`` is
    ``x.shape[1:-1]``, passed for the gradient, which cannot recover it from the output's."""
    x = jnp.pad(x, ((0, 0), *padding, (0, 0)))
    sizes = [(x.shape[1 + d] - window[d]) // strides[d] + 1 for d in range(len(window))]
    cols = []
    for offset in itertools.product(*(range(w) for w in window)):
        index = tuple(slice(o, o + (n - 1) * s + 1, s) for o, n, s in zip(offset, sizes, strides, strict=True))
        cols.append(x[(slice(None), *index, slice(None))])
    return jnp.concatenate(cols, axis=-1)


def _patches_forward(
    x: jax.Array, spatial: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...], padding: Any
) -> tuple[jax.Array, None]:
    """`_patches` and no residual: its gradient is linear and reads only shapes."""
    return _patches(x, spatial, window, strides, padding), None


def _patches_backward(
    spatial: tuple[int, ...], window: tuple[int, ...], strides: tuple[int, ...], padding: Any, _: None, g: jax.Array
) -> tuple[jax.Array]:
    """The gradient of `_patches` (col2im), one stride phase at a time.

    Padded position ``p = s·o + k`` (output ``o``, kernel offset ``k``) is, with ``k = s·q + r``,
    phase ``r`` at index ``o + q``: each phase sums the slabs of its kernel offsets shifted by
    ``q``, with no interior padding, and the phases are interleaved at the end. Autodiff's own
    gradient pads every slab with interior zeros and sums them in one loop, which XLA:CPU ran
    4–8× slower (the digits CNN's second layer: 8 members of 64 examples, 8×8 images, 8
    channels, stride 2; 3.6× with its result transposed for the first layer's kernel
    gradient, 7.6× without). In a sweep of the user-written digits CNN the loop that sums the
    slices' gradients, fused with that transpose, went from 0.77 to 0.25 ms a step (warm
    sweep 0.59 → 0.40 s); the built-in CNN, whose loop XLA keeps in its own order, went from
    0.37–0.38 to 0.39–0.41 s.
    """
    d, n = len(window), g.shape[1:-1]
    g = g.reshape(*g.shape[:-1], *window, g.shape[-1] // math.prod(window))
    # Phase indices that reach the input (padded positions below lo + size; those above are cut).
    span = [-(-(size + lo) // s) for size, (lo, _), s in zip(spatial, padding, strides, strict=True)]
    zero = jnp.zeros((), g.dtype)
    phases = {}
    for r in itertools.product(*(range(s) for s in strides)):
        total = jnp.zeros((g.shape[0], *span, g.shape[-1]), g.dtype)
        for k in itertools.product(*(range(ri, w, s) for ri, w, s in zip(r, window, strides, strict=True))):
            shifts = [ki // s for ki, s in zip(k, strides, strict=True)]
            config = [(0, 0, 0), *((q, j - m - q, 0) for q, j, m in zip(shifts, span, n, strict=True)), (0, 0, 0)]
            total = total + lax.pad(g[(slice(None),) * (1 + d) + k], zero, config)
        phases[r] = total

    def interleave(prefix: tuple[int, ...]) -> jax.Array:
        if len(prefix) == d:
            return phases[prefix]
        i = len(prefix)
        stacked = jnp.stack([interleave((*prefix, r)) for r in range(strides[i])], axis=2 + i)
        return stacked.reshape(*stacked.shape[: 1 + i], -1, *stacked.shape[3 + i :])

    padded = interleave(())
    index = tuple(slice(lo, lo + size) for size, (lo, _) in zip(spatial, padding, strict=True))
    return (padded[(slice(None), *index, slice(None))],)


_patches.defvjp(_patches_forward, _patches_backward)


def slice_conv(
    lhs: jax.Array,
    rhs: jax.Array,
    window_strides: Sequence[int],
    padding: Sequence[tuple[int, int]],
    dimension_numbers: lax.ConvDimensionNumbers,
    precision: Any = None,
    preferred_element_type: Any = None,
) -> jax.Array:
    """``lax.conv_general_dilated`` without dilation or groups, as patches @ kernel.

    The input is padded, the k₁·k₂·… shifted strided slices of it are concatenated along the
    feature axis (kernel-offset major), and the result multiplies the kernel reshaped to
    (k₁·k₂·…·C_in, C_out). The patches enter that matmul as one (N·positions, k₁·k₂·…·C_in)
    matrix: when every member of a sweep reads the same input (a first layer, on the shared
    batch), the kernel gradient is then `lrjax.engine.dots`' shared-input matmul, which
    transposes the gradient in blocks of C_out rather than whole (user-written digits CNN,
    16 members: warm sweep 0.67 → 0.57 s).

    Args:
      lhs: the input; rhs: the kernel.
      window_strides: one stride per spatial dimension.
      padding: (low, high) per spatial dimension.
      dimension_numbers: a ``lax.ConvDimensionNumbers`` (lhs_spec, rhs_spec, out_spec).
      precision, preferred_element_type: as for ``lax.conv_general_dilated``.

    Returns:
      The convolution, laid out as ``dimension_numbers.out_spec`` says. Differentiable in
      reverse mode (the patches have a custom VJP, `_patches_backward`), not in forward mode.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax import lax
      >>> from lrjax.engine.conv import slice_conv
      >>> x, k = jnp.ones((1, 5, 5, 2)), jnp.ones((3, 3, 2, 4))
      >>> dn = lax.conv_dimension_numbers(x.shape, k.shape, ("NHWC", "HWIO", "NHWC"))
      >>> slice_conv(x, k, (1, 1), ((1, 1), (1, 1)), dn)[0, :, :, 0]
      Array([[ 8., 12., 12., 12.,  8.],
             [12., 18., 18., 18., 12.],
             [12., 18., 18., 18., 12.],
             [12., 18., 18., 18., 12.],
             [ 8., 12., 12., 12.,  8.]], dtype=float32)
    """
    lhs_spec, rhs_spec, out_spec = dimension_numbers
    x = jnp.transpose(lhs, (lhs_spec[0], *lhs_spec[2:], lhs_spec[1]))  # N, spatial..., C
    k = jnp.transpose(rhs, (*rhs_spec[2:], rhs_spec[1], rhs_spec[0]))  # spatial..., C_in, C_out
    window = k.shape[:-2]
    padding = tuple((int(lo), int(hi)) for lo, hi in padding)
    patches: jax.Array = _patches(x, x.shape[1:-1], window, tuple(window_strides), padding)
    out = jnp.matmul(
        patches.reshape(-1, patches.shape[-1]),
        k.reshape(-1, k.shape[-1]),
        precision=precision,
        preferred_element_type=preferred_element_type,
    ).reshape(*patches.shape[:-1], k.shape[-1])
    order = [0] * out.ndim  # out is (N, spatial..., C): put each where out_spec says
    order[out_spec[0]], order[out_spec[1]] = 0, out.ndim - 1
    for d, axis in enumerate(out_spec[2:]):
        order[axis] = 1 + d
    return jnp.transpose(out, order)


def _replaceable(params: dict[str, Any]) -> bool:
    return (
        params["feature_group_count"] == 1
        and params["batch_group_count"] == 1
        and all(d == 1 for d in params["lhs_dilation"])
        and all(d == 1 for d in params["rhs_dilation"])
        and all(lo >= 0 and hi >= 0 for lo, hi in params["padding"])
    )


def _wanted(eqn: jcore.JaxprEqn) -> bool:
    return eqn.primitive is lax.conv_general_dilated_p and _replaceable(eqn.params)


def _rule(eqn: jcore.JaxprEqn, invals: list[Any]) -> list[Any]:
    p, (lhs, rhs), aval = eqn.params, invals, eqn.outvars[0].aval
    out = slice_conv(
        lhs, rhs, p["window_strides"], p["padding"], p["dimension_numbers"], p["precision"], p["preferred_element_type"]
    )
    return [out.astype(aval.dtype)]  # pyright: ignore[reportAttributeAccessIssue]: an array's aval (ShapedArray)


def has_convs(jaxpr: jcore.Jaxpr) -> bool:
    """Whether ``jaxpr`` (or a jaxpr inside it) holds a convolution `slice_conv` can replace."""
    return contains(jaxpr, _wanted)


def rewrite_convs(fn: Callable[..., Any], *example: Any) -> Callable[..., Any]:
    """``fn`` with its convolutions computed by `slice_conv`, or ``fn`` itself when tracing it
    on ``example`` arguments (arrays or shapes) finds none to replace.

    Example:
      >>> import jax, jax.numpy as jnp
      >>> from jax import lax
      >>> from lrjax.engine.conv import rewrite_convs
      >>> conv = lambda x, k: lax.conv_general_dilated(x, k, (2, 2), "SAME")
      >>> x, k = jnp.ones((1, 3, 6, 6)), jnp.ones((4, 3, 3, 3))
      >>> bool(jnp.allclose(rewrite_convs(conv, x, k)(x, k), conv(x, k)))
      True
    """
    if not has_convs(jax.make_jaxpr(fn)(*example).jaxpr):
        return fn
    return rewrite(fn, _wanted, lambda: _rule, "convolution")
