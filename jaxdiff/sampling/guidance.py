"""Class labels and classifier-free guidance (Ho & Salimans 2022) as denoisers of the one sampling loop.

    guided output  õ = (1 + w) o(x, t, c) − w o(x, t, ∅)      (o: the network output, ε, x0 or v alike)

:func:`guided_denoiser` evaluates both branches in ONE forward pass of 2B rows (x and t repeated, labels
concatenated with the null label) and takes ``params = (variables_params, labels (B,), w ())``: labels and w
are traced with the parameters, so new labels or a new w reuse the compiled sampler.
:func:`conditional_denoiser` (w = 0, B rows) takes ``params = (variables_params, labels (B,))``. Build each
once per model (jit hashes denoisers by identity); both fit ``sampling.sample`` and ``restoration.restore``.
"""
from __future__ import annotations

import functools
from typing import Any, Callable, Optional

import jax.numpy as jnp
import numpy as np

__all__ = ["guide", "guided_denoiser", "conditional_denoiser", "guided_params", "check_labels_for",
           "null_label"]


def guide(out_cond, out_uncond, w):
    """õ = (1 + w) · out_cond − w · out_uncond (any shapes that broadcast; w a scalar)."""
    w = jnp.asarray(w, out_cond.dtype)
    return (1 + w) * out_cond - w * out_uncond


def null_label(model) -> int:
    """The null label of a conditional model: its last embedding row, index ``model.num_classes``."""
    return int(model.num_classes)


@functools.lru_cache(maxsize=None)
def guided_denoiser(model) -> Callable:
    """``denoiser((params, labels, w), x (B, …), t (B,)) -> õ (B, …)``: one forward pass of 2B rows."""
    null = null_label(model)

    def denoiser(p, x, t):
        params, labels, w = p
        B = x.shape[0]
        both = jnp.concatenate([jnp.asarray(labels, jnp.int32), jnp.full((B,), null, jnp.int32)])
        out = model.apply({"params": params}, jnp.concatenate([x, x]), jnp.concatenate([t, t]), both, train=False)
        return guide(out[:B], out[B:], w)

    return denoiser


@functools.lru_cache(maxsize=None)
def conditional_denoiser(model) -> Callable:
    """``denoiser((params, labels), x, t) -> o(x, t, labels)``: the label without guidance (w = 0)."""

    def denoiser(p, x, t):
        params, labels = p
        return model.apply({"params": params}, x, t, jnp.asarray(labels, jnp.int32), train=False)

    return denoiser


def guided_params(model, params, labels, guidance: float = 0.0) -> tuple[Callable, Any]:
    """(denoiser, params argument) for ``labels`` (B,) at guidance ``w``: conditional when w = 0, else guided."""
    w = float(guidance)
    if w == 0.0:
        return conditional_denoiser(model), (params, labels)
    return guided_denoiser(model), (params, labels, jnp.float32(w))


def check_labels_for(model, labels, *, flag: str = "labels", guidance: Optional[float] = None) -> np.ndarray:
    """int32 labels checked against ``model.num_classes`` (host side, before any compile); ValueError naming
    ``flag`` when the model is unconditional, a label is not an integer in [0, num_classes), or w < 0."""
    n = int(getattr(model, "num_classes", 0))
    if n == 0:
        raise ValueError(f"{flag}: this model is unconditional (model.num_classes=0); it takes no label")
    a = np.asarray(labels)
    if a.size == 0 or not np.issubdtype(a.dtype, np.integer) or a.ndim != 1:
        raise ValueError(f"{flag}={labels!r}: expected a 1-D array of integer class labels")
    if a.min() < 0 or a.max() >= n:
        raise ValueError(f"{flag}: labels {int(a.min())} … {int(a.max())}; allowed: 0 … {n - 1} "
                         f"(model.num_classes={n})")
    if guidance is not None and not (np.isfinite(guidance) and guidance >= 0):
        raise ValueError(f"guidance={guidance!r}: must be a finite number >= 0")
    return a.astype(np.int32)
