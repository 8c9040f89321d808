"""What every noise schedule (α_t, σ_t) of the one process x_t = α_t·D_t(x0) + σ_t·ε knows, t = 0 … T.

A schedule holds float64 tables ``alpha64``, ``sigma64`` (T + 1,) and answers from them:

    alpha, sigma        float32 tables of α_t, σ_t
    log_snr             log(α_t²/σ_t²)  (+inf where σ = 0, −inf where α = 0)
    posterior(t, s)     (c1, c2, var) of q(x_s | x_t, x0) = N(c1 x0 + c2 x_t, var I) for D = identity, s < t:
                        α_{t|s} = α_t/α_s, σ²_{t|s} = σ_t² − α_{t|s}² σ_s²,
                        c1 = α_s σ²_{t|s}/σ_t²,  c2 = α_{t|s} σ_s²/σ_t²,  var = σ²_{t|s} σ_s²/σ_t²
    ode_scale           c_t of the probability-flow ODE dz/dr = (z − x̂0)/r in z = x/c_t, r = σ_t/c_t: α_t where
                        α > 0 throughout (Karras et al.'s variables), α_t + σ_t otherwise (flow matching, α_T = 0)
    dalpha64, dsigma64  dα/dτ, dσ/dτ in diffusion time τ = t/T (float64): the velocity u = dx_t/dτ
    prior_std           the std of x_T ~ N(0, prior_std² I) when the noise dominates at T

:class:`TabulatedSchedule` is any schedule given by its tables (constant σ, flow matching, variance exploding);
the variance-preserving ᾱ schedules (:class:`jaxdiff.processes.schedules.Schedule`) keep their β tables.
"""
from __future__ import annotations

import dataclasses
from typing import Mapping

import jax.numpy as jnp
import numpy as np

__all__ = ["NoiseSchedule", "TabulatedSchedule", "split_f64", "f32", "central_difference"]


def f32(a) -> jnp.ndarray:
    return jnp.asarray(np.asarray(a, dtype=np.float32))


