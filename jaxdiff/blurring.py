"""Blurring diffusion (Hoogeboom & Salimans, ICLR 2023): a Gaussian diffusion whose DCT frequencies each decay.

In the orthonormal DCT basis u = dct2(x), q(u_t | u_0) = N(α_t d_t ⊙ u_0, σ_t² I), so in pixel space
x_t = F_t(x0) + σ_t ε with F_t(x0) = idct2(α_t d_t ⊙ dct2(x0)) and ε ~ N(0, I).
α_t = √ᾱ_t, σ_t = √(1 − ᾱ_t) from a schedule; d_t = (1 − d_min) exp(−λ τ_t) + d_min per frequency,
λ = π²(k²/H² + l²/W²), τ_t = σ_B,t²/2, σ_B,t = σ_B,max sin²(π t / (2T)) (so d_0 = 1, F_0 = identity).
Per frequency, with α_{t|s} = α_t d_t/(α_s d_s) and σ²_{t|s} = σ_t² − α²_{t|s} σ_s²:
    q(u_s | u_t, u_0) = N(α_s d_s σ²_{t|s}/σ_t² · u_0 + α_{t|s} σ_s²/σ_t² · u_t,  σ²_{t|s} σ_s²/σ_t²).
Prior N(0, I) (α_T d_T ≈ 0, σ_T ≈ 1 for schedules that end at ᾱ_T ≈ 0). ε-prediction turns into
x̂0 = idct2((u_t − σ_t ε̂_u)/(α_t d_t)); 1/d_t ≤ 1/d_min, and the sampler clips x̂0 in pixel space.
Coefficient tables (T + 1, H, W) are built in float64 NumPy and stored float32.
"""
from __future__ import annotations

import dataclasses

import jax.numpy as jnp
import numpy as np

from jaxdiff.dct import dct2, idct2, laplacian_eigenvalues
from jaxdiff.forward import ForwardProcess, _as_t, bcast
from jaxdiff.schedules import Schedule

__all__ = ["BlurringProcess", "blur_scales"]


def blur_scales(T: int, height: int, width: int, sigma_blur_max: float, d_min: float) -> np.ndarray:
    """d_t per frequency, float64 (T + 1, H, W): (1 − d_min) exp(−λ σ_B,t²/2) + d_min."""
    t = np.arange(T + 1, dtype=np.float64)
    sigma_b = sigma_blur_max * np.sin(np.pi * t / (2.0 * T)) ** 2
    tau = 0.5 * sigma_b**2
    lam = laplacian_eigenvalues(height, width)
    return (1.0 - d_min) * np.exp(-lam[None] * tau[:, None, None]) + d_min


