"""Cold-diffusion degradations F_t, each a pure function registered by name.

A degradation is built once from its config by a registered *builder*::

    @register_degradation("decolor")
    def decolor(*, T, **_):
        def apply(x0, t, aux=None):          # x0 (B, H, W, C) in [-1, 1], t (B,) int32
            ...
            return F_t(x0)
        return apply                          # or a full Degradation(...)

Conventions every degradation follows:

* NHWC, values in [−1, 1], any channel count; jit- and vmap-safe; t may differ per example.
* F_0 is the identity and severity never decreases with t; F_T is the most degraded state.
* Cost O(1) in t: tables (composed kernels, mask products, …) are precomputed at build time
  and gathered by t, never re-applied t times.
* ``aux`` is the per-example randomness that stays fixed across t (a mask centre, a colour, a target
  image); ``sample_aux(key, x0)`` draws it. Deterministic degradations ignore it.
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Callable, Optional

import jax.numpy as jnp

from jaxdiff.forward import bcast

__all__ = ["Degradation", "DEGRADATIONS", "register_degradation", "make_degradation", "gray"]


@dataclasses.dataclass(frozen=True, eq=False)
class Degradation:
    """A built degradation: ``apply(x0, t, aux) -> F_t(x0)`` plus optional extras.

    sample_aux: ``(key, x0) -> aux`` per-example randomness (leading dim B), fixed across t.
    step:       ``(x_prev, t, aux) -> x_t``, the single forward step x_{t−1} → x_t, where it exists.
    prior:      ``(key, shape, aux) -> x_T`` when F_T has a data-free end state (a colour, noise).
    """

    name: str
    T: int
    apply: Callable[..., jnp.ndarray]
    sample_aux: Optional[Callable[..., Any]] = None
    step: Optional[Callable[..., jnp.ndarray]] = None
    prior: Optional[Callable[..., jnp.ndarray]] = None

    def __call__(self, x0, t, aux=None):
        return self.apply(x0, t, aux)


DEGRADATIONS: dict[str, Callable[..., Any]] = {}


def register_degradation(name: str):
    """Decorator: registers a builder ``fn(*, T, image_size, channels, **params)`` under ``name``.

    The builder returns a :class:`Degradation` or just the ``apply`` function. It may declare only
    the keyword arguments it uses and end with ``**_`` to ignore the others.
    """

    def deco(builder):
        DEGRADATIONS[name] = builder
        return builder

    return deco


def make_degradation(name: str, *, T: int, image_size: int = 32, channels: int = 3, **params) -> Degradation:
    """Builds the degradation registered as ``name`` (the names used in configs)."""
    if name not in DEGRADATIONS:
        raise ValueError(f"unknown degradation {name!r}; allowed: {sorted(DEGRADATIONS)}")
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"degradation {name!r}: T must be an integer >= 1, got {T!r}")
    builder = DEGRADATIONS[name]
    sig = inspect.signature(builder)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [k for k in params if k not in sig.parameters and not accepts_any]
    if unknown:
        allowed = sorted(k for k in sig.parameters if k not in ("T", "image_size", "channels"))
        raise ValueError(f"degradation {name!r}: unknown parameter(s) {unknown}; allowed: {allowed}")
    out = builder(T=T, image_size=image_size, channels=channels, **params)
    if isinstance(out, Degradation):
        return out
    if callable(out):
        return Degradation(name=name, T=T, apply=_accept_missing_aux(out))
    raise TypeError(f"builder of {name!r} returned {type(out).__name__}, not a Degradation or a function")


def _accept_missing_aux(fn):
    """Lets a user's ``apply(x0, t)`` without an aux argument be called as ``apply(x0, t, aux)``."""
    try:
        n = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return fn
    if n >= 3:
        return fn
    return lambda x0, t, aux=None: fn(x0, t)


def gray(x: jnp.ndarray) -> jnp.ndarray:
    """Per-pixel channel mean, kept at C channels: (B, H, W, C) → (B, H, W, C)."""
    return jnp.broadcast_to(jnp.mean(x, axis=-1, keepdims=True), x.shape)


@register_degradation("decolor")
def decolor(*, T: int, **_) -> Degradation:
    """F_t(x) = (1 − t/T)·x + (t/T)·gray(x), gray = per-pixel channel mean."""

    def apply(x0, t, aux=None):
        s = bcast(jnp.asarray(t, jnp.float32) / T, x0).astype(x0.dtype)
        return (1 - s) * x0 + s * gray(x0)

    def step(x_prev, t, aux=None):
        # x_t − g = (T − t)/(T − t + 1) · (x_{t−1} − g), and gray(x_{t−1}) = gray(x0) = g.
        g = gray(x_prev)
        tf = bcast(jnp.asarray(t, jnp.float32), x_prev)
        r = (T - tf) / (T - tf + 1)
        return g + r.astype(x_prev.dtype) * (x_prev - g)

    return Degradation(name="decolor", T=T, apply=apply, step=step)
