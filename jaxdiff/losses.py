"""Training losses: a per-pixel regression loss and per-t weights for Gaussian processes.

    ℓ_b  = mean_{h,w,c} |o − y| ("l1")  or  mean_{h,w,c} (o − y)² ("l2"),    loss = (1/B) Σ_b w_b ℓ_b

for the network output o and its target y (ε, x0 or v), both (B, H, W, C); w_b = 1 without weights (they are not
renormalized, so a weighting also changes the effective learning rate). Per-t weights are defined on the x0-space
error λ(snr) with snr_t = ᾱ_t/(1 − ᾱ_t), and since ‖ε − ε̂‖² = snr ‖x0 − x̂0‖² and ‖v − v̂‖² = (1 + snr) ‖x0 − x̂0‖²,
they become λ/snr (ε), λ (x0) or λ/(1 + snr) (v):

    none  w = 1 · snr  λ = snr (ε: the DDPM "simple" loss) · min_snr  λ = min(snr, 5) (Hang et al. 2023)
    truncated_snr  λ = max(snr, 1) (Salimans & Ho 2022)

The same factors apply to L1 (exact only for L2). Cold processes take "none" (Cold Diffusion: L1 on x0).
"""
from __future__ import annotations

from typing import Optional

import jax.numpy as jnp

from jaxdiff.forward import ForwardProcess, GaussianProcess

__all__ = [
    "LOSS_KINDS",
    "WEIGHTINGS",
    "MIN_SNR_GAMMA",
    "per_example_loss",
    "diffusion_loss",
    "x0_space_weight",
    "loss_weights",
]

LOSS_KINDS = ("l1", "l2")
WEIGHTINGS = ("none", "snr", "min_snr", "truncated_snr")
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


def x0_space_weight(snr: jnp.ndarray, weighting: str, *, gamma: float = MIN_SNR_GAMMA) -> jnp.ndarray:
    """λ(snr), the weight of the x0-space error ("none" has no x0-space form and is not accepted)."""
    if weighting == "snr":
        return snr
    if weighting == "min_snr":
        return jnp.minimum(snr, gamma)
    if weighting == "truncated_snr":
        return jnp.maximum(snr, 1.0)
    raise ValueError(f"x0-space weighting must be one of {list(WEIGHTINGS[1:])}, got {weighting!r}")


def loss_weights(
    process: ForwardProcess,
    t: jnp.ndarray,
    *,
    weighting: str,
    prediction: str,
    gamma: float = MIN_SNR_GAMMA,
) -> Optional[jnp.ndarray]:
    """Per-example weights w_b (B,) for timesteps t (B,), or None for weighting "none".

    w = λ(snr_t) / c(snr_t) with c = snr (eps), 1 (x0), 1 + snr (v); see the module docstring.
    snr = ∞ at t = 0 (never drawn in training) is mapped to a finite weight of the t = 1 kind by
    clamping log_snr, so a stray t = 0 cannot produce inf/NaN.
    """
    if weighting not in WEIGHTINGS:
        raise ValueError(f"diffusion.loss_weighting must be one of {list(WEIGHTINGS)}, got {weighting!r}")
    if weighting == "none":
        return None
    if not isinstance(process, GaussianProcess):
        raise ValueError(
            f"diffusion.loss_weighting={weighting!r} needs a Gaussian process (it is defined by the SNR); "
            "cold processes take 'none'"
        )
    process.check_prediction(prediction, field="diffusion.prediction")
    log_snr = process.schedule.log_snr[jnp.asarray(t, jnp.int32)]
    # exp(±60) stays finite in float32 (max ≈ 3.4e38 ≈ e^88) and far beyond any γ.
    snr = jnp.exp(jnp.clip(log_snr, -60.0, 60.0))
    lam = x0_space_weight(snr, weighting, gamma=gamma)
    if prediction == "eps":
        return lam / snr
    if prediction == "v":
        return lam / (1.0 + snr)
    return lam
