"""Correctors: the step x_t → x_s (t > s) from the predictor's x̂0 and ε̂, registered by config name.

The one reverse step, for every process x_t = α_t·D_t(x0) + σ_t·ε (registered once as ``ddim``, also named
``cold_improved`` and ``blurring_ddim``):

    x_s = x_t − (α_t D_t(x̂0) + σ_t ε̂) + (α_s D_s(x̂0) + σ'_s ε̂) + c z,    c² = η² var,  σ'_s = √(σ_s² − c²)

The predictor's pair is consistent with x_t wherever σ_t > 0 (x_t = α_t D_t(x̂0) + σ_t ε̂: ε̂ is derived from
x̂0, or x̂0 from the network's ε̂ as DDIM does), so there the step is x_s = α_s D_s(x̂0) + σ'_s ε̂ + c z: DDIM
(Song et al. 2021) when D = identity, and the flow-matching Euler step for α = 1 − τ, σ = τ. Where σ_t = 0 it keeps
the residual: x_s = x_t − α_t D_t(x̂0) + α_s D_s(x̂0), Cold Diffusion's improved step (Bansal et al.'s Algorithm 2,
TACoS). ``var`` is q(x_s | x_t, x0)'s (:meth:`Process.posterior_variance`, per DCT frequency for a diagonal D,
so η adds no noise to a constant-σ cold process); η = 0 is deterministic.

The others declare the processes they apply to (``applies(process) -> None | why not``):

* ``ddpm`` (also ``blurring_ddpm``)  x_s ~ q(x_s | x_t, x̂0) = N(c0 x̂0 + ct x_t, var), D identity or DCT-diagonal
* ``cold_naive``                     x_s = α_s D_s(x̂0) + σ_s z (Bansal et al.'s Algorithm 1), any process
* ``dpmpp_2m``, ``euler``, ``heun``, ``heun_karras``  probability-flow ODE solvers, D = identity (:mod:`~jaxdiff.sampling.fast`)
* ``ddim_2m``                        the one step made second order (DPM-Solver++(2M) per DCT frequency): D identity
                                     or DCT-diagonal, σ_t > 0 (:mod:`~jaxdiff.sampling.fast`)

Every corrector returns x̂0 itself where s = 0. Noise is z = ``jax.random.normal(key, x_t.shape)`` at the full
(global) shape, so a sharded batch gets the same numbers on any device count.
Shapes: images (B, H, W, C); t, s (t_prev) int32 (B,).
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp

from jaxdiff.processes import Process, bcast
from jaxdiff.registry import Registry, did_you_mean

__all__ = [
    "Corrector",
    "CORRECTORS",
    "register_corrector",
    "make_corrector",
    "check_corrector",
    "network_calls",
    "applies_to_any",
    "posterior_coefficients",
    "ddim_sigma",
    "ddpm",
    "ddim",
    "cold_naive",
]

Array = jnp.ndarray


def _one_call_per_step(num_steps: int) -> int:
    return int(num_steps)


def applies_to_any(process: Process) -> Optional[str]:
    """Every process."""
    del process
    return None


@dataclasses.dataclass(frozen=True)
class Corrector:
    """A registered corrector: ``fn(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None)`` and the
    processes it applies to (``applies(process)``: None, or why not). Calling it checks the process, then runs ``fn``.

    A *stateful* corrector has ``init_state(x_T) -> pytree``; its ``fn`` also takes ``state=`` (carried through
    the loop's scan) and ``predict=`` (``predict(x, t) -> (x̂0, ε̂)``: the network plus predictor, for extra
    evaluations) and returns ``(x_prev, new_state)``. ``network_calls(N)``: network evaluations of N steps.
    ``name`` is the name it was registered under first; ``aliases`` the others."""

    name: str
    fn: Callable[..., Array]
    applies: Callable[[Process], Optional[str]] = applies_to_any
    init_state: Optional[Callable[[Array], Any]] = None
    network_calls: Callable[[int], int] = _one_call_per_step
    aliases: tuple[str, ...] = ()

    @property
    def stateful(self) -> bool:
        return self.init_state is not None

    def check(self, process: Process, *, name: Optional[str] = None) -> None:
        """ValueError unless the corrector applies to ``process`` (naming the ones that do)."""
        why = self.applies(process)
        if why is not None:
            fits = [n for n, c in CORRECTORS.items() if c.applies(process) is None]
            raise ValueError(f"corrector {name or self.name!r} {why}; for {process.describe()} use one of {fits}")

    def __call__(self, process, *args, **kwargs) -> Array:
        self.check(process)
        return self.fn(process, *args, **kwargs)


#: name → :class:`Corrector` (aliases map to the same entry); a second registration of a name raises
CORRECTORS: Registry[Corrector] = Registry("corrector")


def register_corrector(name: str, *, applies: Callable[[Process], Optional[str]] = applies_to_any, init_state=None,
                       network_calls=None, aliases: tuple[str, ...] = ()):
    """Decorator: registers ``fn(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None)``.

    ``applies(process)`` says whether it works with a process (None) or why not (a phrase, e.g. "needs D =
    identity"); :func:`jaxdiff.sampling.sample` refuses other processes before tracing. The function must return
    x̂0 where t_prev == 0. ``eta`` is a traced float32 scalar, or the Python float 0.0 when the caller's η is 0
    (:func:`eta_is_zero`: a step may then leave its η-scaled noise term and draw out). ``init_state`` makes it
    stateful (see :class:`Corrector`); ``network_calls(N)`` counts its network evaluations over N steps
    (default N); ``aliases`` are further names of the same entry.
    Returns ``fn`` unchanged; a name already registered raises ValueError.
    """

    def deco(fn):
        entry = Corrector(name, fn, applies, init_state, network_calls or _one_call_per_step, tuple(aliases))
        for n in (name,) + tuple(aliases):
            CORRECTORS.register(n, entry)
        return fn

    return deco


def make_corrector(name: str, *, field: str = "corrector") -> Corrector:
    """The :class:`Corrector` registered as ``name``; one ValueError naming ``field`` and the allowed names otherwise."""
    if not isinstance(name, str) or name not in CORRECTORS:
        raise ValueError(f"{field} must be one of {list(CORRECTORS.names())}, got {name!r}"
                         f"{did_you_mean(name, CORRECTORS)}")
    return CORRECTORS[name]


def check_corrector(name: str, process: Process, *, field: str = "corrector") -> Corrector:
    """:func:`make_corrector` of ``name``, checked against ``process`` (ValueError if it does not apply)."""
    entry = make_corrector(name, field=field)
    entry.check(process, name=name)
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


def eta_is_zero(eta) -> bool:
    """Whether η is the concrete 0 (not a traced value): the loop passes it so for η = 0, and a step that adds
    η-scaled noise then leaves the term, and its Gaussian draw, out of the program (the term is exactly 0)."""
    return isinstance(eta, (int, float)) and eta == 0


def posterior_coefficients(schedule, t, t_prev):
    """(c1, c2, var) of q(x_{t_prev} | x_t, x0) = N(c1 x0 + c2 x_t, var I) for D = identity: ``schedule.posterior``
    (for a variance-preserving one: c1 = β √ᾱ_{t_prev}/(1 − ᾱ_t), c2 = (1 − ᾱ_{t_prev}) √α/(1 − ᾱ_t), var = β (1 −
    ᾱ_{t_prev})/(1 − ᾱ_t) with α = ᾱ_t/ᾱ_{t_prev}, β = 1 − α)."""
    return schedule.posterior(t, t_prev)


def ddim_sigma(schedule, t, t_prev, eta=0.0):
    """σ = η √((1 − ᾱ_{t_prev})/(1 − ᾱ_t)) √(1 − ᾱ_t/ᾱ_{t_prev}), i.e. σ² = η² · (the posterior variance)."""
    _, _, var = schedule.posterior(t, t_prev)
    return jnp.asarray(eta, jnp.float32) * jnp.sqrt(var)


def gaussian_posterior(process: Process) -> Optional[str]:
    """q(x_s | x_t, x0) is Gaussian in closed form: D identity or DCT-diagonal, σ_t > 0 for t ≥ 1."""
    if process.gaussian_posterior:
        return None
    if not process.noisy:
        return "needs σ_t > 0 for every t >= 1"
    return (f"needs q(x_s | x_t, x0) in closed form: D = identity or a DCT-diagonal degradation, not "
            f"{process.degradation.name!r}")


@register_corrector("ddpm", applies=gaussian_posterior, aliases=("blurring_ddpm",))
def ddpm(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Ancestral step x_s = c0 x̂0 + ct x_t + √var z (:meth:`Process.posterior`; per frequency for a diagonal D)."""
    del eps_hat, eta, aux
    c0, ct, var = process.posterior(t, t_prev)
    u_t = process.to_basis(x_t)
    cast = lambda v: process.in_basis(v, u_t)  # noqa: E731
    z = process.to_basis(_noise(key, x_t))
    x_prev = process.from_basis(cast(c0) * process.to_basis(x0_hat) + cast(ct) * u_t + cast(jnp.sqrt(var)) * z)
    return _finish(x_prev, x0_hat, t_prev)


@register_corrector("ddim", aliases=("cold_improved", "blurring_ddim"))
def ddim(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """The one reverse step (module docstring); η > 1 clamps the root at 0.

    Written two ways that agree whenever x_t = α_t D_t(x̂0) + σ_t ε̂: where the noise dominates x_T, as DDIM,
    x_s = α_s D_s(x̂0) + σ'_s ε̂ + c z; where x_T keeps the image, as Algorithm 2 plus the noise terms,
    x_s = x_t − α_t D_t(x̂0) + α_s D_s(x̂0) + (σ'_s − σ_t) ε̂ + c z. They differ only in what a residual the
    predictor leaves does (a clipped ε-prediction): DDIM drops it, Algorithm 2 carries it.
    """
    if process.noise_free:  # σ ≡ 0: Algorithm 2 exactly
        return _finish(_keep_residual(process, x_t, x0_hat, t, t_prev, aux), x0_hat, t_prev)
    var = process.posterior_variance(t, t_prev)
    sigma2 = jnp.square(jnp.asarray(eta, jnp.float32)) * var
    sig2_s = bcast(jnp.square(process.std(t_prev)), var)
    dir_coef = jnp.sqrt(jnp.maximum(sig2_s - sigma2, 0.0))
    e = process.to_basis(eps_hat)
    cast = lambda v: process.in_basis(v, e)  # noqa: E731
    if process.keeps_image:
        # σ'_s = σ_s exactly where η adds nothing, so the noise terms vanish exactly for a constant σ
        sig_s = bcast(process.std(t_prev), var)
        dir_coef = jnp.where(sigma2 > 0, dir_coef, sig_s)
        extra = cast(dir_coef - bcast(process.std(t), var)) * e
        if not eta_is_zero(eta):
            extra = extra + cast(jnp.sqrt(sigma2)) * process.to_basis(_noise(key, x0_hat))
        x_prev = _keep_residual(process, x_t, x0_hat, t, t_prev, aux) + process.from_basis(extra)
    else:  # in the basis where α_s D_s is diagonal (the pixels for an identity or a general D)
        u = process.mean_in_basis(x0_hat, t_prev, aux) + cast(dir_coef) * e
        if not eta_is_zero(eta):  # a traced η forms the term always (exactly 0 where η = 0)
            u = u + cast(jnp.sqrt(sigma2)) * process.to_basis(_noise(key, x0_hat))
        x_prev = process.from_basis(u)
    return _finish(x_prev, x0_hat, t_prev)


def _keep_residual(process, x_t, x0_hat, t, t_prev, aux):
    return x_t - process.mean(x0_hat, t, aux) + process.mean(x0_hat, t_prev, aux)


@register_corrector("cold_naive")
def cold_naive(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
    """Bansal et al. Algorithm 1: x_s = α_s D_s(x̂0) + σ_s z (z only for noisy processes)."""
    del x_t, eps_hat, t, eta
    x_prev = process.mean(x0_hat, t_prev, aux)
    if not process.noise_free:
        x_prev = x_prev + bcast(process.std(t_prev), x_prev).astype(x_prev.dtype) * _noise(key, x_prev)
    return _finish(x_prev, x0_hat, t_prev)


# the ODE solvers (dpmpp_2m, euler, heun, heun_karras, ddim_2m) register themselves into CORRECTORS
from jaxdiff.sampling import fast as _fast  # noqa: E402,F401
