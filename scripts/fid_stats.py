#!/usr/bin/env python
"""Reference statistics of a data source's split (mean, covariance, features), computed once and cached.

    python scripts/fid_stats.py digits:test                         # Inception, digits read at 16×16
    python scripts/fid_stats.py tfds:cifar10:train --image_size=32
    python scripts/fid_stats.py folder:/data/celeba_64 --image_size=64 --num=10000 --features=digits

Writes ``<cache>/fid_stats/<source>-<split>-<fingerprint>.npz`` (jaxdiff.evaluation.ref_stats; the cache is
$JAXDIFF_CACHE, else $XDG_CACHE_HOME/jaxdiff, else ~/.cache/jaxdiff) and prints its path, the image count and
the real-vs-real floor of two random halves. ``python -m jaxdiff.evaluation.fid <source> <samples>`` and
training's ``train.eval_every`` read the same file. ``--recompute`` ignores a cached one.
"""
from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if REPO not in sys.path:
    sys.path.insert(0, REPO)


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("source", help="digits[:split], photos[:split], tfds:<name>[:split], folder:<path>, npz:<path>")
    ap.add_argument("--split", default="", help="the split when the source names none (default: train)")
    ap.add_argument("--image_size", type=int, default=0, help="size the source is read at (digits: 16)")
    ap.add_argument("--channels", type=int, default=0, help="channels (default: the source's known count, else 3)")
    ap.add_argument("--num", type=int, default=0, help="a seeded random subset of this many images (0: all)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--features", default="inception", help="inception (default), digits or a feature_net.npz")
    ap.add_argument("--recompute", action="store_true")
    args = ap.parse_args(argv)

    from jaxdiff.data import KNOWN_CHANNELS, DataError, parse_source
    from jaxdiff.evaluation import extract, metrics, ref_stats
    from jaxdiff.evaluation.inception_weights import InceptionWeightsError

    try:
        spec = parse_source(args.source, field="source")
        size = args.image_size or (16 if spec.kind == "digits" else 0)
        if size < 1:
            raise DataError(f"{args.source}: pass --image_size (the size the source is read at)")
        key = spec.kind if spec.kind in ("digits", "photos") else f"tfds:{spec.target.split(':')[0]}"
        channels = args.channels or KNOWN_CHANNELS.get(key, 3)
        split = spec.split or args.split or "train"
        ext = extract.load_extractor(args.features)
        ref = ref_stats.reference_stats(args.source, split=split, image_size=size, channels=channels, extractor=ext,
                                        num=args.num or None, seed=args.seed, recompute=args.recompute,
                                        progress=True)
    except (DataError, ValueError, InceptionWeightsError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    n = ref.features.shape[0]
    floor = metrics.real_floor(ref.features, None, seed=args.seed, kid_subsets=0) if n >= 4 else None
    print(f"{ref.path}\n{n} images of {args.source} (split {split}, {size}×{size}×{channels}), {ext.name} features "
          f"({ext.dim}-d)" + (f"; real-vs-real floor, two halves of {n // 2}: FID {floor['frechet']:.2f}" if floor
                              else ""))
    return 0


if __name__ == "__main__":
    sys.exit(main())
