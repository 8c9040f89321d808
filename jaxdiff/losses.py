"""Training losses: a per-pixel regression loss, per-t weights, and Soft Diffusion's loss after degradation.

    ℓ_b  = mean_{h,w,c} |o − y| ("l1")  or  mean_{h,w,c} (o − y)² ("l2"),    loss = (1/B) Σ_b w_b ℓ_b

for the network output o and its target y (:mod:`jaxdiff.parameterization`), both (B, H, W, C); w_b = 1 without
weights (not renormalized, so a weighting also changes the effective learning rate). Weightings are defined on
the x0-space error, λ(t) with snr_t = α_t²/σ_t² (σ̃ = σ_t/α_t, σ_d = 0.5), and divided by the prediction's
``error_factor`` c_p (‖y − ŷ‖² = c_p ‖x0 − x̂0‖²: snr for ε, 1 for x0, 1 + snr for v on a VP schedule …):

    none           w = 1            snr            λ = snr (ε: the DDPM "simple" loss)
    min_snr        λ = min(snr, γ), γ = 5 (Hang et al. 2023)           truncated_snr  λ = max(snr, 1) (Salimans & Ho)
    edm            λ = (σ̃² + σ_d²)/(σ̃ σ_d)² (Karras et al. 2022; with prediction "edm" w = λ c_out² = 1)
    soft           no weight: ℓ is measured after degradation, ℓ(D_t(x̂0), D_t(x0)) (Daras et al.'s soft score
                   matching, ‖D_t(x̂0 − x0)‖² for l2), x̂0 from the prediction

The same factors apply to L1 (exact only for L2). Weightings other than none and soft need σ_t > 0 (a noisy process).
"""
from __future__ import annotations

from typing import Optional

import jax.numpy as jnp

from jaxdiff.processes import Process

__all__ = [
    "LOSS_KINDS",
    "WEIGHTINGS",
    "MIN_SNR_GAMMA",
    "per_example_loss",
    "diffusion_loss",
    "x0_space_weight",
    "loss_weights",
    "check_weighting",
    "soft_loss",
]

LOSS_KINDS = ("l1", "l2")
WEIGHTINGS = ("none", "snr", "min_snr", "truncated_snr", "edm", "soft")
MIN_SNR_GAMMA = 5.0


def per_example_loss(output: jnp.ndarray, target: jnp.ndarray, *, kind: str = "l1") -> jnp.ndarray:
    """ℓ_b: the mean over every non-batch axis of |o − y| (l1) or (o − y)² (l2); shape (B,)."""
    if kind not in LOSS_KINDS:
        raise ValueError(f"loss kind must be one of {list(LOSS_KINDS)}, got {kind!r}")
    if output.shape != target.shape:
        raise ValueError(f"output shape {output.shape} != target shape {target.shape}")
    diff = output.astype(jnp.float32) - target.astype(jnp.float32)
    err = jnp.abs(diff) if kind == "l1" else jnp.square(diff)
    return jnp.mean(err.reshape(err.shape[0], -1), axis=1)


def diffusion_loss(
    output: jnp.ndarray,
    target: jnp.ndarray,
    *,
    kind: str = "l1",
    weights: Optional[jnp.ndarray] = None,
) -> jnp.ndarray:
    """Scalar (1/B) Σ_b w_b ℓ_b for output, target of shape (B, ...) and weights (B,) or None."""
    per = per_example_loss(output, target, kind=kind)
    if weights is None:
        return jnp.mean(per)
    weights = jnp.asarray(weights, jnp.float32)
    if weights.shape != per.shape:
        raise ValueError(f"weights must have shape {per.shape} (one per example), got {weights.shape}")
    return jnp.mean(weights * per)


def x0_space_weight(snr: jnp.ndarray, weighting: str, *, gamma: float = MIN_SNR_GAMMA,
                    sigma_data: float = 0.5) -> jnp.ndarray:
    """λ(snr), the weight of the x0-space error ("none" and "soft" have no x0-space weight and are not accepted)."""
    if weighting == "snr":
        return snr
    if weighting == "min_snr":
        return jnp.minimum(snr, gamma)
    if weighting == "truncated_snr":
        return jnp.maximum(snr, 1.0)
    if weighting == "edm":  # (σ̃² + σ_d²)/(σ̃ σ_d)² with σ̃² = 1/snr
        return (1.0 + sigma_data**2 * snr) / sigma_data**2
    raise ValueError(f"x0-space weighting must be one of {list(WEIGHTINGS[1:5])}, got {weighting!r}")


def soft_loss(process: Process, prediction: str, output, x_t, t, x0, *, kind: str = "l2", aux=None) -> jnp.ndarray:
    """Soft Diffusion's loss after degradation, (1/B) Σ_b ℓ(D_t(x̂0), D_t(x0))_b: x̂0 from the network ``output``
    (unclipped), D_t the process's degradation (no α_t). For l2 and a linear D_t it is ‖D_t(x̂0 − x0)‖² per pixel."""
    from jaxdiff.parameterization import predict

    x0_hat = predict(process, prediction, output, x_t, t, aux=aux)[0]
    return diffusion_loss(process.degrade(x0_hat, t, aux), process.degrade(x0, t, aux), kind=kind)


def check_weighting(process: Process, weighting: str, *, field: str = "diffusion.loss_weighting") -> str:
    """``weighting`` if it applies to ``process``, else one ValueError naming ``field``."""
    if weighting not in WEIGHTINGS:
        raise ValueError(f"{field} must be one of {list(WEIGHTINGS)}, got {weighting!r}")
    if weighting not in ("none", "soft") and not process.noisy:
        raise ValueError(f"{field}={weighting!r} is defined by the SNR α_t²/σ_t² and needs σ_t > 0 for every t >= 1; "
                         f"{process.describe()} is not noisy throughout: use 'none' or 'soft'")
    return weighting


def loss_weights(
    process: Process,
    t: jnp.ndarray,
    *,
    weighting: str,
    prediction: str,
    gamma: float = MIN_SNR_GAMMA,
) -> Optional[jnp.ndarray]:
    """Per-example weights w_b (B,) for timesteps t (B,), or None for "none" and "soft" (see the module docstring).

    w = λ(snr_t) / c_p(t). snr = ∞ at t = 0 (never drawn in training) is clamped to a finite value, so a stray
    t = 0 cannot produce inf/NaN.
    """
    from jaxdiff.parameterization import PREDICTIONS, _snr

    check_weighting(process, weighting)
    if weighting in ("none", "soft"):
        return None
    process.check_prediction(prediction, field="diffusion.prediction")
    t = jnp.asarray(t, jnp.int32)
    snr = _snr(process, t)
    lam = x0_space_weight(snr, weighting, gamma=gamma)
    if prediction == "x0":
        return lam
    return lam / PREDICTIONS[prediction].error_factor(process, t)
