"""``--mode=restore``: held-out images degraded to t = severity (or images that arrive degraded), restored.

The held-out images are a fixed seeded subset of a real held-out split (``common.held_out_images``); ``--input``
images are taken as they come (the first ``--num``), since nothing is scored against them.

Rows of the picture: degraded | direct | sampled (each corrector) | original (absent for ``--input``).
"""
from __future__ import annotations

import jax
import numpy as np

from jaxdiff.cli.common import eta_tag, held_out_aux, held_out_images, output_stem
from jaxdiff.cli.options import ModeSettings
from jaxdiff.files import save_npz

STRIP_WIDTH = 16  # images per row block of the restoration picture


def input_images(spec: str, config) -> np.ndarray:
    """``--input``'s images (folder:<path> or npz:<path>) at the config's size, float32 in [−1, 1]."""
    from jaxdiff import data as data_lib

    d = config.data
    src = data_lib.load_source(spec, split=str(d.eval_split), image_size=int(d.image_size), channels=int(d.channels),
                               field="--input")
    return data_lib.normalize(src.get(np.arange(len(src))))


def run(s: ModeSettings, inf, out_dir: str) -> dict[str, str]:
    """Writes <stem>.png (the rows above) and <stem>.npz (degraded, original, direct, <corrector>…)."""
    from jaxdiff import visualize
    from jaxdiff.sampling import restoration

    o = s.options
    T = int(inf.process.T)
    sev = o.severity or T
    k_aux, k_deg, k_run = jax.random.split(jax.random.PRNGKey(s.seed), 3)
    if o.input is not None:
        restoration.check_aux_known(inf.process, inf.image_shape, what="--input")
        degraded = input_images(o.input, inf.config)[: s.num]
        original, aux = None, None
    else:
        original = held_out_images(inf.config, s.num)
        aux = held_out_aux(inf, original, k_aux)
        degraded = inf.degrade(original, key=k_deg, severity=sev, aux=aux, batch=s.batch)
    correctors = restoration.default_correctors(inf.process, s.corrector)
    outs = inf.restore(degraded, key=k_run, severity=sev, correctors=correctors, steps=s.steps, eta=s.eta,
                       aux=aux, batch=s.batch)
    names = [("degraded", degraded), ("direct", outs["direct"])]
    names += [(f"sampled ({c.replace('cold_', '')})", outs[c]) for c in correctors]
    if original is not None:
        names.append(("original", original))
    rows, labels = [], []
    for start in range(0, degraded.shape[0], STRIP_WIDTH):
        for label, arr in names:
            rows.append(arr[start:start + STRIP_WIDTH])
            labels.append(label)
    steps = len(restoration.severity_timesteps(sev, s.steps)) - 1
    # the corrector is named when it is the one --corrector chose (cold runs restore with both of theirs)
    chosen = f"{s.corrector}_" if tuple(correctors) == (s.corrector,) else ""
    stem = output_stem(s, out_dir, inf.step, f"t{sev}_{chosen}{steps}steps{eta_tag(s)}")
    title = f"restoration from t={sev} of T={T} ({steps} sampling steps)"
    return {"strip": visualize.save_strip(stem + ".png", rows, labels, title=title),
            "npz": save_npz(stem + ".npz", degraded=degraded, original=original, **outs)}
