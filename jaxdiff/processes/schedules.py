"""Noise schedules (α_t, σ_t), registered by config name: pure functions ``(T, **params) -> schedule``.

Variance preserving (ᾱ from β; α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t)): linear, scaled_linear, cosine, offset_cosine,
sigmoid, returning a :class:`Schedule` with the β tables below. The others are tabulated (:class:`TabulatedSchedule`):
``constant`` (α = 1, σ_t = std for t > 0: cold diffusion's small noise), ``flow`` (α_t = 1 − τ, σ_t = τ, τ = t/T:
flow matching / rectified flow) and ``ve`` (α = 1, σ_t from σ_min at t = 1 to σ_max at t = T on EDM's ρ
spacing), ``geometric`` (α = 1, log σ_t linear in t). Every schedule answers :class:`jaxdiff.processes.noise.NoiseSchedule`'s questions.

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
import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.processes.noise import NoiseSchedule, TabulatedSchedule, split_f64
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
    "constant",
    "flow",
    "ve",
    "geometric",
]


@flax.struct.dataclass
class Schedule(NoiseSchedule):
    """A variance-preserving schedule: float32 arrays of shape (T + 1,), indexed by t (t = 0 is clean data).

    α_t = √ᾱ_t (``sqrt_alphas_cumprod``), σ_t = √(1 − ᾱ_t); the prior is N(0, I).
    """

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

    # --- the NoiseSchedule questions, from the stored float32 tables (the numbers every VP sampler has used)
    @property
    def alpha(self):
        return self.sqrt_alphas_cumprod

    @property
    def sigma(self):
        return self.sqrt_one_minus_alphas_cumprod

    @property
    def _log_abar64(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return np.cumsum(np.log1p(-np.asarray(self.betas, np.float64)))

    @property
    def alpha64(self) -> np.ndarray:
        return np.exp(0.5 * self._log_abar64)

    @property
    def sigma64(self) -> np.ndarray:
        return np.sqrt(-np.expm1(self._log_abar64))

    @property
    def variance_preserving(self) -> bool:
        return True

    @property
    def prior_std(self) -> float:
        return 1.0  # DDPM's convention: x_T ~ N(0, I) (ᾱ_T ≈ 0)

    @property
    def ode_scale(self):
        return self.sqrt_alphas_cumprod

    @property
    def ode_scale64(self) -> np.ndarray:
        return self.alpha64

    def ode_variables(self, t):
        """(α_t, σ_t/α_t = e^{−λ_t}) (Karras et al.'s variables; λ = log(α/σ) from the float64 log-SNR table)."""
        t = jnp.asarray(t, jnp.int32)
        return self.sqrt_alphas_cumprod[t], jnp.exp(-(0.5 * self.log_snr[t]))

    def log_alpha_pair(self):
        """log α_t = ½ log ᾱ_t as float32 (hi, lo); float32 alone when the β table is traced."""
        if isinstance(self.betas, jax.core.Tracer):
            return 0.5 * jnp.cumsum(jnp.log1p(-self.betas)), jnp.zeros_like(self.betas)
        return tuple(jnp.asarray(v) for v in split_f64(0.5 * self._log_abar64))

    def log_abar_pair(self):
        """log ᾱ_t as float32 (hi, lo) with hi + lo ≈ the float64 value.

        Differences log ᾱ_t − log ᾱ_{t'} then keep ~1e-7 relative accuracy even where ᾱ_t ≈ ᾱ_{t'} ≈ 1 (small
        t) or ≈ 0 (large t), where 1 − ᾱ_t / ᾱ_{t'} from float32 ᾱ loses 3–4 digits. Falls back to float32
        when the schedule arrays are traced (not constants).
        """
        if isinstance(self.betas, jax.core.Tracer):
            return jnp.cumsum(jnp.log1p(-self.betas)), jnp.zeros_like(self.betas)
        return tuple(jnp.asarray(v) for v in split_f64(self._log_abar64))

    def transition(self, t, s):
        """(log(ᾱ_t/ᾱ_s), 1 − ᾱ_t/ᾱ_s) from the (hi, lo) log ᾱ tables (σ_t² − (α_t/α_s)² σ_s² = 1 − ᾱ_t/ᾱ_s here)."""
        t = jnp.asarray(t, jnp.int32)
        s = jnp.asarray(s, jnp.int32)
        hi, lo = self.log_abar_pair()
        log_g = (hi[t] - hi[s]) + (lo[t] - lo[s])
        return log_g, -jnp.expm1(log_g)

    def posterior(self, t, s):
        """(c1, c2, var) of q(x_s | x_t, x0) = N(c1 x0 + c2 x_t, var I) for any 0 ≤ s < t.

        With α = ᾱ_t/ᾱ_s, β = 1 − α:  c1 = β √ᾱ_s/(1 − ᾱ_t),  c2 = (1 − ᾱ_s) √α/(1 − ᾱ_t),
        var = β (1 − ᾱ_s)/(1 − ᾱ_t). t, s int (B,) or scalars; returns float32 arrays of that shape.
        """
        t = jnp.asarray(t, jnp.int32)
        s = jnp.asarray(s, jnp.int32)
        hi, lo = self.log_abar_pair()
        log_alpha = (hi[t] - hi[s]) + (lo[t] - lo[s])  # log(ᾱ_t/ᾱ_s) ≤ 0
        beta = -jnp.expm1(log_alpha)
        one_minus_ab = jnp.square(self.sqrt_one_minus_alphas_cumprod[t])
        one_minus_ab_prev = jnp.square(self.sqrt_one_minus_alphas_cumprod[s])
        # t ≥ 1 so 1 − ᾱ_t > 0; the guard only protects unused lanes (e.g. padding with t = s = 0).
        denom = jnp.where(one_minus_ab > 0, one_minus_ab, 1.0)
        c1 = beta * self.sqrt_alphas_cumprod[s] / denom
        c2 = one_minus_ab_prev * jnp.exp(0.5 * log_alpha) / denom
        var = beta * one_minus_ab_prev / denom
        return c1, c2, var

    def describe(self) -> str:
        return f"T={self.num_timesteps}, betas {float(self.betas[1]):.3g} to {float(self.betas[-1]):.3g}"


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


def _nonneg(name, field, v, *, positive=False):
    ok = isinstance(v, (int, float, np.floating, np.integer)) and not isinstance(v, bool) and math.isfinite(v)
    if not ok or v < 0 or (positive and v == 0):
        raise ValueError(f"schedule {name!r}: {field} must be a finite number {'> 0' if positive else '>= 0'}, got {v!r}")
    return float(v)


@register_schedule("constant")
def constant(T: int, *, std: float = 0.0) -> TabulatedSchedule:
    """Cold diffusion's noise: α_t = 1, σ_0 = 0, σ_t = ``std`` for t = 1 … T (0: x_t = D_t(x0) exactly)."""
    T = _check_T(T)
    std = _nonneg("constant", "std", std)
    sigma = np.full(T + 1, std)
    sigma[0] = 0.0
    return TabulatedSchedule("constant", np.ones(T + 1), sigma, params={"std": std},
                             dalpha=np.zeros(T + 1), dsigma=np.zeros(T + 1))


@register_schedule("flow")
def flow(T: int, *, shift: float = 1.0) -> TabulatedSchedule:
    """Flow matching / rectified flow: α_t = 1 − τ, σ_t = τ with τ = shift·u/(1 + (shift − 1)·u), u = t/T.

    ``shift`` > 1 moves the levels toward noise (Esser et al. 2024's resolution shift; 1: τ = t/T).
    """
    T = _check_T(T)
    shift = _nonneg("flow", "shift", shift, positive=True)
    u = np.arange(T + 1, dtype=np.float64) / T
    tau = shift * u / (1.0 + (shift - 1.0) * u)
    dtau = shift / (1.0 + (shift - 1.0) * u) ** 2
    return TabulatedSchedule("flow", 1.0 - tau, tau, params={"shift": shift}, dalpha=-dtau, dsigma=dtau)


@register_schedule("ve")
def ve(T: int, *, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0) -> TabulatedSchedule:
    """Variance exploding (Karras et al. 2022): α_t = 1, σ_0 = 0 and, for t = 1 … T,
    σ_t = (σ_min^{1/ρ} + (t − 1)/(T − 1)·(σ_max^{1/ρ} − σ_min^{1/ρ}))^ρ, so equal steps in t are EDM's ρ spacing."""
    T = _check_T(T)
    lo = _nonneg("ve", "sigma_min", sigma_min, positive=True)
    hi = _nonneg("ve", "sigma_max", sigma_max, positive=True)
    rho = _nonneg("ve", "rho", rho, positive=True)
    if hi <= lo:
        raise ValueError(f"schedule 've': sigma_max must be > the lowest level {lo!r}, got {sigma_max!r}")
    frac = (np.arange(1, T + 1, dtype=np.float64) - 1.0) / max(T - 1, 1)
    base = lo ** (1 / rho) + frac * (hi ** (1 / rho) - lo ** (1 / rho))
    sigma = np.concatenate([[0.0], base**rho if T > 1 else [hi]])
    dsig = np.concatenate([[0.0], rho * base ** (rho - 1) * (hi ** (1 / rho) - lo ** (1 / rho)) * T / max(T - 1, 1)])
    return TabulatedSchedule("ve", np.ones(T + 1), sigma, params={"sigma_min": lo, "sigma_max": hi, "rho": rho},
                             dalpha=np.zeros(T + 1), dsigma=dsig)


@register_schedule("geometric")
def geometric(T: int, *, sigma_min: float = 0.01, sigma_max: float = 50.0) -> TabulatedSchedule:
    """Geometric noise (Song & Ermon's noise levels, Song et al. 2021's VE SDE): α_t = 1, σ_0 = 0 and
    σ_t = σ_min (σ_max/σ_min)^((t − 1)/(T − 1)) for t = 1 … T (log σ linear in t)."""
    T = _check_T(T)
    lo = _nonneg("geometric", "sigma_min", sigma_min, positive=True)
    hi = _nonneg("geometric", "sigma_max", sigma_max, positive=True)
    if hi < lo:
        raise ValueError(f"schedule 'geometric': sigma_max must be >= sigma_min = {lo!r}, got {sigma_max!r}")
    frac = (np.arange(1, T + 1, dtype=np.float64) - 1.0) / max(T - 1, 1)
    sig = lo * (hi / lo) ** frac if T > 1 else np.array([hi])
    dsig = np.concatenate([[0.0], sig * math.log(hi / lo) * T / max(T - 1, 1)])
    return TabulatedSchedule("geometric", np.ones(T + 1), np.concatenate([[0.0], sig]),
                             params={"sigma_min": lo, "sigma_max": hi}, dalpha=np.zeros(T + 1), dsigma=dsig)


def make_schedule(name: str, T: int, **params):
    """Looks ``name`` up in the registry (the names used in configs) and builds the schedule of T steps."""
    return SCHEDULES.get_or_raise(name)(T, **params)
