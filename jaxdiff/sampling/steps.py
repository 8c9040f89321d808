"""Timestep sequences of the reverse loop: [t_N = T > … > t_1 > t_0 = 0], N network calls.

``timesteps(T, N, spacing=…)`` builds one (linear, quadratic or trailing spacing); ``validate_timesteps``
checks one a user gives. Shapes: int32 (N + 1,).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.checks import is_int

__all__ = ["SPACINGS", "timesteps", "validate_timesteps"]

SPACINGS = ("linear", "quadratic", "trailing")


def timesteps(T: int, num_steps: Optional[int] = None, *, spacing: str = "linear") -> np.ndarray:
    """The sequence [t_N = T > t_{N−1} > … > t_1 > t_0 = 0] (int32, shape (N + 1,)): N network calls.

    ``num_steps`` N ∈ {1, …, T}; None or 0 means every step (N = T, the sequence T, T − 1, …, 0).

    spacing (u_k = k / N, k = 0 … N, returned reversed):
      * ``linear``     t_k = k + round((T − N) u_k)     ≈ k T / N, uniform;
      * ``quadratic``  t_k = k + round((T − N) u_k²)    dense near t = 0, where the detail is made;
      * ``trailing``   t_k = T − (N − k) ⌊T/N⌋ (k ≥ 1), t_0 = 0: an integer stride anchored at T
        (Lin et al. 2024), the remainder absorbed by the final jump to 0.
    Writing t_k = k + (non-decreasing integers) keeps the sequence strictly monotone for every N ≤ T.
    """
    if not is_int(T) or T < 1:
        raise ValueError(f"T (num_timesteps) must be an integer >= 1, got {T!r}")
    T = int(T)
    if num_steps is None or (is_int(num_steps) and num_steps == 0):
        num_steps = T
    if not is_int(num_steps) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an integer in [1, T={T}] (or None/0 for all {T} steps), got {num_steps!r}")
    if spacing not in SPACINGS:
        raise ValueError(f"spacing must be one of {list(SPACINGS)}, got {spacing!r}")
    n = int(num_steps)
    k = np.arange(n + 1, dtype=np.int64)
    u = k / n
    if spacing == "linear":
        ts = k + np.floor((T - n) * u + 0.5).astype(np.int64)
    elif spacing == "quadratic":
        ts = k + np.floor((T - n) * u * u + 0.5).astype(np.int64)
    else:
        ts = np.where(k == 0, 0, T - (n - k) * (T // n))
    return ts[::-1].astype(np.int32)


def validate_timesteps(ts, T: int, *, name: str = "timesteps") -> np.ndarray:
    """Checks a user-given sequence and returns it as int32 (N + 1,).

    Allowed: 1-D, at least 2 integer entries, strictly decreasing, ts[0] ≤ T, ts[-1] == 0.
    """
    arr = np.asarray(ts)
    if arr.ndim != 1 or arr.shape[0] < 2:
        raise ValueError(f"{name} must be a 1-D sequence [t_N > … > t_0 = 0] with at least 2 entries, got shape {arr.shape}")
    if arr.dtype.kind == "f" and np.all(np.isfinite(arr)) and np.all(arr == np.round(arr)):
        arr = arr.astype(np.int64)
    if arr.dtype.kind not in "iu":
        raise ValueError(f"{name} must hold integers, got dtype {arr.dtype} ({arr.tolist()})")
    if np.any(np.diff(arr.astype(np.int64)) >= 0):
        raise ValueError(f"{name} must be strictly decreasing, got {arr.tolist()}")
    if arr[0] > T:
        raise ValueError(f"{name} must start at or below T={T}, got {int(arr[0])}")
    if arr[-1] != 0:
        raise ValueError(f"{name} must end at 0 (the clean image), got {int(arr[-1])}")
    return arr.astype(np.int32)


def _resolve_timesteps(ts, T: int):
    """None → every step; an int N → ``timesteps(T, N)``; a sequence → validated; a tracer → shape-checked."""
    if ts is None:
        return timesteps(T)
    if is_int(ts):
        return timesteps(T, int(ts))
    if isinstance(ts, jax.core.Tracer):
        if ts.ndim != 1 or ts.shape[0] < 2:
            raise ValueError(f"timesteps must be 1-D with at least 2 entries, got shape {ts.shape}")
        return ts.astype(jnp.int32)
    return validate_timesteps(ts, T)
