"""The generation prior of a trained run: fitted once on its training data, stored next to its checkpoints.

    prior = load_or_fit_prior(config, workdir)      # <workdir>/prior.npz, fitted on first use
    x_T = prior.sample(key, 64)                     # (64, H, W, C)
    aux = generation_aux(process, x_T, key)         # what the corrector needs to know about x_T

The file is ``np.savez`` of :meth:`jaxdiff.priors.Prior.to_arrays` (no pickle), written atomically, so
a sampler and a finishing training run can both call :func:`fit_and_store_prior` safely. The prior kind
comes from :func:`jaxdiff.priors.default_prior_kind` (gaussian for hot diffusion; blur → flat images of
fitted per-channel means, superres → a mixture on the lowest resolution, fade → a solid colour,
interpolation → images of ``data.end_source``); a stored prior of another kind or image shape than the
config asks for is refitted.

Generation from a cold prior also needs the per-example ``aux`` of the degradation that the end state
implies: the colour a fade ends at, the image an interpolation ends at. :data:`GENERATION_AUX` maps a
degradation name to ``fn(process, x_T, key) -> aux``; other degradations use ``process.sample_aux``.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.forward import ColdProcess, ForwardProcess, GaussianProcess

__all__ = [
    "PRIOR_FILE",
    "MAX_FIT_IMAGES",
    "prior_kind_for",
    "fit_prior_for_config",
    "fit_and_store_prior",
    "store_prior",
    "load_prior",
    "load_or_fit_prior",
    "GENERATION_AUX",
    "register_generation_aux",
    "generation_aux",
    "can_generate",
]

log = logging.getLogger(__name__)

PRIOR_FILE = "prior.npz"
#: the fit sees at most this many training images (a seeded random subset of larger sets)
MAX_FIT_IMAGES = 10_000


def prior_kind_for(config) -> str:
    """The prior kind for ``config`` (:func:`jaxdiff.priors.default_prior_kind`), except that an
    interpolation without ``data.end_source`` moves toward Gaussian noise and so starts from N(0, I)."""
    from jaxdiff.priors import default_prior_kind

    kind = default_prior_kind(config)
    if kind == "dataset" and not config.data.get("end_source", ""):
        return "gaussian"
    return kind


def can_generate(config) -> bool:
    """Whether ``config`` has a generation prior (False for restoration-only degradations like inpaint)."""
    try:
        prior_kind_for(config)
    except ValueError:
        return False
    return True


def _load_images(source: str, config, *, split: str, field: str, max_images: int, seed: int) -> np.ndarray:
    """Float32 images in [−1, 1] of ``source`` (at most ``max_images``, a seeded subset when there are more)."""
    from jaxdiff import data as data_lib

    d = config.data
    src = data_lib.load_source(source, split=split, image_size=int(d.image_size), channels=int(d.channels),
                               download=bool(d.download), field=field)
    n = len(src)
    idx = np.arange(n) if n <= max_images else np.sort(np.random.default_rng(seed).choice(n, max_images, replace=False))
    return data_lib.normalize(src.get(idx))


def fit_prior_for_config(config, *, process: Optional[ForwardProcess] = None, max_images: int = MAX_FIT_IMAGES):
    """Fits the config's prior on its training split (``data.end_source`` for interpolation priors).

    Parameters come from :func:`jaxdiff.priors.default_prior_params` (blur: ``sample.prior_noise``; superres:
    T). The superres mixture is fitted on the degradation's own end state F_T(x0) sampled at every 2^T-th
    pixel, so the prior matches what the network saw at t = T (bicubic or area alike).
    """
    from jaxdiff import priors

    kind = prior_kind_for(config)
    d = config.data
    shape = (int(d.image_size), int(d.image_size), int(d.channels))
    seed = int(config.seed)
    entry = priors.PRIORS[kind]
    params: dict[str, Any] = priors.default_prior_params(config, kind) if kind != "gaussian" else {}
    if not entry.needs_data:
        return priors.fit_prior(kind, shape=shape, seed=seed, **params)
    if kind == "dataset":
        images = _load_images(d.end_source, config, split="train", field="data.end_source",
                              max_images=max_images, seed=seed)
    else:
        images = _load_images(d.source, config, split="train", field="data.source", max_images=max_images, seed=seed)
    if kind == "superres":
        if process is None:
            from jaxdiff.experiment import build_process

            process = build_process(config)
        T = int(process.T)
        f = 2**T
        apply = jax.jit(lambda x: process.mean(x, jnp.full((x.shape[0],), T, jnp.int32)))
        params["downsample"] = lambda x: np.asarray(apply(jnp.asarray(x, jnp.float32)), np.float64)[:, ::f, ::f]
    log.info("fitting the %r prior on %d images", kind, images.shape[0])
    return priors.fit_prior(kind, images, seed=seed, **params)


def _path(workdir: str) -> str:
    return os.path.join(os.path.abspath(os.fspath(workdir)), PRIOR_FILE)


def store_prior(prior, workdir: str) -> str:
    """Writes ``prior`` to <workdir>/prior.npz atomically (np.savez of its arrays; no pickle)."""
    from jaxdiff.files import atomic_write

    arrays = prior.to_arrays()
    return atomic_write(_path(workdir), lambda f: np.savez(f, **arrays))


def load_prior(workdir: str):
    """The prior stored in <workdir>/prior.npz, or None when there is none."""
    from jaxdiff.priors import Prior

    path = _path(workdir)
    if not os.path.exists(path):
        return None
    return Prior.load(path)


def fit_and_store_prior(config, workdir: str, *, process: Optional[ForwardProcess] = None):
    """Fits the config's prior (:func:`fit_prior_for_config`) and stores it in <workdir>/prior.npz.

    Meant to be called once at the end of training (on process 0), so a sampler never refits. Returns the
    prior, or None when the config has no generation prior (restoration-only degradations).
    """
    if not can_generate(config):
        return None
    prior = fit_prior_for_config(config, process=process)
    store_prior(prior, workdir)
    return prior


def load_or_fit_prior(config, workdir: str, *, process: Optional[ForwardProcess] = None, refit: bool = False):
    """The stored prior when it matches the config (kind and image shape), else a fresh fit, stored.

    Raises the ValueError of :func:`jaxdiff.priors.default_prior_kind` when the config has no generation
    prior (e.g. inpainting: restore degraded images instead).
    """
    kind = prior_kind_for(config)
    d = config.data
    shape = (int(d.image_size), int(d.image_size), int(d.channels))
    if not refit:
        prior = load_prior(workdir)
        if prior is not None and prior.kind == kind and prior.shape == shape:
            return prior
        if prior is not None:
            log.warning("stored prior (%s, %s) does not match the config (%s, %s): refitting",
                        prior.kind, prior.shape, kind, shape)
    prior = fit_prior_for_config(config, process=process)
    store_prior(prior, workdir)
    log.info("stored the fitted %r prior in %s", kind, _path(workdir))
    return prior


# --------------------------------------------------------------------------------------------
# aux of a generation run
# --------------------------------------------------------------------------------------------

#: degradation name → fn(process, x_T, key) -> aux consistent with the end state x_T
GENERATION_AUX: dict[str, Callable[..., Any]] = {}


def register_generation_aux(name: str):
    """Decorator: ``fn(process, x_T, key) -> aux`` for generation runs of degradation ``name``."""

    def deco(fn):
        GENERATION_AUX[name] = fn
        return fn

    return deco


@register_generation_aux("fade")
def _fade_aux(process, x_T, key):
    # F_T of a fade is the solid colour c: the colour is x_T's per-channel spatial mean (exact without noise).
    colour = jnp.mean(x_T, axis=(1, 2), keepdims=True)
    drawn = process.sample_aux(key, x_T)
    if isinstance(drawn, dict):
        return {**drawn, "color": colour}
    return colour


@register_generation_aux("interpolate")
def _interpolate_aux(process, x_T, key):
    del process, key
    # F_T(x0) ≈ z: the interpolation ends at the image it started from.
    return x_T


def generation_aux(process: ForwardProcess, x_T: jnp.ndarray, key: jax.Array) -> Any:
    """The aux a reverse run from the prior draw ``x_T`` (B, H, W, C) needs (None for most processes)."""
    if isinstance(process, GaussianProcess):
        return None
    if isinstance(process, ColdProcess):
        fn = GENERATION_AUX.get(process.degradation.name)
        if fn is not None:
            return fn(process, x_T, key)
    return process.sample_aux(key, x_T)
