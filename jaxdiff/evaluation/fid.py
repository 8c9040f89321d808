"""``python -m jaxdiff.evaluation.fid A B``: FID, KID ×10³ and precision/recall between two image sets.

    python -m jaxdiff.evaluation.fid digits:test samples.npz            # a data source's split vs an npz
    python -m jaxdiff.evaluation.fid real_pngs/ fake_pngs/ --json       # two folders; JSON only

A and B are each
  - a folder of images (.png .jpg .jpeg .bmp .webp .tif .tiff, recursively, converted to RGB as the
    reference does; any size: each size goes to 299×299 through the same preprocessing),
  - an .npz file with an ``images`` or ``samples`` array (N, H, W, C) (or NCHW): uint8, or floats in
    [0, 1] (when none is negative) or [−1, 1] (jaxdiff's samples),
  - a data source (``digits:test``, ``photos:test``, ``tfds:cifar10:test``, ``folder:<path>``, ``npz:<path>``;
    the split defaults to ``train``) read at ``--image_size`` (digits: 16); its features and statistics are
    cached (:mod:`jaxdiff.evaluation.ref_stats`).
A is the reference: precision is the share of B inside A's manifold, recall the share of A inside B's.
Features: ``--features=inception`` (default; the 2015-12-05 Inception-v3, :mod:`jaxdiff.evaluation.inception`),
``digits`` or a ``feature_net.npz``. Exit code 2 with one line for a bad argument.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Optional

import numpy as np

__all__ = ["main", "load_image_set", "IMAGE_EXTENSIONS"]

IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".webp", ".tif", ".tiff")
_SOURCE_KINDS = ("digits", "photos", "tfds", "folder", "npz")


class _Usage(ValueError):
    pass


def _is_source(arg: str) -> bool:
    kind = arg.split(":", 1)[0]
    return kind in _SOURCE_KINDS and (":" in arg or arg in ("digits", "photos")) and not os.path.exists(arg)


def _npz_images(path: str) -> tuple[np.ndarray, tuple[float, float]]:
    with np.load(path, allow_pickle=False) as f:
        key = next((k for k in ("images", "samples") if k in f.files), None)
        if key is None:
            raise _Usage(f"{path}: no 'images' or 'samples' array (it holds {sorted(f.files)})")
        x = np.asarray(f[key])
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim == 4 and x.shape[-1] not in (1, 3) and x.shape[1] in (1, 3):
        x = np.transpose(x, (0, 2, 3, 1))  # NCHW
    if x.ndim != 4 or x.shape[-1] not in (1, 3) or x.shape[0] < 2:
        raise _Usage(f"{path}: {key} has shape {x.shape}; expected (N, H, W, C) with C 1 or 3 and N >= 2")
    if x.dtype == np.uint8:
        return x, (0.0, 255.0)
    if not np.issubdtype(x.dtype, np.floating) or not np.all(np.isfinite(x)):
        raise _Usage(f"{path}: {key} must be uint8 or finite floats, got {x.dtype}")
    lo, hi, tol = float(x.min()), float(x.max()), 1e-3
    if lo >= 0 and hi <= 1 + tol:
        return x.astype(np.float32), (0.0, 1.0)
    if lo >= -1 - tol and hi <= 1 + tol:
        return x.astype(np.float32), (-1.0, 1.0)
    raise _Usage(f"{path}: float images span [{lo:g}, {hi:g}]; allowed: [0, 1] or [-1, 1]")


def _folder_images(path: str) -> list[np.ndarray]:
    from PIL import Image

    files = sorted(os.path.join(r, f) for r, _, fs in os.walk(path) for f in fs
                   if f.lower().endswith(IMAGE_EXTENSIONS))
    if len(files) < 2:
        raise _Usage(f"{path}: fewer than 2 images ({', '.join(IMAGE_EXTENSIONS)}), found {len(files)}")
    out = []
    for p in files:
        try:
            with Image.open(p) as im:
                out.append(np.asarray(im.convert("RGB"), np.uint8))
        except OSError as e:
            raise _Usage(f"{p}: not a readable image ({e})") from None
    return out


def load_image_set(arg: str) -> tuple[list[tuple[np.ndarray, tuple[float, float]]], str]:
    """A folder or an .npz → ([(images of one size, in_range), …], description)."""
    path = os.path.expanduser(arg)
    if os.path.isdir(path):
        imgs = _folder_images(path)
        groups: dict = {}
        for im in imgs:
            groups.setdefault(im.shape, []).append(im)
        return [(np.stack(g), (0.0, 255.0)) for g in groups.values()], f"{len(imgs)} images in {path}"
    if os.path.isfile(path) and path.endswith(".npz"):
        x, rng = _npz_images(path)
        return [(x, rng)], f"{x.shape[0]} images in {path}"
    raise _Usage(f"{arg!r}: not a folder, an .npz file or a data source ({', '.join(k + ':' for k in _SOURCE_KINDS)})")


def _features_of(arg: str, ext, args) -> tuple[np.ndarray, str]:
    if _is_source(arg):
        from jaxdiff.data import DataError, parse_source
        from jaxdiff.evaluation import ref_stats

        try:
            spec = parse_source(arg, field=arg)
            size = args.image_size or (16 if spec.kind == "digits" else 0)
            if not size:
                raise _Usage(f"{arg}: pass --image_size (the size the source is read at)")
            channels = args.channels or _channels(arg, spec)
            split = spec.split or "train"
            ref = ref_stats.reference_stats(arg, split=split, image_size=size, channels=channels, extractor=ext,
                                            num=args.num or None, seed=args.seed)
        except DataError as e:
            raise _Usage(str(e)) from None
        return ref.features, f"{arg} ({ref.meta['num_images']} images, split {split}, {size}×{size}; " \
                             f"statistics {ref.path})"
    groups, desc = load_image_set(arg)
    feats = np.concatenate([ext.features(x, in_range=r, desc=os.path.basename(arg.rstrip("/")) or arg)
                            for x, r in groups])
    if args.num and feats.shape[0] > args.num:
        feats = feats[np.sort(np.random.default_rng(args.seed).choice(feats.shape[0], args.num, replace=False))]
    return feats, desc


def _channels(arg: str, spec) -> int:
    from jaxdiff.data import KNOWN_CHANNELS

    key = spec.kind if spec.kind in ("digits", "photos") else f"tfds:{spec.target.split(':')[0]}"
    return KNOWN_CHANNELS.get(key, 3)


def _parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="python -m jaxdiff.evaluation.fid", description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("a", help="reference set: folder, .npz or data source (e.g. digits:test)")
    ap.add_argument("b", help="evaluated set: folder, .npz or data source")
    ap.add_argument("--features", default="inception", help="inception (default), digits or a feature_net.npz")
    ap.add_argument("--json", action="store_true", help="print one JSON object only")
    ap.add_argument("--batch_size", type=int, default=None, help="images per batch (a multiple of the devices)")
    ap.add_argument("--num", type=int, default=0, help="use a seeded random subset of this many images of each set")
    ap.add_argument("--image_size", type=int, default=0, help="size data sources are read at (digits: 16)")
    ap.add_argument("--channels", type=int, default=0, help="channels data sources are read with (default: known)")
    ap.add_argument("--kid_subsets", type=int, default=100, help="random subsets for KID (0: skip)")
    ap.add_argument("--seed", type=int, default=0)
    return ap


def main(argv: Optional[list] = None) -> int:
    args = _parser().parse_args(argv)
    from jaxdiff.evaluation import extract, scores
    from jaxdiff.evaluation.inception_weights import InceptionWeightsError

    try:
        for name in ("num", "image_size", "channels", "kid_subsets"):
            if getattr(args, name) < 0:
                raise _Usage(f"--{name}={getattr(args, name)}: must be >= 0")
        if args.batch_size is not None and args.batch_size < 1:
            raise _Usage(f"--batch_size={args.batch_size}: must be >= 1")
        try:
            ext = extract.load_extractor(args.features, batch_size=args.batch_size)
        except (ValueError, InceptionWeightsError) as e:
            raise _Usage(str(e)) from None
        fa, da = _features_of(args.a, ext, args)
        fb, db = _features_of(args.b, ext, args)
        if min(fa.shape[0], fb.shape[0]) < 2:
            raise _Usage("each set needs at least 2 images")
        out = scores.scores(fa, fb, kid_subsets=args.kid_subsets, seed=args.seed, feature_net=ext.name)
    except _Usage as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    out.update(a=da, b=db)
    if args.json:
        print(json.dumps(out, indent=2))
        return 0
    print(f"A: {da}\nB: {db}\nfeatures: {ext.description or ext.name}")
    print(f"FID: {out['fid']:.4f}")
    if "kid_x1e3" in out:
        print(f"KID x1e3: {out['kid_x1e3']:.4f} ± {out['kid_x1e3_std']:.4f} ({out['kid_subsets']} subsets of "
              f"{out['kid_subset_size']})")
    if "precision" in out:
        print(f"precision: {out['precision']:.4f}  recall: {out['recall']:.4f} (k = {out['pr_k']})")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
