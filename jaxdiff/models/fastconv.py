"""A 3×3 convolution whose weight gradient XLA:CPU computes as GEMMs instead of its slow backprop-filter conv.

    y = conv(x, W) + b,    x (B,H,W,C) NHWC, W (kh,kw,C,O) HWIO, 'SAME' zero padding, stride 1
    dx = conv_transpose(dy, W)                                   (XLA's own; fast enough on CPU)
    dW[i, j, c, o] = Σ_{b,h,w} x_pad[b, h+i, w+j, c] · dy[b, h, w, o]   (computed here as GEMMs)

XLA:CPU lowers the weight gradient to an Eigen spatial convolution whose "kernel" is dy (H×W large), which runs
~5× slower than oneDNN at 32×32; a GEMM with the reduction over B·H·W runs near peak.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

_DN = ("NHWC", "HWIO", "NHWC")


def _pad(x, kh, kw):
    return jnp.pad(x, ((0, 0), (kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))


def wgrad_im2col(x, dy, wshape):
    """dW (kh,kw,C,O) as one GEMM over full patches (B·H·W, kh·kw·C)."""
    kh, kw, C, O = wshape
    B, H, W, _ = x.shape
    xp = _pad(x, kh, kw)
    patches = jnp.stack([xp[:, i : i + H, j : j + W, :] for i in range(kh) for j in range(kw)], axis=3)
    patches = patches.reshape(B * H * W, kh * kw * C)
    return (patches.T @ dy.reshape(B * H * W, O)).reshape(kh, kw, C, O)


def wgrad_rows(x, dy, wshape):
    """dW via width-only patches (B, H+kh−1, W, kw·C) and kh GEMMs over the row shift."""
    kh, kw, C, O = wshape
    B, H, W, _ = x.shape
    xp = _pad(x, kh, kw)
    cols = jnp.concatenate([xp[:, :, j : j + W, :] for j in range(kw)], axis=-1)  # (B, H+kh−1, W, kw·C)
    d = dy.reshape(B * H * W, O)
    out = [cols[:, i : i + H].reshape(B * H * W, kw * C).T @ d for i in range(kh)]
    return jnp.stack(out).reshape(kh, kw, C, O)


def wgrad_shift(x, dy, wshape):
    """dW as kh·kw GEMMs of shifted views."""
    kh, kw, C, O = wshape
    B, H, W, _ = x.shape
    xp = _pad(x, kh, kw)
    d = dy.reshape(B * H * W, O)
    out = [xp[:, i : i + H, j : j + W, :].reshape(B * H * W, C).T @ d for i in range(kh) for j in range(kw)]
    return jnp.stack(out).reshape(kh, kw, C, O)


def wgrad_patches_t(x, dy, wshape):
    """dW as one GEMM (kh·kw·C, B·H·W) · (B·H·W, O) with the patch matrix built reduction-minor (channel-major)."""
    kh, kw, C, O = wshape
    B, H, W, _ = x.shape
    xc = _pad(x, kh, kw).transpose(3, 0, 1, 2)  # (C, B, H+2, W+2)
    patches = jnp.stack([xc[:, :, i : i + H, j : j + W] for i in range(kh) for j in range(kw)])  # (9, C, B, H, W)
    return (patches.reshape(kh * kw * C, B * H * W) @ dy.reshape(B * H * W, O)).reshape(kh, kw, C, O)


def wgrad_lax_layout(x, dy, wshape, layout=("NCHW", "OIHW", "NCHW")):
    """XLA's own weight gradient, traced in another layout (transposes around it)."""
    kh, kw, C, O = wshape
    xt = x.transpose(0, 3, 1, 2)
    dyt = dy.transpose(0, 3, 1, 2)
    f = lambda w: jax.lax.conv_general_dilated(xt, w, (1, 1), "SAME", dimension_numbers=layout)  # noqa: E731
    dw = jax.vjp(f, jnp.zeros((O, C, kh, kw), x.dtype))[1](dyt)[0]
    return dw.transpose(2, 3, 1, 0)


def wgrad_split(x, dy, wshape, parts=2):
    """XLA's own weight gradient summed over batch chunks (smaller working set per conv)."""
    f = lambda xx, d: jax.vjp(  # noqa: E731
        lambda w: jax.lax.conv_general_dilated(xx, w, (1, 1), "SAME", dimension_numbers=_DN), jnp.zeros(wshape, x.dtype)
    )[1](d)[0]
    xs = jnp.split(x, parts)
    ds = jnp.split(dy, parts)
    return sum(f(a, b) for a, b in zip(xs, ds))


# ------------------------------------------------------------------------------------------------------------
# The convolution with a selectable weight gradient
# ------------------------------------------------------------------------------------------------------------

WGRAD_METHODS = ("lax", "rows")


def _conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=_DN)


def _pick(method: str, x_shape) -> str:
    if method != "auto":
        return method
    # Measured (bench/conv_wgrad.py): GEMMs beat XLA:CPU's backprop-filter conv at small spatial sizes only.
    return "rows" if jax.default_backend() == "cpu" and x_shape[1] * x_shape[2] <= AUTO_MAX_PIXELS else "lax"


#: "auto" uses the GEMM weight gradient on CPU when H·W is at most this (8×8).
AUTO_MAX_PIXELS = 64


def conv_same(x, w, *, wgrad: str = "auto"):
    """y = conv(x, w), stride 1, 'SAME' zero padding, NHWC × HWIO → NHWC (odd kh, kw).

    Forward and input gradient are XLA's; the weight gradient is XLA's ("lax") or :func:`wgrad_rows` ("rows");
    "auto" picks per shape at trace time (CPU only; other backends always "lax"). Numerically the same
    function: the methods differ only in float summation order.
    """
    if wgrad not in WGRAD_METHODS + ("auto",):
        raise ValueError(f"conv_same: wgrad={wgrad!r} must be one of {WGRAD_METHODS + ('auto',)}")
    kh, kw = w.shape[:2]
    if kh % 2 == 0 or kw % 2 == 0:
        raise ValueError(f"conv_same: kernel shape {w.shape} must have odd spatial sizes")
    method = _pick(wgrad, x.shape)
    if method == "lax":
        return _conv(x, w)
    return _conv_rows(x, w)


@jax.custom_vjp
def _conv_rows(x, w):
    return _conv(x, w)


def _conv_rows_fwd(x, w):
    return _conv(x, w), (x, w)


def _conv_rows_bwd(res, dy):
    x, w = res
    dx = jax.vjp(lambda x_: _conv(x_, w), x)[1](dy)[0]
    dw = wgrad_rows(x, dy, w.shape).astype(w.dtype)
    return dx, dw


_conv_rows.defvjp(_conv_rows_fwd, _conv_rows_bwd)
