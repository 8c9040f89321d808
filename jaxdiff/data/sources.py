"""Image sources: a source string (``config.data.source``) → uint8 images (N, S, S, C) and int32 labels.

Kinds: ``digits`` and ``photos`` (shipped), ``tfds:<name>`` (random access, no TensorFlow), ``folder:<path>``,
``npz:<path>``; the grammar is in :func:`load_source`. Library code reads a config's images through
:func:`load_images` (float32 in [−1, 1], x = u8 / 127.5 − 1, NHWC).
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import logging
import os
import re
from typing import Any, Optional, Sequence, Union

import numpy as np
from PIL import Image

from jaxdiff.checks import check_int
from jaxdiff.ranges import parse_int_ranges

__all__ = [
    "DataError",
    "ArraySource",
    "TfdsSource",
    "Source",
    "SOURCES",
    "SourceSpec",
    "parse_source",
    "parse_classes",
    "load_source",
    "source_from_config",
    "load_images",
    "normalize",
    "denormalize",
    "DIGITS_NUM_TRAIN",
    "PHOTOS_NUM_CROPS",
    "photo_crop_boxes",
    "KNOWN_CHANNELS",
    "KNOWN_NUM_CLASSES",
    "label_free_kinds",
    "check_labels",
]

log = logging.getLogger(__name__)


#: channel counts of the data sets whose images are known, by source kind ("digits") or "tfds:<name>"
KNOWN_CHANNELS = {
    "digits": 1, "photos": 3, "tfds:mnist": 1, "tfds:fashion_mnist": 1, "tfds:kmnist": 1, "tfds:emnist": 1,
    "tfds:cifar10": 3, "tfds:cifar100": 3, "tfds:celeb_a": 3, "tfds:svhn_cropped": 3, "tfds:oxford_flowers102": 3,
}
#: number of classes of the labelled data sets whose labels are known
KNOWN_NUM_CLASSES = {
    "digits": 10, "tfds:mnist": 10, "tfds:fashion_mnist": 10, "tfds:kmnist": 10, "tfds:cifar10": 10,
    "tfds:cifar100": 100, "tfds:svhn_cropped": 10,
}


class DataError(ValueError):
    """A data source cannot be read as asked: what is wrong, where, and how to fix it."""


# uint8 ↔ float


def normalize(images_u8: np.ndarray) -> np.ndarray:
    """uint8 0‥255 → float32 in [−1, 1]: x = u / 127.5 − 1 (any shape)."""
    return np.asarray(images_u8, dtype=np.float32) * np.float32(1 / 127.5) - np.float32(1.0)


def denormalize(images: Any) -> np.ndarray:
    """float in [−1, 1] → uint8 0‥255 (clipped, rounded); the inverse of :func:`normalize` on its range."""
    x = (np.asarray(images, dtype=np.float32) + 1.0) * 127.5
    return np.clip(np.rint(x), 0, 255).astype(np.uint8)

# ----------------------------------------------------------------------------------------------------------
# sources


def _readonly(a: np.ndarray) -> np.ndarray:
    a = np.ascontiguousarray(a)
    a.setflags(write=False)
    return a


@dataclasses.dataclass(frozen=True, eq=False)
class ArraySource:
    """An in-memory source: ``images`` uint8 (N, H, W, C), ``labels`` int32 (N,) or None (both read-only).

    ``unsplit``: why every split of this source reads the same images ("" when the split asked for is real);
    :func:`load_source` with ``require_split=True`` refuses such a source.
    """

    images: np.ndarray
    labels: Optional[np.ndarray]
    name: str
    class_names: Optional[tuple[str, ...]] = None
    unsplit: str = ""

    def __post_init__(self):
        if self.images.dtype != np.uint8 or self.images.ndim != 4:
            raise DataError(f"{self.name}: images must be uint8 (N, H, W, C), got {self.images.dtype} "
                            f"{self.images.shape}")
        if self.images.shape[0] == 0:
            raise DataError(f"{self.name}: the source is empty (0 images)")
        if self.labels is not None and self.labels.shape != (self.images.shape[0],):
            raise DataError(f"{self.name}: labels of shape {self.labels.shape} do not match "
                            f"{self.images.shape[0]} images")
        object.__setattr__(self, "images", _readonly(self.images))
        if self.labels is not None:
            object.__setattr__(self, "labels", _readonly(self.labels.astype(np.int32)))

    def __len__(self) -> int:
        return self.images.shape[0]

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return tuple(self.images.shape[1:])

    def get(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images (len(indices), H, W, C)."""
        return self.images[np.asarray(indices)]

    def select(self, indices: np.ndarray, name: Optional[str] = None) -> "ArraySource":
        idx = np.asarray(indices)
        return ArraySource(self.images[idx], None if self.labels is None else self.labels[idx],
                           name or self.name, self.class_names, self.unsplit)


