"""Degradations of color images: decolor (toward gray) and ImageNet-C-style snow. Both need C = 3.

    decolor:  F_t(x) = (1 − t/T)·x + (t/T)·gray(x),   gray = per-pixel channel mean
    snow:     F_t(x) = clip(x + 2·(S_t + rot180(S_t)), −1, 1),   S_t a growing snow layer (a table)

Both end states depend on the image, so neither has a generation prior (restoration only).
"""
from __future__ import annotations

import math

import jax.numpy as jnp
import numpy as np

from jaxdiff.checks import check_int
from jaxdiff.degradations.base import (
    Degradation, check_image, check_real, check_size, f32, fail, keep_t0, register_degradation, t_vec
)
from jaxdiff.degradations.base import bcast

__all__ = ["gray", "decolor", "snow"]

def gray(x: jnp.ndarray) -> jnp.ndarray:
    """Per-pixel channel mean, kept at C channels: (B, H, W, C) → (B, H, W, C)."""
    return jnp.broadcast_to(jnp.mean(x, axis=-1, keepdims=True), x.shape)


# --------------------------------------------------------------------------------------------
# decolor
# --------------------------------------------------------------------------------------------


@register_degradation("decolor", color_only=True)
def decolor(*, T: int, image_size: int = 32, channels: int = 3) -> Degradation:
    """F_t(x) = (1 − t/T)·x + (t/T)·gray(x), gray = per-pixel channel mean. Pointwise: any H, W."""
    check_size("decolor", image_size, channels)

    def apply(x0, t, aux=None):
        check_image(x0, "decolor")
        t = t_vec(t, x0, "decolor")
        s = bcast(t.astype(jnp.float32) / T, x0).astype(x0.dtype)
        return (1 - s) * x0 + s * gray(x0)

    def step(x_prev, t, aux=None):
        # x_t − g = (T − t)/(T − t + 1) · (x_{t−1} − g), and gray(x_{t−1}) = gray(x0) = g.
        check_image(x_prev, "decolor")
        t = t_vec(t, x_prev, "decolor")
        g = gray(x_prev)
        tf = bcast(t.astype(jnp.float32), x_prev)
        r = jnp.where(tf > 0, (T - tf) / (T - tf + 1), 1.0)
        return g + r.astype(x_prev.dtype) * (x_prev - g)

    return Degradation(name="decolor", T=T, apply=apply, step=step)



# --------------------------------------------------------------------------------------------
# snow
# --------------------------------------------------------------------------------------------


