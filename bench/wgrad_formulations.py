"""Ways to compute a 3×3 'SAME' convolution's weight gradient as GEMMs, for bench/conv_wgrad.py to time against
XLA's own (the lax.conv vjp) and PyTorch's oneDNN kernel.

    dW[i, j, c, o] = Σ_{b,h,w} x_pad[b, h+i, w+j, c] · dy[b, h, w, o]     x (B,H,W,C) NHWC, dy (B,H,W,O), dW HWIO

None of them beat XLA:CPU's weight-gradient convolution inside the UNet on jax 0.12 (BENCHMARKS.md), so the
library does not use them; they live here, with the bench, and conv_wgrad reports each one's relative error
against XLA's result alongside its time.
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


def wgrad_dyt_rows(x, dy, wshape):
    """dWᵀ via width-only patches: kh GEMMs dyᵀ (O, B·H·W) · cols_i (B·H·W, kw·C), whose left operand is
    reduction-minor and right operand reduction-major (the layout XLA:CPU's dot runs fastest)."""
    kh, kw, C, O = wshape
    B, H, W, _ = x.shape
    xp = _pad(x, kh, kw)
    cols = jnp.concatenate([xp[:, :, j : j + W, :] for j in range(kw)], axis=-1)  # (B, H+kh−1, W, kw·C)
    dT = dy.reshape(B * H * W, O).T
    out = [dT @ cols[:, i : i + H].reshape(B * H * W, kw * C) for i in range(kh)]  # (O, kw·C) each
    return jnp.stack(out).reshape(kh, O, kw, C).transpose(0, 2, 3, 1)