def split_f64(a: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(hi, lo) float32 with hi + lo ≈ the float64 ``a`` (±inf kept in hi, lo = 0 there)."""
    a = np.asarray(a, np.float64)
    hi = a.astype(np.float32)
    lo = np.where(np.isfinite(hi), a - hi.astype(np.float64), 0.0).astype(np.float32)
    return hi, lo


def central_difference(v: np.ndarray) -> np.ndarray:
    """dv/dτ of a table v_t, t = 0 … T, τ = t/T (float64): central differences, one-sided at the ends."""
    v = np.asarray(v, np.float64)
    T = v.shape[0] - 1
    d = np.gradient(v, axis=0) if T >= 2 else np.diff(v, axis=0).repeat(2, axis=0)
    return d * T


class NoiseSchedule:
    """The questions every schedule answers, from ``alpha64`` / ``sigma64`` (subclasses provide those)."""

    alpha64: np.ndarray
    sigma64: np.ndarray

    @property
    def num_timesteps(self) -> int:
        return int(np.shape(self.alpha64)[0]) - 1

    @property
    def alpha(self) -> jnp.ndarray:
        return f32(self.alpha64)

    @property
    def sigma(self) -> jnp.ndarray:
        return f32(self.sigma64)

    @property
    def variance_preserving(self) -> bool:
        return False

    @property
    def prior_std(self) -> float:
        return float(self.sigma64[-1])

    @property
    def log_snr64(self) -> np.ndarray:
        with np.errstate(divide="ignore"):
            return 2.0 * (np.log(self.alpha64) - np.log(self.sigma64))

    @property
    def dalpha64(self) -> np.ndarray:
        """dα/dτ: an exact table where the schedule has one (``dalpha``), else central differences."""
        exact = getattr(self, "dalpha", None)
        return central_difference(self.alpha64) if exact is None else np.asarray(exact, np.float64)

    @property
    def dsigma64(self) -> np.ndarray:
        """dσ/dτ: an exact table where the schedule has one (``dsigma``), else central differences."""
        exact = getattr(self, "dsigma", None)
        return central_difference(self.sigma64) if exact is None else np.asarray(exact, np.float64)

    @property
    def ode_scale64(self) -> np.ndarray:
        a = np.asarray(self.alpha64, np.float64)
        return a if np.all(a > 0) else a + np.asarray(self.sigma64, np.float64)

    @property
    def ode_scale(self) -> jnp.ndarray:
        return f32(self.ode_scale64)

    def ode_variables(self, t):
        """(c_t, r_t = σ_t/c_t) of the probability-flow ODE dz/dr = (z − x̂0)/r, z = x/c_t (float32, shape of t)."""
        t = jnp.asarray(t, jnp.int32)
        c = self.ode_scale[t]
        return c, self.sigma[t] / c

    def log_alpha_pair(self):
        """log α_t as float32 (hi, lo) tables (differences keep ~1e-7 relative accuracy)."""
        with np.errstate(divide="ignore"):
            return tuple(jnp.asarray(v) for v in split_f64(np.log(np.asarray(self.alpha64, np.float64))))

    def transition(self, t, s):
        """(log(α_t²/α_s²), σ_t² − (α_t/α_s)² σ_s²): q(x_t | x_s) for D = identity, s ≤ t (float32, shape of t)."""
        t = jnp.asarray(t, jnp.int32)
        s = jnp.asarray(s, jnp.int32)
        hi, lo = self.log_alpha_pair()
        log_g = 2.0 * ((hi[t] - hi[s]) + (lo[t] - lo[s]))
        log_g = jnp.where(jnp.isnan(log_g), -jnp.inf, log_g)  # α_t = α_s = 0 does not occur for s < t ≤ T
        var = jnp.maximum(jnp.square(self.sigma[t]) - jnp.exp(log_g) * jnp.square(self.sigma[s]), 0.0)
        return log_g, var

    def posterior(self, t, s):
        """(c1, c2, var) of q(x_s | x_t, x0) for D = identity (module docstring); t, s int (B,) or scalars, s < t."""
        t = jnp.asarray(t, jnp.int32)
        s = jnp.asarray(s, jnp.int32)
        hi, lo = self.log_alpha_pair()
        log_ats = (hi[t] - hi[s]) + (lo[t] - lo[s])  # log α_t/α_s ≤ 0 (−inf where α_t = 0)
        log_ats = jnp.where(jnp.isnan(log_ats), -jnp.inf, log_ats)
        a_ts = jnp.exp(log_ats)
        sig = self.sigma
        sig2_t, sig2_s = jnp.square(sig[t]), jnp.square(sig[s])
        var_ts = jnp.maximum(sig2_t - jnp.square(a_ts) * sig2_s, 0.0)
        denom = jnp.where(sig2_t > 0, sig2_t, 1.0)  # σ_t > 0 for t ≥ 1 where this is used
        c1 = self.alpha[s] * var_ts / denom
        c2 = a_ts * sig2_s / denom
        return c1, c2, var_ts * sig2_s / denom

    def describe(self) -> str:
        return f"{type(self).__name__}, T={self.num_timesteps}"


@dataclasses.dataclass(frozen=True, eq=False)
class TabulatedSchedule(NoiseSchedule):
    """A schedule given by its float64 tables α_t, σ_t (t = 0 … T); ``name`` and ``params`` describe it.

    ``dalpha``/``dsigma``: exact dα/dτ, dσ/dτ tables when known (else central differences).
    """

    name: str
    alpha64: np.ndarray
    sigma64: np.ndarray
    params: Mapping = dataclasses.field(default_factory=dict)
    dalpha: np.ndarray | None = None
    dsigma: np.ndarray | None = None

    def __post_init__(self):
        a = np.asarray(self.alpha64, np.float64)
        s = np.asarray(self.sigma64, np.float64)
        if a.ndim != 1 or a.shape != s.shape or a.shape[0] < 2:
            raise ValueError(f"schedule {self.name!r}: alpha and sigma must be (T + 1,) tables with T >= 1")
        if not (np.all(np.isfinite(a)) and np.all(np.isfinite(s)) and np.all(a >= 0) and np.all(s >= 0)):
            raise ValueError(f"schedule {self.name!r}: alpha and sigma must be finite and >= 0")
        if a[0] != 1.0 or s[0] != 0.0:
            raise ValueError(f"schedule {self.name!r}: t = 0 must be the clean data (alpha_0 = 1, sigma_0 = 0)")
        for name, v in (("alpha64", a), ("sigma64", s)):
            v.setflags(write=False)
            object.__setattr__(self, name, v)
        # the float32 tables once (jnp constants; the schedule is static inside jit)
        object.__setattr__(self, "_alpha", f32(a))
        object.__setattr__(self, "_sigma", f32(s))

    @property
    def alpha(self) -> jnp.ndarray:
        return self._alpha

    @property
    def sigma(self) -> jnp.ndarray:
        return self._sigma

    @property
    def log_snr(self) -> jnp.ndarray:
        return f32(self.log_snr64)

    def describe(self) -> str:
        params = ", ".join(f"{k}={v:g}" if isinstance(v, float) else f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({params}), T={self.num_timesteps}"
