"""Degradations by growing Gaussian masks: inpaint (holes become 0) and fade (holes become a solid color).

    inpaint:  F_t(x0) = x0 ⊙ M_t,               M_t = ∏_{i<t} m_i,  m_i = 1 − exp(−r²/(2 s_i²))
    fade:     F_t(x0) = M_t ⊙ x0 + (1 − M_t) ⊙ c,  M_T = 0, c ~ U(−0.5, 0.5) per example and channel

The masks depend only on r² = dy² + dx² from an integer center, so (t, r²) tables make any t one gather.
A fade ends exactly at its color and generates from the ``color`` prior; inpaint is restoration only.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.degradations.base import (
    Degradation, GenerationPrior, check_bool, check_image, check_real, check_size, f32, keep_t0,
    register_degradation, t_vec
)

__all__ = ["FADE_COLORS", "inpaint", "fade"]

#: the range (low, high) of a fade's end color, per channel
FADE_COLORS = (-0.5, 0.5)


def _check_mask_params(deg, kernel_std, initial_mask, centered):
    ks = check_real(deg, "kernel_std", kernel_std, positive=True)
    im = check_real(deg, "initial_mask", initial_mask, positive=True)
    return ks, im, check_bool(deg, "centered", centered)


def _mask_tables(T: int, n: int, kernel_std: float, initial_mask: float):
    """Mask tables indexed by (t, r²), r² = dy² + dx² ∈ [0, 2(N−1)²] (float64).

    m_i(r²) = 1 − exp(−r² / (2 s_i²)), s_i = kernel_std·(i + initial_mask): the Gaussian bump
    G_i / max G_i with its peak on the (integer) center pixel. Returns
    step[t] = m_{t−1} (step[0] = 1) and prod[t] = ∏_{i<t} m_i (prod[0] = 1), both (T+1, R).
    """
    r2 = np.arange(2 * (n - 1) ** 2 + 1, dtype=np.float64)
    s = kernel_std * (np.arange(T, dtype=np.float64) + initial_mask)
    m = 1.0 - np.exp(-r2[None, :] / (2.0 * s[:, None] ** 2))
    step = np.concatenate([np.ones((1, r2.size)), m], axis=0)
    return step, np.cumprod(step, axis=0)


def _r2_index(centers: jnp.ndarray, n: int) -> jnp.ndarray:
    """(B, 2) integer centers (row, col) → (B, N, N) int32 squared distances r²."""
    c = jnp.clip(centers.astype(jnp.int32), 0, n - 1)
    ar = jnp.arange(n, dtype=jnp.int32)
    dy = ar[None, :] - c[:, :1]
    dx = ar[None, :] - c[:, 1:]
    return dy[:, :, None] ** 2 + dx[:, None, :] ** 2


def _check_centers(c, x, deg):
    c = jnp.asarray(c)
    if c.shape != (x.shape[0], 2) or not jnp.issubdtype(c.dtype, jnp.integer):
        raise ValueError(
            f"degradation {deg!r}: the mask centers (aux) must be integers of shape (B, 2) = ({x.shape[0]}, 2), "
            f"got {c.dtype}{c.shape}"
        )
    return c


def _sample_centers(key, x0, n):
    return jax.random.randint(key, (x0.shape[0], 2), 0, n, dtype=jnp.int32)


@register_degradation("inpaint")
def inpaint(
    *, T: int, image_size: int = 32, channels: int = 3,
    kernel_std: float = 0.1,
    initial_mask: float = 11.0,
    centered: bool = False,
) -> Degradation:
    """Growing Gaussian-hole inpainting: F_t(x0) = x0 ⊙ ∏_{i<t} m_i (masked pixels become 0).

    m_i = 1 − G_i / max G_i, G_i a Gaussian bump of std kernel_std·(i + initial_mask) pixels at an
    integer center c (the same for every channel and every t). ``centered=True`` puts c at the image
    center (N//2, N//2); otherwise c is drawn per example by ``sample_aux(key, x0)`` → int32 (B, 2)
    (row, col), uniform over the pixels, and ``aux=None`` falls back to the image center.

    m_i depends only on the integer r² = dy² + dx², so the table ∏_{i<t} m_i over (t, r²) is built once
    and any center is a gather. ``step(x_prev, t, aux)`` multiplies by m_{t−1}.
    """
    n = check_size("inpaint", image_size, channels)
    ks, im, centered = _check_mask_params("inpaint", kernel_std, initial_mask, centered)
    step_tab, prod_tab = _mask_tables(T, n, ks, im)
    S, P = f32(step_tab), f32(prod_tab)

    def mask(table, x, t, aux):
        if centered or aux is None:
            c = jnp.full((x.shape[0], 2), n // 2, jnp.int32)
        else:
            c = _check_centers(aux, x, "inpaint")
        return table[t[:, None, None], _r2_index(c, n)][..., None]  # (B, N, N, 1)

    def apply(x0, t, aux=None):
        check_image(x0, "inpaint", n)
        t = t_vec(t, x0, "inpaint")
        return keep_t0(x0, t, x0 * mask(P, x0, t, aux).astype(x0.dtype))

    def step(x_prev, t, aux=None):
        check_image(x_prev, "inpaint", n)
        t = t_vec(t, x_prev, "inpaint")
        return x_prev * mask(S, x_prev, t, aux).astype(x_prev.dtype)

    sample_aux = None if centered else (lambda key, x0: _sample_centers(key, x0, n))
    return Degradation(name="inpaint", T=T, apply=apply, step=step, sample_aux=sample_aux)


@register_degradation("fade")
def fade(
    *, T: int, image_size: int = 32, channels: int = 3,
    kernel_std: float = 0.1,
    initial_mask: float = 11.0,
    centered: bool = True,
) -> Degradation:
    """Fade to a solid color (the generation variant of inpainting).

        x_t = M_t ⊙ x0 + (1 − M_t) ⊙ c,   M_t = ∏_{i<t} m_i for t < T (the inpaint masks),  M_T = 0,

    c a solid color per example and channel, c ~ U(FADE_COLORS) = U(−0.5, 0.5). Setting M_T = 0 makes F_T exactly
    the color image, so x_T carries no information about x0 and ``prior`` is exact. The Gaussian
    masks alone never reach 0, so pick kernel_std·(T + initial_mask) large against the image size
    (e.g. ≥ N) if the last step should not be a jump.

    aux: the color (B, 1, 1, C), or with ``centered=False`` a dict {"color": (B, 1, 1, C),
    "center": int (B, 2)}; ``sample_aux(key, x0)`` draws that. ``apply`` needs aux (there is no
    default color). ``prior(key, shape, aux)`` returns the color image (drawing c if aux is None).
    ``step(x_prev, t, aux)`` = c + m_{t−1} (x_prev − c), with m_{T−1} := 0.
    """
    n = check_size("fade", image_size, channels)
    ks, im, centered = _check_mask_params("fade", kernel_std, initial_mask, centered)
    step_tab, prod_tab = _mask_tables(T, n, ks, im)
    step_tab[T] = 0.0
    prod_tab[T] = 0.0
    S, P = f32(step_tab), f32(prod_tab)

    def split(aux, x):
        if aux is None:
            raise ValueError("degradation 'fade': aux (the end color) is required; draw it with sample_aux(key, x0)")
        if isinstance(aux, dict):
            color, center = aux.get("color"), aux.get("center")
            if color is None:
                raise ValueError("degradation 'fade': aux dict needs a 'color' entry of shape (B, 1, 1, C)")
        else:
            color, center = aux, None
        color = jnp.asarray(color)
        b, c = x.shape[0], x.shape[-1]
        if color.ndim != 4 or color.shape[0] != b or color.shape[1:3] != (1, 1) or color.shape[3] not in (1, c):
            raise ValueError(f"degradation 'fade': aux color must have shape ({b}, 1, 1, {c}), got {color.shape}")
        if centered or center is None:
            center = jnp.full((b, 2), n // 2, jnp.int32)
        else:
            center = _check_centers(center, x, "fade")
        return color.astype(x.dtype), center

    def blend(table, x, t, aux):
        color, center = split(aux, x)
        m = table[t[:, None, None], _r2_index(center, n)][..., None].astype(x.dtype)
        return color + m * (x - color)

    def apply(x0, t, aux=None):
        check_image(x0, "fade", n)
        t = t_vec(t, x0, "fade")
        return keep_t0(x0, t, blend(P, x0, t, aux))

    def step(x_prev, t, aux=None):
        check_image(x_prev, "fade", n)
        t = t_vec(t, x_prev, "fade")
        return keep_t0(x_prev, t, blend(S, x_prev, t, aux))

    def draw_color(key, b, c, dtype):
        low, high = FADE_COLORS
        return jax.random.uniform(key, (b, 1, 1, c), dtype, minval=low, maxval=high)

    def sample_aux(key, x0):
        kc, kp = jax.random.split(key)
        color = draw_color(kc, x0.shape[0], x0.shape[-1], x0.dtype)
        if centered:
            return color
        return {"color": color, "center": _sample_centers(kp, x0, n)}

    def prior(key, shape, aux=None):
        shape = tuple(shape)
        if aux is None:
            color = draw_color(key, shape[0], shape[-1], jnp.float32)
        else:
            color = jnp.asarray(aux["color"] if isinstance(aux, dict) else aux)
        return jnp.broadcast_to(color, shape)

    def generation_aux(x_T, key):
        # F_T is the solid color c: x_T's per-channel spatial mean (exact without noise)
        color = jnp.mean(x_T, axis=(1, 2), keepdims=True)
        drawn = sample_aux(key, x_T)
        return {**drawn, "color": color} if isinstance(drawn, dict) else color

    generation = GenerationPrior(kind="color", fit_on="none", aux=generation_aux,
                                 fit_params={"low": FADE_COLORS[0], "high": FADE_COLORS[1]})
    return Degradation(name="fade", T=T, apply=apply, step=step, sample_aux=sample_aux, prior=prior,
                       generation=generation)
