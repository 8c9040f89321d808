"""Correctors: the step x_t → x_{t_prev} (t > t_prev) from the predictor's x̂0 and ε̂, registered by config name.

With ᾱ = ᾱ_t, ᾱ' = ᾱ_{t_prev}:

* ``ddpm``  x_{t_prev} ~ q(x_{t_prev} | x_t, x̂0) = N(c1 x̂0 + c2 x_t, var)   (:func:`posterior_coefficients`)
* ``ddim``  x_{t_prev} = √ᾱ' x̂0 + √(1 − ᾱ' − σ²) ε̂ + σ z,  σ = η √((1 − ᾱ')/(1 − ᾱ)) √(1 − ᾱ/ᾱ')  (Song et al. 2021)
* ``cold_naive``     x_{t_prev} = F_{t_prev}(x̂0) (+ σ_{t_prev} z when the process is noisy)  (Bansal et al. Alg. 1)
* ``cold_improved``  x_{t_prev} = x_t − F_t(x̂0) + F_{t_prev}(x̂0)                             (Bansal et al. Alg. 2)
* ``blurring_ddpm``, ``blurring_ddim``  the ddpm and ddim steps per DCT frequency of a blurring diffusion
* ``dpmpp_2m``, ``euler``, ``heun``  ODE solvers with a state and/or extra network calls (:mod:`~jaxdiff.sampling.fast`)

Every corrector returns x̂0 itself where t_prev = 0. Noise is z = ``jax.random.normal(key, x_t.shape)`` at the
full (global) shape, so a sharded batch gets the same numbers on any device count.
Shapes: images (B, H, W, C); t, t_prev int32 (B,); schedule arrays (T + 1,) gathered by t.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.blurring import BlurringProcess
from jaxdiff.forward import ForwardProcess, GaussianProcess, bcast
from jaxdiff.registry import Registry, did_you_mean

__all__ = [
    "Corrector",
    "CORRECTORS",
    "register_corrector",
    "make_corrector",
    "check_corrector",
    "network_calls",
    "posterior_coefficients",
    "ddim_sigma",
    "ddpm",
    "ddim",
    "cold_naive",
    "cold_improved",
    "blurring_ddpm",
    "blurring_ddim",
]

Array = jnp.ndarray


# --------------------------------------------------------------------------------------------------
# Gaussian step coefficients
# --------------------------------------------------------------------------------------------------


def _log_alphas_cumprod(schedule):
    """log ᾱ_t as a float32 pair (hi, lo) with hi + lo ≈ the float64 value.

    Differences log ᾱ_t − log ᾱ_{t'} then keep ~1e-7 relative accuracy even where ᾱ_t ≈ ᾱ_{t'} ≈ 1
    (small t) or ≈ 0 (large t), where 1 − ᾱ_t / ᾱ_{t'} from float32 ᾱ loses 3–4 digits. Falls back to
    float32 when the schedule arrays are traced (not constants).
    """
    betas = schedule.betas
    if isinstance(betas, jax.core.Tracer):
        return jnp.cumsum(jnp.log1p(-betas)), jnp.zeros_like(betas)
    with np.errstate(divide="ignore"):
        log_ab = np.cumsum(np.log1p(-np.asarray(betas, np.float64)))
    hi = log_ab.astype(np.float32)
    lo = np.where(np.isfinite(hi), log_ab - hi.astype(np.float64), 0.0).astype(np.float32)
    return jnp.asarray(hi), jnp.asarray(lo)


def posterior_coefficients(schedule, t, t_prev):
    """(c1, c2, var) of q(x_{t_prev} | x_t, x0) = N(c1 x0 + c2 x_t, var I) for any 0 ≤ t_prev < t.

    With α = ᾱ_t/ᾱ_{t_prev}, β = 1 − α:  c1 = β √ᾱ_{t_prev}/(1 − ᾱ_t),  c2 = (1 − ᾱ_{t_prev}) √α/(1 − ᾱ_t),
    var = β (1 − ᾱ_{t_prev})/(1 − ᾱ_t). t, t_prev int (B,) or scalars; returns float32 arrays of that shape.
    """
    t = jnp.asarray(t, jnp.int32)
    t_prev = jnp.asarray(t_prev, jnp.int32)
    hi, lo = _log_alphas_cumprod(schedule)
    log_alpha = (hi[t] - hi[t_prev]) + (lo[t] - lo[t_prev])  # log(ᾱ_t/ᾱ_{t_prev}) ≤ 0
    beta = -jnp.expm1(log_alpha)
    one_minus_ab = jnp.square(schedule.sqrt_one_minus_alphas_cumprod[t])
    one_minus_ab_prev = jnp.square(schedule.sqrt_one_minus_alphas_cumprod[t_prev])
    # t ≥ 1 so 1 − ᾱ_t > 0; the guard only protects unused lanes (e.g. padding with t = t_prev = 0).
    denom = jnp.where(one_minus_ab > 0, one_minus_ab, 1.0)
    c1 = beta * schedule.sqrt_alphas_cumprod[t_prev] / denom
    c2 = one_minus_ab_prev * jnp.exp(0.5 * log_alpha) / denom
    var = beta * one_minus_ab_prev / denom
    return c1, c2, var


def ddim_sigma(schedule, t, t_prev, eta=0.0):
    """σ = η √((1 − ᾱ_{t_prev})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t_prev}), i.e. σ² = η² · (DDPM posterior variance)."""
    _, _, var = posterior_coefficients(schedule, t, t_prev)
    return jnp.asarray(eta, jnp.float32) * jnp.sqrt(var)


# --------------------------------------------------------------------------------------------------
# The registry
# --------------------------------------------------------------------------------------------------


def _one_call_per_step(num_steps: int) -> int:
    return int(num_steps)


@dataclasses.dataclass(frozen=True)
class Corrector:
    """A registered corrector: ``fn(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None)`` and the
    process class it works with. Calling it checks the process, then runs ``fn``.

    A *stateful* corrector has ``init_state(x_T) -> pytree``; its ``fn`` also takes ``state=`` (carried through
    the loop's scan) and ``predict=`` (``predict(x, t) -> (x̂0, ε̂)``: the network plus predictor, for extra
    evaluations) and returns ``(x_prev, new_state)``. ``network_calls(N)``: network evaluations of N steps."""

    name: str
    fn: Callable[..., Array]
    requires: type = ForwardProcess
    init_state: Optional[Callable[[Array], Any]] = None
    network_calls: Callable[[int], int] = _one_call_per_step

    @property
    def stateful(self) -> bool:
        return self.init_state is not None

    def check(self, process: ForwardProcess) -> None:
        """ValueError unless ``process`` is a ``requires``."""
        if not isinstance(process, self.requires):
            fits = [n for n, c in CORRECTORS.items() if isinstance(process, c.requires)]
            raise ValueError(
                f"corrector {self.name!r} needs a {self.requires.__name__}, got a {type(process).__name__}; "
                f"for a {type(process).__name__} use one of {fits}"
            )

    def __call__(self, process, *args, **kwargs) -> Array:
        self.check(process)
        return self.fn(process, *args, **kwargs)


#: name → :class:`Corrector`; a second registration of a name raises
CORRECTORS: Registry[Corrector] = Registry("corrector")


def register_corrector(name: str, *, requires: type = ForwardProcess, init_state=None, network_calls=None):
    """Decorator: registers ``fn(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None)``.

    ``requires`` is the process class the corrector works with; :func:`jaxdiff.sampling.sample` refuses other
    processes before tracing. The function must return x̂0 where t_prev == 0. ``init_state`` makes it stateful
    (see :class:`Corrector`); ``network_calls(N)`` counts its network evaluations over N steps (default N).
    Returns ``fn`` unchanged; a name already registered raises ValueError.
    """

    def deco(fn):
        CORRECTORS.register(name, Corrector(name, fn, requires, init_state, network_calls or _one_call_per_step))
        return fn

    return deco


def make_corrector(name: str, *, field: str = "corrector") -> Corrector:
    """The :class:`Corrector` registered as ``name``; one ValueError naming ``field`` and the allowed names otherwise."""
    if not isinstance(name, str) or name not in CORRECTORS:
        raise ValueError(f"{field} must be one of {list(CORRECTORS.names())}, got {name!r}"
                         f"{did_you_mean(name, CORRECTORS)}")
    return CORRECTORS[name]


def check_corrector(name: str, process: ForwardProcess, *, field: str = "corrector") -> Corrector:
    """:func:`make_corrector` of ``name``, checked against ``process`` (ValueError if it needs another kind)."""
    entry = make_corrector(name, field=field)
    entry.check(process)
    return entry


def network_calls(corrector: str, num_steps: int) -> int:
    """Network evaluations of ``corrector`` over ``num_steps`` reverse steps (N; Heun: 2N − 1)."""
    return int(make_corrector(corrector).network_calls(int(num_steps)))


def _finish(x_prev, x0_hat, t_prev):
    """The last step (t_prev == 0) returns x̂0 exactly, per example."""
    return jnp.where(bcast(t_prev == 0, x0_hat), x0_hat, x_prev.astype(x0_hat.dtype))


def _noise(key, x):
    # Full global shape from one key: the values do not depend on how jit partitions the batch.
    return jax.random.normal(key, x.shape, x.dtype)


@register_corrector("ddpm", requires=GaussianProcess)
def ddpm(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Ancestral step: x_{t_prev} = c1 x̂0 + c2 x_t + √var z (see :func:`posterior_coefficients`)."""
    del eps_hat, eta, aux
    c1, c2, var = posterior_coefficients(process.schedule, t, t_prev)
    cast = lambda v: bcast(v, x_t).astype(x_t.dtype)  # noqa: E731
    x_prev = cast(c1) * x0_hat + cast(c2) * x_t + cast(jnp.sqrt(var)) * _noise(key, x_t)
    return _finish(x_prev, x0_hat, t_prev)


