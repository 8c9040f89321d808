"""``folder:<path>`` sources: PNG/JPEG files under a directory (its ``<split>`` sub-directory if there is one),
labels from the first directory level.
"""
from __future__ import annotations

import concurrent.futures
import os

import numpy as np
from absl import logging
from PIL import Image

from jaxdiff.data.arrays import ArraySource, DataError, resize_center_crop
from jaxdiff.data.spec import SourceSpec

__all__ = ["load_folder"]


_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _read_image_file(path: str, channels: int) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        if im.mode.startswith("I;16"):  # 16-bit grey PNG: keep the top 8 bits
            im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8), "L")
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    return arr[..., None] if arr.ndim == 2 else arr


def load_folder(spec: SourceSpec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
    root = os.path.expanduser(spec.target)
    if not os.path.isdir(root):
        raise DataError(f"{field}='folder:{spec.target}': {root!r} is not a directory")
    if channels not in (1, 3):
        raise DataError(f"data.channels={channels}: folder sources give 1 (grey) or 3 (RGB) channels")
    unsplit = ""
    if split and os.path.isdir(os.path.join(root, split)):
        root = os.path.join(root, split)
    else:
        unsplit = (f"there is no folder {os.path.join(root, split)!r}, so every split reads all of {root!r}; "
                   f"put the held-out images under <path>/{split}/ and the training images under <path>/train/")
    paths = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        paths.extend(os.path.join(dirpath, f) for f in sorted(filenames)
                     if f.lower().endswith(_IMAGE_EXTENSIONS))
    if not paths:
        raise DataError(f"{field}='folder:{spec.target}': no PNG/JPEG files under {root!r}")

    def read(path):
        try:
            return resize_center_crop(_read_image_file(path, channels), image_size)
        except Exception as e:  # noqa: BLE001 — any decoder failure means "unreadable"; reported below
            return e

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(read, paths))
    bad = [(p, r) for p, r in zip(paths, results) if isinstance(r, Exception)]
    if bad:
        shown = "; ".join(f"{p} ({type(e).__name__}: {e})" for p, e in bad[:10])
        logging.warning("folder source %s: skipped %d unreadable file(s): %s%s", root, len(bad), shown,
                        " …" if len(bad) > 10 else "")
    keep = [(p, r) for p, r in zip(paths, results) if not isinstance(r, Exception)]
    if not keep:
        raise DataError(f"{field}='folder:{spec.target}': none of the {len(paths)} image files under {root!r} "
                        "could be read")
    images = np.stack([r for _, r in keep])

    # labels from the first directory level, when every file sits in one
    rel = [os.path.relpath(p, root).split(os.sep) for p, _ in keep]
    labels = class_names = None
    if all(len(r) >= 2 for r in rel):
        names = [r[0] for r in rel]
        uniq = sorted(set(names))
        if all(n.isdigit() for n in uniq):
            labels = np.array([int(n) for n in names], np.int32)
        else:
            lookup = {n: k for k, n in enumerate(uniq)}
            labels = np.array([lookup[n] for n in names], np.int32)
            class_names = tuple(uniq)
    return ArraySource(images, labels, f"folder:{root}", class_names, unsplit)
