"""Heat dissipation (Rissanen, Heinonen & Solin, ICLR 2023): F_t is the heat equation with Neumann boundaries.

    F_t(x0) = idct2(exp(−λ τ_t) ⊙ dct2(x0)),   λ_kl = π² (k²/H² + l²/W²),   τ_t = σ_B,t² / 2

per channel, with the blur scales σ_B,t (t = 1 … T) spaced logarithmically from ``sigma_min`` to ``sigma_max``
pixels and τ_0 = 0. The DC coefficient (λ = 0) never decays, so every F_t keeps the per-channel mean and a long
dissipation ends at a nearly flat image: it generates from the ``blur_mean`` prior, like a full blur.
"""
from __future__ import annotations

import numpy as np

from jaxdiff.checks import check_int
from jaxdiff.processes.dct import dct2, idct2, laplacian_eigenvalues
from jaxdiff.degradations.base import (
    Degradation, GenerationPrior, check_image, check_real, check_size, f32, fail, keep_t0,
    register_degradation, t_vec
)

__all__ = ["heat_sigmas", "heat"]


def heat_sigmas(T: int, *, sigma_min: float, sigma_max: float) -> np.ndarray:
    """σ_B,t for t = 0 … T (float64, (T + 1,)): 0, then T values log-spaced from sigma_min to sigma_max."""
    return np.concatenate([[0.0], np.exp(np.linspace(np.log(sigma_min), np.log(sigma_max), T))])


@register_degradation("heat")
def heat(
    *, T: int, image_size: int = 32, channels: int = 3,
    sigma_min: float = 0.5,
    sigma_max: float = 20.0,
) -> Degradation:
    """Heat dissipation: F_t(x0) = idct2(D_t ⊙ dct2(x0)), D_t = exp(−λ σ_B,t²/2) (see the module docstring).

    The table D (T + 1, N, N) is built once (float64, stored float32), so any t (one per example) costs one
    gather and two DCTs. F_0 = identity exactly. ``step(x_prev, t)`` applies D_t / D_{t−1} = exp(−λ(τ_t − τ_{t−1}))
    (the heat semigroup). Shapes: x0 (B, N, N, C), t () or (B,), aux ignored.
    Defaults: the paper's MNIST schedule (28×28: σ_B from 0.5 to 20 px).
    """
    T = check_int(T, field="T", lo=1, owner="degradation 'heat'")
    n = check_size("heat", image_size, channels)
    lo = check_real("heat", "sigma_min", sigma_min, positive=True)
    hi = check_real("heat", "sigma_max", sigma_max, positive=True)
    if hi < lo:
        fail("heat", "sigma_max", sigma_max, f">= sigma_min = {lo!r} (the blur only grows with t)")
    tau = heat_sigmas(T, sigma_min=lo, sigma_max=hi) ** 2 / 2.0  # (T + 1,)
    lam = laplacian_eigenvalues(n, n)  # (N, N)
    spectrum = np.exp(-tau[:, None, None] * lam[None])  # (T + 1, N, N) float64
    D = f32(spectrum)
    dtau = tau - np.concatenate([[0.0], tau[:-1]])  # τ_t − τ_{t−1}, 0 at t = 0
    S = f32(np.exp(-dtau[:, None, None] * lam[None]))  # S_t = D_t / D_{t−1}

    def _filter(x, table):
        xf = x.astype(np.float32)
        return idct2(table[..., None] * dct2(xf)).astype(x.dtype)

    def apply(x0, t, aux=None):
        check_image(x0, "heat", n)
        t = t_vec(t, x0, "heat")
        return keep_t0(x0, t, _filter(x0, D[t]))

    def step(x_prev, t, aux=None):
        check_image(x_prev, "heat", n)
        t = t_vec(t, x_prev, "heat")
        return keep_t0(x_prev, t, _filter(x_prev, S[t]))

    # the mean is kept and everything else dissipates: the end state is (nearly) flat at the per-channel means.
    # Generation by Algorithm 2; ``cold_naive`` on the noisy process is the paper's F_{t−1}(x̂0) + δ z.
    generation = GenerationPrior(kind="blur_mean", prior_noise=True, corrector="cold_improved",
                                 mismatch_hint="dissipate to about the image size, e.g. "
                                               "--config.diffusion.degradation_params.sigma_max=<image_size>")
    return Degradation(name="heat", T=T, apply=apply, step=step, generation=generation, spectrum=spectrum)
