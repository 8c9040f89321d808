"""Noise schedules for Gaussian ("hot") diffusion: pure functions ``(T, **params) -> Schedule``.

Arrays have length T + 1 and are indexed by t ∈ {0, …, T}; t = 0 is the clean data (ᾱ_0 = 1, β_0 = 0), so the
same t indexes the schedule, the forward process and the degradations of cold diffusion.

    β_t forward variance of step t−1 → t,  α_t = 1 − β_t,  ᾱ_t = ∏_{s≤t} α_s:  q(x_t | x0) = N(√ᾱ_t x0, (1 − ᾱ_t) I)
    posterior q(x_{t−1} | x_t, x0) = N(c1_t x0 + c2_t x_t, β̃_t I),
        c1_t = β_t √ᾱ_{t−1} / (1 − ᾱ_t),   c2_t = (1 − ᾱ_{t−1}) √α_t / (1 − ᾱ_t),
        β̃_t = β_t (1 − ᾱ_{t−1}) / (1 − ᾱ_t), log clipped at t = 1 by using β̃_2.

Computed in float64 with NumPy, stored as float32.
"""
from __future__ import annotations

import math
from typing import Callable

import flax.struct
import jax.numpy as jnp
import numpy as np

from jaxdiff.registry import Registry

__all__ = [
    "Schedule",
    "SCHEDULES",
    "register_schedule",
    "make_schedule",
    "from_alphas_cumprod",
    "linear",
    "scaled_linear",
    "cosine",
    "offset_cosine",
    "sigmoid",
]


@flax.struct.dataclass
class Schedule:
    """Float32 arrays of shape (T + 1,), indexed by t (t = 0 is clean data)."""

    betas: jnp.ndarray
    alphas: jnp.ndarray
    alphas_cumprod: jnp.ndarray
    alphas_cumprod_prev: jnp.ndarray
    sqrt_alphas_cumprod: jnp.ndarray
    sqrt_one_minus_alphas_cumprod: jnp.ndarray
    log_snr: jnp.ndarray
    posterior_mean_coef1: jnp.ndarray  # multiplies x0
    posterior_mean_coef2: jnp.ndarray  # multiplies x_t
    posterior_variance: jnp.ndarray
    posterior_log_variance_clipped: jnp.ndarray

    @property
    def num_timesteps(self) -> int:
        """T, the number of forward steps (arrays hold T + 1 entries)."""
        return int(self.betas.shape[0]) - 1


def from_alphas_cumprod(alphas_cumprod: np.ndarray, *, max_beta: float | None = None) -> Schedule:
    """Builds a Schedule from ᾱ_1 … ᾱ_T (shape (T,), float64 preferred).

    If ``max_beta`` is given, β_t = 1 − ᾱ_t / ᾱ_{t−1} is clipped to it and ᾱ is
    recomputed from the clipped β so that every field stays consistent.
    """
    abar = np.asarray(alphas_cumprod, dtype=np.float64).reshape(-1)
    if abar.size < 1:
        raise ValueError("a schedule needs T >= 1 timesteps")
    abar = np.concatenate([[1.0], abar])
    betas = 1.0 - abar[1:] / abar[:-1]
    if max_beta is not None:
        betas = np.minimum(betas, max_beta)
    return _from_betas64(betas)


def _from_betas64(betas_1_to_T: np.ndarray) -> Schedule:
    b = np.asarray(betas_1_to_T, dtype=np.float64)
    if np.any(b <= 0) or np.any(b > 1):
        raise ValueError("betas must lie in (0, 1]")
    betas = np.concatenate([[0.0], b])
    alphas = 1.0 - betas
    abar = np.cumprod(alphas)
    abar_prev = np.concatenate([[1.0], abar[:-1]])
    one_minus = 1.0 - abar
    # t = 0 has no posterior; its entries are set so that "stepping" to t_prev = 0 is harmless.
    with np.errstate(divide="ignore", invalid="ignore"):
        c1 = np.where(one_minus > 0, betas * np.sqrt(abar_prev) / one_minus, 1.0)
        c2 = np.where(one_minus > 0, (1.0 - abar_prev) * np.sqrt(alphas) / one_minus, 0.0)
        post_var = np.where(one_minus > 0, betas * (1.0 - abar_prev) / one_minus, 0.0)
        log_snr = np.where(one_minus > 0, np.log(abar) - np.log(one_minus), np.inf)
    T = b.size
    # β̃_1 = 0; the log is clipped by using β̃_2 at t = 1 (and at t = 0, unused).
    clip_src = post_var[2] if T >= 2 else betas[1]
    post_log_var = np.log(np.concatenate([[clip_src, clip_src], post_var[2:]]))
    f32 = lambda a: jnp.asarray(np.asarray(a, dtype=np.float32))  # noqa: E731
    return Schedule(
        betas=f32(betas),
        alphas=f32(alphas),
        alphas_cumprod=f32(abar),
        alphas_cumprod_prev=f32(abar_prev),
        sqrt_alphas_cumprod=f32(np.sqrt(abar)),
        sqrt_one_minus_alphas_cumprod=f32(np.sqrt(one_minus)),
        log_snr=f32(log_snr),
        posterior_mean_coef1=f32(c1),
        posterior_mean_coef2=f32(c2),
        posterior_variance=f32(post_var),
        posterior_log_variance_clipped=f32(post_log_var),
    )


