"""Group normalization (Wu & He 2018) with statistics computed in the order XLA:CPU reduces fastest.

    x (B, *spatial, C), G groups of C/G channels, P = prod(spatial):
    μ_bg  = mean of x[b, :, c] over the P positions and the C/G channels c of group g
    σ²_bg = mean of x² over the same − μ_bg²                    (clipped at 0, as flax's ``use_fast_variance``)
    y[b, p, c] = (x[b, p, c] − μ_bg) / √(σ²_bg + ε) · scale[c] + bias[c]  =  x · a[b, c] + k[b, c]

``impl``: ``"two_stage"`` sums over the positions first ((B, P, C) → (B, C), channels contiguous), then over each
group's channels; ``"grouped"`` reduces (B, P, G, C/G) over (P, C/G) at once (flax's form); ``"auto"`` picks
two_stage on the CPU backend and grouped elsewhere. Same numbers up to float32 summation order, same parameters
as flax ``nn.GroupNorm`` (``scale``, ``bias`` (C,)). Timings: BENCHMARKS.md, "GroupNorm + SiLU alone".
"""
from __future__ import annotations

from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

GROUP_NORM_IMPLS = ("auto", "two_stage", "grouped")


def resolve_impl(impl: str) -> str:
    """``"auto"`` → ``"two_stage"`` on the CPU backend (decided at trace time), ``"grouped"`` elsewhere."""
    if impl not in GROUP_NORM_IMPLS:
        raise ValueError(f"group_norm: impl={impl!r} must be one of {GROUP_NORM_IMPLS}")
    if impl == "auto":
        return "two_stage" if jax.default_backend() == "cpu" else "grouped"
    return impl


def group_norm(
    x: jnp.ndarray,
    scale: jnp.ndarray,
    bias: jnp.ndarray,
    *,
    num_groups: int,
    epsilon: float = 1e-5,
    impl: str = "auto",
    dtype: Optional[Any] = None,
) -> jnp.ndarray:
    """GroupNorm of x (B, *spatial, C) with per-channel scale, bias (C,) → same shape, ``dtype`` (default x's).

    Statistics and the affine map are computed in float32 whatever x's dtype (as flax does for bfloat16).
    """
    if x.ndim < 2:
        raise ValueError(f"group_norm: x of shape {x.shape} must be (B, ..., C)")
    B, C = x.shape[0], x.shape[-1]
    if num_groups < 1 or C % num_groups:
        raise ValueError(f"group_norm: num_groups={num_groups} must divide the {C} channels of x {x.shape}")
    if scale.shape != (C,) or bias.shape != (C,):
        raise ValueError(f"group_norm: scale {scale.shape} and bias {bias.shape} must be ({C},)")
    G, Cg = num_groups, C // num_groups
    xf = x.astype(jnp.float32).reshape(B, -1, C)
    if resolve_impl(impl) == "two_stage":
        m1 = jnp.mean(xf, axis=1).reshape(B, G, Cg).mean(axis=-1)
        m2 = jnp.mean(jnp.square(xf), axis=1).reshape(B, G, Cg).mean(axis=-1)
    else:
        xg = xf.reshape(B, -1, G, Cg)
        m1 = jnp.mean(xg, axis=(1, 3))
        m2 = jnp.mean(jnp.square(xg), axis=(1, 3))
    var = jnp.maximum(m2 - jnp.square(m1), 0.0)
    inv = jax.lax.rsqrt(var + jnp.float32(epsilon))  # (B, G)
    a = jnp.repeat(inv, Cg, axis=1) * scale.astype(jnp.float32)  # (B, C)
    k = bias.astype(jnp.float32) - jnp.repeat(m1, Cg, axis=1) * a
    bshape = (B,) + (1,) * (x.ndim - 2) + (C,)
    y = x.astype(jnp.float32) * a.reshape(bshape) + k.reshape(bshape)
    return y.astype(dtype if dtype is not None else x.dtype)


class GroupNorm(nn.Module):
    """Drop-in for ``flax.linen.GroupNorm(num_groups, epsilon, dtype)`` (same parameters), see :func:`group_norm`."""

    num_groups: int
    epsilon: float = 1e-5
    dtype: Any = jnp.float32
    impl: str = "auto"

    @nn.compact
    def __call__(self, x):
        C = x.shape[-1]
        scale = self.param("scale", nn.initializers.ones, (C,), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (C,), jnp.float32)
        return group_norm(
            x, scale, bias, num_groups=self.num_groups, epsilon=self.epsilon, impl=self.impl, dtype=self.dtype
        )
