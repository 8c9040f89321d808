"""``--mode=forward``: the run's forward process on held-out images (x0 → x_t), no network involved."""
from __future__ import annotations

from jaxdiff.cli.common import output_stem
from jaxdiff.cli.options import ModeSettings

MAX_IMAGES = 8


def run(s: ModeSettings, inf, out_dir: str) -> dict[str, str]:
    """Writes <stem>.png (:func:`jaxdiff.forward_pictures.forward_strip_for_config`)."""
    from jaxdiff.forward_pictures import forward_strip_for_config

    path = output_stem(s, out_dir, inf.step) + ".png"
    return {"strip": forward_strip_for_config(inf.config, path, process=inf.process,
                                              num_images=min(s.num, MAX_IMAGES), seed=s.seed)}