@register_corrector("ddim", requires=GaussianProcess)
def ddim(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """x_{t_prev} = √ᾱ' x̂0 + √(1 − ᾱ' − σ²) ε̂ + σ z (σ from :func:`ddim_sigma`; η > 1 clamps the root at 0)."""
    del x_t, aux
    s = process.schedule
    _, _, var = posterior_coefficients(s, t, t_prev)
    eta = jnp.asarray(eta, jnp.float32)
    sigma2 = jnp.square(eta) * var
    dir_coef = jnp.sqrt(jnp.maximum(jnp.square(s.sqrt_one_minus_alphas_cumprod[t_prev]) - sigma2, 0.0))
    cast = lambda v: bcast(v, x0_hat).astype(x0_hat.dtype)  # noqa: E731
    x_prev = cast(s.sqrt_alphas_cumprod[t_prev]) * x0_hat + cast(dir_coef) * eps_hat
    # η is traced: the noise term is always formed, and is exactly 0 for η = 0.
    x_prev = x_prev + cast(jnp.sqrt(sigma2)) * _noise(key, x0_hat)
    return _finish(x_prev, x0_hat, t_prev)


@register_corrector("cold_naive")
def cold_naive(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Bansal et al. Algorithm 1: x_{t_prev} = F_{t_prev}(x̂0) + σ_{t_prev} z (z only for noisy processes)."""
    del x_t, eps_hat, t, eta
    x_prev = process.mean(x0_hat, t_prev, aux)
    if not process.noise_free:
        x_prev = x_prev + bcast(process.std(t_prev), x_prev).astype(x_prev.dtype) * _noise(key, x_prev)
    return _finish(x_prev, x0_hat, t_prev)


@register_corrector("cold_improved")
def cold_improved(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Bansal et al. Algorithm 2: x_{t_prev} = x_t − F_t(x̂0) + F_{t_prev}(x̂0) (keeps x_t's residual and noise)."""
    del eps_hat, key, eta
    x_prev = x_t - process.mean(x0_hat, t, aux) + process.mean(x0_hat, t_prev, aux)
    return _finish(x_prev, x0_hat, t_prev)


# --------------------------------------------------------------------------------------------------
# Blurring diffusion (jaxdiff.blurring): the same two steps, per DCT frequency
# --------------------------------------------------------------------------------------------------


def _blurring_noise(key, x):
    """σ-free noise in the DCT basis: dct2 of the pixel-space z (same law, and with d ≡ 1 the same numbers as ddpm)."""
    from jaxdiff.dct import dct2  # noqa: PLC0415

    return dct2(_noise(key, x))


@register_corrector("blurring_ddpm", requires=BlurringProcess)
def blurring_ddpm(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Ancestral step per frequency: u_s = c0 û0 + ct u_t + √var z_u (:meth:`BlurringProcess.posterior_coefficients`)."""
    from jaxdiff.dct import dct2, idct2  # noqa: PLC0415

    del eps_hat, eta, aux
    c0, ct, var = (v.astype(x_t.dtype) for v in process.posterior_coefficients(t, t_prev))
    u = c0 * dct2(x0_hat) + ct * dct2(x_t) + jnp.sqrt(var) * _blurring_noise(key, x_t)
    return _finish(idct2(u), x0_hat, t_prev)


@register_corrector("blurring_ddim", requires=BlurringProcess)
def blurring_ddim(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """u_s = α_s d_s û0 + √(σ_s² − η² var) ε̂_u + η √var z_u per frequency (η = 0: deterministic; var as blurring_ddpm)."""
    from jaxdiff.dct import dct2, idct2  # noqa: PLC0415

    del x_t, aux
    _, _, var = process.posterior_coefficients(t, t_prev)
    sigma2 = jnp.square(jnp.asarray(eta, jnp.float32)) * var
    sig2_s = bcast(jnp.square(process.std(t_prev)), var)
    dir_coef = jnp.sqrt(jnp.maximum(sig2_s - sigma2, 0.0))
    cast = lambda v: v.astype(x0_hat.dtype)  # noqa: E731
    u = cast(process.scale(t_prev)) * dct2(x0_hat) + cast(dir_coef) * dct2(eps_hat)
    u = u + cast(jnp.sqrt(sigma2)) * _blurring_noise(key, x0_hat)
    return _finish(idct2(u), x0_hat, t_prev)


# the ODE solvers (dpmpp_2m, euler, heun) register themselves into CORRECTORS
from jaxdiff.sampling import fast as _fast  # noqa: E402,F401
