"""The generation prior of a trained run: what the process generates from, fitted once, stored next to its checkpoints.

    store_prior_with_checkpoint(config, workdir, step)            # training: <workdir>/prior.npz at each checkpoint
    prior = load_or_fit_prior(config, workdir, process=process)   # the stored one (fitted here for older runs)
    x_T = prior.sample(key, 64)                                   # (64, H, W, C)

What to fit comes only from the process (:meth:`jaxdiff.processes.Process.generation`): N(0, prior_std² I) where
the noise dominates at T, else its degradation's :class:`jaxdiff.degradations.GenerationPrior` (the kind, what it
is fitted on, its end state). A process without one is restoration only. The file is ``np.savez`` of
:meth:`jaxdiff.priors.Prior.to_arrays` plus ``meta_*`` entries (no pickle), written atomically.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import numpy as np

from jaxdiff.processes import Process
from jaxdiff.priors.base import Prior, fit_prior

__all__ = [
    "PRIOR_FILE",
    "MAX_FIT_IMAGES",
    "fit_params_for",
    "fit_prior_for_run",
    "fit_and_store_prior",
    "store_prior",
    "load_prior",
    "load_or_fit_prior",
    "store_prior_with_checkpoint",
    "stored_prior_meta",
]

log = logging.getLogger(__name__)

PRIOR_FILE = "prior.npz"
#: the fit sees at most this many training images (a seeded random subset of larger sets)
MAX_FIT_IMAGES = 10_000
#: images per call of a degradation's end_state while fitting
_END_STATE_CHUNK = 1024

#: keys of prior.npz that describe the file (what it was fitted for), not the prior; stripped on load
_META = "meta_"


def fit_params_for(config, process: Process) -> dict:
    """The fit parameters: the generation prior's ``fit_params``, plus ``noise = sample.prior_noise`` if it asks."""
    gen = process.generation()
    params: dict[str, Any] = dict(gen.fit_params)
    if gen.prior_noise:
        params["noise"] = float(config.sample.prior_noise)
    return params


def _image_shape(config) -> tuple[int, int, int]:
    d = config.data
    return int(d.image_size), int(d.image_size), int(d.channels)


def fit_prior_for_run(config, process: Optional[Process] = None, *, max_images: int = MAX_FIT_IMAGES) -> Prior:
    """Fits the prior ``process`` generates from on the run's training data (at most ``max_images``).

    The images are ``data.source`` or ``data.end_source`` as the generation prior's ``fit_on`` says,
    mapped through its ``end_state`` when it has one; ``process`` defaults to the config's own.
    """
    from jaxdiff import data as data_lib

    process = _process(config, process)
    gen = process.generation()
    params = fit_params_for(config, process)
    seed = int(config.seed)
    if gen.fit_on == "none":
        return fit_prior(gen.kind, shape=_image_shape(config), seed=seed, **params)
    field = "data.source" if gen.fit_on == "source" else "data.end_source"
    if not config.data.get(field.split(".", 1)[1], ""):
        raise ValueError(f"{field} is empty: the {gen.kind!r} prior of {process.describe()} is fitted on the "
                         f"images of {field}")
    images = data_lib.load_images(config, split="train", field=field, num=max_images, seed=seed)
    if gen.end_state is not None:
        images = np.concatenate([np.asarray(gen.end_state(images[i:i + _END_STATE_CHUNK]), np.float64)
                                 for i in range(0, images.shape[0], _END_STATE_CHUNK)])
    log.info("fitting the %r prior on %d images of %s", gen.kind, images.shape[0], field)
    return fit_prior(gen.kind, images, seed=seed, **params)


def _process(config, process: Optional[Process]) -> Process:
    if process is not None:
        return process
    from jaxdiff.experiment import build_process

    return build_process(config)


def _path(workdir: str) -> str:
    return os.path.join(os.path.abspath(os.fspath(workdir)), PRIOR_FILE)


def _fitted_for(config, process: Process) -> str:
    """What a stored prior depends on (not the step): the data, the process and the fit's prior noise."""
    from jaxdiff.experiment import describe_process

    d = config.data
    return (f"{describe_process(process)} | source={d.source} end_source={d.get('end_source', '')} "
            f"size={d.image_size}x{d.channels} seed={config.seed} prior_noise={float(config.sample.prior_noise):g}")


