"""Interpolation toward another image (animorphosis): x_t = √ᾱ_t x0 + √(1 − ᾱ_t) z, cosine ᾱ.

z (the aux) is an image of ``data.end_source``; without one it is Gaussian noise (the Gaussian-diffusion
special case). F_T ≈ z, so generation starts from images of the end data set (the ``dataset`` prior).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.degradations.base import (
    Degradation, GenerationPrior, check_image, check_size, keep_t0, register_degradation, t_vec
)
from jaxdiff.degradations.base import bcast
from jaxdiff.processes.schedules import cosine

__all__ = ["interpolate"]


@register_degradation("interpolate", needs_end_source=True)
def interpolate(*, T: int, image_size: int = 32, channels: int = 3) -> Degradation:
    """Interpolation toward another image (animorphosis): x_t = √ᾱ_t x0 + √(1 − ᾱ_t) z.

    ᾱ is ``jaxdiff.processes.schedules.cosine(T).alphas_cumprod`` (its float64-derived √ᾱ, √(1−ᾱ)); ᾱ_T is
    tiny but not 0 (β is clipped at 0.999). z = aux, an image batch of the same shape as x0 (an image
    of another data set); ``sample_aux`` draws Gaussian noise (the Gaussian-diffusion special case).
    ``prior(key, shape, aux)`` returns aux if given, else N(0, I) noise. No single forward step
    (x_t is not a function of x_{t−1} alone without z).

    Generation draws x_T from images of the end data set and runs with aux = x_T (F_T ≈ z). Restoring
    held-out images uses ``end_images`` (repeated to the batch) as z, or noise without them.
    """
    check_size("interpolate", image_size, channels)
    sched = cosine(T)
    a, s = sched.sqrt_alphas_cumprod, sched.sqrt_one_minus_alphas_cumprod

    def apply(x0, t, aux=None):
        check_image(x0, "interpolate")
        t = t_vec(t, x0, "interpolate")
        if aux is None:
            raise ValueError(
                "degradation 'interpolate': aux (the end image z, shape of x0) is required; "
                "pass a batch of the other data set or draw noise with sample_aux(key, x0)"
            )
        z = jnp.asarray(aux)
        if z.shape != x0.shape:
            raise ValueError(f"degradation 'interpolate': aux must have the shape of x0 {x0.shape}, got {z.shape}")
        y = bcast(a[t], x0).astype(x0.dtype) * x0 + bcast(s[t], x0).astype(x0.dtype) * z.astype(x0.dtype)
        return keep_t0(x0, t, y)

    def sample_aux(key, x0):
        return jax.random.normal(key, x0.shape, x0.dtype)

    def prior(key, shape, aux=None):
        if aux is not None:
            z = jnp.asarray(aux)
            if z.shape != tuple(shape):
                raise ValueError(f"degradation 'interpolate': aux must have shape {tuple(shape)}, got {z.shape}")
            return z
        return jax.random.normal(key, tuple(shape), jnp.float32)

    def restoration_aux(key, x0, end_images=None):
        if end_images is None:
            return sample_aux(key, x0)
        end = np.asarray(end_images, np.float32)
        if end.ndim != 4 or end.shape[0] < 1 or end.shape[1:] != tuple(x0.shape[1:]):
            raise ValueError(f"degradation 'interpolate': end_images must be (N, {', '.join(map(str, x0.shape[1:]))}) "
                             f"with N >= 1, got {end.shape}")
        return jnp.asarray(end[np.arange(x0.shape[0]) % end.shape[0]], x0.dtype)

    # F_T ≈ z: a draw of the end data set is both the start x_T and the image the run ends at
    generation = GenerationPrior(kind="dataset", fit_on="end_source", aux=lambda x_T, key: x_T)
    return Degradation(name="interpolate", T=T, apply=apply, sample_aux=sample_aux, prior=prior,
                       generation=generation, restoration_aux=restoration_aux)
