"""What the network predicts, and how that turns into x̂0 and ε̂ (the *predictor* of a reverse step), for any process.

With x_t = a·x0 + σ·ε (a = α_t for D = identity; a = α_t d_t per DCT frequency for a diagonal D), every prediction
is a target y = A·x0 + B·ε, registered by its config name in :data:`PREDICTIONS`:

    eps       ε                                x̂0 = (α_t D_t)⁻¹ (x_t − σ ε̂)
    x0        x0                               (any process)
    v         α ε − σ x0 (Salimans & Ho 2022)  x̂0 = (α² D + σ²)⁻¹ (α x_t − σ v̂)   (= α x_t − σ v̂ when VP, D = I)
    velocity  u = dx_t/dτ = a' x0 + σ' ε       (τ = t/T; flow matching: u = ε − x0)
    edm       F with x̂0 = c_skip x̃ + c_out F, x̃ = x_t/α, σ̃ = σ/α (Karras et al. 2022, σ_d = 0.5):
              c_skip = σ_d²/(σ̃² + σ_d²), c_out = σ̃ σ_d/√(σ̃² + σ_d²); the network sees c_in x̃ (the UNet's
              ``input_scale``, :func:`edm_input_scale`); c_noise is the network's t (one-to-one with σ̃ here)

Each declares where it applies (``requirement``): ε, v and velocity need σ_t > 0 and an invertible α_t·D_t
(identity or DCT-diagonal D; ε also α_t > 0), edm D = identity and α_t > 0. After clipping x̂0, ε̂ is re-derived
from the clipped x̂0 (ε̂ = (x_t − α_t D_t(x̂0))/σ_t, 0 where σ_t = 0) except for ε-prediction, whose ε̂ is the
network's (DDIM's convention). ``error_factor`` c_p(t): ‖y − ŷ‖² = c_p ‖x0 − x̂0‖² (D ignored), for loss weights.
All functions take arrays (B, H, W, C) and t int (B,) or scalars.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Callable, Optional

import jax.numpy as jnp

from jaxdiff.processes import Process, as_t, bcast
from jaxdiff.registry import Registry

__all__ = [
    "PREDICTIONS",
    "SIGMA_DATA",
    "Prediction",
    "register_prediction",
    "x0_from_eps",
    "eps_from_x0",
    "v_from_x0_eps",
    "x0_from_v",
    "eps_from_v",
    "edm_coefficients",
    "edm_input_scale",
    "target",
    "predict",
]

#: EDM's σ_data: the standard deviation of images in [−1, 1] it assumes
SIGMA_DATA = 0.5


def x0_from_eps(x_t, eps, a, s):
    return (x_t - bcast(s, x_t) * eps) / bcast(a, x_t)


def eps_from_x0(x_t, x0, a, s):
    return (x_t - bcast(a, x_t) * x0) / bcast(s, x_t)


def v_from_x0_eps(x0, eps, a, s):
    return bcast(a, x0) * eps - bcast(s, x0) * x0


def x0_from_v(x_t, v, a, s):
    return bcast(a, x_t) * x_t - bcast(s, x_t) * v


def eps_from_v(x_t, v, a, s):
    return bcast(s, x_t) * x_t + bcast(a, x_t) * v


@dataclasses.dataclass(frozen=True)
class Prediction:
    """A registered prediction: ``target(process, x0, eps, t, aux)``, ``to_x0(process, y, x_t, t, aux)``,
    ``requirement(process) -> None | why not``, ``error_factor(process, t) -> c_p (B,)``; ``keeps_eps``: ε̂ is the
    network output itself (not re-derived from a clipped x̂0)."""

    name: str
    target: Callable[..., Any]
    to_x0: Callable[..., Any]
    requirement: Callable[[Process], Optional[str]]
    error_factor: Callable[..., Any]
    keeps_eps: bool = False


#: name → :class:`Prediction` (the names of ``diffusion.prediction``); a second registration raises
PREDICTIONS: Registry[Prediction] = Registry("prediction")


def register_prediction(name: str, *, target, to_x0, requirement, error_factor, keeps_eps: bool = False):
    """Registers a prediction under ``name`` (ValueError if taken); see :class:`Prediction`."""
    PREDICTIONS.register(name, Prediction(name, target, to_x0, requirement, error_factor, keeps_eps))


def _snr(process: Process, t):
    """α_t²/σ_t² (float32, (B,)) from the schedule's log-SNR, clamped so that t = 0 stays finite."""
    log_snr = process.schedule.log_snr[jnp.asarray(t, jnp.int32)]
    # exp(±60) stays finite in float32 (max ≈ 3.4e38 ≈ e^88) and far beyond any γ.
    return jnp.exp(jnp.clip(log_snr, -60.0, 60.0))


