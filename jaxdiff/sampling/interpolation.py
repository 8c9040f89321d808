"""Interpolation between two prior draws x_T = a and x_T = b, then the reverse process from each point.

Gaussian noise lives near a sphere of radius √D, where a straight line between two draws passes through
low-norm points the model never saw; the spherical path keeps the norm (Keras DDIM example):

    spherical  x(u) = a·cos(πu/2) + b·sin(πu/2)      u ∈ [0, 1]; x(0) = a, x(1) = b
    linear     x(u) = (1 − u)·a + u·b                  (flat images, colors, images of another data set)

For orthogonal draws of equal norm, ‖x(u)‖ = ‖a‖ for every u (cos² + sin² = 1). (The Keras example writes
a·sin(πu/2) + b·cos(πu/2), the same path run from b to a.)

Shapes: a, b (P, H, W, C) pairs; the result (P, K, H, W, C) for K points u_0 = 0 < … < u_{K−1} = 1.
"""
from __future__ import annotations

import numpy as np

__all__ = ["METHODS", "weights", "points_between", "method_for_prior"]

METHODS = ("spherical", "linear")


def weights(num: int, method: str = "spherical") -> tuple[np.ndarray, np.ndarray]:
    """(w_a, w_b), each (num,) float64, with x(u_k) = w_a[k]·a + w_b[k]·b at u_k = k/(num − 1).

    The end weights are exactly (1, 0) and (0, 1), so the end points reproduce the draws bit for bit.
    """
    if isinstance(num, bool) or not isinstance(num, (int, np.integer)) or num < 2:
        raise ValueError(f"interpolation: num must be an integer >= 2 (the two end points included), got {num!r}")
    if method not in METHODS:
        raise ValueError(f"interpolation: method must be one of {list(METHODS)}, got {method!r}")
    u = np.linspace(0.0, 1.0, int(num))
    if method == "spherical":
        wa, wb = np.cos(0.5 * np.pi * u), np.sin(0.5 * np.pi * u)
    else:
        wa, wb = 1.0 - u, u.copy()
    wa[0], wb[0], wa[-1], wb[-1] = 1.0, 0.0, 0.0, 1.0  # cos(π/2) is 6e-17 in floating point, not 0
    return wa, wb


def points_between(a, b, num: int, method: str = "spherical") -> np.ndarray:
    """Points along the path from a to b: (P, H, W, C) × 2 → (P, num, H, W, C), dtype of a (float32 math in float64)."""
    a, b = np.asarray(a), np.asarray(b)
    if a.shape != b.shape or a.ndim < 2:
        raise ValueError(f"interpolation: a and b must be batches of the same shape (P, …), got {a.shape} and {b.shape}")
    wa, wb = weights(num, method)
    shape = (1, -1) + (1,) * (a.ndim - 1)
    out = wa.reshape(shape) * a[:, None].astype(np.float64) + wb.reshape(shape) * b[:, None].astype(np.float64)
    return out.astype(a.dtype if np.issubdtype(a.dtype, np.floating) else np.float32)


def method_for_prior(kind: str) -> str:
    """spherical for Gaussian noise, linear for every fitted cold prior."""
    return "spherical" if kind == "gaussian" else "linear"
