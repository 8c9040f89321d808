"""Gaussian mixtures for the priors: fitted by scikit-learn's EM in float64, sampled in JAX.

    p(v) = Σ_k w_k N(v | μ_k, Σ_k), v ∈ R^D;  a draw: k ~ Cat(w), v = μ_k + L_k z, z ~ N(0, I), L_k L_kᵀ = Σ_k

The stored arrays (weights (K,), means (K, D), covs (K, D, D), chol (K, D, D)) are what every mixture prior
keeps; a diagonal fit stores its covariances as diagonal matrices.
"""
from __future__ import annotations

import logging
import warnings
from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["COVARIANCES", "fit_gmm", "gmm_arrays", "sample_gmm"]

log = logging.getLogger(__name__)

COVARIANCES = ("full", "diag")


def fit_gmm(
    x,
    n_components: int = 1,
    *,
    covariance: str = "full",
    n_iter: int = 100,
    tol: float = 1e-7,
    reg: float = 1e-6,
    rng: Optional[np.random.Generator] = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood mixture of ``x`` (N, D) by ``sklearn.mixture.GaussianMixture`` (k-means start).

    ``reg`` is added to every covariance's diagonal (sklearn's ``reg_covar``), ``n_iter`` bounds the EM
    iterations, ``rng`` seeds the start. Returns float64 weights (K,), means (K, D), covs (K, D, D).
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"fit_gmm: x must be (N, D), got shape {x.shape}")
    n = x.shape[0]
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"fit_gmm: n_components must be an integer >= 1, got {n_components!r}")
    k = int(n_components)
    if k > n:
        raise ValueError(f"fit_gmm: n_components={k} exceeds the number of points N={n}")
    if covariance not in COVARIANCES:
        raise ValueError(f"fit_gmm: covariance must be one of {list(COVARIANCES)}, got {covariance!r}")
    if not (isinstance(reg, (int, float, np.floating)) and np.isfinite(reg) and reg >= 0):
        raise ValueError(f"fit_gmm: reg must be a finite number >= 0, got {reg!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    # imported here: scikit-learn (with SciPy) takes about a second to import, and every train.py and sample.py
    # imports this module, most of them without fitting a mixture
    from sklearn.exceptions import ConvergenceWarning
    from sklearn.mixture import GaussianMixture

    gm = GaussianMixture(n_components=k, covariance_type=covariance, tol=float(tol), reg_covar=float(reg),
                         max_iter=int(n_iter), init_params="kmeans", random_state=int(rng.integers(2**31 - 1)))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", ConvergenceWarning)  # reported below, once, as a log line
        gm.fit(x)
    if not gm.converged_:
        log.info("fit_gmm: EM stopped at n_iter=%d before the log-likelihood gain fell below tol=%g", n_iter, tol)
    cov = gm.covariances_ if covariance == "full" else np.stack([np.diag(c) for c in gm.covariances_])
    return (np.asarray(gm.weights_, np.float64), np.asarray(gm.means_, np.float64), np.asarray(cov, np.float64))


def gmm_arrays(w, mu, cov) -> dict[str, np.ndarray]:
    """The stored arrays of a mixture (the Cholesky factors precomputed for the sampler)."""
    return {
        "weights": np.asarray(w, np.float64),
        "means": np.asarray(mu, np.float64),
        "covs": np.asarray(cov, np.float64),
        "chol": np.linalg.cholesky(cov).astype(np.float64),
    }


def sample_gmm(arrays, key: jax.Array, n: int) -> jnp.ndarray:
    """n draws (n, D) float32: k ~ Cat(w), v = μ_k + L_k z, z ~ N(0, I)."""
    w = jnp.asarray(arrays["weights"], jnp.float32)
    mu = jnp.asarray(arrays["means"], jnp.float32)
    L = jnp.asarray(arrays["chol"], jnp.float32)
    k1, k2 = jax.random.split(key)
    comp = jax.random.categorical(k1, jnp.log(w), shape=(n,))
    z = jax.random.normal(k2, (n, mu.shape[1]), jnp.float32)
    return mu[comp] + jnp.einsum("nij,nj->ni", L[comp], z)
