"""FID while training: every ``train.eval_every`` steps, ``train.eval_samples`` images from the EMA parameters.

Generating runs draw x_T from the run's prior and run its generation corrector (:func:`generation_setup`);
restoration-only runs degrade held-out images to t = T and restore them with ``sample.corrector``. The
images are scored against ``train.eval_samples`` held-out images on ``train.eval_features`` ("" = Inception
when its weights are cached, else the digits net; :func:`jaxdiff.evaluation.extract.default_features`):

    fid, kid_x1e3, kid_x1e3_std (and precision, recall)      generation: samples vs held-out images
    fid (paired), ssim-free                                   restoration: restored vs their originals

The reference features are computed once per run (and cached by :mod:`jaxdiff.evaluation.ref_stats`). The
evaluation reads the EMA parameters through a copy, draws from its own fixed key and touches neither the
train state nor the data stream, so training's numbers and a bitwise resume do not depend on it.
"""
from __future__ import annotations

import dataclasses
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["GenerationSetup", "generation_setup", "TrainEvaluator", "make_evaluator", "EVAL_SEED_OFFSET"]

#: PRNGKey(config.seed + this) draws every evaluation (the same noise at every evaluation step)
EVAL_SEED_OFFSET = 11
#: the held-out subset of the reference images is drawn with config.seed + this
REF_SEED_OFFSET = 3


@dataclasses.dataclass(frozen=True)
class GenerationSetup:
    """How a run generates: its default ``corrector`` and ``prior`` (a fitted :class:`jaxdiff.priors.Prior`),
    and ``aux(x_T, key)``, what the corrector needs to know about a prior draw (None for most processes)."""

    corrector: str
    prior: Any
    aux: Callable


def generation_setup(config, process, workdir: str) -> Optional[GenerationSetup]:
    """The run's generation corrector, prior and prior aux; None for a restoration-only process.

    The process says how it generates (:meth:`jaxdiff.processes.Process.generation`); the run's stored prior is
    loaded (or fitted) by :mod:`jaxdiff.priors.store`.
    """
    from jaxdiff.priors import store

    if not process.can_generate:
        return None
    prior = store.load_or_fit_prior(config, workdir, process=process)
    return GenerationSetup(corrector=process.generation_corrector(str(config.sample.corrector)), prior=prior,
                           aux=process.generation_aux)


class TrainEvaluator:
    """``evaluator(step, ema_params) -> (metrics dict, uint8 grid image, one-line message)``."""

    def __init__(self, config, model, process, workdir: str):
        from jaxdiff import sampling
        from jaxdiff.evaluation import extract, ref_stats

        tc, d, s = config.train, config.data, config.sample
        self.num = int(tc.eval_samples)
        spec = str(tc.get("eval_features", "")) or extract.default_features()
        self.extractor = extract.load_extractor(spec)
        self.process, self.config = process, config
        self.setup = generation_setup(config, process, workdir)
        seed = int(config.seed) + REF_SEED_OFFSET
        self.real = ref_stats.load_source_images(str(d.source), split=str(d.eval_split), image_size=int(d.image_size),
                                                 channels=int(d.channels), num=self.num, seed=seed)
        if self.setup is not None:
            self.ref = ref_stats.reference_stats(str(d.source), split=str(d.eval_split), image_size=int(d.image_size),
                                                 channels=int(d.channels), extractor=self.extractor, num=self.num,
                                                 seed=seed, progress=False)
        corrector = self.setup.corrector if self.setup is not None else str(s.corrector)
        steps = int(s.steps) or None
        ts = sampling.timesteps_for(process, steps, str(s.get("spacing", "linear")))
        clip = float(s.clip) if s.clip else None
        prediction, eta = str(config.diffusion.prediction), float(s.eta)

        def denoiser(params, x, t):
            return model.apply({"params": params}, x, t, train=False)

        def run(params, key, x_T, aux):
            return sampling.sample(denoiser, params, key, x_T, process=process, corrector=corrector, timesteps=ts,
                                   prediction=prediction, clip=clip, eta=eta, aux=aux, return_every=0).x0

        self._run = jax.jit(run)
        self.corrector = corrector
        self.key = jax.random.PRNGKey(int(config.seed) + EVAL_SEED_OFFSET)

    def _images(self, params) -> np.ndarray:
        k_prior, k_aux, k_run, k_eps = jax.random.split(self.key, 4)
        if self.setup is not None:
            x_T = jnp.asarray(self.setup.prior.sample(k_prior, self.num))
            return np.asarray(self._run(params, k_run, x_T, self.setup.aux(x_T, k_aux)))
        x0 = jnp.asarray(self.real, jnp.float32) / 127.5 - 1.0
        aux = self.process.restoration_aux(x0, k_aux)
        T = int(self.process.T)
        eps = jax.random.normal(k_eps, x0.shape, jnp.float32)
        x_T = self.process.perturb(x0, jnp.full((x0.shape[0],), T, jnp.int32), eps, aux)
        return np.asarray(self._run(params, k_run, x_T, aux))

    def __call__(self, step: int, params) -> tuple[dict, np.ndarray]:
        from jaxdiff.evaluation import scores
        from jaxdiff.visualize import make_grid

        t0 = time.perf_counter()
        x = self._images(params)
        feats = self.extractor.features(x, progress=False)
        name = self.extractor.name.split(":")[0]
        if self.setup is not None:
            sc = scores.scores(self.ref.features, feats, kid_subsets=20, seed=int(step))
            row = {f"eval/{k}": sc[k] for k in ("fid", "kid_x1e3", "kid_x1e3_std", "precision", "recall") if k in sc}
        else:
            real_feats = self.extractor.features(self.real, progress=False)
            row = {"eval/fid_restored": scores.scores(real_feats, feats, kid_subsets=0)["fid"]}
        seconds = time.perf_counter() - t0
        row["eval/seconds"] = seconds
        what = "generated" if self.setup is not None else "restored"
        values = ", ".join(f"{k.split('/')[1]} {v:.4g}" for k, v in row.items() if k != "eval/seconds")
        message = (f"step {step}: {'FID' if name == 'inception' else 'Fréchet'} of {self.num} {what} images "
                   f"({self.corrector}; {self.extractor.name} features): {values}; took {seconds:.1f} s")
        return row, make_grid(x[:64]), message


def make_evaluator(config, model, process, workdir: str) -> Optional[TrainEvaluator]:
    """A :class:`TrainEvaluator` when ``train.eval_every`` > 0, else None."""
    if int(config.train.get("eval_every", 0)) <= 0:
        return None
    return TrainEvaluator(config, model, process, workdir)
