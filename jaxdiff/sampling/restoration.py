"""Restoration: degraded images → the network's one-shot estimate and the sampled reconstructions.

For an image observed at severity s (x_s = F_s(x0) + σ_s ε, s = T by default):

    direct    x̂0 = R(x_s, s)                                  one network call ("Direct" in Bansal et al.)
    sampled   the reverse loop from x_s over [s > … > 0]        one per corrector, e.g.
              cold_naive (their Algorithm 1), cold_improved (Algorithm 2), ddim/ddpm for hot diffusion

All functions are pure; images are NHWC (B, H, W, C) in [−1, 1], t and s are Python ints or int32 (B,).
A batch sharded over a ('data',) mesh stays sharded. With a perfect denoiser (R(x_t, t) = x0) every
output equals x0 exactly: the last reverse step returns x̂0 itself.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff import sampling
from jaxdiff.processes import Process
from jaxdiff.parameterization import predict

__all__ = [
    "COLD_CORRECTORS",
    "default_correctors",
    "check_severity",
    "severity_timesteps",
    "degrade",
    "direct_estimate",
    "restore",
    "check_aux_known",
]

#: the two samplers of Cold Diffusion's tables, in the order their columns are shown
COLD_CORRECTORS = ("cold_naive", "cold_improved")


def default_correctors(process: Process, corrector: str) -> tuple[str, ...]:
    """:meth:`Process.restoration_correctors`: naive and improved (Algorithms 1 and 2) where x_T keeps the image
    (cold processes); else the configured ``corrector``."""
    return process.restoration_correctors(corrector)


def check_severity(severity, T: int, *, name: str = "severity") -> int:
    """``severity`` as an int in [1, T] (None → T); ValueError naming ``name`` otherwise."""
    if severity is None:
        return int(T)
    if isinstance(severity, bool) or not isinstance(severity, (int, np.integer)) or not 1 <= severity <= T:
        raise ValueError(f"{name} must be an integer in [1, T={T}] (the t the degraded images are at), got {severity!r}")
    return int(severity)


def severity_timesteps(severity: int, steps: Optional[int] = None, *, spacing: str = "linear") -> np.ndarray:
    """The reverse sequence [s > … > 0] of ``min(steps, s)`` network calls (every step when steps is None/0)."""
    n = None if not steps else min(int(steps), int(severity))
    return sampling.timesteps(int(severity), n, spacing=spacing)


@functools.partial(jax.jit, static_argnames=("process",))
def _degrade(x0, t, key, aux, *, process):
    return process.sample(x0, t, key, aux)


def degrade(process: Process, x0, t, key: jax.Array, aux: Any = None) -> jax.Array:
    """x_t = F_t(x0; aux) + σ_t ε (jitted; ``process`` is static, so build it once)."""
    t = jnp.broadcast_to(jnp.asarray(t, jnp.int32), (x0.shape[0],))
    return _degrade(x0, t, key, aux, process=process)


@functools.partial(jax.jit, static_argnames=("denoiser", "process", "prediction", "clip"))
def _direct(denoiser, params, x_t, t, aux, *, process, prediction, clip):
    out = denoiser(params, x_t, t)
    return predict(process, prediction, out, x_t, t, clip=clip, aux=aux)[0].astype(x_t.dtype)


def direct_estimate(
    denoiser: Callable, params, x_t, t, *, process: Process, prediction: str = "x0",
    clip: Optional[float] = None, aux: Any = None,
) -> jax.Array:
    """The one-shot estimate x̂0 = R(x_t, t) (for ε/v networks, x̂0 from the predictor), (B, H, W, C)."""
    clip = float(clip) if clip else None
    t = jnp.broadcast_to(jnp.asarray(t, jnp.int32), (x_t.shape[0],))
    return _direct(denoiser, params, x_t, t, aux, process=process, prediction=prediction, clip=clip)


def restore(
    denoiser: Callable,
    params,
    x_t,
    *,
    process: Process,
    key: jax.Array,
    severity: Optional[int] = None,
    correctors: Sequence[str] = COLD_CORRECTORS,
    prediction: str = "x0",
    clip: Optional[float] = None,
    steps: Optional[int] = None,
    eta: float = 0.0,
    aux: Any = None,
) -> dict[str, jax.Array]:
    """Restores x_t (B, H, W, C) observed at ``severity`` s: {"direct": x̂0, <corrector>: sampled x0, …}.

    Each corrector runs the reverse loop over :func:`severity_timesteps` (s, steps) from x_t with the
    key ``fold_in(key, i)`` (i its position in ``correctors``). Arguments are validated before tracing.
    """
    s = check_severity(severity, process.T)
    for name in correctors:
        sampling.check_corrector(name, process)
    if not correctors:
        raise ValueError("correctors must name at least one corrector, e.g. ('cold_naive', 'cold_improved')")
    out = {"direct": direct_estimate(denoiser, params, x_t, s, process=process, prediction=prediction, clip=clip, aux=aux)}
    ts = severity_timesteps(s, steps)
    for i, name in enumerate(correctors):
        out[name] = sampling.sample(
            denoiser, params, jax.random.fold_in(key, i), x_t, process=process, corrector=name, timesteps=ts,
            prediction=prediction, clip=clip, eta=eta, aux=aux,
        ).x0
    return out


def check_aux_known(process: Process, image_shape: Sequence[int], *, what: str = "--input") -> None:
    """ValueError unless ``process`` can restore images whose aux (mask center, end color, end image) is unknown.

    Already-degraded images come without the per-example randomness the forward process drew; degradations
    whose F_t cannot be evaluated without it (fade, interpolate) cannot be inverted step by step.
    """
    if process.identity:
        return
    x = jax.ShapeDtypeStruct((1,) + tuple(int(s) for s in image_shape), jnp.float32)
    try:
        jax.eval_shape(lambda v: process.mean(v, jnp.full((1,), process.T, jnp.int32), None), x)
    except ValueError as e:
        raise ValueError(
            f"{what}: degradation {process.degradation.name!r} needs its per-image randomness (aux) to run the "
            f"reverse process, and it is unknown for images that arrive already degraded ({e})"
        ) from None
    if process.draws_aux:
        import logging

        logging.getLogger(__name__).warning(
            "%s: degradation %r draws per-image randomness (e.g. a mask center) that is unknown for already "
            "degraded images; its default (aux=None) is assumed", what, process.degradation.name,
        )
