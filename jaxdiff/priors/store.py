"""The generation prior of a trained run: chosen by its degradation, fitted once, stored next to its checkpoints.

    prior = load_or_fit_prior(config, workdir, process=process)   # <workdir>/prior.npz, fitted on first use
    x_T = prior.sample(key, 64)                                   # (64, H, W, C)
    aux = generation_aux(process, x_T, key)                       # what the corrector needs to know about x_T

What to fit comes only from the process: N(0, I) for Gaussian diffusion, else the degradation's
``generation`` (:class:`jaxdiff.degradations.GenerationPrior`: the kind, what it is fitted on, its end
state and the aux of a draw). A degradation without one is restoration only. The file is ``np.savez`` of
:meth:`jaxdiff.priors.Prior.to_arrays` (no pickle), written atomically.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import jax
import numpy as np

from jaxdiff.degradations import GenerationPrior
from jaxdiff.forward import ForwardProcess, GaussianProcess
from jaxdiff.priors.base import PRIORS, Prior, fit_prior

__all__ = [
    "PRIOR_FILE",
    "MAX_FIT_IMAGES",
    "generation_prior",
    "prior_kind_for",
    "can_generate",
    "fit_params_for",
    "fit_prior_for_run",
    "fit_and_store_prior",
    "store_prior",
    "load_prior",
    "load_or_fit_prior",
    "generation_aux",
    "restoration_aux",
]

log = logging.getLogger(__name__)

PRIOR_FILE = "prior.npz"
#: the fit sees at most this many training images (a seeded random subset of larger sets)
MAX_FIT_IMAGES = 10_000
#: images per call of a degradation's end_state while fitting
_END_STATE_CHUNK = 1024

_GAUSSIAN = GenerationPrior(kind="gaussian", fit_on="none")


def generation_prior(process: ForwardProcess) -> GenerationPrior:
    """How ``process`` generates: N(0, I) for Gaussian diffusion, else its degradation's ``generation``.

    Raises one ValueError when the degradation has none (its end state depends on the image).
    """
    if isinstance(process, GaussianProcess):
        return _GAUSSIAN
    deg = getattr(process, "degradation", None)
    gen = None if deg is None else deg.generation
    if gen is None:
        what = f"diffusion.degradation={deg.name!r}" if deg is not None else type(process).__name__
        raise ValueError(f"{what} has no generation prior (its end state x_T depends on the image): "
                         f"use --mode=restore to restore degraded images instead")
    PRIORS.get_or_raise(gen.kind, field=f"the generation prior of degradation {deg.name!r}")
    return gen


def prior_kind_for(process: ForwardProcess) -> str:
    """The prior kind ``process`` generates from (raises the ValueError of :func:`generation_prior`)."""
    return generation_prior(process).kind


def can_generate(process: ForwardProcess) -> bool:
    """Whether ``process`` has a generation prior (False for restoration-only degradations like inpaint)."""
    try:
        generation_prior(process)
    except ValueError:
        return False
    return True


def fit_params_for(config, process: ForwardProcess) -> dict:
    """The fit parameters: the degradation's ``fit_params``, plus ``noise = sample.prior_noise`` if it asks."""
    gen = generation_prior(process)
    params: dict[str, Any] = dict(gen.fit_params)
    if gen.prior_noise:
        params["noise"] = float(config.sample.prior_noise)
    return params


def _image_shape(config) -> tuple[int, int, int]:
    d = config.data
    return int(d.image_size), int(d.image_size), int(d.channels)


