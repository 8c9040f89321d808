"""Timestep sequences of the reverse loop: [t_N > … > t_1 > t_0 = 0], N network calls (N steps).

``timesteps(T, N, spacing=…)`` builds one; ``timesteps_for(process, N, spacing)`` also knows the model's σ
(for ``karras``); ``validate_timesteps`` checks one a user gives. Shapes: int32 (N + 1,).
"""
from __future__ import annotations

from typing import Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.checks import is_int

__all__ = ["SPACINGS", "SPACING_NAMES", "timesteps", "timesteps_for", "model_sigmas", "validate_timesteps"]

#: spacings that start at t_N = T and need only T
SPACINGS = ("linear", "quadratic", "trailing")
#: every spacing name (config ``sample.spacing``, ``--spacing``): also diffusers' ``leading`` (starts below T)
#: and ``karras`` (needs the model's σ_t: :func:`timesteps_for`)
SPACING_NAMES = SPACINGS + ("leading", "karras")
KARRAS_RHO = 7.0


def timesteps(T: int, num_steps: Optional[int] = None, *, spacing: str = "linear", sigmas=None,
              steps_offset: int = 0) -> np.ndarray:
    """The sequence [t_N > t_{N−1} > … > t_1 > t_0 = 0] (int32, shape (N + 1,)): N steps, t_N = T but for leading.

    ``num_steps`` N ∈ {1, …, T}; None or 0 means every step (N = T, the sequence T, T − 1, …, 0).

    spacing (u_k = k / N, k = 0 … N, returned reversed):
      * ``linear``     t_k = k + round((T − N) u_k)     ≈ k T / N, uniform;
      * ``quadratic``  t_k = k + round((T − N) u_k²)    dense near t = 0, where the detail is made;
      * ``trailing``   t_k = T − (N − k) ⌊T/N⌋ (k ≥ 1), t_0 = 0: an integer stride anchored at T
        (Lin et al. 2024), the remainder absorbed by the final jump to 0.
      * ``leading``    diffusers' default: index (k − 1) ⌊T/N⌋ + steps_offset (k ≥ 1), t = index + 1, t_0 = 0.
      * ``karras``     σ_i = (σ_max^{1/ρ} + i/(N−1)(σ_min^{1/ρ} − σ_max^{1/ρ}))^ρ, ρ = 7, i = 0 … N−1, σ_max/σ_min
        = ``sigmas[T]``/``sigmas[1]`` (``sigmas``: the model's σ_t, t = 0 … T, increasing); each σ_i → the t with
        the nearest log σ_t, pushed down where needed so the t stay distinct (t = T first, t = 1 last), then 0.
    Writing t_k = k + (non-decreasing integers) keeps the sequence strictly monotone for every N ≤ T.
    """
    if not is_int(T) or T < 1:
        raise ValueError(f"T (num_timesteps) must be an integer >= 1, got {T!r}")
    T = int(T)
    if num_steps is None or (is_int(num_steps) and num_steps == 0):
        num_steps = T
    if not is_int(num_steps) or not 1 <= num_steps <= T:
        raise ValueError(f"num_steps must be an integer in [1, T={T}] (or None/0 for all {T} steps), got {num_steps!r}")
    if spacing not in SPACING_NAMES:
        raise ValueError(f"spacing must be one of {list(SPACING_NAMES)}, got {spacing!r}")
    n = int(num_steps)
    if spacing == "karras":
        return _karras(T, n, sigmas)
    k = np.arange(n + 1, dtype=np.int64)
    u = k / n
    if spacing == "linear":
        ts = k + np.floor((T - n) * u + 0.5).astype(np.int64)
    elif spacing == "quadratic":
        ts = k + np.floor((T - n) * u * u + 0.5).astype(np.int64)
    elif spacing == "trailing":
        ts = np.where(k == 0, 0, T - (n - k) * (T // n))
    else:
        if not is_int(steps_offset) or steps_offset < 0 or (n - 1) * (T // n) + steps_offset + 1 > T:
            raise ValueError(f"steps_offset must be an integer >= 0 with (N-1)*floor(T/N) + steps_offset + 1 <= T="
                             f"{T} (N={n}), got {steps_offset!r}")
        ts = np.where(k == 0, 0, (k - 1) * (T // n) + int(steps_offset) + 1)
    return ts[::-1].astype(np.int32)


def _karras(T: int, n: int, sigmas) -> np.ndarray:
    if sigmas is None:
        raise ValueError("spacing 'karras' needs the model's sigmas (sigma_t, t = 0 … T): use timesteps_for(process, …)")
    sig = np.asarray(sigmas, np.float64)
    if sig.shape != (T + 1,) or not np.all(np.isfinite(sig[1:])) or np.any(np.diff(sig[1:]) <= 0) or sig[1] <= 0:
        raise ValueError(f"sigmas must be the model's sigma_t for t = 0 … T={T}: shape ({T + 1},), positive and "
                         f"increasing for t >= 1; got shape {sig.shape}")
    if n == 1:
        return np.array([T, 0], np.int32)
    lo, hi = sig[1] ** (1.0 / KARRAS_RHO), sig[T] ** (1.0 / KARRAS_RHO)
    target = (hi + np.arange(n) / (n - 1) * (lo - hi)) ** KARRAS_RHO  # σ_max … σ_min
    log_sig = np.log(sig[1:])
    t = 1 + np.argmin(np.abs(log_sig[None, :] - np.log(target)[:, None]), axis=1)
    for i in range(1, n):  # distinct and strictly decreasing, leaving room for the n − i steps below
        t[i] = max(min(t[i], t[i - 1] - 1), n - i)
    return np.concatenate([t, [0]]).astype(np.int32)


def model_sigmas(process) -> np.ndarray:
    """The noise levels r_t = σ_t/c_t, t = 0 … T, float64, of the process's probability-flow ODE (c_t its
    schedule's ODE scale: σ_t/α_t = √((1 − ᾱ_t)/ᾱ_t) for a variance-preserving schedule, σ_t for EDM's, τ for
    flow matching). ValueError when they do not grow with t (a constant σ: nothing to space)."""
    schedule = process.schedule
    if schedule.variance_preserving:
        abar = np.cumprod(1.0 - np.asarray(schedule.betas, np.float64))
        sig = np.sqrt((1.0 - abar) / abar)
    else:
        sig = np.asarray(schedule.sigma64, np.float64) / np.asarray(schedule.ode_scale64, np.float64)
    if sig[1] <= 0 or np.any(np.diff(sig[1:]) <= 0):
        raise ValueError(f"spacing 'karras' needs noise levels that grow with t; {process.describe()} has "
                         f"σ_t/c_t from {sig[1]:g} to {sig[-1]:g}")
    return sig


def timesteps_for(process, num_steps: Optional[int] = None, spacing: str = "linear") -> np.ndarray:
    """:func:`timesteps` for ``process`` (T and, for ``karras``, its σ_t)."""
    sigmas = model_sigmas(process) if spacing == "karras" else None
    return timesteps(int(process.T), num_steps, spacing=spacing, sigmas=sigmas)


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
