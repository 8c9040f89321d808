"""jaxdiff: hot and cold diffusion in JAX through one forward process x_t = α_t·D_t(x0) + σ_t·ε.

Submodules load on first use (``jaxdiff.sampling``, ``jaxdiff.degradations`` …), so ``import jaxdiff`` stays
cheap; the most used names are re-exported lazily:

    from jaxdiff import Process, make_process, make_schedule, make_degradation, sample, timesteps
"""
from __future__ import annotations

import importlib

__version__ = "0.1.0"

_SUBMODULES = {
    "processes", "degradations", "parameterization", "sampling", "losses", "train", "data",
    "visualize", "priors", "models", "config", "evaluation", "inference", "cpu", "registry", "experiment", "cli",
    "files", "ranges", "checks", "progress",
}

_EXPORTS = {
    "Schedule": "processes.schedules",
    "make_schedule": "processes.schedules",
    "register_schedule": "processes.schedules",
    "Process": "processes",
    "make_process": "processes",
    "GaussianProcess": "processes",
    "ColdProcess": "processes",
    "BlurringProcess": "processes",
    "Degradation": "degradations",
    "make_degradation": "degradations",
    "register_degradation": "degradations",
    "predict": "parameterization",
    "sample": "sampling",
    "timesteps": "sampling",
    "register_corrector": "sampling",
    "CORRECTORS": "sampling",
    "make_unet": "models",
    "train_and_evaluate": "train.loop",
    "build_process": "experiment",
    "build_model": "experiment",
    "load_run": "experiment",
    "Registry": "registry",
}

__all__ = sorted(_EXPORTS) + ["__version__"]


def __getattr__(name: str):
    if name in _EXPORTS:
        value = getattr(importlib.import_module(f"jaxdiff.{_EXPORTS[name]}"), name)
        globals()[name] = value
        return value
    if name in _SUBMODULES:
        return importlib.import_module(f"jaxdiff.{name}")
    raise AttributeError(f"module 'jaxdiff' has no attribute {name!r}")


def __dir__():
    return sorted(set(globals()) | set(_EXPORTS) | _SUBMODULES)
