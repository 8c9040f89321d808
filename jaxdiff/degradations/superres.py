"""Resolution loss: F_t(x) = up_t(down_t(x)), the image at N/2^t shown at full size N, F_0 = identity.

down_t is the 2^t × 2^t block mean (``area``) or antialiased Keys cubic (``bicubic``), up_t nearest; both
are separable, stored as per-axis N×N matrices P_t = U_t D_t. Each step halves the image, so 2^T must
divide N. F_T is constant on 2^T blocks: the ``superres`` prior is a mixture on those lowest-resolution pixels.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.degradations.base import (
    Degradation, GenerationPrior, check_choice, check_image, check_size, f32, keep_t0, register_degradation,
    separable, t_vec
)

__all__ = ["SUPERRES_METHODS", "superres"]


SUPERRES_METHODS = ("area", "bicubic")


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel, a = −0.5 (the kernel of jax.image.resize 'cubic'), of |x|."""
    x = np.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _cubic_down_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) antialiased Keys-cubic down-sampling, the same weights as
    ``jax.image.resize(…, 'cubic', antialias=True)`` (the kernel stretched by n_in/n_out, each row
    renormalised to sum 1), computed in float64."""
    inv = n_in / n_out
    center = (np.arange(n_out, dtype=np.float64) + 0.5) * inv - 0.5
    w = _keys_cubic((center[:, None] - np.arange(n_in, dtype=np.float64)[None, :]) / max(inv, 1.0))
    return w / w.sum(axis=1, keepdims=True)


@register_degradation("superres")
def superres(*, T: int, image_size: int = 32, channels: int = 3, method: str = "area") -> Degradation:
    """Resolution loss: F_t(x) = up_t(down_t(x)), the image at N/2^t shown at full size N; F_0 = identity.

    down_t: ``area`` = mean over 2^t × 2^t blocks, or ``bicubic`` = Keys cubic with antialiasing
    (``jax.image.resize`` 'cubic', straight from N to N/2^t); up_t = nearest (each low-res pixel
    repeated 2^t × 2^t). Both are separable linear maps, stored as per-axis N×N matrices P_t = U_t D_t.
    Requires N divisible by 2^T (so T ≤ log2 N).

    ``step(x_prev, t)`` exists for ``area`` only: averaging 2^t blocks of an image that is constant on
    2^(t−1) blocks is exactly F_t, so step = the area operator of level t. Chained bicubic resizes do
    not compose to the direct one, so ``bicubic`` has no single step.
    """
    n = check_size("superres", image_size, channels)
    check_choice("superres", "method", method, SUPERRES_METHODS)
    if n % (2**T) != 0:
        limit = (n & -n).bit_length() - 1  # the largest k with 2**k | n
        raise ValueError(
            f"degradation 'superres': diffusion.T={T} must be <= {limit} for diffusion.degradation='superres' "
            f"with data.image_size={n}: each step halves the image, so data.image_size must be divisible by 2**T"
        )
    mats = np.empty((T + 1, n, n))
    for t in range(T + 1):
        f = 2**t
        lo = n // f
        up = np.zeros((n, lo))
        up[np.arange(n), np.arange(n) // f] = 1.0
        if method == "area" or t == 0:
            down = np.zeros((lo, n))
            down[np.arange(n) // f, np.arange(n)] = 1.0 / f
        else:
            down = _cubic_down_matrix(n, lo)
        mats[t] = up @ down
    P = f32(mats)

    def apply(x0, t, aux=None):
        check_image(x0, "superres", n)
        t = t_vec(t, x0, "superres")
        return keep_t0(x0, t, separable(P[t], x0))

    step = (lambda x_prev, t, aux=None: apply(x_prev, t, aux)) if method == "area" else None
    end = jax.jit(lambda x: apply(x, jnp.full((x.shape[0],), T, jnp.int32)))

    def end_state(images):
        # F_T(x0), constant on 2^T blocks: the prior's block mean of it is exactly F_T's low-resolution image
        return np.asarray(end(jnp.asarray(images, jnp.float32)), np.float64)

    generation = GenerationPrior(kind="superres", fit_params={"T": T}, end_state=end_state)
    return Degradation(name="superres", T=T, apply=apply, step=step, generation=generation)