def _needs_noise_and_inverse(process: Process, *, alpha_positive: bool) -> Optional[str]:
    if not process.noisy:
        return "needs σ_t > 0 for every t >= 1 (this process is not noisy throughout)"
    if not process.diagonal:
        return (f"needs α_t·D_t invertible on the image; D_t = {process.degradation.name!r} is not "
                "(only the identity and DCT-diagonal degradations are)")
    if alpha_positive and not process.invertible:
        return "needs α_t·D_t invertible for every t >= 1 (α_t > 0 and, for a DCT-diagonal D, d_t > 0)"
    return None


# --- eps ---------------------------------------------------------------------------------------------------------
register_prediction(
    "eps", target=lambda p, x0, eps, t, aux: eps, to_x0=lambda p, y, x_t, t, aux: p.x0_from_eps(x_t, y, t),
    requirement=lambda p: _needs_noise_and_inverse(p, alpha_positive=True), error_factor=_snr, keeps_eps=True)


# --- x0 ----------------------------------------------------------------------------------------------------------
register_prediction("x0", target=lambda p, x0, eps, t, aux: x0, to_x0=lambda p, y, x_t, t, aux: y,
                    requirement=lambda p: None, error_factor=lambda p, t: jnp.ones_like(_snr(p, t)))


# --- v -----------------------------------------------------------------------------------------------------------
def _vp_identity(p: Process) -> bool:
    return p.identity and bool(p.schedule.variance_preserving)


def _v_target(p, x0, eps, t, aux):
    return v_from_x0_eps(x0, eps, p.signal(t), p.std(t))


def _v_to_x0(p, y, x_t, t, aux):
    if _vp_identity(p):
        return x0_from_v(x_t, y, p.signal(t), p.std(t))
    a, s = p.signal(t), p.std(t)
    return p.solve_linear(x_t, y, t, -s, a)


def _v_factor(p, t):
    snr = _snr(p, t)
    if _vp_identity(p):
        return 1.0 + snr
    a, s = p.signal(t), p.std(t)
    s = jnp.where(s > 0, s, 1.0)
    return jnp.square(jnp.square(a) + jnp.square(s)) / jnp.square(s)


register_prediction("v", target=_v_target, to_x0=_v_to_x0,
                    requirement=lambda p: _needs_noise_and_inverse(p, alpha_positive=False), error_factor=_v_factor)


# --- velocity ----------------------------------------------------------------------------------------------------
def _velocity_target(p, x0, eps, t, aux):
    t = as_t(t, x0)
    a_prime, s_prime = p.velocity_coefficients(t)
    u0 = p.to_basis(x0)
    return p.from_basis(p.in_basis(a_prime, u0) * u0) + bcast(s_prime, eps).astype(eps.dtype) * eps


def _velocity_to_x0(p, y, x_t, t, aux):
    a_prime, s_prime = p.velocity_coefficients(as_t(t, x_t))
    return p.solve_linear(x_t, y, t, a_prime, s_prime)


def _velocity_factor(p, t):
    a_prime, s_prime = p.velocity_coefficients(jnp.asarray(t, jnp.int32))
    a_prime = a_prime.reshape(a_prime.shape[0], -1)[:, 0] if a_prime.ndim > 1 else a_prime  # DC (d = 1 there)
    a, s = p.signal(t), p.std(t)
    s = jnp.where(s > 0, s, 1.0)
    return jnp.square(s * a_prime - s_prime * a) / jnp.square(s)


