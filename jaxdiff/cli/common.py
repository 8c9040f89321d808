"""What several sample.py modes share: output names, the generation prior, and the images they read."""
from __future__ import annotations

import os

import numpy as np

from jaxdiff.cli.options import ModeSettings, UsageError

__all__ = ["tag", "corrector_tag", "output_stem", "prior_for_mode", "held_out_images", "training_images",
           "held_out_aux"]


def tag(s: ModeSettings, step: int, extra: str = "") -> str:
    """``<mode>_step<N>[_<extra>][_seed<S>]``: the stem of a mode's output files."""
    parts = [s.mode, f"step{step}"] + ([extra] if extra else []) + ([f"seed{s.seed}"] if s.seed else [])
    return "_".join(parts)


def output_stem(s: ModeSettings, out_dir: str, step: int, extra: str = "") -> str:
    return os.path.join(out_dir, tag(s, step, extra))


def corrector_tag(s: ModeSettings, inf) -> str:
    """``ddim_10steps_eta0.5``: the corrector, its network calls and a non-zero DDIM η."""
    steps = len(inf.timesteps(s.steps)) - 1
    eta = f"_eta{s.eta:g}" if s.corrector == "ddim" and s.eta else ""
    return f"{s.corrector}_{steps}steps{eta}"


def prior_for_mode(s: ModeSettings, inf):
    """The run's generation prior (stored, else fitted and stored), with ``--prior_noise`` applied."""
    from jaxdiff.priors import store as prior_store

    o = s.options
    try:
        prior = prior_store.load_or_fit_prior(inf.config, o.workdir, process=inf.process, refit=o.refit_prior)
    except ValueError as e:
        raise UsageError(f"--mode={o.mode}: this run has no generation prior: {e}") from None
    if o.prior_noise is not None:
        if "noise" not in prior.arrays:
            raise UsageError(f"--prior_noise: the {prior.kind!r} prior has no per-pixel noise to set")
        prior = prior.replace(noise=o.prior_noise)
    return prior


def held_out_images(config, num: int) -> np.ndarray:
    """The first ``num`` images of the config's held-out split, float32 in [−1, 1]."""
    from jaxdiff.data import load_images

    return load_images(config, split=str(config.data.eval_split), num=int(num))


def training_images(config, num: int, seed: int) -> np.ndarray:
    """``num`` training images, a sorted random subset drawn from ``seed``."""
    from jaxdiff.data import load_images

    return load_images(config, split="train", num=int(num), seed=int(seed))


def held_out_aux(inf, x0, key):
    """The per-example draw for degrading held-out images x0; end images of ``data.end_source`` (cycled to
    len(x0), held-out split) when the degradation needs them."""
    from jaxdiff.data import load_images
    from jaxdiff.priors import store as prior_store

    end = None
    degradation = getattr(inf.process, "degradation", None)
    if degradation is not None and degradation.needs_end_source and inf.config.data.get("end_source"):
        end = load_images(inf.config, split=str(inf.config.data.eval_split), field="data.end_source",
                          num=int(x0.shape[0]))
        end = end[np.arange(x0.shape[0]) % len(end)]
    aux = prior_store.restoration_aux(inf.process, x0, key, end_images=end)
    return None if aux is None else _to_host(aux)


def _to_host(tree):
    import jax

    return jax.tree.map(np.asarray, tree)
