"""Cumulative Gaussian blur (Cold Diffusion deblurring): F_t = G_{t−1} ∘ … ∘ G_0, F_0 = identity.

Per spatial axis each step G_i is an N×N matrix M_i; the products P_t = M_{t−1} ⋯ M_0 are built once, so
F_t(x) = P_t · x · P_tᵀ per channel costs two small matmuls for any t. A full blur ends at a flat image of
the per-channel means, so it generates from the ``blur_mean`` prior (a mixture on those means).
"""
from __future__ import annotations

import numpy as np

from jaxdiff.checks import check_int
from jaxdiff.degradations.base import (
    Degradation, GenerationPrior, check_bool, check_choice, check_image, check_real, check_size, f32, fail,
    keep_t0, register_degradation, separable, t_vec
)

__all__ = ["BLUR_ROUTINES", "BLUR_PADDINGS", "blur_sigmas", "blur"]


BLUR_ROUTINES = ("constant", "incremental", "exponential", "affine")
BLUR_PADDINGS = ("circular", "reflect")


def _check_blur_params(*, kernel_size, std, routine, padding, std_increment, image_size=None):
    deg = "blur"
    k = check_int(kernel_size, field="kernel_size", lo=1, owner=f"degradation {deg!r}")
    if k % 2 == 0:
        fail(deg, "kernel_size", kernel_size, "odd (the kernel is centered)")
    std = check_real(deg, "std", std, positive=True)
    check_choice(deg, "routine", routine, BLUR_ROUTINES)
    check_choice(deg, "padding", padding, BLUR_PADDINGS)
    inc = check_real(deg, "std_increment", std_increment)
    if padding == "reflect" and image_size is not None and not image_size > k // 2:
        raise ValueError(
            f"degradation 'blur': reflect padding needs image_size > kernel_size//2 "
            f"(got image_size={image_size}, kernel_size={k})"
        )
    return k, std, inc


def blur_sigmas(T: int, *, std: float, routine: str, std_increment: float = 0.01) -> np.ndarray:
    """σ_i of blur step i = 0 … T−1 (float64, shape (T,)).

    constant: σ_i = std;  incremental: σ_i = std·(i+1);  exponential: σ_i = exp(std·i);
    affine: σ_i = std + std_increment·i  (CIFAR-10: std 0.35, std_increment 0.01).
    """
    i = np.arange(T, dtype=np.float64)
    if routine == "constant":
        s = np.full(T, float(std))
    elif routine == "incremental":
        s = std * (i + 1)
    elif routine == "exponential":
        with np.errstate(over="ignore"):
            s = np.exp(std * i)  # may overflow to inf: the Gaussian then becomes a box, still valid
    elif routine == "affine":
        s = std + std_increment * i
    else:
        fail("blur", "routine", routine, f"one of {list(BLUR_ROUTINES)}")
    if T and not np.all(s > 0):
        j = int(np.argmin(s))
        raise ValueError(
            f"degradation 'blur': every σ_i must be > 0, but routine {routine!r} with std={std}, "
            f"std_increment={std_increment} gives σ_{j} = {s[j]:.4g}"
        )
    return s


def _gauss1d(sigma: float, k: int) -> np.ndarray:
    """1-D Gaussian sampled at integer offsets −k//2 … k//2, normalised to sum 1 (float64)."""
    r = np.arange(-(k // 2), k // 2 + 1, dtype=np.float64)
    with np.errstate(over="ignore"):  # a huge σ gives σ² = inf, i.e. a box: fine
        g = np.exp(-(r**2) / (2.0 * np.float64(sigma) ** 2)) if np.isfinite(sigma) else np.ones_like(r)
    return g / g.sum()


def _blur_matrix(g: np.ndarray, n: int, padding: str) -> np.ndarray:
    """N×N matrix M of the 1-D correlation y[i] = Σ_j g[j] x[pad(i + j − k//2)] with that padding."""
    k = g.size
    rows = np.arange(n)[:, None]
    src = rows + np.arange(k)[None, :] - k // 2  # (n, k) source index before padding
    if padding == "circular":
        src = np.mod(src, n)
    else:  # reflect about the edge sample without repeating it; valid for k//2 <= n-1
        src = np.where(src < 0, -src, src)
        src = np.where(src > n - 1, 2 * (n - 1) - src, src)
    M = np.zeros((n, n), dtype=np.float64)
    np.add.at(M, (np.broadcast_to(rows, src.shape), src), np.broadcast_to(g, src.shape))
    return M


@register_degradation("blur")
def blur(
    *, T: int, image_size: int = 32, channels: int = 3,
    kernel_size: int = 11,
    std: float = 7.0,
    routine: str = "constant",
    padding: str = "circular",
    std_increment: float = 0.01,
    to_mean: bool = False,
) -> Degradation:
    """Cumulative Gaussian blur: F_t = G_{t−1} ∘ … ∘ G_0, F_0 = identity.

    G_i is the depthwise correlation with the separable kernel g_i ⊗ g_i, g_i the 1-D Gaussian of
    σ_i (see :func:`blur_sigmas`) sampled at integer offsets −k//2 … k//2 and normalised to sum 1,
    with circular or reflect (mirror without repeating the edge) padding. Per spatial axis G_i is a
    matrix M_i (N×N); P_t = M_{t−1} ⋯ M_0 (float64, stored float32) and F_t(x) = P_t x P_tᵀ per
    channel, so any t (and a different t per example) costs two N×N matmuls.

    to_mean: the last step (t = T) replaces F_{T−1}(x) by its per-channel spatial mean instead of
    blurring (M_{T−1} = 1/N). With circular padding this equals the published "blur, then take the
    mean", since a circular blur keeps the mean.

    Shapes: x0 (B, N, N, C), t () or (B,), aux ignored. ``step(x_prev, t)`` applies M_{t−1}.
    Severity: every circular M_i has |transfer function| ≤ 1, so the per-channel spatial variance
    never increases with t (for reflect the same holds for the variance of the mirrored image).
    """
    n = check_size("blur", image_size, channels)
    k, std, inc = _check_blur_params(
        kernel_size=kernel_size, std=std, routine=routine, padding=padding, std_increment=std_increment, image_size=n
    )
    to_mean = check_bool("blur", "to_mean", to_mean)
    sig = blur_sigmas(T, std=std, routine=routine, std_increment=inc)
    steps = np.empty((T + 1, n, n))
    steps[0] = np.eye(n)
    for i in range(T):
        steps[i + 1] = _blur_matrix(_gauss1d(sig[i], k), n, padding)
    if to_mean:
        steps[T] = np.full((n, n), 1.0 / n)
    cum = np.empty_like(steps)
    cum[0] = steps[0]
    for t in range(1, T + 1):
        cum[t] = steps[t] @ cum[t - 1]
    P, S = f32(cum), f32(steps)

    def apply(x0, t, aux=None):
        check_image(x0, "blur", n)
        t = t_vec(t, x0, "blur")
        return keep_t0(x0, t, separable(P[t], x0))

    def step(x_prev, t, aux=None):
        check_image(x_prev, "blur", n)
        t = t_vec(t, x_prev, "blur")
        return keep_t0(x_prev, t, separable(S[t], x_prev))

    # the end state is (nearly) flat: the per-channel means, which a circular blur keeps
    generation = GenerationPrior(kind="blur_mean", prior_noise=True,
                                 mismatch_hint="train a blur that ends at a flat image, e.g. "
                                               "--config.diffusion.degradation_params.to_mean=True")
    return Degradation(name="blur", T=T, apply=apply, step=step, generation=generation)
