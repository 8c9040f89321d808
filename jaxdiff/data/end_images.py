"""The images a degradation that needs a second data set (``data.end_source``: interpolation, animorphosis)
moves toward, for degrading held-out or training images outside the training loop."""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["end_images_for"]


def end_images_for(config, process, num: int, *, split: str, seed: int) -> Optional[np.ndarray]:
    """The images of ``data.end_source`` that ``num`` images degraded by ``process`` move toward (a seeded
    subset of ``split``, cycled to ``num``), or None when the process needs none or none is configured."""
    if not process.needs_end_source or not config.data.get("end_source", ""):
        return None
    from jaxdiff.data import load_images

    end = load_images(config, split=split, field="data.end_source", num=int(num), seed=seed)
    return end[np.arange(int(num)) % len(end)]