class TfdsSource:
    """A tfds split read lazily by index through ``tfds.data_source`` (random access, no TensorFlow).

    ``get(indices)`` reads, checks, resizes and center-crops those examples only, so data sets larger
    than memory work. ``labels`` (int32 (N,), or None without a 'label' feature) reads every example once
    on first use. ``to_array()`` reads everything into an :class:`ArraySource`.
    """

    def __init__(self, ds, *, name: str, image_size: int, channels: int, index: Optional[np.ndarray] = None,
                 has_labels: bool = False, field: str = "data.source"):
        self._ds = ds
        self.name = name
        self._size = image_size
        self._channels = channels
        self._index = None if index is None else _readonly(np.asarray(index, dtype=np.int64))
        self._has_labels = has_labels
        self._field = field
        self._labels: Optional[np.ndarray] = None
        self._batched_reads = hasattr(ds, "__getitems__")
        if len(self) == 0:
            raise DataError(f"{field}={name!r}: the source is empty (0 examples)")

    def __len__(self) -> int:
        return len(self._ds) if self._index is None else len(self._index)

    @property
    def image_shape(self) -> tuple[int, int, int]:
        return (self._size, self._size, self._channels)

    def _read(self, indices: Sequence[int]) -> list:
        keys = [int(i) for i in (indices if self._index is None else self._index[np.asarray(indices)])]
        if self._batched_reads:
            return list(self._ds.__getitems__(keys))
        return [self._ds[k] for k in keys]

    def _image(self, ex: dict) -> np.ndarray:
        img = np.asarray(ex["image"])
        if img.ndim == 2:
            img = img[..., None]
        if img.dtype != np.uint8:
            raise DataError(f"{self._field}={self.name!r}: image dtype {img.dtype} is not supported; "
                            "allowed: uint8")
        if img.shape[-1] != self._channels:
            raise DataError(f"data.channels={self._channels} but {self._field}={self.name!r} has "
                            f"{img.shape[-1]} channel(s); set data.channels={img.shape[-1]}")
        return _resize_center_crop(img, self._size)

    def get(self, indices: np.ndarray) -> np.ndarray:
        """uint8 images (len(indices), S, S, C)."""
        exs = self._read(np.asarray(indices).reshape(-1))
        out = np.empty((len(exs),) + self.image_shape, np.uint8)
        for k, ex in enumerate(exs):
            out[k] = self._image(ex)
        return out

    @property
    def labels(self) -> Optional[np.ndarray]:
        if not self._has_labels:
            return None
        if self._labels is None:
            labels = np.empty(len(self), np.int32)
            for start in range(0, len(self), 1024):
                idx = np.arange(start, min(start + 1024, len(self)))
                labels[idx] = [int(ex["label"]) for ex in self._read(idx)]
            self._labels = _readonly(labels)
        return self._labels

    def select(self, indices: np.ndarray, name: Optional[str] = None) -> "TfdsSource":
        base = np.arange(len(self._ds)) if self._index is None else self._index
        out = TfdsSource(self._ds, name=name or self.name, image_size=self._size, channels=self._channels,
                         index=base[np.asarray(indices)], has_labels=self._has_labels, field=self._field)
        if self._labels is not None:
            out._labels = _readonly(self._labels[np.asarray(indices)])
        return out

    def to_array(self) -> ArraySource:
        idx = np.arange(len(self))
        return ArraySource(self.get(idx), self.labels, self.name)


Source = Union[ArraySource, TfdsSource]

# ----------------------------------------------------------------------------------------------------------
# resizing


def _resize_center_crop(img: np.ndarray, size: int) -> np.ndarray:
    """uint8 (H, W, C) → (size, size, C): bilinear resize of the shorter side to ``size``, center crop."""
    h, w, c = img.shape
    if (h, w) == (size, size):
        return img
    scale = size / min(h, w)
    nh, nw = max(size, round(h * scale)), max(size, round(w * scale))
    bilinear = Image.Resampling.BILINEAR
    if c == 3:
        out = np.asarray(Image.fromarray(img, "RGB").resize((nw, nh), bilinear))
    else:
        out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(img[..., k]), "L")
                                   .resize((nw, nh), bilinear)) for k in range(c)], axis=-1)
    top, left = (nh - size) // 2, (nw - size) // 2
    return out[top:top + size, left:left + size]