def fit_prior_for_run(config, process: Optional[ForwardProcess] = None, *, max_images: int = MAX_FIT_IMAGES) -> Prior:
    """Fits the prior ``process`` generates from on the run's training data (at most ``max_images``).

    The images are ``data.source`` or ``data.end_source`` as the generation prior's ``fit_on`` says,
    mapped through its ``end_state`` when it has one; ``process`` defaults to the config's own.
    """
    from jaxdiff import data as data_lib

    process = _process(config, process)
    gen = generation_prior(process)
    params = fit_params_for(config, process)
    seed = int(config.seed)
    if gen.fit_on == "none":
        return fit_prior(gen.kind, shape=_image_shape(config), seed=seed, **params)
    field = "data.source" if gen.fit_on == "source" else "data.end_source"
    if not config.data.get(field.split(".", 1)[1], ""):
        raise ValueError(f"{field} is empty: the {gen.kind!r} prior of diffusion.degradation="
                         f"{process.degradation.name!r} is fitted on the images of {field}")
    images = data_lib.load_images(config, split="train", field=field, num=max_images, seed=seed)
    if gen.end_state is not None:
        images = np.concatenate([np.asarray(gen.end_state(images[i:i + _END_STATE_CHUNK]), np.float64)
                                 for i in range(0, images.shape[0], _END_STATE_CHUNK)])
    log.info("fitting the %r prior on %d images of %s", gen.kind, images.shape[0], field)
    return fit_prior(gen.kind, images, seed=seed, **params)


def _process(config, process: Optional[ForwardProcess]) -> ForwardProcess:
    if process is not None:
        return process
    from jaxdiff.experiment import build_process

    return build_process(config)


def _path(workdir: str) -> str:
    return os.path.join(os.path.abspath(os.fspath(workdir)), PRIOR_FILE)


def store_prior(prior: Prior, workdir: str) -> str:
    """Writes ``prior`` to <workdir>/prior.npz atomically (np.savez of its arrays; no pickle)."""
    from jaxdiff.files import atomic_write

    arrays = prior.to_arrays()
    return atomic_write(_path(workdir), lambda f: np.savez(f, **arrays))


def load_prior(workdir: str) -> Optional[Prior]:
    """The prior stored in <workdir>/prior.npz (a stored kind "colour" loads as "color"), or None."""
    path = _path(workdir)
    if not os.path.exists(path):
        return None
    return Prior.load(path)


def fit_and_store_prior(config, workdir: str, *, process: Optional[ForwardProcess] = None) -> Optional[Prior]:
    """Fits the run's prior and stores it in <workdir>/prior.npz; None when it has no generation prior."""
    process = _process(config, process)
    if not can_generate(process):
        return None
    prior = fit_prior_for_run(config, process)
    store_prior(prior, workdir)
    return prior


def load_or_fit_prior(config, workdir: str, *, process: Optional[ForwardProcess] = None,
                      refit: bool = False) -> Prior:
    """The stored prior when it matches the process (kind and image shape), else a fresh fit, stored.

    Raises the ValueError of :func:`generation_prior` when the process has no generation prior.
    """
    process = _process(config, process)
    kind = prior_kind_for(process)
    shape = _image_shape(config)
    if not refit:
        prior = load_prior(workdir)
        if prior is not None and prior.kind == kind and prior.shape == shape:
            return prior
        if prior is not None:
            log.warning("stored prior (%s, %s) does not match the run (%s, %s): refitting",
                        prior.kind, prior.shape, kind, shape)
    prior = fit_prior_for_run(config, process)
    store_prior(prior, workdir)
    log.info("stored the fitted %r prior in %s", kind, _path(workdir))
    return prior


def generation_aux(process: ForwardProcess, x_T, key: jax.Array) -> Any:
    """The aux a reverse run from the prior draw ``x_T`` (B, H, W, C) needs (None for most processes).

    The generation prior's ``aux(x_T, key)`` when it has one, else ``process.sample_aux(key, x_T)``.
    """
    if isinstance(process, GaussianProcess):
        return None
    deg = getattr(process, "degradation", None)
    gen = None if deg is None else deg.generation
    if gen is not None and gen.aux is not None:
        return gen.aux(x_T, key)
    return process.sample_aux(key, x_T)


def restoration_aux(process: ForwardProcess, x0, key: jax.Array, end_images=None) -> Any:
    """The aux for degrading held-out images ``x0``: the degradation's ``restoration_aux(key, x0, end_images)``
    (e.g. images of ``data.end_source``) when it has one, else ``process.sample_aux(key, x0)``."""
    deg = getattr(process, "degradation", None)
    if deg is not None and deg.restoration_aux is not None:
        return deg.restoration_aux(key, x0, end_images)
    return process.sample_aux(key, x0)
