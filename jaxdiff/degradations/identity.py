"""The identity degradation: D_t(x) = x for every t, what hot (Gaussian) diffusion and flow matching degrade by.

With it the one process is x_t = α_t x0 + σ_t ε: DDPM/DDIM (a variance-preserving schedule), flow matching
(α = 1 − τ, σ = τ) or EDM's variance exploding process (α = 1), whatever the noise schedule says.
"""
from __future__ import annotations

from jaxdiff.degradations.base import Degradation, check_size, register_degradation

__all__ = ["identity"]


@register_degradation("identity")
def identity(*, T: int, image_size: int = 32, channels: int = 3) -> Degradation:
    """D_t(x) = x (t ∈ 0 … T; ``step`` is the identity too). No generation prior of its own: the noise's."""
    check_size("identity", image_size, channels)

    def apply(x0, t, aux=None):
        return x0

    def step(x_prev, t, aux=None):
        return x_prev

    return Degradation(name="identity", T=T, apply=apply, step=step, identity=True)
