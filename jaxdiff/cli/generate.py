"""``--mode=generate``: samples from the run's prior, as a grid, an npz, and the first batch's trajectory."""
from __future__ import annotations

import logging
import math

import jax
import numpy as np

from jaxdiff.cli.common import corrector_tag, output_stem, prior_for_mode
from jaxdiff.cli.options import ModeSettings
from jaxdiff.files import save_npz

log = logging.getLogger(__name__)


def run(s: ModeSettings, inf, out_dir: str) -> dict[str, str]:
    """Writes <stem>.png (grid), <stem>.npz (samples, x_T), <stem>_trajectory.png and .gif; returns the paths."""
    from jaxdiff import visualize

    prior = prior_for_mode(s, inf)
    res = inf.generate(jax.random.PRNGKey(s.seed), s.num, prior=prior, batch=s.batch, corrector=s.corrector,
                       steps=s.steps, eta=s.eta, trajectory_frames=s.options.frames, labels=s.sample_labels,
                       guidance=s.guidance, spacing=s.spacing)
    stem = output_stem(s, out_dir, inf.step, corrector_tag(s, inf))
    # --labels: one row per class (num / classes columns); else a square grid
    nrow = s.num // len(s.label_classes) if s.options.labels is not None else int(math.ceil(math.sqrt(res.x0.shape[0])))
    files = {"grid": visualize.save_grid(stem + ".png", res.x0, nrow=nrow),
             "npz": save_npz(stem + ".npz", samples=res.x0, x_T=res.x_T,
                             **({} if s.sample_labels is None else {"labels": s.sample_labels}))}
    if res.trajectory is not None:
        tr = res.trajectory
        k = min(16, tr["x_t"].shape[1])
        # The strip starts from x_T so the first column shows what the corrector was given.
        xt = np.concatenate([res.x_T[None, :k], tr["x_t"][:, :k]])
        xh = np.concatenate([np.zeros_like(res.x_T[None, :k]), tr["x0_hat"][:, :k]])
        ts = [int(inf.timesteps(s.steps, s.spacing)[0])] + [int(t) for t in tr["t"]]
        png, gif = visualize.save_trajectory(stem + "_trajectory.png", stem + "_trajectory.gif", xt, xh, ts)
        files.update(trajectory_png=png, trajectory_gif=gif)
    log.info("generated %d samples in %.1f s (prior %s)", res.x0.shape[0], res.seconds, prior.kind)
    return files
