"""The registered prior kinds (the names a degradation's generation prior names).

* ``gaussian``  – x_T ~ N(0, std² I) of the image shape (the noise dominates x_T; nothing to fit; std 1 unless the
  process says otherwise, e.g. EDM's σ_max).
* ``blur_mean`` – a full blur ends at a flat image of the per-channel means m = mean_{h,w} x0 ∈ R^C: a
  K-component mixture on m, broadcast over (H, W), + N(0, noise²) per pixel (noise 0.002: Bansal et al.'s
  "broken symmetry"; 0: exactly flat).
* ``color``     – a solid color c ~ U(low, high)^C (the end of a fade), + optional per-pixel noise.
* ``superres``  – a mixture (full or diagonal) on the 2^T-times block-averaged images, nearest-up-sampled.
* ``dataset``   – a uniformly chosen image of a stored bank (interpolation toward another data set).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.checks import check_int
from jaxdiff.priors.base import add_noise, check_noise, register_prior
from jaxdiff.priors.gmm import COVARIANCES, fit_gmm, gmm_arrays, sample_gmm

__all__ = ["area_downsample"]


# gaussian


def _sample_gaussian(arrays, key, n):
    z = jax.random.normal(key, (n,) + tuple(int(s) for s in arrays["shape"]), jnp.float32)
    return z if "std" not in arrays else arrays["std"] * z


@register_prior("gaussian", sample=_sample_gaussian, keys=(), needs_data=False)
def _fit_gaussian(x, *, shape, rng, std: float = 1.0):
    """x_T ~ N(0, std² I): the shape is stored, and std when it is not 1 (older files have none)."""
    std = float(std)
    if not (np.isfinite(std) and std > 0):
        raise ValueError(f"prior 'gaussian': std must be a finite number > 0, got {std!r}")
    return {} if std == 1.0 else {"std": np.float64(std)}


# blur_mean


def _sample_blur_mean(arrays, key, n):
    h, w, c = (int(s) for s in arrays["shape"])
    k1, k2 = jax.random.split(key)
    color = sample_gmm(arrays, k1, n)  # (n, C)
    x = jnp.broadcast_to(color[:, None, None, :], (n, h, w, c))
    return add_noise(x, arrays, k2)


@register_prior("blur_mean", sample=_sample_blur_mean, keys=("weights", "means", "covs", "chol", "noise"))
def _fit_blur_mean(
    x, *, shape, rng, n_components: int = 1, noise: float = 0.002, n_iter: int = 100, reg: float = 1e-6
):
    """GMM (full covariance) on m_n = mean_{h,w} x_n ∈ R^C; x_T = m ⊗ 1_{H×W} + noise·ε."""
    k = check_int(n_components, field="n_components", lo=1, owner="prior 'blur_mean'")
    noise = check_noise(noise, "blur_mean")
    means = x.mean(axis=(1, 2))  # (N, C)
    n_iter = check_int(n_iter, field="n_iter", lo=1, owner="prior 'blur_mean'")
    w, mu, cov = fit_gmm(means, k, covariance="full", n_iter=n_iter, reg=reg, rng=rng)
    return {**gmm_arrays(w, mu, cov), "noise": noise}


# color


def _sample_color(arrays, key, n):
    h, w, c = (int(s) for s in arrays["shape"])
    k1, k2 = jax.random.split(key)
    color = jax.random.uniform(
        k1, (n, c), jnp.float32, minval=arrays["low"], maxval=arrays["high"]
    )
    return add_noise(jnp.broadcast_to(color[:, None, None, :], (n, h, w, c)), arrays, k2)


@register_prior("color", sample=_sample_color, keys=("low", "high", "noise"), needs_data=False)
def _fit_color(x, *, shape, rng, low: float = -0.5, high: float = 0.5, noise: float = 0.0):
    """x_T = c ⊗ 1_{H×W} (+ noise·ε), c ~ U(low, high) independently per channel."""
    if not (-1.0 <= float(low) < float(high) <= 1.0):
        raise ValueError(f"prior 'color': need -1 <= low < high <= 1, got low={low!r}, high={high!r}")
    return {"low": np.asarray(float(low)), "high": np.asarray(float(high)), "noise": check_noise(noise, "color")}


# superres


def area_downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping factor×factor blocks: (N, H, W, C) → (N, H/f, W/f, C)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def _sample_superres(arrays, key, n):
    h, w, c = (int(s) for s in arrays["shape"])
    f = int(arrays["factor"])
    k1, k2 = jax.random.split(key)
    low = sample_gmm(arrays, k1, n).reshape(n, h // f, w // f, c)
    x = jnp.repeat(jnp.repeat(low, f, axis=1), f, axis=2)  # nearest up-sampling
    return add_noise(x, arrays, k2)


@register_prior(
    "superres", sample=_sample_superres, keys=("weights", "means", "covs", "chol", "noise", "factor")
)
def _fit_superres(
    x,
    *,
    shape,
    rng,
    T: int,
    n_components: int = 8,
    covariance: str = "full",
    noise: float = 0.0,
    n_iter: int = 100,
    reg: float = 1e-6,
):
    """GMM on the 2^T-times area-down-sampled images (flattened to h·w·C dims); draws are nearest-up-sampled.

    Fitted on F_T(x0) of the super-resolution degradation (constant on 2^T blocks), the block mean is
    exactly its low-resolution image, so the prior matches the end state for any down-sampling method.
    """
    T = check_int(T, field="T", lo=1, owner="prior 'superres'")
    f = 2**T
    h, w, c = shape
    if h % f or w % f:
        raise ValueError(f"prior 'superres': image size {h}x{w} is not divisible by 2^T = {f} (T={T})")
    if covariance not in COVARIANCES:
        raise ValueError(f"prior 'superres': covariance must be one of {list(COVARIANCES)}, got {covariance!r}")
    low = area_downsample(x, f)
    k = check_int(n_components, field="n_components", lo=1, owner="prior 'superres'")
    n_iter = check_int(n_iter, field="n_iter", lo=1, owner="prior 'superres'")
    gw, mu, cov = fit_gmm(
        low.reshape(x.shape[0], -1), k, covariance=covariance, n_iter=n_iter,
        reg=reg, rng=rng,
    )
    return {**gmm_arrays(gw, mu, cov), "noise": check_noise(noise, "superres"), "factor": np.asarray(f, np.int64)}


# dataset


def _sample_dataset(arrays, key, n):
    bank = jnp.asarray(arrays["bank"], jnp.float32)
    idx = jax.random.randint(key, (n,), 0, bank.shape[0])
    return bank[idx]


@register_prior("dataset", sample=_sample_dataset, keys=("bank",))
def _fit_dataset(x, *, shape, rng, max_images: int = 2048):
    """Stores up to ``max_images`` of the given images (a seeded random subset when there are more)."""
    m = check_int(max_images, field="max_images", lo=1, owner="prior 'dataset'")
    if x.shape[0] > m:
        x = x[np.sort(rng.choice(x.shape[0], m, replace=False))]
    return {"bank": x.astype(np.float32)}
