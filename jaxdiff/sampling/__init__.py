"""Reverse-time sampling: timestep sequences, correctors and the jitted predictor–corrector loop.

One reverse step from x_t to x_{t_prev} (t > t_prev, both in {0, …, T}):

    x̂0, ε̂      = parameterization.predict(process, prediction, denoiser(params, x_t, t), x_t, t)
    x_{t_prev}  = corrector(process, x_t, x̂0, ε̂, t, t_prev, key)

over [t_N = T > … > t_0 = 0] (:mod:`~jaxdiff.sampling.steps`), correctors by config name
(:mod:`~jaxdiff.sampling.correctors`), the loop as one ``lax.scan`` (:mod:`~jaxdiff.sampling.loop`).
Restoration and interpolation build on it (``jaxdiff.sampling.restoration``, ``.interpolation``).
"""
from jaxdiff.sampling.steps import *  # noqa: F403
from jaxdiff.sampling.steps import __all__ as _steps_all
from jaxdiff.sampling.correctors import *  # noqa: F403
from jaxdiff.sampling.correctors import __all__ as _correctors_all
from jaxdiff.sampling.loop import *  # noqa: F403
from jaxdiff.sampling.loop import __all__ as _loop_all

__all__ = [*_steps_all, *_correctors_all, *_loop_all]
