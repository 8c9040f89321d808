"""The orthonormal 2-D DCT-II of NHWC images, the basis in which the heat equation (Neumann boundaries) is diagonal.

    C[k, n] = √(2/N) · c_k · cos(π (2n + 1) k / (2N)),  c_0 = 1/√2, c_k = 1 otherwise   (C Cᵀ = I)
    dct2(x) = C_H · x · C_Wᵀ per channel,   idct2(u) = C_Hᵀ · u · C_W

Frequency (k, l) of an H×W image has the Laplacian eigenvalue λ_kl = π² (k²/H² + l²/W²) (unit pixel spacing).
The matrices are built in float64 NumPy and stored float32; products use HIGHEST precision.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["dct_matrix", "dct2", "idct2", "laplacian_eigenvalues"]

_HI = jax.lax.Precision.HIGHEST


@functools.lru_cache(maxsize=None)
def _dct_matrix64(n: int) -> np.ndarray:
    k = np.arange(n)[:, None]
    i = np.arange(n)[None, :]
    c = np.sqrt(2.0 / n) * np.cos(np.pi * (2 * i + 1) * k / (2 * n))
    c[0] /= np.sqrt(2.0)
    c.setflags(write=False)
    return c


def dct_matrix(n: int) -> np.ndarray:
    """The N×N orthonormal DCT-II matrix C (float64, read-only): u = C x for a length-N signal x."""
    if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
        raise ValueError(f"dct_matrix: n must be an integer >= 1, got {n!r}")
    return _dct_matrix64(int(n))


def dct2(x: jnp.ndarray) -> jnp.ndarray:
    """Orthonormal 2-D DCT-II over the H and W axes of x (B, H, W, C)."""
    ch = jnp.asarray(dct_matrix(x.shape[1]), x.dtype)
    cw = jnp.asarray(dct_matrix(x.shape[2]), x.dtype)
    return jnp.einsum("kh,bhwc,lw->bklc", ch, x, cw, precision=_HI)


def idct2(u: jnp.ndarray) -> jnp.ndarray:
    """Inverse of :func:`dct2` (its transpose): x (B, H, W, C) from coefficients u (B, H, W, C)."""
    ch = jnp.asarray(dct_matrix(u.shape[1]), u.dtype)
    cw = jnp.asarray(dct_matrix(u.shape[2]), u.dtype)
    return jnp.einsum("kh,bklc,lw->bhwc", ch, u, cw, precision=_HI)


def laplacian_eigenvalues(h: int, w: int) -> np.ndarray:
    """λ_kl = π² (k²/H² + l²/W²), float64 (H, W): frequency (k, l) of the heat equation decays as exp(−λ_kl τ)."""
    k = np.arange(h)[:, None] / h
    l = np.arange(w)[None, :] / w
    return np.pi**2 * (k**2 + l**2)
