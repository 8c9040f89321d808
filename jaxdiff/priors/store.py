"""The generation prior of a trained run: chosen by its degradation, fitted once, stored next to its checkpoints.

    store_prior_with_checkpoint(config, workdir, step)            # training: <workdir>/prior.npz at each checkpoint
    prior = load_or_fit_prior(config, workdir, process=process)   # the stored one (fitted here for older runs)
    x_T = prior.sample(key, 64)                                   # (64, H, W, C)
    aux = generation_aux(process, x_T, key)                       # what the corrector needs to know about x_T

What to fit comes only from the process: N(0, I) for Gaussian diffusion, else the degradation's
``generation`` (:class:`jaxdiff.degradations.GenerationPrior`: the kind, what it is fitted on, its end
state, the aux of a draw, the default corrector). A degradation without one is restoration only. The file is
``np.savez`` of :meth:`jaxdiff.priors.Prior.to_arrays` plus ``meta_*`` entries (no pickle), written atomically.
:func:`prior_match` says whether the prior stands in for F_T(x0) (Fréchet distance against the real floor).
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import jax
import numpy as np

from jaxdiff.degradations import GenerationPrior
from jaxdiff.forward import ForwardProcess
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
    "end_images_for",
    "generation_corrector",
    "store_prior_with_checkpoint",
    "stored_prior_meta",
    "PRIOR_CHECK_IMAGES",
    "PRIOR_MISMATCH_RATIO",
    "prior_match",
]

log = logging.getLogger(__name__)

PRIOR_FILE = "prior.npz"
#: the fit sees at most this many training images (a seeded random subset of larger sets)
MAX_FIT_IMAGES = 10_000
#: images per call of a degradation's end_state while fitting
_END_STATE_CHUNK = 1024

_GAUSSIAN = GenerationPrior(kind="gaussian", fit_on="none")
#: keys of prior.npz that describe the file (what it was fitted for), not the prior; stripped on load
_META = "meta_"
#: the prior check: prior draws against F_T(x0) + σ_T ε of this many training images (a seeded subset)
PRIOR_CHECK_IMAGES = 300
#: generation is refused when the prior-vs-F_T(x0) Fréchet distance exceeds this multiple of the
#: real-vs-real floor at the same count (measurements: docs/EVALUATION.md, "The prior check")
PRIOR_MISMATCH_RATIO = 3.0


def generation_prior(process: ForwardProcess) -> GenerationPrior:
    """How ``process`` generates: N(0, I) for Gaussian diffusion, else its degradation's ``generation``.

    Raises one ValueError when the degradation has none (its end state depends on the image).
    """
    if process.standard_normal_prior:
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


def _fitted_for(config, process: ForwardProcess) -> str:
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


def store_prior_with_checkpoint(config, workdir: str, step: int, *, process: Optional[ForwardProcess] = None,
                                prior: Optional[Prior] = None) -> Optional[Prior]:
    """Stores the run's prior as <workdir>/prior.npz with the checkpoint ``step`` it belongs to.

    The prior depends on the data and the degradation, not on the step: ``prior`` (one fitted earlier in the
    run) or a stored one fitted for the same run is reused, else it is fitted. None for restoration-only runs.
    """
    process = _process(config, process)
    if not can_generate(process):
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


def fit_and_store_prior(config, workdir: str, *, process: Optional[ForwardProcess] = None) -> Optional[Prior]:
    """Fits the run's prior and stores it in <workdir>/prior.npz; None when it has no generation prior."""
    process = _process(config, process)
    if not can_generate(process):
        return None
    prior = fit_prior_for_run(config, process)
    store_prior(prior, workdir, meta={"fitted_for": _fitted_for(config, process)})
    return prior


def load_or_fit_prior(config, workdir: str, *, process: Optional[ForwardProcess] = None,
                      refit: bool = False) -> Prior:
    """The stored prior when it matches the process (kind, image shape, what it was fitted for), else a
    fresh fit, stored (training stores it at every checkpoint; this fits only for older runs or ``refit``).

    Raises the ValueError of :func:`generation_prior` when the process has no generation prior.
    """
    process = _process(config, process)
    kind = prior_kind_for(process)
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


def generation_aux(process: ForwardProcess, x_T, key: jax.Array) -> Any:
    """The aux a reverse run from the prior draw ``x_T`` (B, H, W, C) needs (None for most processes).

    The generation prior's ``aux(x_T, key)`` when it has one, else ``process.sample_aux(key, x_T)``.
    """
    if process.standard_normal_prior:
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


def end_images_for(config, process: ForwardProcess, num: int, *, split: str, seed: int) -> Optional[np.ndarray]:
    """The images of ``data.end_source`` that ``num`` images degraded by ``process`` move toward (a seeded
    subset of ``split``, cycled to ``num``), or None when the degradation needs none or none is configured."""
    deg = getattr(process, "degradation", None)
    if deg is None or not deg.needs_end_source or not config.data.get("end_source", ""):
        return None
    from jaxdiff.data import load_images

    end = load_images(config, split=split, field="data.end_source", num=int(num), seed=seed)
    return end[np.arange(int(num)) % len(end)]


def generation_corrector(process: ForwardProcess, config) -> str:
    """The corrector that generation uses by default: ``sample.corrector`` for Gaussian diffusion (ddpm or
    ddim), else the degradation's ``GenerationPrior.corrector`` (raises the ValueError of
    :func:`generation_prior` for a restoration-only process)."""
    if process.standard_normal_prior:
        return str(config.sample.corrector)
    from jaxdiff.sampling import CORRECTORS

    gen = generation_prior(process)
    CORRECTORS.get_or_raise(gen.corrector, field=f"the generation corrector of degradation "
                                                 f"{process.degradation.name!r}")
    return gen.corrector


def prior_match(config, process: ForwardProcess, prior: Prior, *, num: int = PRIOR_CHECK_IMAGES,
                seed: int = 0, feature_fn=None) -> dict:
    """Does the prior stand in for what the network saw at t = T?

    Fréchet distance (digits features) between ``num`` prior draws and x_T = F_T(x0) + σ_T ε of ``num``
    training images A, against the real-vs-real floor: A against ``num`` other training images B.
    Returns {"frechet", "floor", "ratio", "num"}; ratio > :data:`PRIOR_MISMATCH_RATIO` means a mismatch.
    """
    import jax.numpy as jnp

    from jaxdiff import data as data_lib
    from jaxdiff import evaluation

    feature_fn = feature_fn or evaluation.digits_feature_fn()
    images = data_lib.load_images(config, split="train", num=2 * int(num), seed=seed)
    n = images.shape[0] // 2
    a, b = images[:n], images[n:2 * n]
    k_aux, k_eps, k_prior = jax.random.split(jax.random.PRNGKey(seed), 3)
    end_images = end_images_for(config, process, n, split="train", seed=seed + 1)
    aux = restoration_aux(process, jnp.asarray(a), k_aux, end_images=end_images)
    eps = jax.random.normal(k_eps, a.shape, jnp.float32)
    x_T = np.asarray(process.perturb(jnp.asarray(a), jnp.full((n,), process.T, jnp.int32), eps, aux))
    draws = np.asarray(prior.sample(k_prior, n))
    fd = float(evaluation.prior_check(draws, x_T, feature_fn)["frechet"])
    floor = float(evaluation.floor_metrics(a, b, feature_fn, num=n, seed=seed, kid_subsets=0)["same_count"]["frechet"])
    return {"frechet": fd, "floor": floor, "ratio": fd / max(floor, 1e-12), "num": int(n)}
