"""Reverse-time sampling: timestep sequences, correctors and the jitted predictor–corrector loop.

One reverse step from x_t to x_{t_prev} (t > t_prev, both in {0, …, T}):

    x̂0, ε̂      = parameterization.predict(process, prediction, denoiser(params, x_t, t), x_t, t)
    x_{t_prev}  = corrector(process, x_t, x̂0, ε̂, t, t_prev, key)

over [t_N = T > … > t_0 = 0] (:mod:`~jaxdiff.sampling.timesteps`), correctors by config name
(:mod:`~jaxdiff.sampling.correctors`), the loop as one ``lax.scan`` (:mod:`~jaxdiff.sampling.loop`).
Restoration and interpolation build on it (``jaxdiff.sampling.restoration``, ``.interpolation``).
"""
from jaxdiff.sampling.correctors import (
    CORRECTORS,
    Corrector,
    check_corrector,
    cold_improved,
    cold_naive,
    ddim,
    ddim_sigma,
    ddpm,
    make_corrector,
    posterior_coefficients,
    register_corrector,
)
from jaxdiff.sampling.loop import SampleResult, sample, sample_loop, sample_loop_jit
from jaxdiff.sampling.timesteps import SPACINGS, timesteps, validate_timesteps

__all__ = [
    "SPACINGS",
    "timesteps",
    "validate_timesteps",
    "Corrector",
    "CORRECTORS",
    "register_corrector",
    "make_corrector",
    "check_corrector",
    "posterior_coefficients",
    "ddim_sigma",
    "ddpm",
    "ddim",
    "cold_naive",
    "cold_improved",
    "SampleResult",
    "sample_loop",
    "sample_loop_jit",
    "sample",
]