#: name → ``fn(T, **params) -> Schedule`` (the names used in configs); a second registration of a name raises
SCHEDULES: Registry[Callable[..., Schedule]] = Registry("schedule")


def register_schedule(name: str):
    """Decorator: registers ``fn(T, **params) -> Schedule`` under ``name`` (ValueError if the name is taken)."""
    return SCHEDULES.register(name)


def _check_T(T) -> int:
    if isinstance(T, bool) or not isinstance(T, (int, np.integer)) or T < 1:
        raise ValueError(f"num_timesteps (T) must be an integer >= 1, got {T!r}")
    return int(T)


@register_schedule("linear")
def linear(T: int, *, beta_start: float = 1e-4, beta_end: float = 2e-2) -> Schedule:
    """DDPM: β linear from ``beta_start`` to ``beta_end`` over t = 1 … T."""
    T = _check_T(T)
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"linear schedule needs 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return _from_betas64(np.linspace(beta_start, beta_end, T, dtype=np.float64))


@register_schedule("scaled_linear")
def scaled_linear(T: int, *, beta_start: float = 8.5e-4, beta_end: float = 1.2e-2) -> Schedule:
    """Latent diffusion: √β linear from √beta_start to √beta_end over t = 1 … T (diffusers' "scaled_linear")."""
    T = _check_T(T)
    if not 0 < beta_start <= beta_end < 1:
        raise ValueError(f"scaled_linear schedule needs 0 < beta_start <= beta_end < 1, got {beta_start}, {beta_end}")
    return _from_betas64(np.linspace(math.sqrt(beta_start), math.sqrt(beta_end), T, dtype=np.float64) ** 2)


@register_schedule("cosine")
def cosine(T: int, *, s: float = 0.008, max_beta: float = 0.999) -> Schedule:
    """Nichol & Dhariwal: ᾱ(t) = f(t)/f(0), f(t) = cos²(((t/T) + s)/(1 + s) · π/2), β ≤ max_beta."""
    T = _check_T(T)
    t = np.arange(T + 1, dtype=np.float64)
    f = np.cos(((t / T) + s) / (1.0 + s) * math.pi / 2.0) ** 2
    return from_alphas_cumprod(f[1:] / f[0], max_beta=max_beta)


@register_schedule("offset_cosine")
def offset_cosine(T: int, *, max_signal_rate: float = 0.95, min_signal_rate: float = 0.02) -> Schedule:
    """The Keras DDIM example's schedule, discretized at diffusion time τ = t/T.

    angle(τ) = arccos(max_signal_rate) + τ (arccos(min_signal_rate) − arccos(max_signal_rate)),
    signal rate √ᾱ = cos(angle), noise rate √(1 − ᾱ) = sin(angle). t = 0 is the clean data
    (ᾱ_0 = 1), so √ᾱ_1 is just below ``max_signal_rate``.
    """
    T = _check_T(T)
    if not 0 < min_signal_rate < max_signal_rate < 1:
        raise ValueError("offset_cosine needs 0 < min_signal_rate < max_signal_rate < 1")
    tau = np.arange(1, T + 1, dtype=np.float64) / T
    a0, a1 = math.acos(max_signal_rate), math.acos(min_signal_rate)
    angle = a0 + tau * (a1 - a0)
    return from_alphas_cumprod(np.cos(angle) ** 2)


@register_schedule("sigmoid")
def sigmoid(T: int, *, start: float = -3.0, end: float = 3.0, tau: float = 1.0, max_beta: float = 0.999) -> Schedule:
    """Sigmoid schedule (Jabri et al. 2022): ᾱ(τ) = (σ(−(τ(e − s) + s)/κ)… normalized to 1 at τ = 0, 0 at τ = 1."""
    T = _check_T(T)
    sig = lambda z: 1.0 / (1.0 + np.exp(-z))  # noqa: E731
    t = np.arange(T + 1, dtype=np.float64) / T
    v_start, v_end = sig(start / tau), sig(end / tau)
    g = (-sig((t * (end - start) + start) / tau) + v_end) / (v_end - v_start)
    g = np.clip(g, 1e-9, 1.0)
    return from_alphas_cumprod(g[1:] / g[0], max_beta=max_beta)


def make_schedule(name: str, T: int, **params) -> Schedule:
    """Looks ``name`` up in the registry (the names used in configs)."""
    return SCHEDULES.get_or_raise(name)(T, **params)
