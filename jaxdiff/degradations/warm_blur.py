"""The blur of warm (blur + noise) diffusion: a heat-kernel blur whose width grows with t, diagonal in the DCT basis.

    D_t(x) = idct2(d_t ⊙ dct2(x)),   d_t = (1 − d_min) exp(−λ σ_B,t²/2) + d_min,   λ_kl = π² (k²/H² + l²/W²)

per channel (the Gaussian blur of std σ_B,t pixels with reflecting borders, as ``heat``), σ_B,0 = 0 so D_0 = identity.
The width σ_B,t follows ``blur``:

    "noise"    σ_B,t = min(bnr · σ_t/α_t, sigma_max): tied to the process's noise level (Warm Diffusion's
               blur-to-noise ratio, BNR = σ_B/σ̃ with σ̃ = σ_t/α_t the noise level of x_t/α_t; α_t = 0 → sigma_max)
    "linear"   σ_B,t = sigma_min + (sigma_max − sigma_min)(t − 1)/(T − 1) for t ≥ 1 (Soft Diffusion's blur levels)

With ``blur="noise"`` the builder needs the noise schedule's σ_t/α_t: it declares ``noise_levels``, which
:func:`jaxdiff.processes.make_process` passes (the table (T + 1,) float64, +inf where α_t = 0). The floor
``d_min`` > 0 keeps D_t invertible (ε-prediction); 0 lets the highest frequencies vanish (x0-, v-prediction).
"""
from __future__ import annotations

import numpy as np

from jaxdiff.checks import check_int
from jaxdiff.degradations.base import (
    Degradation, GenerationPrior, check_choice, check_image, check_real, check_size, f32, fail, keep_t0,
    register_degradation, t_vec
)
from jaxdiff.processes.dct import dct2, idct2, laplacian_eigenvalues

__all__ = ["WARM_BLURS", "warm_blur_sigmas", "warm_blur"]

#: how the blur width grows with t (``blur``)
WARM_BLURS = ("noise", "linear")


def warm_blur_sigmas(T: int, *, blur: str, bnr: float, sigma_min: float, sigma_max: float,
                     noise_levels=None) -> np.ndarray:
    """σ_B,t for t = 0 … T (float64, (T + 1,), σ_B,0 = 0): see the module docstring."""
    if blur == "linear":
        frac = (np.arange(1, T + 1, dtype=np.float64) - 1.0) / max(T - 1, 1)
        s = sigma_min + (sigma_max - sigma_min) * frac if T > 1 else np.array([sigma_max])
        return np.concatenate([[0.0], s])
    levels = np.asarray(noise_levels, np.float64)
    with np.errstate(invalid="ignore"):  # bnr = 0 with an infinite level: no blur
        s = np.where(np.isfinite(levels), np.minimum(bnr * levels, sigma_max), sigma_max if bnr > 0 else 0.0)
    s[0] = 0.0
    return s


@register_degradation("warm_blur")
def warm_blur(
    *, T: int, image_size: int = 32, channels: int = 3,
    blur: str = "noise",
    bnr: float = 0.5,
    sigma_min: float = 0.01,
    sigma_max: float = 16.0,
    d_min: float = 0.001,
    noise_levels=None,
) -> Degradation:
    """D_t(x) = idct2(d_t ⊙ dct2(x)) (module docstring). Shapes: x (B, N, N, C), t () or (B,), aux ignored.

    ``noise_levels``: σ_t/α_t of the process's noise schedule (T + 1,), needed for ``blur="noise"`` (passed by
    :func:`jaxdiff.processes.make_process`; not a config parameter).
    """
    T = check_int(T, field="T", lo=1, owner="degradation 'warm_blur'")
    n = check_size("warm_blur", image_size, channels)
    blur = check_choice("warm_blur", "blur", blur, WARM_BLURS)
    bnr = check_real("warm_blur", "bnr", bnr, nonneg=True)
    lo = check_real("warm_blur", "sigma_min", sigma_min, nonneg=True)
    hi = check_real("warm_blur", "sigma_max", sigma_max, positive=True)
    if blur == "linear" and hi < lo:
        fail("warm_blur", "sigma_max", sigma_max, f">= sigma_min = {lo!r} (the blur only grows with t)")
    dmin = check_real("warm_blur", "d_min", d_min)
    if not 0.0 <= dmin < 1.0:
        fail("warm_blur", "d_min", d_min, "in [0, 1) (a floor > 0 keeps D_t invertible for ε-prediction)")
    if blur == "noise":
        if noise_levels is None:
            raise ValueError("degradation 'warm_blur' with blur='noise' ties its width to the noise level σ_t/α_t: "
                             "build it with its noise schedule (jaxdiff.processes.make_process passes noise_levels)")
        levels = np.asarray(noise_levels, np.float64)
        if levels.shape != (T + 1,) or np.any(np.isnan(levels)) or np.any(levels < 0):
            raise ValueError(f"degradation 'warm_blur': noise_levels must be σ_t/α_t for t = 0 … T={T}, shape "
                             f"({T + 1},), >= 0; got shape {levels.shape}")
    sig_b = warm_blur_sigmas(T, blur=blur, bnr=bnr, sigma_min=lo, sigma_max=hi, noise_levels=noise_levels)
    if np.any(np.diff(sig_b) < 0):
        raise ValueError("degradation 'warm_blur': the blur width must not shrink with t (σ_t/α_t of the noise "
                         "schedule decreases somewhere; use blur='linear')")
    lam = laplacian_eigenvalues(n, n)
    spectrum = (1.0 - dmin) * np.exp(-0.5 * sig_b[:, None, None] ** 2 * lam[None]) + dmin  # (T + 1, N, N)
    spectrum[0] = 1.0
    D = f32(spectrum)

    def apply(x0, t, aux=None):
        check_image(x0, "warm_blur", n)
        t = t_vec(t, x0, "warm_blur")
        return keep_t0(x0, t, idct2(D[t][..., None].astype(x0.dtype) * dct2(x0)))

    # Where the noise does not dominate x_T (a small σ), a blur to about the image size ends flat at the
    # per-channel means, like heat dissipation: the same prior, generated by Algorithm 2.
    generation = GenerationPrior(kind="blur_mean", prior_noise=True, corrector="cold_improved",
                                 mismatch_hint="blur to about the image size, e.g. "
                                               "--config.diffusion.degradation_params.sigma_max=<image_size>, "
                                               "or let the noise dominate x_T")
    return Degradation(name="warm_blur", T=T, apply=apply, generation=generation, spectrum=spectrum)
