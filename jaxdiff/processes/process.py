"""The one forward process of jaxdiff:  x_t = α_t · D_t(x0) + σ_t · ε,  t ∈ {0, …, T},  D_0 = identity.

A :class:`Process` is two independent parts: a degradation D_t (:mod:`jaxdiff.degradations`: ``identity`` for
hot diffusion and flow matching, blur, masks, heat, the DCT blur of blurring diffusion …) and a noise schedule
(α_t, σ_t) (:mod:`jaxdiff.processes.schedules`: variance preserving, constant, flow, variance exploding). It
answers every question the package asks of a process — what it may predict, its prior and generation facts,
which correctors restore and generate, how it is described, whether diffusers has its scheduler — so nobody
outside this package asks for its class or kind.

Where D_t is diagonal in the orthonormal 2-D DCT basis (``Degradation.spectrum``: heat, dct_blur) the process
works per frequency: α_t·D_t is the table a_t = α_t d_t (built in float64), and the reverse steps' posterior
is Gaussian per frequency (``to_basis``/``from_basis`` move there and back; elsewhere they are the identity).

Shapes: images NHWC (B, H, W, C); t int (B,) or a scalar. ``aux`` is an optional per-example pytree (leading dim
B) the degradation draws once and keeps across t (``sample_aux(key, x0)``). Processes are immutable and hash by
identity, so they can be closed over or passed as static arguments to ``jax.jit``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.degradations.base import Degradation, GenerationPrior, bcast
from jaxdiff.processes.dct import dct2, idct2
from jaxdiff.processes.noise import f32, split_f64

__all__ = ["Process", "bcast", "as_t", "NOISE_DOMINATES_SNR"]

#: the noise dominates x_T (and the prior is N(0, prior_std² I), nothing fitted) when α_T²/σ_T² is below this
NOISE_DOMINATES_SNR = 1e-3


def as_t(t, x: jnp.ndarray) -> jnp.ndarray:
    """t as an int32 array of shape (B,) for a batch x of shape (B, ...)."""
    t = jnp.asarray(t, dtype=jnp.int32)
    return jnp.broadcast_to(t, (x.shape[0],)) if t.ndim == 0 else t


@dataclasses.dataclass(frozen=True, eq=False)
class Process:
    """x_t = α_t·D_t(x0) + σ_t·ε for a built ``degradation`` D and noise ``schedule`` of the same T."""

    degradation: Degradation
    schedule: Any  # a jaxdiff.processes.noise.NoiseSchedule

    def __post_init__(self):
        if not isinstance(self.degradation, Degradation):
            raise ValueError(f"Process: degradation must be a jaxdiff.degradations.Degradation, got "
                             f"{type(self.degradation).__name__}")
        T = self.schedule.num_timesteps
        if self.degradation.T != T and not self.degradation.identity:
            raise ValueError(f"Process: the degradation has T={self.degradation.T} steps and the noise schedule "
                             f"T={T}; both are diffusion.T")
        a64 = np.asarray(self.schedule.alpha64, np.float64)
        s64 = np.asarray(self.schedule.sigma64, np.float64)
        facts = dict(_a64=a64, _s64=s64, _noise_free=bool(np.all(s64 == 0)),
                     _noisy=bool(np.all(s64[1:] > 0)), _unit_signal=bool(np.all(a64 == 1.0)))
        spec = None if self.degradation.identity else self.degradation.spectrum
        if spec is not None:
            d64 = np.asarray(spec, np.float64)
            if d64.ndim != 3 or d64.shape[0] != T + 1:
                raise ValueError(f"degradation {self.degradation.name!r}: spectrum must be (T + 1, H, W), got "
                                 f"{d64.shape}")
            with np.errstate(divide="ignore"):
                log_d = np.log(d64)
            facts.update(_d64=d64, _scale=f32(a64[:, None, None] * d64), _log_d=f32(log_d),
                         _d_min=float(d64.min()))
        for k, v in facts.items():
            object.__setattr__(self, k, v)

    # --- what it is -------------------------------------------------------------------------------------------
    @property
    def T(self) -> int:
        return self.schedule.num_timesteps

    @property
    def identity(self) -> bool:
        """D_t = identity (hot diffusion, flow matching, EDM)."""
        return bool(self.degradation.identity)

    @property
    def spectral(self) -> bool:
        """D_t is diagonal in the DCT basis (heat, dct_blur): the process steps per frequency."""
        return not self.identity and self.degradation.spectrum is not None

    @property
    def noise_free(self) -> bool:
        """σ_t = 0 for every t: x_t = α_t D_t(x0) exactly and ε is never drawn nor predicted."""
        return self._noise_free

    @property
    def noisy(self) -> bool:
        """σ_t > 0 for every t ≥ 1."""
        return self._noisy

    @property
    def unit_signal(self) -> bool:
        """α_t = 1 for every t."""
        return self._unit_signal

    @property
    def invertible(self) -> bool:
        """α_t·D_t can be inverted on the image for every t ≥ 1 (identity or a DCT-diagonal D with d_t > 0 in float32,
        α_t > 0)."""
        if not (self.identity or self.spectral) or np.any(self._a64[1:] <= 0):
            return False
        # d_t must survive the float32 tables the steps divide by (exp(−λ σ_B²/2) of a wide blur underflows)
        return self.identity or self._d_min > np.finfo(np.float32).tiny

    @property
    def noise_dominates(self) -> bool:
        """x_T is taken to be noise, the prior N(0, prior_std² I) with nothing fitted: a variance-preserving schedule
        (it ends at N(0, I) by construction: DDPM's convention, whatever T), or α_T²/σ_T² < NOISE_DOMINATES_SNR."""
        if self.schedule.variance_preserving:
            return True
        a, s = self._a64[-1], self._s64[-1]
        return bool(s > 0 and (a / s) ** 2 < NOISE_DOMINATES_SNR)

    @property
    def keeps_image(self) -> bool:
        """x_T still holds the image (a degradation with little noise): restoration is this process's first use,
        with Cold Diffusion's two correctors."""
        return not self.identity and not self.noise_dominates

    @property
    def predictions(self) -> tuple[str, ...]:
        """What the network may be trained to predict (jaxdiff.parameterization.PREDICTIONS that apply)."""
        from jaxdiff.parameterization import PREDICTIONS

        return tuple(n for n, p in PREDICTIONS.items() if p.requirement(self) is None)

    def check_prediction(self, prediction: str, *, field: str = "diffusion.prediction") -> str:
        """``prediction`` if this process allows it, else one ValueError naming ``field``, the allowed ones and why."""
        from jaxdiff.parameterization import PREDICTIONS

        if prediction not in PREDICTIONS:
            raise ValueError(f"{field}: unknown prediction {prediction!r}; {field} must be one of "
                             f"{list(self.predictions)} for {self.describe()}")
        why = PREDICTIONS[prediction].requirement(self)
        if why is not None:
            allowed = (repr(self.predictions[0]) if len(self.predictions) == 1
                       else f"one of {list(self.predictions)}")
            raise ValueError(f"{field} must be {allowed} for {self.describe()}, got {prediction!r} "
                             f"({prediction!r} {why})")
        return prediction

    @property
    def has_diffusers_scheduler(self) -> bool:
        """diffusers' DDPM/DDIM schedulers describe it: D = identity and a variance-preserving schedule."""
        return self.identity and bool(self.schedule.variance_preserving)

    def describe(self) -> str:
        """How reports, pictures and stored priors name it (ASCII: the pictures' font has no Greek)."""
        d, s = self.degradation, self.schedule
        if self.identity:
            return f"gaussian diffusion, {s.describe()}"
        if d.name == "dct_blur" and s.variance_preserving:
            p = d.params
            return (f"blurring diffusion, T={self.T}, sigma_blur_max={float(p['sigma_max']):g}, "
                    f"d_min={float(p['d_min']):g}")
        if getattr(s, "name", None) == "constant":
            std = float(s.params["std"])
            return f"cold diffusion, {d.describe()}" + ("" if std == 0 else f", noise_std={std:g}")
        return f"{d.describe()} with noise {s.describe()}"

    # --- the forward process ----------------------------------------------------------------------------------
    def signal(self, t) -> jnp.ndarray:
        """α_t (float32, shape of t)."""
        return self.schedule.alpha[jnp.asarray(t, jnp.int32)]

    def std(self, t) -> jnp.ndarray:
        """σ_t (float32, shape of t)."""
        return self.schedule.sigma[jnp.asarray(t, jnp.int32)]

    def degrade(self, x0, t, aux: Any = None) -> jnp.ndarray:
        """D_t(x0) (no α_t), shape of x0."""
        return self.degradation.apply(x0, as_t(t, x0), aux)

    def scale(self, t) -> jnp.ndarray:
        """a_t = α_t d_t per frequency, (B, H, W, 1) for t (B,) (DCT-diagonal processes)."""
        return self._scale[jnp.asarray(t, jnp.int32)][..., None]

    def mean(self, x0, t, aux: Any = None) -> jnp.ndarray:
        """α_t · D_t(x0), shape of x0 (F_0 = identity exactly)."""
        t = as_t(t, x0)
        if self.spectral:
            self._check_spectral_shape(x0)
            out = idct2(self.scale(t).astype(x0.dtype) * dct2(x0))
            return jnp.where(bcast(t == 0, x0), x0, out)
        y = x0 if self.identity else self.degradation.apply(x0, t, aux)
        if self.unit_signal:
            return y
        return bcast(self.signal(t), y).astype(y.dtype) * y

    def perturb(self, x0, t, eps, aux: Any = None) -> jnp.ndarray:
        """α_t D_t(x0) + σ_t · eps for a given eps (what training uses, so the target ε is known)."""
        t = as_t(t, x0)
        return self.mean(x0, t, aux) + bcast(self.std(t), x0).astype(x0.dtype) * eps

    def sample(self, x0, t, key: jax.Array, aux: Any = None) -> jnp.ndarray:
        """A draw of x_t ~ q(x_t | x0)."""
        eps = jax.random.normal(key, x0.shape, x0.dtype)
        return self.perturb(x0, t, eps, aux)

    def sample_aux(self, key: jax.Array, x0) -> Any:
        """Per-example randomness fixed across t (None when the degradation has none)."""
        fn = self.degradation.sample_aux
        return None if fn is None else fn(key, x0)

    @property
    def draws_aux(self) -> bool:
        """Whether the degradation draws per-example randomness (a mask center, an end color …)."""
        return self.degradation.sample_aux is not None

    def prior(self, key: jax.Array, shape, *, x0: Optional[jnp.ndarray] = None, aux: Any = None) -> jnp.ndarray:
        """A draw of x_T: N(0, prior_std² I) where the noise dominates; else the degradation's data-free end
        state + σ_T ε (a fade's color); else, given x0, x_T ~ q(x_T | x0) (restoration)."""
        dtype = x0.dtype if x0 is not None else jnp.float32
        if self.noise_dominates:
            z = jax.random.normal(key, tuple(shape), dtype)
            std = float(self.schedule.prior_std)
            return z if std == 1.0 else std * z
        if x0 is None and self.degradation.prior is not None:
            k1, k2 = jax.random.split(key)
            xT = self.degradation.prior(k1, tuple(shape), aux)
            if not self.unit_signal:
                xT = self.signal(self.T).astype(xT.dtype) * xT
            return xT + float(self._s64[-1]) * jax.random.normal(k2, xT.shape, xT.dtype)
        if x0 is None:
            raise ValueError(f"{self.describe()} has no data-free prior of x_T: pass x0 (restoration) or fit a "
                             "prior (jaxdiff.priors)")
        return self.sample(x0, jnp.full((x0.shape[0],), self.T, jnp.int32), key, aux)

    def step(self, x_prev, t, key: jax.Array, aux: Any = None) -> jnp.ndarray:
        """One forward step x_{t−1} → x_t, where the process is Markov in that sense: a variance-preserving
        identity process (√(1 − β_t) x + √β_t ε) or a unit-signal degradation with a single step (+ σ_t ε)."""
        t = as_t(t, x_prev)
        if self.identity and self.schedule.variance_preserving:
            beta = bcast(self.schedule.betas[t], x_prev).astype(x_prev.dtype)
            eps = jax.random.normal(key, x_prev.shape, x_prev.dtype)
            return jnp.sqrt(1.0 - beta) * x_prev + jnp.sqrt(beta) * eps
        fn = self.degradation.step
        if fn is None or not self.unit_signal:
            raise NotImplementedError(f"{self.describe()} has no single forward step")
        out = fn(x_prev, t, aux)
        if not self.noise_free:
            out = out + bcast(self.std(t), out) * jax.random.normal(key, out.shape, out.dtype)
        return out

    # --- the basis the reverse steps work in ------------------------------------------------------------------
    def _check_spectral_shape(self, x):
        if tuple(x.shape[1:3]) != tuple(self._d64.shape[1:]):
            h, w = self._d64.shape[1:]
            raise ValueError(f"degradation {self.degradation.name!r} was built for {h}x{w} images, got images of "
                             f"shape {tuple(x.shape)}")

    def to_basis(self, x):
        """x in the basis where α_t D_t is diagonal: dct2(x) for DCT-diagonal processes, x otherwise."""
        return dct2(x) if self.spectral else x

    def from_basis(self, u):
        """Inverse of :meth:`to_basis`."""
        return idct2(u) if self.spectral else u

    def in_basis(self, v, like):
        """A coefficient v broadcast against an array ``like`` of the basis: (B,) → (B, 1, 1, 1); a per-frequency
        (B, H, W, 1) stays; cast to ``like``'s dtype."""
        return bcast(v, like).astype(like.dtype)

    @property
    def diagonal(self) -> bool:
        """α_t D_t is diagonal in the process's basis (D identity, or diagonal in the DCT basis)."""
        return self.identity or self.spectral

    @property
    def gaussian_posterior(self) -> bool:
        """q(x_s | x_t, x0) is Gaussian in closed form: D identity or DCT-diagonal (per frequency) and σ_t > 0."""
        return self.diagonal and self.noisy

    def mean_in_basis(self, x0, t, aux: Any = None):
        """``to_basis(mean(x0, t))`` without the round trip: a_t ⊙ dct2(x0) per frequency, α_t x0 for the identity;
        α_t D_t(x0) itself elsewhere (the basis is the pixels)."""
        if self.spectral:
            u0 = dct2(x0)
            return self.in_basis(self.scale(as_t(t, x0)), u0) * u0
        if self.identity:
            return self.in_basis(self.signal(as_t(t, x0)), x0) * x0
        return self.mean(x0, t, aux)

    def signal_scale(self, t):
        """α_t·D_t's diagonal in the basis: a_t (B, H, W, 1) per frequency, else α_t (B,)."""
        return self.scale(t) if self.spectral else self.signal(t)

    def half_log_snr(self, t):
        """λ_t = log(a_t/σ_t) per coefficient of the basis (float32): ½ log(α_t²/σ_t²) (shape of t) where D is not
        DCT-diagonal, plus log d_t per frequency ((B, H, W, 1) for t (B,)) where it is; +inf where σ_t = 0, −inf
        where a_t = 0. The multistep solvers step in it."""
        t = jnp.asarray(t, jnp.int32)
        lam = 0.5 * self.schedule.log_snr[t]
        if not self.spectral:
            return lam
        return lam[..., None, None, None] + self._log_d[t][..., None]

    def transition(self, t, s):
        """(a_{t|s}, σ²_{t|s}) of q(x_t | x_s) = N(a_{t|s} x_s, σ²_{t|s}) in the basis, s < t; a_{t|s} = α_t d_t/(α_s d_s)
        per frequency (0 where d_s = 0), α_t/α_s otherwise. Non-diagonal D: the schedule's alone (D ignored)."""
        t = jnp.asarray(t, jnp.int32)
        s = jnp.asarray(s, jnp.int32)
        log_g, var_g = self.schedule.transition(t, s)  # log(α_t²/α_s²), σ_t² − (α_t/α_s)² σ_s²
        if not self.spectral:
            return jnp.exp(0.5 * log_g), var_g
        ex = lambda v: v[..., None, None]  # noqa: E731  (B,) → (B, 1, 1)
        log_d = self._log_d
        finite = jnp.isfinite(log_d[s])
        log_r = jnp.where(finite, 2.0 * (log_d[t] - jnp.where(finite, log_d[s], 0.0)), -jnp.inf)  # log (d_t/d_s)²
        sig2_s = ex(jnp.square(self.std(s)))
        var = ex(var_g) - ex(jnp.exp(log_g)) * jnp.expm1(log_r) * sig2_s
        return jnp.exp(0.5 * (ex(log_g) + log_r))[..., None], var[..., None]

    def posterior(self, t, s):
        """(c0, ct, var) of q(x_s | x_t, x0) = N(c0 x0 + ct x_t, var) in the basis (identity and DCT-diagonal D).

        c0 = a_s σ²_{t|s}/σ_t², ct = a_{t|s} σ_s²/σ_t², var = σ²_{t|s} σ_s²/σ_t². Identity: the schedule's own
        (scalars (B,)); DCT-diagonal: per frequency, (B, H, W, 1). s < t, σ_t > 0."""
        if self.identity:
            return self.schedule.posterior(t, s)
        if not self.spectral:
            raise ValueError(f"{self.describe()}: q(x_s | x_t, x0) is not Gaussian in closed form (D_t is neither "
                             "the identity nor diagonal in the DCT basis)")
        a_ts, var_ts = self.transition(t, s)
        sig2_t = jnp.square(self.std(t))[..., None, None, None]
        sig2_s = jnp.square(self.std(s))[..., None, None, None]
        denom = jnp.where(sig2_t > 0, sig2_t, 1.0)  # t ≥ 1; guards unused lanes with t = 0
        return self.scale(s) * var_ts / denom, a_ts * sig2_s / denom, var_ts * sig2_s / denom

    def posterior_variance(self, t, s):
        """var of :meth:`posterior` (DDIM's η noise is η² var); for a D that is neither identity nor diagonal,
        the noise schedule's own (0 for a constant σ: such a process adds no noise between s and t)."""
        if self.identity or self.spectral:
            return self.posterior(t, s)[2]
        _, var_g = self.schedule.transition(jnp.asarray(t, jnp.int32), jnp.asarray(s, jnp.int32))
        sig2_t = jnp.square(self.std(t))
        return var_g * jnp.square(self.std(s)) / jnp.where(sig2_t > 0, sig2_t, 1.0)

    # --- inverting α_t D_t (predictions other than x0) -----------------------------------------------------------
    def x0_from_eps(self, x_t, eps, t):
        """x̂0 = (α_t D_t)⁻¹ (x_t − σ_t ε̂) (at t = 0 for DCT-diagonal D: x_t)."""
        t = as_t(t, x_t)
        if self.spectral:
            self._check_spectral_shape(x_t)
            u = dct2(x_t) - bcast(self.std(t), x_t).astype(x_t.dtype) * dct2(eps)
            return jnp.where(bcast(t == 0, x_t), x_t, idct2(u / self.scale(t).astype(x_t.dtype)))
        return (x_t - bcast(self.std(t), x_t) * eps) / bcast(self.signal(t), x_t)

    def solve_linear(self, x_t, y, t, A, B):
        """x̂0 and ε̂ from x_t = a x0 + σ ε and a network output y = A x0 + B ε, per coefficient of the basis
        (a = α_t d_t or α_t; A, B broadcastable there): x̂0 = (σ y − B x_t)/(σ A − B a), ε̂ = (A x_t − a y)/(σ A − B a)."""
        t = as_t(t, x_t)
        u_t, u_y = self.to_basis(x_t), self.to_basis(y)
        a = self.in_basis(self.signal_scale(t), u_t)
        sig = self.in_basis(self.std(t), u_t)
        A, B = self.in_basis(A, u_t), self.in_basis(B, u_t)
        det = sig * A - B * a
        safe = jnp.where(det != 0, det, 1.0)
        x0 = self.from_basis((sig * u_y - B * u_t) / safe)
        return jnp.where(bcast(t == 0, x_t), x_t, x0)

    def velocity_coefficients(self, t):
        """(a'_t, σ'_t): x_t's derivative in diffusion time τ = t/T, u = a'_t x0 + σ'_t ε, in the basis
        (a' = α' d + α d' per frequency for DCT-diagonal D; α' for identity)."""
        t = jnp.asarray(t, jnp.int32)
        tabs = self._velocity_tables()
        return tabs[0][t] if not self.spectral else tabs[0][t][..., None], tabs[1][t]

    @property
    def velocity_invertible(self) -> bool:
        """x_t = a x0 + σ ε and u = a' x0 + σ' ε determine x0 for every t ≥ 1 and coefficient: σ a' − σ' a ≠ 0
        (beyond float32's smallest normal number: a blur that wipes a frequency out leaves nothing to solve for)."""
        da, ds = self.schedule.dalpha64[1:], self.schedule.dsigma64[1:]
        a, s = self._a64[1:], self._s64[1:]
        if self.spectral:
            from jaxdiff.processes.noise import central_difference

            d = self._d64
            dp = central_difference(d.reshape(d.shape[0], -1)).reshape(d.shape)[1:]
            det = s[:, None, None] * (da[:, None, None] * d[1:] + a[:, None, None] * dp) - ds[:, None, None] * (
                a[:, None, None] * d[1:])
        else:
            det = s * da - ds * a
        return bool(np.all(np.abs(det) > np.finfo(np.float32).tiny))

    def _velocity_tables(self):
        cached = self.__dict__.get("_vel")
        if cached is None:
            da, ds = self.schedule.dalpha64, self.schedule.dsigma64
            if self.spectral:
                from jaxdiff.processes.noise import central_difference

                d = self._d64
                dprime = central_difference(d.reshape(d.shape[0], -1)).reshape(d.shape)
                a_prime = da[:, None, None] * d + self._a64[:, None, None] * dprime
            else:
                a_prime = da
            with jax.ensure_compile_time_eval():  # built on first use, maybe inside a trace: keep constants
                cached = (f32(a_prime), f32(ds))
            object.__setattr__(self, "_vel", cached)
        return cached

    # --- generation and restoration facts ---------------------------------------------------------------------
    def generation(self) -> GenerationPrior:
        """How it generates: N(0, prior_std² I) where the noise dominates at T (nothing to fit; the configured
        corrector), else the degradation's :class:`GenerationPrior`. One ValueError for a restoration-only one."""
        if self.noise_dominates:  # (its corrector is the configured one: :meth:`generation_corrector`)
            std = float(self.schedule.prior_std)
            return GenerationPrior(kind="gaussian", fit_on="none", fit_params={} if std == 1.0 else {"std": std},
                                   corrector="ddim")
        gen = self.degradation.generation
        if gen is None:
            raise ValueError(f"diffusion.degradation={self.degradation.name!r} has no generation prior (its end "
                             "state x_T depends on the image): use --mode=restore to restore degraded images instead")
        from jaxdiff.priors import PRIORS

        PRIORS.get_or_raise(gen.kind, field=f"the generation prior of degradation {self.degradation.name!r}")
        return gen

    @property
    def can_generate(self) -> bool:
        try:
            self.generation()
        except ValueError:
            return False
        return True

    def generation_corrector(self, configured: str) -> str:
        """The corrector generation uses by default: ``configured`` (sample.corrector) where the noise dominates,
        else the degradation's GenerationPrior.corrector (raises like :meth:`generation`)."""
        gen = self.generation()
        if self.noise_dominates:
            return str(configured)
        from jaxdiff.sampling import CORRECTORS

        CORRECTORS.get_or_raise(gen.corrector, field=f"the generation corrector of degradation "
                                                     f"{self.degradation.name!r}")
        return gen.corrector

    def restoration_correctors(self, configured: str) -> tuple[str, ...]:
        """The correctors restoration compares: Cold Diffusion's Algorithms 1 and 2 where x_T keeps the image,
        else ``configured``."""
        return ("cold_naive", "cold_improved") if self.keeps_image else (str(configured),)

    def generation_aux(self, x_T, key: jax.Array) -> Any:
        """The aux a reverse run from the prior draw x_T needs: the generation prior's ``aux(x_T, key)`` when it
        has one, else :meth:`sample_aux` (None where the noise dominates)."""
        if self.noise_dominates:
            return None
        gen = self.degradation.generation
        if gen is not None and gen.aux is not None:
            return gen.aux(x_T, key)
        return self.sample_aux(key, x_T)

    def restoration_aux(self, x0, key: jax.Array, end_images=None) -> Any:
        """The aux for degrading held-out images x0: the degradation's ``restoration_aux(key, x0, end_images)``
        when it has one, else :meth:`sample_aux`."""
        fn = self.degradation.restoration_aux
        return fn(key, x0, end_images) if fn is not None else self.sample_aux(key, x0)

    @property
    def needs_end_source(self) -> bool:
        """Its aux is an image of a second data set (``data.end_source``)."""
        return bool(self.degradation.needs_end_source)

    @property
    def log_alpha2_pair(self):
        """log α_t² as float32 (hi, lo) (the blurring posterior's accuracy trick)."""
        with np.errstate(divide="ignore"):
            return tuple(jnp.asarray(v) for v in split_f64(2.0 * np.log(self._a64)))
