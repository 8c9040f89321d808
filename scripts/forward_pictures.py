#!/usr/bin/env python
"""One picture per degradation of what its forward process does: x0 → x_t at evenly spaced t.

    .venv/bin/python scripts/forward_pictures.py                 # → docs/images/forward_<config>.png
    .venv/bin/python scripts/forward_pictures.py --configs cold_blur,ddpm --out /tmp/pics

Every experiment config of configs/ (its default variant) on held-out scikit-learn digits, no network and
no training involved. The color-only degradations (decolor, snow) use 32×32 patches of the two
photographs that ship with scikit-learn instead (grey digits would show nothing). Where σ_t > 0 (ddpm,
ddim) each image gets three rows with independent noise. Deterministic: the same command gives the same
pictures.
"""
from __future__ import annotations

import argparse
import os
import runpy
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

CONFIGS = ("cold_blur", "cold_inpaint", "cold_superres", "cold_decolor", "cold_snow", "cold_animorph", "ddpm", "ddim")


def color_only(config) -> bool:
    """Whether the config's degradation needs 3-channel images (declared where it is registered)."""
    from jaxdiff.degradations import DEGRADATIONS

    f = config.diffusion
    return DEGRADATIONS.get_or_raise(str(f.degradation)).color_only


def photo_patches(size: int = 32):
    """Four (size, size, 3) float32 patches in [−1, 1] of scikit-learn's sample photographs (shipped, no download)."""
    import numpy as np
    from PIL import Image
    from sklearn.datasets import load_sample_images

    out = []
    for img in load_sample_images().images:  # china.jpg (a temple), flower.jpg; 427×640 RGB
        h, w, _ = img.shape
        for box in ((w // 2 - h // 2, 0, w // 2 + h // 2, h), (w // 4, h // 4, w // 4 + h // 3, h // 4 + h // 3)):
            patch = Image.fromarray(img).crop(box).resize((size, size), Image.BICUBIC)
            out.append(np.asarray(patch, np.float32) / 127.5 - 1.0)
    return np.stack(out)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--out", default=os.path.join(REPO, "docs", "images"))
    p.add_argument("--configs", default=",".join(CONFIGS), help="comma-separated config names")
    p.add_argument("--num-images", type=int, default=3)
    p.add_argument("--columns", type=int, default=8)
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    from jaxdiff.forward_pictures import forward_strip_for_config

    names = [n.strip() for n in args.configs.split(",") if n.strip()]
    unknown = [n for n in names if not os.path.exists(os.path.join(REPO, "configs", n + ".py"))]
    if unknown:
        p.error(f"--configs: no such config file(s) {unknown} in {os.path.join(REPO, 'configs')}")
    os.makedirs(args.out, exist_ok=True)
    for name in names:
        config = runpy.run_path(os.path.join(REPO, "configs", name + ".py"))["get_config"]()
        images = None
        if color_only(config):
            config.data.channels, config.data.image_size = 3, 32
            images = photo_patches(32)[: args.num_images]
        path = os.path.join(args.out, f"forward_{name}.png")
        forward_strip_for_config(config, path, num_images=args.num_images, num_columns=args.columns, seed=args.seed,
                                 images=images)
        print(path, flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
