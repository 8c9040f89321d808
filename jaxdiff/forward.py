"""The one forward process of jaxdiff:  x_t = F_t(x0) + σ_t · ε,  t ∈ {0, …, T}, F_0 = identity.

* :class:`GaussianProcess` ("hot" diffusion): F_t(x0) = √ᾱ_t · x0, σ_t = √(1 − ᾱ_t).
* :class:`ColdProcess` (Cold Diffusion): F_t a deterministic degradation from :mod:`jaxdiff.degradations`,
  σ_t a small constant (0 by default, always 0 at t = 0).

Shapes: images NHWC (B, H, W, C); t int (B,) or a scalar. ``aux`` is an optional per-example pytree (leading
dim B) of what a degradation draws once and keeps fixed across t (a mask center, the color a fade ends at, the
image an interpolation moves toward); ``sample_aux(key, x0)`` draws it. Processes are immutable and hash by
identity, so they can be closed over or passed as static arguments to ``jax.jit``.
"""
from __future__ import annotations

import abc
import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp

from jaxdiff.schedules import Schedule

__all__ = ["ForwardProcess", "GaussianProcess", "ColdProcess", "bcast"]


def bcast(v: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """Reshapes a per-example (B,) or scalar array so it broadcasts against x (B, ...)."""
    v = jnp.asarray(v)
    if v.ndim == 0:
        return v
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def _as_t(t, x: jnp.ndarray) -> jnp.ndarray:
    """t as an int32 array of shape (B,) for a batch x of shape (B, ...)."""
    t = jnp.asarray(t, dtype=jnp.int32)
    return jnp.broadcast_to(t, (x.shape[0],)) if t.ndim == 0 else t


class ForwardProcess(abc.ABC):
    """x_t = F_t(x0) + σ_t ε. Subclasses implement ``mean`` and ``std``."""

    #: number of forward steps; t runs over 0 … T
    T: int
    #: what the network may be trained to predict in this process (the first one is the default)
    predictions: tuple[str, ...] = ("x0",)

    @property
    def noise_free(self) -> bool:
        """Whether σ_t = 0 for every t (then x_t = F_t(x0) exactly and ε is never drawn nor predicted)."""
        return False

    @property
    def standard_normal_prior(self) -> bool:
        """Whether x_T ~ N(0, I) with nothing to fit (Gaussian and blurring diffusion: the signal at T is ≈ 0)."""
        return False

    def x0_from_eps(self, x_t: jnp.ndarray, eps: jnp.ndarray, t) -> jnp.ndarray:
        """x̂0 from ε̂, for processes whose ``predictions`` include "eps" (see :mod:`jaxdiff.parameterization`)."""
        raise NotImplementedError(f"{type(self).__name__} does not turn an ε-prediction into x̂0")

    def check_prediction(self, prediction: str, *, field: str = "diffusion.prediction") -> str:
        """``prediction`` if this process allows it, else one ValueError naming ``field`` and the allowed ones."""
        if prediction not in self.predictions:
            name = type(self).__name__
            if self.predictions == ("x0",):
                raise ValueError(f"{field} must be 'x0' for a {name} (cold processes predict 'x0'), got {prediction!r}")
            raise ValueError(f"{field} must be one of {list(self.predictions)} for a {name}, got {prediction!r}")
        return prediction

    @abc.abstractmethod
    def mean(self, x0: jnp.ndarray, t, aux: Any = None) -> jnp.ndarray:
        """F_t(x0), shape of x0."""

    @abc.abstractmethod
    def std(self, t) -> jnp.ndarray:
        """σ_t, same shape as t (float32)."""

    def sample_aux(self, key: jax.Array, x0: jnp.ndarray) -> Any:
        """Per-example randomness fixed across t (None when the process has none)."""
        del key, x0
        return None

    def perturb(self, x0: jnp.ndarray, t, eps: jnp.ndarray, aux: Any = None) -> jnp.ndarray:
        """F_t(x0) + σ_t · eps for a given eps (what training uses, so the target ε is known)."""
        t = _as_t(t, x0)
        return self.mean(x0, t, aux) + bcast(self.std(t), x0).astype(x0.dtype) * eps

    def sample(self, x0: jnp.ndarray, t, key: jax.Array, aux: Any = None) -> jnp.ndarray:
        """A draw of x_t ~ q(x_t | x0)."""
        eps = jax.random.normal(key, x0.shape, x0.dtype)
        return self.perturb(x0, t, eps, aux)

    def prior(self, key: jax.Array, shape, *, x0: Optional[jnp.ndarray] = None, aux: Any = None) -> jnp.ndarray:
        """A draw of x_T. Without x0 this needs a data-free end state (Gaussian noise, a fade's color…)."""
        if x0 is None:
            raise ValueError(
                f"{type(self).__name__} has no data-free prior of x_T: pass x0 (restoration) or fit a prior "
                "(jaxdiff.priors)"
            )
        return self.sample(x0, jnp.full((x0.shape[0],), self.T, jnp.int32), key, aux)

    def step(self, x_prev: jnp.ndarray, t, key: jax.Array, aux: Any = None) -> jnp.ndarray:
        """One forward step x_{t−1} → x_t, where the process is Markov in that sense."""
        raise NotImplementedError(f"{type(self).__name__} has no single forward step")


@dataclasses.dataclass(frozen=True, eq=False)
class GaussianProcess(ForwardProcess):
    """F_t(x0) = √ᾱ_t x0, σ_t = √(1 − ᾱ_t) (DDPM/DDIM)."""

    schedule: Schedule
    predictions = ("eps", "x0", "v")

    @property
    def T(self) -> int:  # type: ignore[override]
        return self.schedule.num_timesteps

    @property
    def standard_normal_prior(self) -> bool:
        return True

    def signal(self, t) -> jnp.ndarray:
        """√ᾱ_t."""
        return self.schedule.sqrt_alphas_cumprod[jnp.asarray(t, jnp.int32)]

    def mean(self, x0, t, aux=None):
        t = _as_t(t, x0)
        return bcast(self.signal(t), x0).astype(x0.dtype) * x0

    def std(self, t):
        return self.schedule.sqrt_one_minus_alphas_cumprod[jnp.asarray(t, jnp.int32)]

    def prior(self, key, shape, *, x0=None, aux=None):
        """x_T ~ N(0, I) (ᾱ_T ≈ 0; the data are not used)."""
        dtype = x0.dtype if x0 is not None else jnp.float32
        return jax.random.normal(key, tuple(shape), dtype)

    def step(self, x_prev, t, key, aux=None):
        """x_t = √(1 − β_t) x_{t−1} + √β_t ε."""
        t = _as_t(t, x_prev)
        beta = bcast(self.schedule.betas[t], x_prev).astype(x_prev.dtype)
        eps = jax.random.normal(key, x_prev.shape, x_prev.dtype)
        return jnp.sqrt(1.0 - beta) * x_prev + jnp.sqrt(beta) * eps

    def posterior(self, x_t, x0, t):
        """Mean and variance of q(x_{t−1} | x_t, x0) (shapes of x_t and of (B,1,1,1))."""
        t = _as_t(t, x_t)
        s = self.schedule
        mean = bcast(s.posterior_mean_coef1[t], x_t) * x0 + bcast(s.posterior_mean_coef2[t], x_t) * x_t
        return mean, bcast(s.posterior_variance[t], x_t)


@dataclasses.dataclass(frozen=True, eq=False)
class ColdProcess(ForwardProcess):
    """F_t = a registered degradation, σ_t = ``noise_std`` for t > 0 (0 at t = 0)."""

    degradation: Any  # jaxdiff.degradations.Degradation
    noise_std: float = 0.0

    def __post_init__(self):
        if not (self.noise_std >= 0.0):
            raise ValueError(f"noise_std must be >= 0, got {self.noise_std!r}")

    @property
    def T(self) -> int:  # type: ignore[override]
        return self.degradation.T

    @property
    def noise_free(self) -> bool:
        return self.noise_std == 0

    def mean(self, x0, t, aux=None):
        return self.degradation.apply(x0, _as_t(t, x0), aux)

    def std(self, t):
        t = jnp.asarray(t, jnp.int32)
        return jnp.where(t > 0, jnp.float32(self.noise_std), jnp.float32(0.0))

    def sample_aux(self, key, x0):
        fn = self.degradation.sample_aux
        return None if fn is None else fn(key, x0)

    def prior(self, key, shape, *, x0=None, aux=None):
        if x0 is None and self.degradation.prior is not None:
            k1, k2 = jax.random.split(key)
            xT = self.degradation.prior(k1, tuple(shape), aux)
            return xT + self.noise_std * jax.random.normal(k2, xT.shape, xT.dtype)
        return super().prior(key, shape, x0=x0, aux=aux)

    def step(self, x_prev, t, key, aux=None):
        """x_t = G_t(x_{t−1}) (+ fresh noise, if σ > 0, on a noise-free x_{t−1})."""
        fn = self.degradation.step
        if fn is None:
            raise NotImplementedError(f"degradation {self.degradation.name!r} has no single forward step")
        t = _as_t(t, x_prev)
        out = fn(x_prev, t, aux)
        if self.noise_std > 0:
            out = out + bcast(self.std(t), out) * jax.random.normal(key, out.shape, out.dtype)
        return out