def store_prior(prior: Prior, workdir: str, *, meta: Optional[dict] = None) -> str:
    """Writes ``prior`` to <workdir>/prior.npz atomically (np.savez of its arrays; no pickle).

    ``meta`` (str or int values, e.g. the checkpoint step) is stored beside the arrays as ``meta_<name>``.
    """
    from jaxdiff.files import atomic_write

    arrays = prior.to_arrays()
    arrays.update({_META + k: np.asarray(v) for k, v in (meta or {}).items()})
    return atomic_write(_path(workdir), lambda f: np.savez(f, **arrays))


def _read(workdir: str) -> tuple[Optional[Prior], dict]:
    path = _path(workdir)
    if not os.path.exists(path):
        return None, {}
    with np.load(path, allow_pickle=False) as f:
        arrays = {k: f[k] for k in f.files}
    meta = {k[len(_META):]: arrays.pop(k).item() for k in list(arrays) if k.startswith(_META)}
    return Prior.from_arrays(arrays), meta


def load_prior(workdir: str) -> Optional[Prior]:
    """The prior stored in <workdir>/prior.npz (a stored kind "colour" loads as "color"), or None."""
    return _read(workdir)[0]


def stored_prior_meta(workdir: str) -> dict:
    """The metadata stored with <workdir>/prior.npz ({} when none): ``step`` (the checkpoint it was stored
    with), ``fitted_for`` (the data, process and prior noise it was fitted for)."""
    return _read(workdir)[1]


def store_prior_with_checkpoint(config, workdir: str, step: int, *, process: Optional[Process] = None,
                                prior: Optional[Prior] = None) -> Optional[Prior]:
    """Stores the run's prior as <workdir>/prior.npz with the checkpoint ``step`` it belongs to.

    The prior depends on the data and the degradation, not on the step: ``prior`` (one fitted earlier in the
    run) or a stored one fitted for the same run is reused, else it is fitted. None for restoration-only runs.
    """
    process = _process(config, process)
    if not process.can_generate:
        return None
    fitted_for = _fitted_for(config, process)
    if prior is None:
        stored, meta = _read(workdir)
        if stored is not None and meta.get("fitted_for") == fitted_for:
            prior = stored
        else:
            prior = fit_prior_for_run(config, process)
    store_prior(prior, workdir, meta={"step": int(step), "fitted_for": fitted_for})
    return prior


def fit_and_store_prior(config, workdir: str, *, process: Optional[Process] = None) -> Optional[Prior]:
    """Fits the run's prior and stores it in <workdir>/prior.npz; None when it has no generation prior."""
    process = _process(config, process)
    if not process.can_generate:
        return None
    prior = fit_prior_for_run(config, process)
    store_prior(prior, workdir, meta={"fitted_for": _fitted_for(config, process)})
    return prior


def load_or_fit_prior(config, workdir: str, *, process: Optional[Process] = None,
                      refit: bool = False) -> Prior:
    """The stored prior when it matches the process (kind, image shape, what it was fitted for), else a
    fresh fit, stored (training stores it at every checkpoint; this fits only for older runs or ``refit``).

    Raises the ValueError of :meth:`Process.generation` when the process has no generation prior.
    """
    process = _process(config, process)
    kind = process.generation().kind
    shape = _image_shape(config)
    fitted_for = _fitted_for(config, process)
    meta: dict = {}
    if not refit:
        prior, meta = _read(workdir)
        stale = meta.get("fitted_for", fitted_for) != fitted_for
        if prior is not None and prior.kind == kind and prior.shape == shape and not stale:
            return prior
        if prior is not None:
            log.warning("stored prior (%s, %s%s) does not match the run (%s, %s): refitting", prior.kind,
                        prior.shape, f", fitted for {meta['fitted_for']}" if stale else "", kind, shape)
    prior = fit_prior_for_run(config, process)
    store_prior(prior, workdir, meta={**({"step": meta["step"]} if "step" in meta else {}),
                                      "fitted_for": fitted_for})
    log.info("stored the fitted %r prior in %s", kind, _path(workdir))
    return prior
