"""Which t training draws: registered by the name of ``diffusion.t_sampling`` (params in ``t_sampling_params``).

Time stays discrete (t ∈ {1, …, T}, as diffusers' flow-matching scheduler also trains on 1000 discrete steps):
every table of the process (α_t, σ_t, D_t, the DCT multipliers) is exact at those t, and every sampler and stored
run already speaks in them. A density over continuous time becomes probabilities of the T bins:

    uniform       p(t) = 1/T                                      (DDPM; drawn by ``randint``)
    logit_normal  u = t/T, logit(u) ~ N(mean, std²)                (Esser et al. 2024: mean 0, std 1)
    log_normal    ln σ̃_t ~ N(mean, std²), σ̃ = σ_t/α_t              (Karras et al. 2022: mean −1.2, std 1.2;
                  the bins' edges are the midpoints of ln σ̃ between neighbouring t)

``t_logits(process, name, **params)`` gives float32 log-probabilities (T,) of t = 1 … T, or None for uniform.
"""
from __future__ import annotations

import math
from typing import Callable, Optional

import numpy as np

from jaxdiff.registry import Registry

__all__ = ["T_SAMPLINGS", "register_t_sampling", "t_logits"]

#: name → ``fn(process, **params) -> probabilities (T,) float64 | None`` (None: uniform)
T_SAMPLINGS: Registry[Callable[..., Optional[np.ndarray]]] = Registry("t sampling")


def register_t_sampling(name: str):
    """Decorator: registers ``fn(process, **params) -> p (T,) or None`` under ``name`` (a duplicate raises)."""
    return T_SAMPLINGS.register(name)


def _phi(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.vectorize(math.erf)(np.asarray(z, np.float64) / math.sqrt(2.0)))


def _std(name, std):
    if isinstance(std, bool) or not isinstance(std, (int, float)) or not (math.isfinite(std) and std > 0):
        raise ValueError(f"t sampling {name!r}: std must be a finite number > 0, got {std!r}")
    return float(std)


def _mean(name, mean):
    if isinstance(mean, bool) or not isinstance(mean, (int, float)) or not math.isfinite(mean):
        raise ValueError(f"t sampling {name!r}: mean must be a finite number, got {mean!r}")
    return float(mean)


@register_t_sampling("uniform")
def uniform(process) -> None:
    """t ~ U{1, …, T}."""
    del process
    return None


@register_t_sampling("logit_normal")
def logit_normal(process, *, mean: float = 0.0, std: float = 1.0) -> np.ndarray:
    """logit(t/T) ~ N(mean, std²), integrated over each bin ((t − 1)/T, t/T]."""
    m, s = _mean("logit_normal", mean), _std("logit_normal", std)
    T = int(process.T)
    u = np.arange(T + 1, dtype=np.float64) / T
    with np.errstate(divide="ignore"):
        edges = np.log(u) - np.log1p(-u)  # −inf … +inf
    return np.diff(_phi((edges - m) / s))


@register_t_sampling("log_normal")
def log_normal(process, *, mean: float = -1.2, std: float = 1.2) -> np.ndarray:
    """ln(σ_t/α_t) ~ N(mean, std²), integrated over the bins between neighbouring levels' midpoints."""
    m, s = _mean("log_normal", mean), _std("log_normal", std)
    a = np.asarray(process.schedule.alpha64, np.float64)[1:]
    sig = np.asarray(process.schedule.sigma64, np.float64)[1:]
    with np.errstate(divide="ignore"):
        level = np.log(sig) - np.log(a)  # +inf where α = 0
    if np.any(~(np.diff(level) > 0)) or not np.all(np.isfinite(level[:-1])):
        raise ValueError("t sampling 'log_normal' needs σ_t/α_t that grows with t (a noise schedule, not a constant σ)")
    mid = 0.5 * (level[:-1] + level[1:])
    edges = np.concatenate([[-np.inf], mid, [np.inf]])
    return np.diff(_phi((edges - m) / s))


def t_logits(process, name: str, **params) -> Optional[np.ndarray]:
    """float32 log-probabilities of t = 1 … T (T,), or None for uniform; ValueError for bad names/params."""
    p = T_SAMPLINGS.get_or_raise(name, field="diffusion.t_sampling")(process, **params)
    if p is None:
        return None
    p = np.asarray(p, np.float64)
    if p.shape != (int(process.T),) or not np.all(np.isfinite(p)) or np.any(p < 0) or p.sum() <= 0:
        raise ValueError(f"t sampling {name!r} gave no valid distribution over t = 1 … {process.T}")
    with np.errstate(divide="ignore"):
        return np.log(p / p.sum()).astype(np.float32)
