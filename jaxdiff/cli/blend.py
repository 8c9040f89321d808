"""``--mode=blend``: rows of samples from points between two prior draws (spherical for Gaussian noise)."""
from __future__ import annotations

import jax
import numpy as np

from jaxdiff.cli.common import corrector_tag, output_stem, prior_for_mode
from jaxdiff.cli.options import ModeSettings
from jaxdiff.files import save_npz

MAX_PAIRS, COLUMNS = 8, 9


def run(s: ModeSettings, inf, out_dir: str) -> dict[str, str]:
    """Writes <stem>.png (x_T and x0 rows per pair) and <stem>.npz (x_T, samples: (pairs, 9, H, W, C))."""
    from jaxdiff import visualize
    from jaxdiff.sampling import interpolation

    prior = prior_for_mode(s, inf)
    pairs = min(s.num, MAX_PAIRS)
    k_a, k_b, k_run = jax.random.split(jax.random.PRNGKey(s.seed), 3)
    a, b = np.asarray(prior.sample(k_a, pairs)), np.asarray(prior.sample(k_b, pairs))
    method = interpolation.method_for_prior(prior.kind)
    points = interpolation.points_between(a, b, COLUMNS, method)  # (P, K, H, W, C)
    flat = points.reshape((pairs * COLUMNS,) + points.shape[2:])
    res = inf.generate(k_run, flat.shape[0], prior=prior, batch=s.batch, corrector=s.corrector, steps=s.steps,
                       eta=s.eta, x_T=flat, spacing=s.spacing)
    x0 = res.x0.reshape(points.shape)
    rows, labels = [], []
    for p in range(pairs):
        rows += [points[p], x0[p]]
        labels += [f"x_T #{p}", f"x0 #{p}"]
    u = np.linspace(0, 1, COLUMNS)
    stem = output_stem(s, out_dir, inf.step, f"{method}_{corrector_tag(s, inf)}")
    title = f"{method} interpolation between two {prior.kind} prior draws, then {s.corrector}"
    return {"strip": visualize.save_strip(stem + ".png", rows, labels, column_labels=[f"u={v:.2g}" for v in u],
                                          title=title),
            "npz": save_npz(stem + ".npz", x_T=points, samples=x0)}
