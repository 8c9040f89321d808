"""The sources shipped with scikit-learn: ``digits`` (1797 8×8 grey digits, labelled) and ``photos`` (crops of
its two sample photographs, RGB). Nothing is downloaded; the held-out splits are fixed.
"""
from __future__ import annotations

import functools
import os

import numpy as np

from jaxdiff.data.arrays import ArraySource, DataError, readonly, resize_all
from jaxdiff.data.spec import SourceSpec

__all__ = ["DIGITS_NUM_TRAIN", "PHOTOS_NUM_CROPS", "PHOTOS_MAX_SCALE", "load_digits", "load_photos",
           "photo_crop_boxes"]


DIGITS_NUM_TRAIN = 1617
_DIGITS_SPLIT_SEED = 20220808  # constant on purpose: the split must not move with config.seed


@functools.lru_cache(maxsize=4)
def _digits_all(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    u8 = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # 0‥16 → 0‥255
    return readonly(resize_all(u8, image_size)), readonly(d.target.astype(np.int32))


def _digits_split_indices(n: int, split: str, field: str) -> np.ndarray:
    perm = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(n)
    if split == "train":
        return np.sort(perm[:DIGITS_NUM_TRAIN])
    if split == "test":
        return np.sort(perm[DIGITS_NUM_TRAIN:])
    if split == "all":
        return np.arange(n)
    raise DataError(f"{field}: digits has no split {split!r}; allowed: 'train' (90 %), 'test' (10 %), 'all'")


def load_digits(spec: SourceSpec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
    if channels != 1:
        raise DataError(f"data.channels={channels} but {field}='digits' has 1 channel; set data.channels=1")
    images, labels = _digits_all(image_size)
    idx = _digits_split_indices(images.shape[0], split, field)
    return ArraySource(images[idx], labels[idx], f"digits:{split}")


#: crops per split of the ``photos`` source (``crops=`` changes it)
PHOTOS_NUM_CROPS = {"train": 8192, "test": 512}
PHOTOS_MAX_SCALE = 4  # a crop is a k·S × k·S window, k ∈ {1 … 4}, box-averaged to S × S
_PHOTOS_TEST_SEED = 20221201  # constant on purpose: the held-out crops never move with the training seed


@functools.lru_cache(maxsize=1)
def _photos() -> tuple[np.ndarray, ...]:
    """scikit-learn's sample photographs (china.jpg, flower.jpg; uint8 (H, W, 3)), sorted by file name."""
    from sklearn.datasets import load_sample_images

    b = load_sample_images()
    order = np.argsort([os.path.basename(f) for f in b.filenames])
    return tuple(readonly(np.asarray(b.images[i], np.uint8)) for i in order)


def _photo_columns(width: int, split: str) -> tuple[int, int]:
    """The columns [c0, c1) a split crops from: test = the right quarter, train = the rest."""
    edge = width - width // 4
    return (edge, width) if split == "test" else (0, edge)


def photo_crop_boxes(split: str, image_size: int, seed: int, num: int, field: str = "data.source") -> np.ndarray:
    """int64 (num, 4): (photo, top, left, side) of each crop of a split; side = k·image_size."""
    photos, s = _photos(), image_size
    limit = min(min(p.shape[0], p.shape[1] // 4) for p in photos)  # the held-out quarter is the narrowest
    if s > limit:
        raise DataError(f"data.image_size={s}: too large for {field}='photos' (its held-out crops come from "
                        f"the right quarter of each photograph, {limit} pixels wide); allowed: 1 … {limit}")
    spans = [min(p.shape[0], np.diff(_photo_columns(p.shape[1], split))[0]) for p in photos]
    fits = int(min(spans)) // s  # the largest scale k whose window fits in every photograph's region
    # one row of four uniforms per crop: the first n crops are the same whatever crops= asks for
    u = np.random.default_rng(_PHOTOS_TEST_SEED if split == "test" else seed).random((num, 4))
    which = np.floor(u[:, 0] * len(photos)).astype(np.int64)
    side = (1 + np.floor(u[:, 1] * min(fits, PHOTOS_MAX_SCALE)).astype(np.int64)) * s
    heights = np.array([p.shape[0] for p in photos])
    cols = np.array([_photo_columns(p.shape[1], split) for p in photos])
    top = np.floor(u[:, 2] * (heights[which] - side + 1)).astype(np.int64)
    c0, c1 = cols[which, 0], cols[which, 1]
    left = c0 + np.floor(u[:, 3] * (c1 - c0 - side + 1)).astype(np.int64)
    return np.stack([which, top, left, side], axis=1).astype(np.int64)


def _photo_crops(boxes: np.ndarray, image_size: int) -> np.ndarray:
    """uint8 (N, S, S, 3): each box's k × k block means, rounded half up, by integer summed-area tables."""
    s, out = image_size, np.empty((len(boxes), image_size, image_size, 3), np.uint8)
    ramp = np.arange(s + 1)
    for p, photo in enumerate(_photos()):
        sat = np.zeros((photo.shape[0] + 1, photo.shape[1] + 1, 3), np.int64)
        sat[1:, 1:] = photo.astype(np.int64).cumsum(0).cumsum(1)
        for chunk in np.array_split(np.flatnonzero(boxes[:, 0] == p), max(1, len(boxes) // 256)):
            if chunk.size == 0:
                continue
            _, top, left, side = boxes[chunk].T
            k = side // s
            rows = top[:, None] + k[:, None] * ramp
            cols = left[:, None] + k[:, None] * ramp
            c = sat[rows[:, :, None], cols[:, None, :]]  # (n, S+1, S+1, 3)
            sums = c[:, 1:, 1:] - c[:, :-1, 1:] - c[:, 1:, :-1] + c[:, :-1, :-1]
            area = (k * k)[:, None, None, None]
            out[chunk] = (2 * sums + area) // (2 * area)
    return out


def load_photos(spec: SourceSpec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
    if channels != 3:
        raise DataError(f"data.channels={channels} but {field}='photos' has 3 channels (RGB); "
                        "set data.channels=3")
    if split not in ("train", "test", "all"):
        raise DataError(f"{field}: photos has no split {split!r}; allowed: 'train', 'test' (the right quarter "
                        "of each photograph, fixed), 'all'")
    seed = int(spec.options.get("seed", 0))  # options were checked by parse_source
    parts = ("train", "test") if split == "all" else (split,)
    images = []
    for part in parts:
        num = int(spec.options.get("crops", PHOTOS_NUM_CROPS[part]))
        images.append(_photo_crops(photo_crop_boxes(part, image_size, seed, num, field), image_size))
    name = f"photos:{split}" + "".join(f":{k}={v}" for k, v in sorted(spec.options.items()))
    return ArraySource(np.concatenate(images), None, name)