def _shift_zero(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = img[y + dy, x + dx], 0 outside."""
    h, w = img.shape
    out = np.zeros_like(img)
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[yd, xd] = img[ys, xs]
    return out


def _shift_bilinear(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """out[y, x] = img(y + dy, x + dx), bilinear, 0 outside."""
    y0, x0 = math.floor(dy), math.floor(dx)
    fy, fx = dy - y0, dx - x0
    out = (1 - fy) * (1 - fx) * _shift_zero(img, y0, x0)
    if fx:
        out += (1 - fy) * fx * _shift_zero(img, y0, x0 + 1)
    if fy:
        out += fy * (1 - fx) * _shift_zero(img, y0 + 1, x0)
    if fx and fy:
        out += fy * fx * _shift_zero(img, y0 + 1, x0 + 1)
    return out


def _zoom_crop(low: np.ndarray, zoom: float, n: int) -> np.ndarray:
    """Bilinear ×zoom up-sampling of a small square array, center-cropped to n × n."""
    m = low.shape[0]
    off = (m * zoom - n) / 2.0
    p = np.clip((np.arange(n) + 0.5 + off) / zoom - 0.5, 0, m - 1)
    i0 = np.minimum(np.floor(p).astype(int), m - 2) if m > 1 else np.zeros(n, int)
    f = p - i0 if m > 1 else np.zeros(n)
    i1 = np.minimum(i0 + 1, m - 1)
    rows = low[i0] * (1 - f)[:, None] + low[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def _motion_blur(layer: np.ndarray, sigma: float, angle_deg: float) -> np.ndarray:
    """One-sided Gaussian streak (ImageMagick-style motion blur): Σ_d w_d · layer(p + d·u),
    d = 0 … ceil(3σ), w_d ∝ exp(−d²/2σ²) normalised, u the unit vector at ``angle_deg``."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    d = np.arange(radius + 1, dtype=np.float64)
    w = np.exp(-(d**2) / (2.0 * sigma**2))
    w /= w.sum()
    a = math.radians(angle_deg)
    uy, ux = math.sin(a), math.cos(a)
    out = np.zeros_like(layer)
    for di, wi in zip(d, w):
        if wi < 1e-12:
            continue
        out += wi * _shift_bilinear(layer, di * uy, di * ux)
    return out


@register_degradation("snow", color_only=True)
def snow(
    *, T: int, image_size: int = 32, channels: int = 3,
    seed: int = 0,
    thr_start: float = 1.15,
    thr_end: float = 0.70,
    sigma_start: float = 0.05,
    sigma_end: float = 16.0,
    loc: float = 0.55,
    scale: float = 0.3,
    zoom: float = 2.5,
) -> Degradation:
    """ImageNet-C-style snow (not cumulative in the image; the snow layer only grows with t).

        x̃ = (x0 + 1)/2,   F_t(x0) = clip(x̃ + S_t + rot180(S_t), 0, 1)·2 − 1   (t ≥ 1),   F_0 = identity.

    One base noise image is drawn at build time from ``seed``: normal(loc, scale) at ceil(N/zoom)²,
    bilinearly zoomed ×zoom and center-cropped to N×N; one streak angle θ ~ U(−135°, −45°). For
    t = 1 … T (linear in t): thr_t from thr_start to thr_end, σ_t from sigma_start to sigma_end;
    L_t = clip(base · [base ≥ thr_t], 0, 1) motion-blurred with σ_t along θ. A wider blur spreads a
    flake and lowers its peak, so on its own severity could drop; we define
    S_t = max(S_{t−1}, blur_{σ_t}(L_t)) (pointwise, S_0 = 0): snow accumulates and never melts, so
    F_t is pointwise non-decreasing in t. S (T+1, N, N) is a table: F_t is one gather. Same snow on
    every channel and every example; aux ignored.
    """
    n = check_size("snow", image_size, channels)
    seed = check_int(seed, field="seed", lo=0, owner="degradation 'snow'")
    thr_start = check_real("snow", "thr_start", thr_start)
    thr_end = check_real("snow", "thr_end", thr_end)
    if thr_end > thr_start:
        fail("snow", "thr_end", thr_end, f"<= thr_start = {thr_start} (a falling threshold adds snow)")
    sigma_start = check_real("snow", "sigma_start", sigma_start, positive=True)
    sigma_end = check_real("snow", "sigma_end", sigma_end, positive=True)
    loc = check_real("snow", "loc", loc)
    scale = check_real("snow", "scale", scale, nonneg=True)
    zoom = check_real("snow", "zoom", zoom)
    if zoom < 1:
        fail("snow", "zoom", zoom, ">= 1")

    rng = np.random.default_rng(seed)
    base = _zoom_crop(rng.normal(loc, scale, size=(math.ceil(n / zoom),) * 2), zoom, n)
    angle = float(rng.uniform(-135.0, -45.0))
    frac = np.arange(T, dtype=np.float64) / (T - 1) if T > 1 else np.ones(1)
    thr = thr_start + frac * (thr_end - thr_start)
    sig = sigma_start + frac * (sigma_end - sigma_start)
    layers = np.zeros((T + 1, n, n))
    for t in range(1, T + 1):
        flakes = np.clip(np.where(base >= thr[t - 1], base, 0.0), 0.0, 1.0)
        layers[t] = np.maximum(layers[t - 1], _motion_blur(flakes, sig[t - 1], angle))
    table = f32(layers + layers[:, ::-1, ::-1])

    def apply(x0, t, aux=None):
        check_image(x0, "snow", n)
        t = t_vec(t, x0, "snow")
        s = table[t][..., None].astype(x0.dtype)
        # clip(x̃ + s, 0, 1)·2 − 1 = clip(x0 + 2s, −1, 1)
        return keep_t0(x0, t, jnp.clip(x0 + 2 * s, -1, 1))

    return Degradation(name="snow", T=T, apply=apply)
