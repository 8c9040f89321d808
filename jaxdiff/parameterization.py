"""What the network predicts, and how it turns into x̂0 and ε̂ (the *predictor* of a reverse step).

With x_t = a·x0 + s·ε (a = √ᾱ_t, s = √(1 − ᾱ_t)) and v = a·ε − s·x0 (Salimans & Ho 2022):

    ε-prediction:  x̂0 = (x_t − s·ε̂)/a
    x0-prediction: ε̂  = (x_t − a·x̂0)/s
    v-prediction:  x̂0 = a·x_t − s·v̂,   ε̂ = s·x_t + a·v̂      (a² + s² = 1)

Cold processes predict x0 only; there ε̂ = (x_t − F_t(x̂0))/σ_t where σ_t > 0, else 0. Other processes that
allow ε-prediction (blurring diffusion) turn ε̂ into x̂0 with their own ``x0_from_eps``.
All functions take per-example (B,) coefficients or scalars and arrays (B, H, W, C).
"""
from __future__ import annotations

from typing import Any, Optional

import jax.numpy as jnp

from jaxdiff.forward import ForwardProcess, GaussianProcess, bcast

__all__ = [
    "PREDICTIONS",
    "x0_from_eps",
    "eps_from_x0",
    "v_from_x0_eps",
    "x0_from_v",
    "eps_from_v",
    "target",
    "predict",
]

PREDICTIONS = ("eps", "x0", "v")


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


def _check(process: ForwardProcess, prediction: str) -> None:
    if prediction not in PREDICTIONS:
        raise ValueError(f"unknown prediction {prediction!r}; allowed: {list(PREDICTIONS)}")
    process.check_prediction(prediction, field="prediction")


def target(process: ForwardProcess, prediction: str, x0, eps, t):
    """The regression target of the network for a training example (ε, x0 or v)."""
    _check(process, prediction)
    if prediction == "x0":
        return x0
    if prediction == "eps":
        return eps
    return v_from_x0_eps(x0, eps, process.signal(t), process.std(t))


def predict(
    process: ForwardProcess,
    prediction: str,
    output,
    x_t,
    t,
    *,
    clip: Optional[float] = None,
    aux: Any = None,
):
    """Network output → (x̂0, ε̂). ``clip`` bounds x̂0 to [−clip, clip].

    After clipping, ε̂ is re-derived from the clipped x̂0 for x0- and v-prediction so that the pair stays
    consistent with x_t; for ε-prediction ε̂ is the network's own (as DDIM does).
    """
    _check(process, prediction)
    t = jnp.broadcast_to(jnp.asarray(t, jnp.int32), (x_t.shape[0],))
    if isinstance(process, GaussianProcess):
        a, s = process.signal(t), process.std(t)
        if prediction == "eps":
            eps = output
            x0 = x0_from_eps(x_t, eps, a, s)
        elif prediction == "x0":
            x0 = output
        else:
            x0 = x0_from_v(x_t, output, a, s)
        if clip is not None:
            x0 = jnp.clip(x0, -clip, clip)
        if prediction != "eps":
            # s = 0 only at t = 0, where ε is irrelevant; avoid a 0/0.
            s_safe = jnp.where(s > 0, s, 1.0)
            eps = jnp.where(bcast(s, x_t) > 0, eps_from_x0(x_t, x0, a, s_safe), 0.0)
        return x0, eps
    if prediction == "eps":  # another process that allows ε-prediction (e.g. jaxdiff.blurring): its own x̂0
        x0 = process.x0_from_eps(x_t, output, t)
        return (x0 if clip is None else jnp.clip(x0, -clip, clip)), output
    x0 = output if clip is None else jnp.clip(output, -clip, clip)
    if process.noise_free:
        return x0, jnp.zeros_like(x_t)
    sig = bcast(process.std(t), x_t)
    resid = x_t - process.mean(x0, t, aux)
    return x0, jnp.where(sig > 0, resid / jnp.where(sig > 0, sig, 1.0), 0.0)