@dataclasses.dataclass(frozen=True, eq=False)
class BlurringProcess(ForwardProcess):
    """F_t(x0) = idct2(α_t d_t ⊙ dct2(x0)), σ_t = √(1 − ᾱ_t); images (B, H, W, C) of ``image_size`` (H, W)."""

    schedule: Schedule
    image_size: tuple
    sigma_blur_max: float = 10.0
    d_min: float = 0.001
    predictions = ("eps", "x0")

    def __post_init__(self):
        size = tuple(int(n) for n in np.atleast_1d(self.image_size))
        size = size * 2 if len(size) == 1 else size
        if len(size) != 2 or min(size) < 1:
            raise ValueError(f"image_size must be an integer or (height, width) >= 1, got {self.image_size!r}")
        if not (self.sigma_blur_max >= 0.0) or not np.isfinite(self.sigma_blur_max):
            raise ValueError(f"sigma_blur_max must be a finite number >= 0, got {self.sigma_blur_max!r}")
        if not (0.0 < self.d_min <= 1.0):
            raise ValueError(f"d_min must be in (0, 1], got {self.d_min!r}")
        object.__setattr__(self, "image_size", size)
        T = self.schedule.num_timesteps
        betas = np.asarray(self.schedule.betas, np.float64)
        with np.errstate(divide="ignore"):
            log_ab = np.cumsum(np.log1p(-betas))  # log ᾱ_t, t = 0 … T (β_0 = 0)
        hi = log_ab.astype(np.float32)
        lo = np.where(np.isfinite(hi), log_ab - hi.astype(np.float64), 0.0).astype(np.float32)
        d = blur_scales(T, size[0], size[1], float(self.sigma_blur_max), float(self.d_min))
        scale = np.exp(0.5 * log_ab)[:, None, None] * d
        object.__setattr__(self, "_log_ab", (hi, lo))
        object.__setattr__(self, "_log_d", np.log(d).astype(np.float32))
        object.__setattr__(self, "_scale", scale.astype(np.float32))

    @property
    def T(self) -> int:  # type: ignore[override]
        return self.schedule.num_timesteps

    @property
    def standard_normal_prior(self) -> bool:
        return True

    def _check_shape(self, x):
        if tuple(x.shape[1:3]) != self.image_size:
            raise ValueError(f"BlurringProcess built for {self.image_size[0]}x{self.image_size[1]} images, "
                             f"got images of shape {tuple(x.shape)}")

    def scale(self, t) -> jnp.ndarray:
        """α_t d_t per frequency, (B, H, W, 1) for t (B,)."""
        return jnp.asarray(self._scale)[jnp.asarray(t, jnp.int32)][..., None]

    def mean(self, x0, t, aux=None):
        self._check_shape(x0)
        t = _as_t(t, x0)
        out = idct2(self.scale(t).astype(x0.dtype) * dct2(x0))
        return jnp.where(bcast(t == 0, x0), x0, out)  # F_0 = identity exactly

    def std(self, t):
        return self.schedule.sqrt_one_minus_alphas_cumprod[jnp.asarray(t, jnp.int32)]

    def prior(self, key, shape, *, x0=None, aux=None):
        """x_T ~ N(0, I) (α_T d_T ≈ 0; the data are not used)."""
        import jax  # noqa: PLC0415

        dtype = x0.dtype if x0 is not None else jnp.float32
        return jax.random.normal(key, tuple(shape), dtype)

    def x0_from_eps(self, x_t, eps, t):
        """x̂0 = idct2((u_t − σ_t ε̂_u)/(α_t d_t)) (at t = 0: x_t)."""
        self._check_shape(x_t)
        t = _as_t(t, x_t)
        u = dct2(x_t) - bcast(self.std(t), x_t).astype(x_t.dtype) * dct2(eps)
        return jnp.where(bcast(t == 0, x_t), x_t, idct2(u / self.scale(t).astype(x_t.dtype)))

    def posterior_coefficients(self, t, t_prev):
        """(c0, ct, var) of q(u_s | u_t, u_0) = N(c0 u_0 + ct u_t, var) per frequency, each (B, H, W, 1).

        σ²_{t|s} = (1 − ᾱ_t/ᾱ_s) + (ᾱ_t/ᾱ_s)(1 − (d_t/d_s)²) σ_s² (both terms ≥ 0, each from expm1).
        """
        t = jnp.asarray(t, jnp.int32)
        s = jnp.asarray(t_prev, jnp.int32)
        hi, lo = (jnp.asarray(a) for a in self._log_ab)
        log_d = jnp.asarray(self._log_d)
        ex = lambda v: v[..., None, None]  # noqa: E731  (B,) → (B, 1, 1)
        log_g = ex((hi[t] - hi[s]) + (lo[t] - lo[s]))  # log ᾱ_t/ᾱ_s ≤ 0
        log_r = 2.0 * (log_d[t] - log_d[s])  # log (d_t/d_s)² ≤ 0, (B, H, W)
        sig2_t = ex(jnp.square(self.schedule.sqrt_one_minus_alphas_cumprod[t]))
        sig2_s = ex(jnp.square(self.schedule.sqrt_one_minus_alphas_cumprod[s]))
        var_ts = -jnp.expm1(log_g) - jnp.exp(log_g) * jnp.expm1(log_r) * sig2_s
        denom = jnp.where(sig2_t > 0, sig2_t, 1.0)  # t ≥ 1; guards unused lanes with t = 0
        alpha_ts = jnp.exp(0.5 * (log_g + log_r))
        c0 = jnp.asarray(self._scale)[s] * var_ts / denom
        ct = alpha_ts * sig2_s / denom
        var = var_ts * sig2_s / denom
        return c0[..., None], ct[..., None], var[..., None]