def _velocity_requirement(p):
    why = _needs_noise_and_inverse(p, alpha_positive=False)
    if why is None and not p.velocity_invertible:
        why = "needs σ_t a'_t − σ'_t a_t ≠ 0 (x_t and u together must determine x0; a constant σ has σ' = 0)"
    return why


register_prediction("velocity", target=_velocity_target, to_x0=_velocity_to_x0, requirement=_velocity_requirement,
                    error_factor=_velocity_factor)


# --- edm ---------------------------------------------------------------------------------------------------------
def edm_coefficients(process: Process, t, sigma_data: float = SIGMA_DATA):
    """(c_skip, c_out, c_in) of EDM's preconditioning in the VE-equivalent σ̃ = σ_t/α_t, each (B,) float32:
    x̂0 = c_skip x̃ + c_out F(c_in x̃), x̃ = x_t/α_t."""
    a, s = process.signal(t), process.std(t)
    st = s / a
    d2 = sigma_data**2
    root = jnp.sqrt(jnp.square(st) + d2)
    return d2 / (jnp.square(st) + d2), st * sigma_data / root, 1.0 / root


def edm_input_scale(process: Process, sigma_data: float = SIGMA_DATA):
    """The network input's scale per t, c_in/α_t = 1/√(σ_t² + α_t² σ_d²) (NumPy float64 (T + 1,))."""
    import numpy as np

    a, s = np.asarray(process.schedule.alpha64), np.asarray(process.schedule.sigma64)
    return 1.0 / np.sqrt(s**2 + (a * sigma_data) ** 2)


def _edm_target(p, x0, eps, t, aux):
    c_skip, c_out, _ = edm_coefficients(p, t)
    x_tilde = p.perturb(x0, t, eps) / bcast(p.signal(t), x0)
    return (x0 - bcast(c_skip, x0) * x_tilde) / bcast(c_out, x0)


def _edm_to_x0(p, y, x_t, t, aux):
    c_skip, c_out, _ = edm_coefficients(p, t)
    return bcast(c_skip, x_t) * (x_t / bcast(p.signal(t), x_t)) + bcast(c_out, x_t) * y


def _edm_requirement(p):
    if not p.identity:
        return "needs D = identity (EDM's preconditioning is for x_t = α_t x0 + σ_t ε)"
    if not p.noisy or not p.invertible:
        return "needs σ_t > 0 and α_t > 0 for every t >= 1"
    return None


def _edm_factor(p, t):
    _, c_out, _ = edm_coefficients(p, t)
    return 1.0 / jnp.square(c_out)


register_prediction("edm", target=_edm_target, to_x0=_edm_to_x0, requirement=_edm_requirement,
                    error_factor=_edm_factor)


# --- the API -----------------------------------------------------------------------------------------------------
def target(process: Process, prediction: str, x0, eps, t, aux: Any = None):
    """The regression target of the network for a training example (ε, x0, v, u or F)."""
    process.check_prediction(prediction, field="prediction")
    return PREDICTIONS[prediction].target(process, x0, eps, as_t(t, x0), aux)


def predict(process: Process, prediction: str, output, x_t, t, *, clip: Optional[float] = None, aux: Any = None):
    """Network output → (x̂0, ε̂). ``clip`` bounds x̂0 to [−clip, clip].

    ε̂ is re-derived from the (clipped) x̂0 so that the pair stays consistent with x_t, except for ε-prediction,
    which keeps the network's ε̂ (as DDIM does); 0 where σ_t = 0.
    """
    process.check_prediction(prediction, field="prediction")
    t = jnp.broadcast_to(jnp.asarray(t, jnp.int32), (x_t.shape[0],))
    pred = PREDICTIONS[prediction]
    x0 = pred.to_x0(process, output, x_t, t, aux)
    if clip is not None:
        x0 = jnp.clip(x0, -clip, clip)
    if pred.keeps_eps:
        return x0, output
    if process.noise_free:
        return x0, jnp.zeros_like(x_t)
    sig = bcast(process.std(t), x_t)
    # σ = 0 only at t = 0 (or everywhere, for a noise-free process), where ε is irrelevant; avoid a 0/0.
    resid = x_t - process.mean(x0, t, aux)
    return x0, jnp.where(sig > 0, resid / jnp.where(sig > 0, sig, 1.0), 0.0)
