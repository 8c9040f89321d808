"""``npz:<path>`` sources: one .npz (split layout or a single array of images, optional labels) or an .npy;
uint8 or float images in [0, 1] / [−1, 1]. Never unpickled.
"""
from __future__ import annotations

import os
from typing import Optional, Sequence

import numpy as np

from jaxdiff.data.arrays import ArraySource, DataError, resize_all
from jaxdiff.data.spec import SourceSpec

__all__ = ["load_npz"]


def _to_uint8(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.dtype == np.uint8:
        return arr
    if not np.issubdtype(arr.dtype, np.floating):
        raise DataError(f"{where}: images of dtype {arr.dtype} are not supported; allowed: uint8 (0‥255) or "
                        "float16/32/64 in [0, 1] or [-1, 1]")
    if not np.all(np.isfinite(arr)):
        raise DataError(f"{where}: float images contain NaN or inf")
    lo, hi, tol = float(arr.min()), float(arr.max()), 1e-3
    if lo >= -tol and hi <= 1 + tol and lo >= 0:
        x = arr.astype(np.float64) * 255.0
    elif lo >= -1 - tol and hi <= 1 + tol:
        x = (arr.astype(np.float64) + 1.0) * 127.5
    else:
        raise DataError(f"{where}: float images span [{lo:g}, {hi:g}]; allowed: [0, 1] or [-1, 1]")
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)


def _npz_splits(keys: Sequence[str], where: str) -> dict[str, tuple[str, Optional[str]]]:
    """split → (images key, labels key or None) of an .npz in the split layout (a 'train' or 'train_images'
    array; every other array ``<split>`` or ``<split>_images``, labels ``<split>_labels``); {} otherwise."""
    if "train" not in keys and "train_images" not in keys:
        return {}
    if "images" in keys or "labels" in keys:
        raise DataError(f"{where}: the file mixes the single-array layout ('images', 'labels') with the split "
                        f"layout ('train', 'test', … or '<split>_images', '<split>_labels'); keys {list(keys)}")
    out: dict[str, tuple[str, Optional[str]]] = {}
    for k in keys:
        if k.endswith("_labels"):
            continue
        name = k[: -len("_images")] if k.endswith("_images") else k
        if name in out:
            raise DataError(f"{where}: split {name!r} is stored twice ({out[name][0]!r} and {k!r}); keep one")
        out[name] = (k, f"{name}_labels" if f"{name}_labels" in keys else None)
    orphans = [k for k in keys if k.endswith("_labels") and k[: -len("_labels")] not in out]
    if orphans:
        raise DataError(f"{where}: labels {orphans} have no images of their split; splits: {sorted(out)}")
    return out


def load_npz(spec: SourceSpec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
    path = os.path.expanduser(spec.target)
    where = f"{field}='npz:{spec.target}'"
    if not os.path.isfile(path):
        raise DataError(f"{where}: no such file {path!r}")
    labels, label_key = None, "labels"
    unsplit = (f"it is one array of images, so every split reads all of them; store 'train' and {split!r} "
               f"arrays (or 'train_images' and '{split}_images', labels as '<split>_labels') in one .npz")
    ragged = ("images of different sizes (an object array) are not supported: it needs pickle, which is never "
              "loaded; allowed: one uint8/float array of shape (N, H, W[, C])")
    try:
        loaded = np.load(path, allow_pickle=False)
    except Exception as e:  # noqa: BLE001
        if "Object arrays" in str(e):
            raise DataError(f"{where}: {ragged}") from e
        raise DataError(f"{where}: cannot read {path!r} as .npz/.npy ({type(e).__name__}: {e})") from e
    if isinstance(loaded, np.ndarray):
        arr = loaded
    else:
        with loaded:
            keys = list(loaded.keys())
            splits = _npz_splits(keys, where)
            try:  # .npz members are read here, lazily: their errors too
                if splits:
                    if split not in splits:
                        raise DataError(f"{where}: the file has no split {split!r}; its splits: {sorted(splits)}")
                    (image_key, label_key), unsplit = splits[split], ""
                    arr = loaded[image_key]
                    labels = loaded[label_key] if label_key else None
                elif "images" in keys:
                    arr = loaded["images"]
                    labels = loaded["labels"] if "labels" in keys else None
                elif len(keys) == 1:
                    arr = loaded[keys[0]]
                else:
                    raise DataError(f"{where}: expected a key 'images' (+ 'labels'), a single array, or the split "
                                    f"layout ('train', 'test', …), found keys {keys}")
            except DataError:
                raise
            except Exception as e:  # noqa: BLE001 - a damaged member, or an object array
                if "Object arrays" in str(e):
                    raise DataError(f"{where}: {ragged}") from e
                raise DataError(f"{where}: cannot read {path!r} ({type(e).__name__}: {e})") from e
    if arr.ndim == 3:
        arr = arr[..., None]
    if arr.ndim != 4:
        raise DataError(f"{where}: images must have shape (N, H, W) or (N, H, W, C), got {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{where}: the array holds 0 images")
    if arr.shape[-1] != channels:
        raise DataError(f"data.channels={channels} but {where} has {arr.shape[-1]} channel(s) "
                        f"(shape {arr.shape}); set data.channels={arr.shape[-1]}")
    if labels is not None and (labels.shape != (arr.shape[0],) or not np.issubdtype(labels.dtype, np.integer)):
        raise DataError(f"{where}: {label_key!r} must be integers of shape ({arr.shape[0]},), got "
                        f"{labels.dtype} {labels.shape}")
    images = resize_all(_to_uint8(arr, where), image_size)
    return ArraySource(images, labels, f"npz:{path}" + ("" if unsplit else f":{split}"), unsplit=unsplit)