def _resize_all(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([_resize_center_crop(im, size) for im in images])

# ----------------------------------------------------------------------------------------------------------
# source strings


_OPTIONS = {"digits": ("classes",), "tfds": ("classes", "data_dir"), "folder": ("classes",),
            "npz": ("classes",), "photos": ("seed", "crops")}
#: the source kinds a source string may start with
SOURCES = tuple(_OPTIONS)
_VERSION = re.compile(r"^\d+(\.(\d+|\*))*$")


def _split_tokens(s: str) -> list[str]:
    """Splits on ':' outside square brackets (tfds slices such as ``train[:90%]`` keep their colon)."""
    tokens, depth, cur = [], 0, []
    for ch in s:
        depth += (ch == "[") - (ch == "]")
        if ch == ":" and depth == 0:
            tokens.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    tokens.append("".join(cur))
    return tokens


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A parsed source string: ``kind`` (one of :data:`SOURCES`), ``target`` (tfds name with version, or a path;
    "" for digits), ``split`` (None when the string names none) and the ``key=value`` ``options``."""

    kind: str
    target: str
    split: Optional[str]
    options: dict


def parse_source(source: str, field: str = "data.source") -> SourceSpec:
    """Splits a source string (grammar in :func:`load_source`); one DataError naming ``field`` if it is malformed."""
    if not isinstance(source, str) or not source.strip():
        raise DataError(f"{field}={source!r}: expected a source string; allowed: 'digits[:split]', "
                        "'photos[:split]', 'tfds:<name>[:split]', 'folder:<path>', 'npz:<path>'")
    kind, _, rest = source.strip().partition(":")
    if kind not in _OPTIONS:
        raise DataError(f"{field}={source!r}: unknown source kind {kind!r}; allowed: {sorted(_OPTIONS)}")
    tokens = _split_tokens(rest) if rest else []
    options = {}
    while tokens and re.match(r"^[A-Za-z_]+=", tokens[-1]):
        key, _, value = tokens.pop().partition("=")
        if key not in _OPTIONS[kind]:
            raise DataError(f"{field}={source!r}: unknown option {key!r} for {kind!r} sources; "
                            f"allowed: {list(_OPTIONS[kind])}")
        options[key] = value
    split = None
    if kind == "digits":
        if len(tokens) > 1:
            raise DataError(f"{field}={source!r}: expected 'digits[:split][:classes=…]'")
        split = tokens[0] if tokens and tokens[0] else None
        target = ""
    elif kind == "tfds":
        if not tokens or not tokens[0]:
            raise DataError(f"{field}={source!r}: expected 'tfds:<name>[:version][:split]', e.g. 'tfds:mnist'")
        target = tokens.pop(0)
        if tokens and _VERSION.match(tokens[0]):
            target += ":" + tokens.pop(0)
        if len(tokens) > 1:
            raise DataError(f"{field}={source!r}: expected 'tfds:<name>[:version][:split]'")
        split = tokens[0] if tokens and tokens[0] else None
    elif kind == "photos":
        split, target = _parse_photos(tokens, options, source, field), ""
    else:
        target = ":".join(tokens)
        if not target:
            raise DataError(f"{field}={source!r}: expected '{kind}:<path>'")
    return SourceSpec(kind, target, split, options)


def parse_classes(spec: str) -> tuple[int, ...]:
    """``"0-4"`` → (0, 1, 2, 3, 4); ``"1,3,7"``; ``"0-2,7"``. Sorted, unique; DataError naming ``classes=``."""
    try:
        return parse_int_ranges(spec, field="classes", example="0-2,7")
    except ValueError as e:
        raise DataError(str(e)) from None

# ----------------------------------------------------------------------------------------------------------
# digits


DIGITS_NUM_TRAIN = 1617
_DIGITS_SPLIT_SEED = 20220808  # constant on purpose: the split must not move with config.seed


@functools.lru_cache(maxsize=4)
def _digits_all(image_size: int) -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    d = load_digits()
    u8 = np.rint(d.images * (255.0 / 16.0)).astype(np.uint8)[..., None]  # 0‥16 → 0‥255
    return _readonly(_resize_all(u8, image_size)), _readonly(d.target.astype(np.int32))


def _digits_split_indices(n: int, split: str, field: str) -> np.ndarray:
    perm = np.random.default_rng(_DIGITS_SPLIT_SEED).permutation(n)
    if split == "train":
        return np.sort(perm[:DIGITS_NUM_TRAIN])
    if split == "test":
        return np.sort(perm[DIGITS_NUM_TRAIN:])
    if split == "all":
        return np.arange(n)
    raise DataError(f"{field}: digits has no split {split!r}; allowed: 'train' (90 %), 'test' (10 %), 'all'")


def _load_digits(spec: SourceSpec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
    if channels != 1:
        raise DataError(f"data.channels={channels} but {field}='digits' has 1 channel; set data.channels=1")
    images, labels = _digits_all(image_size)
    idx = _digits_split_indices(images.shape[0], split, field)
    return ArraySource(images[idx], labels[idx], f"digits:{split}")

# ----------------------------------------------------------------------------------------------------------
# photos


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
    return tuple(_readonly(np.asarray(b.images[i], np.uint8)) for i in order)


def _photo_columns(width: int, split: str) -> tuple[int, int]:
    """The columns [c0, c1) a split crops from: test = the right quarter, train = the rest."""
    edge = width - width // 4
    return (edge, width) if split == "test" else (0, edge)


def _photo_option(spec_options: dict, key: str, default: int, lo: int, source: str, field: str) -> int:
    value = spec_options.get(key)
    if value is None:
        return default
    if not re.fullmatch(r"\d+", value) or int(value) < lo:
        raise DataError(f"{field}={source!r}: {key}={value!r} must be an integer ≥ {lo}")
    return int(value)


def _parse_photos(tokens: list, options: dict, source: str, field: str) -> Optional[str]:
    """The split of a ``photos[:split][:seed=…][:crops=…]`` string (options checked here, before any load)."""
    if len(tokens) > 1 or (tokens and tokens[0] not in ("", "train", "test", "all")):
        raise DataError(f"{field}={source!r}: expected 'photos[:split][:seed=N][:crops=N]' with split "
                        "'train', 'test' (the right quarter of each photograph, fixed) or 'all'")
    _photo_option(options, "seed", 0, 0, source, field)
    _photo_option(options, "crops", 1, 1, source, field)
    return tokens[0] if tokens and tokens[0] else None


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


def _load_photos(spec: SourceSpec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
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

# ----------------------------------------------------------------------------------------------------------
# folder


_IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")


def _read_image_file(path: str, channels: int) -> np.ndarray:
    with Image.open(path) as im:
        im.load()
        if im.mode.startswith("I;16"):  # 16-bit grey PNG: keep the top 8 bits
            im = Image.fromarray((np.asarray(im, dtype=np.uint16) >> 8).astype(np.uint8), "L")
        arr = np.asarray(im.convert("L" if channels == 1 else "RGB"))
    return arr[..., None] if arr.ndim == 2 else arr


def _load_folder(spec: SourceSpec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
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
            return _resize_center_crop(_read_image_file(path, channels), image_size)
        except Exception as e:  # noqa: BLE001 — any decoder failure means "unreadable"; reported below
            return e

    with concurrent.futures.ThreadPoolExecutor(max_workers=min(8, os.cpu_count() or 1)) as pool:
        results = list(pool.map(read, paths))
    bad = [(p, r) for p, r in zip(paths, results) if isinstance(r, Exception)]
    if bad:
        shown = "; ".join(f"{p} ({type(e).__name__}: {e})" for p, e in bad[:10])
        log.warning("folder source %s: skipped %d unreadable file(s): %s%s", root, len(bad), shown,
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

# ----------------------------------------------------------------------------------------------------------
# npz / npy


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


def _load_npz(spec: SourceSpec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
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
    images = _resize_all(_to_uint8(arr, where), image_size)
    return ArraySource(images, labels, f"npz:{path}" + ("" if unsplit else f":{split}"), unsplit=unsplit)

# ----------------------------------------------------------------------------------------------------------
# tfds


def _tfds_hint(name: str, data_dir: Optional[str]) -> str:
    dd = f", data_dir={data_dir!r}" if data_dir else ""
    return (f"prepare it once in the array_record format (needs TensorFlow, e.g. pip install tensorflow-cpu, and "
            f"network):\n  python -c \"import tensorflow_datasets as tfds; tfds.builder({name!r}{dd}, "
            f"file_format='array_record').download_and_prepare()\"\nor set data.download=True to let tfds do that "
            "on first use (also needs TensorFlow and network for most catalog data sets)")


def _load_tfds(spec: SourceSpec, split: str, image_size: int, channels: int, download: bool,
               field: str) -> TfdsSource:
    import tensorflow_datasets as tfds  # lazy: ~0.3 s and only needed here

    name, data_dir = spec.target, spec.options.get("data_dir") or None
    where = f"{field}='tfds:{name}' (split {split!r})"
    try:
        ds = tfds.data_source(name, split=split, data_dir=data_dir, download=download,
                              builder_kwargs={"file_format": "array_record"})
    except tfds.core.registered.DatasetNotFoundError as e:
        raise DataError(f"{where}: tfds knows no data set {name!r}") from e
    except Exception as e:  # noqa: BLE001 — tfds raises KeyError/NotImplementedError/… for unprepared data
        try:
            builder = tfds.builder(name, data_dir=data_dir, file_format="array_record")
            prepared, location = builder.is_prepared(), builder.data_dir
        except Exception:  # noqa: BLE001
            prepared, location = False, data_dir or "the default tfds data_dir"
        if not prepared:
            raise DataError(f"{where}: the data set is not prepared at {location} and data.download="
                            f"{download}; {_tfds_hint(name, data_dir)}\n(tfds said: {type(e).__name__}: {e})"
                            ) from e
        raise DataError(f"{where}: tfds could not open it ({type(e).__name__}: {e})") from e

    features = ds.dataset_info.features
    if "image" not in features:
        raise DataError(f"{where}: no 'image' feature; features are {list(features.keys())}")
    shape = tuple(features["image"].shape)
    data_c = shape[-1] if len(shape) == 3 else (1 if len(shape) == 2 else None)
    if data_c is not None and data_c != channels:
        raise DataError(f"data.channels={channels} but {where} has {data_c} channel(s); "
                        f"set data.channels={data_c}")
    has_labels = "label" in features and tuple(getattr(features["label"], "shape", ())) == ()
    return TfdsSource(ds, name=f"tfds:{name}:{split}", image_size=image_size, channels=channels,
                      has_labels=has_labels, field=field)

# ----------------------------------------------------------------------------------------------------------
# labels of a class-conditional model


def label_free_kinds() -> tuple[str, ...]:
    """Source kinds that never deliver labels (a conditional config on them is refused by the validator)."""
    return ("photos",)


def check_labels(source: Source, num_classes: int, *, source_string: str, field: str = "data.source") -> np.ndarray:
    """The int32 labels (N,) of ``source`` for a model of ``num_classes`` classes; one DataError naming ``field``
    and model.num_classes when the source has none or one lies outside [0, num_classes)."""
    labels = source.labels
    if labels is None:
        raise DataError(f"model.num_classes={num_classes} needs labels, but {field}={source_string!r} has none "
                        "(labels come from digits, a tfds set with a 'label' feature, npz 'labels' / "
                        "'<split>_labels', or a folder's class sub-directories); set model.num_classes=0 for an "
                        "unconditional model")
    lo, hi = int(labels.min()), int(labels.max())
    if lo < 0 or hi >= num_classes:
        raise DataError(f"model.num_classes={num_classes}: {field}={source_string!r} has labels {lo} … {hi}; "
                        f"allowed: 0 … {num_classes - 1} (raise model.num_classes to at least {hi + 1})")
    return labels

# ----------------------------------------------------------------------------------------------------------
# entry points


def load_source(source: str, *, split: str, image_size: int, channels: int, download: bool = False,
                field: str = "data.source", require_split: bool = False) -> Source:
    """Opens a source string as uint8 images (N, S, S, C) (+ int32 labels when known).

    Source strings (trailing ``key=value`` options; ``classes=0-4`` / ``1,3,7`` keeps those labels)::

        digits[:split][:classes=…]           scikit-learn's 1797 8×8 digits; train = a fixed 90 %, test, all
        photos[:split][:seed=…][:crops=…]    crops of scikit-learn's two sample photographs (RGB): train =
                                             8192 seeded crops of the left ¾, test = 512 fixed crops of the
                                             right quarter, all; each a k·S window (k = 1…4) box-averaged to S
        tfds:<name>[:version][:split][:classes=…][:data_dir=…]   ``tfds.data_source``, read lazily by index
        folder:<path>[:classes=…]            PNG/JPEG files, recursively; <path>/<split> if it exists (else all
                                             of <path>: no splits); labels from the first directory level
                                             (integer names, else sorted order)
        npz:<path>[:classes=…]               split layout: arrays 'train', 'test', … (or '<split>_images'), labels
                                             '<split>_labels'; else no splits: key 'images' (+ optional
                                             'labels') or the only array; or an .npy

    A split in the string wins over ``split``. Images are resized bilinearly (shorter side → S, center crop).
    Channels must equal C, except that folder files are converted (grey → RGB by repetition, RGB → grey by
    ITU-R 601-2 luma, alpha dropped). npz floats must lie in [0, 1] or [−1, 1] (1e-3 tolerance), then are
    quantized to uint8.

    Args:
      source: e.g. ``"digits"``, ``"tfds:mnist"``, ``"folder:/data/mnist"``.
      split: used when the source string names none (``"train"``, ``config.data.eval_split``).
      image_size: S (``data.image_size``); channels: C (``data.channels``).
      download: tfds only: let tfds download and prepare a missing data set (``data.download``).
      field: the config field the string came from, for error messages.
      require_split: refuse (DataError) unless the images are the requested split itself: not a source
        without splits (see :attr:`ArraySource.unsplit`), nor a source string naming another split.

    Returns an :class:`ArraySource` (digits, folder, npz) or a lazily read :class:`TfdsSource`.
    Raises :class:`DataError` (a ValueError) for every problem with the data.
    """
    image_size = check_int(image_size, field="data.image_size", lo=1)
    channels = check_int(channels, field="data.channels", lo=1)
    spec = parse_source(source, field)
    if require_split and spec.split and spec.split != split:
        raise DataError(f"{field}={source!r} names split {spec.split!r}, which wins over the held-out split "
                        f"{split!r}: these would be scored as held-out images; name no split in {field} "
                        f"(training reads 'train', evaluation data.eval_split)")
    requested, split = split, spec.split or split
    if not split or not isinstance(split, str):
        raise DataError(f"{field}={source!r}: no split given (split={split!r})")
    if spec.split and spec.split != split:
        log.info("%s=%r names split %r; it wins over the requested one", field, source, spec.split)
    if spec.kind == "digits":
        src = _load_digits(spec, split, image_size, channels, field)
    elif spec.kind == "tfds":
        src = _load_tfds(spec, split, image_size, channels, bool(download), field)
    elif spec.kind == "photos":
        src = _load_photos(spec, split, image_size, channels, field)
    elif spec.kind == "folder":
        src = _load_folder(spec, split, image_size, channels, field)
    else:
        src = _load_npz(spec, split, image_size, channels, field)
    if "classes" in spec.options:
        wanted = parse_classes(spec.options["classes"])
        if src.labels is None:
            raise DataError(f"{field}={source!r}: classes= needs labels and this source has none")
        keep = np.flatnonzero(np.isin(src.labels, wanted))
        if keep.size == 0:
            raise DataError(f"{field}={source!r}: no example has a label in {list(wanted)}; labels present: "
                            f"{np.unique(src.labels).tolist()}")
        src = src.select(keep, name=f"{src.name}:classes={spec.options['classes']}")
    if require_split and getattr(src, "unsplit", ""):
        raise DataError(f"{field}={source!r} has no held-out split {requested!r}, and scoring on it would score "
                        f"the training images: {src.unsplit}")
    return src


def source_from_config(config, *, split: str = "train", field: str = "data.source",
                       require_split: bool = False) -> Source:
    """:func:`load_source` of the config field ``field`` ("data.source" or "data.end_source") with
    ``config.data.{image_size, channels, download}``."""
    d = config.data
    source = d[field.split(".", 1)[1]]
    return load_source(source, split=split, image_size=int(d.image_size), channels=int(d.channels),
                       download=bool(d.get("download", False)), field=field, require_split=require_split)


def load_images(config, *, split: str, field: str = "data.source", num: Optional[int] = None,
                seed: Optional[int] = None, require_split: bool = False) -> np.ndarray:
    """Images of a config's source as float32 (N, H, W, C) in [−1, 1]: the one way library code reads data.

    ``num`` (None: all) images: the first ``num`` when ``seed`` is None, else a sorted random subset drawn
    with ``numpy.random.default_rng(seed)``. ``field``: "data.source" or "data.end_source".
    ``require_split``: see :func:`load_source` (held-out images must come from a real held-out split).
    """
    src = source_from_config(config, split=split, field=field, require_split=require_split)
    n = len(src) if num is None else min(int(num), len(src))
    if seed is None or n == len(src):
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(int(seed)).choice(len(src), n, replace=False))
    return normalize(src.get(idx))
