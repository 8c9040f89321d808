"""Blurring diffusion's blur (Hoogeboom & Salimans, ICLR 2023): each DCT frequency of the image decays.

    D_t(x) = idct2(d_t ⊙ dct2(x)),   d_t = (1 − d_min) exp(−λ τ_t) + d_min,   λ_kl = π² (k²/H² + l²/W²),
    τ_t = σ_B,t²/2,   σ_B,t = sigma_max · sin²(π t / (2T))          (so d_0 = 1 and D_0 = identity)

The floor d_min keeps every D_t invertible (1/d_t ≤ 1/d_min), which ε-prediction needs. With a variance-
preserving noise schedule this is blurring diffusion; with a constant small σ it is a cold blur that never
ends flat (no generation prior of its own). The table is built in float64 and applied in float32.
"""
from __future__ import annotations

import numpy as np

from jaxdiff.checks import check_int
from jaxdiff.degradations.base import (
    Degradation, check_image, check_real, check_size, f32, fail, keep_t0, register_degradation, t_vec
)
from jaxdiff.processes.dct import dct2, idct2, laplacian_eigenvalues

__all__ = ["blur_scales", "dct_blur"]


def blur_scales(T: int, height: int, width: int, sigma_blur_max: float, d_min: float) -> np.ndarray:
    """d_t per frequency, float64 (T + 1, H, W): (1 − d_min) exp(−λ σ_B,t²/2) + d_min."""
    t = np.arange(T + 1, dtype=np.float64)
    sigma_b = sigma_blur_max * np.sin(np.pi * t / (2.0 * T)) ** 2
    tau = 0.5 * sigma_b**2
    lam = laplacian_eigenvalues(height, width)
    return (1.0 - d_min) * np.exp(-lam[None] * tau[:, None, None]) + d_min


@register_degradation("dct_blur")
def dct_blur(*, T: int, image_size: int = 32, channels: int = 3, sigma_max: float = 20.0,
             d_min: float = 0.001) -> Degradation:
    """D_t(x) = idct2(d_t ⊙ dct2(x)) (module docstring). Shapes: x (B, N, N, C), t () or (B,), aux ignored.

    Defaults: our reading of the paper's CIFAR-10 blur (σ_B,max = 20 at 32×32, d_min = 0.001).
    """
    T = check_int(T, field="T", lo=1, owner="degradation 'dct_blur'")
    n = check_size("dct_blur", image_size, channels)
    smax = check_real("dct_blur", "sigma_max", sigma_max, nonneg=True)
    dmin = check_real("dct_blur", "d_min", d_min)
    if not 0.0 < dmin <= 1.0:
        fail("dct_blur", "d_min", d_min, "in (0, 1] (the floor keeps D_t invertible)")
    spectrum = blur_scales(T, n, n, smax, dmin)
    D = f32(spectrum)

    def apply(x0, t, aux=None):
        check_image(x0, "dct_blur", n)
        t = t_vec(t, x0, "dct_blur")
        return keep_t0(x0, t, idct2(D[t][..., None].astype(x0.dtype) * dct2(x0)))

    return Degradation(name="dct_blur", T=T, apply=apply, spectrum=spectrum)
