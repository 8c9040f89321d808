"""Image sources → seeded, resumable, per-process batches → globally sharded arrays.

Sources are named by one string (``config.data.source``, ``config.data.end_source``)::

    digits[:split][:classes=…]              scikit-learn's 1797 8×8 digits (shipped, no network)
    tfds:<name>[:version][:split][:classes=…][:data_dir=…]
                                            tensorflow-datasets through ``tfds.data_source`` (random access,
                                            array_record files, no TensorFlow); read lazily by index
    folder:<path>[:classes=…]               PNG/JPEG files under <path>, recursively
    npz:<path>[:classes=…]                  an .npz (key 'images', or its only array) or an .npy

Options are trailing ``key=value`` tokens. ``classes=0-4`` or ``classes=1,3,7`` (or ``0-2,7``) keeps the
examples with those integer labels; it needs a source with labels. A split named in the source string wins
over the ``split`` argument (so ``digits:train:classes=5-9`` is the same data for every split); without one,
``split`` decides:

* digits: ``train`` = a fixed 90 % (1617 images), ``test`` = the other 10 % (180), ``all``. The split comes
  from a constant seed, independent of ``config.seed``.
* tfds: any tfds split string (``train``, ``test``, ``train[:90%]``, …).
* folder: ``<path>/<split>`` when that directory exists, else ``<path>`` itself for every split.
  Labels come from the first directory level below it (``<root>/<class>/<n>.png``, as the Cold Diffusion
  scripts write MNIST and CIFAR-10): integer names are the labels, other names are numbered in sorted order.
* npz: one array for every split; an optional ``labels`` array of length N goes with ``images``.

Every source ends as uint8 images of shape (N, S, S, C), S = ``image_size``, C = ``channels``:

* Resizing is bilinear (PIL, antialiased when shrinking): the shorter side goes to S, then a centre crop.
* Channels: the data's channel count must equal ``channels`` (error naming ``data.channels``), with one
  exception: a folder holds files, each with its own PIL mode, so every file is converted to
  ``channels`` — grey → RGB by repetition, colour → grey by PIL's ITU-R 601-2 luma
  (L = 0.299 R + 0.587 G + 0.114 B); alpha is dropped. (Image writers such as torchvision's
  ``save_image`` store MNIST as 3-channel PNGs, so this conversion is needed, not a convenience.)
* npz/npy values: uint8 is taken as 0‥255; floats must be finite and lie in [0, 1] (min ≥ 0) or, when any
  value is negative, in [−1, 1] (a tolerance of 1e-3, then clipped); they are quantised to uint8. Every other
  dtype is an error.

Batches are float32 in [−1, 1] (x = u8 / 127.5 − 1), NHWC. :class:`Batcher` makes the batch of step ``s`` a
pure function of (seed, s): the examples of global position g = s·B + j (j < B, the global batch size) are
epoch e = g // N, entry g % N of a permutation drawn from (seed, e). A run resumed at step s sees exactly the
batches an uninterrupted run would, and process p of P takes the contiguous rows [p·B/P, (p+1)·B/P) of that
global batch. The optional horizontal flip of row j at step s is a hash of (seed, s, j), so it does not depend
on the number of processes or devices.
"""
from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import os
import re
from typing import Any, Iterator, Optional, Sequence, Union

import jax
import numpy as np
from absl import logging
from jax.sharding import NamedSharding, PartitionSpec as P
from PIL import Image

__all__ = [
    "DataError",
    "ArraySource",
    "TfdsSource",
    "Source",
    "load_source",
    "source_from_config",
    "load_images",
    "Batcher",
    "iterate_batches",
    "to_global_array",
    "end_source",
    "normalize",
    "denormalize",
    "parse_classes",
    "DIGITS_NUM_TRAIN",
]


class DataError(ValueError):
    """A data source cannot be read as asked: what is wrong, where, and how to fix it."""


# ----------------------------------------------------------------------------------------------------------
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
    """An in-memory source: ``images`` uint8 (N, H, W, C), ``labels`` int32 (N,) or None (both read-only)."""

    images: np.ndarray
    labels: Optional[np.ndarray]
    name: str
    class_names: Optional[tuple[str, ...]] = None

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
                           name or self.name, self.class_names)


class TfdsSource:
    """A tfds split read lazily by index through ``tfds.data_source`` (random access, no TensorFlow).

    ``get(indices)`` reads, checks, resizes and centre-crops those examples only, so data sets larger
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
            try:
                return list(self._ds.__getitems__(keys))
            except TypeError:
                # tfds.testing.mock_data (4.9.10) installs __getitems__ as a plain attribute of a MagicMock,
                # so it is called without `self` and raises TypeError; single reads work there.
                self._batched_reads = False
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
    """uint8 (H, W, C) → (size, size, C): bilinear resize of the shorter side to ``size``, centre crop."""
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
            "npz": ("classes",)}
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
class _Spec:
    kind: str
    target: str  # tfds name (with version) or a path; "" for digits
    split: Optional[str]
    options: dict


def _parse(source: str, field: str) -> _Spec:
    if not isinstance(source, str) or not source.strip():
        raise DataError(f"{field}={source!r}: expected a source string; allowed: 'digits[:split]', "
                        "'tfds:<name>[:split]', 'folder:<path>', 'npz:<path>'")
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
    else:
        target = ":".join(tokens)
        if not target:
            raise DataError(f"{field}={source!r}: expected '{kind}:<path>'")
    return _Spec(kind, target, split, options)


def parse_classes(spec: str) -> tuple[int, ...]:
    """``"0-4"`` → (0, 1, 2, 3, 4); ``"1,3,7"``; ``"0-2,7"``. Sorted, unique."""
    out = set()
    for part in spec.split(","):
        part = part.strip()
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise DataError(f"classes={spec!r}: expected integers and ranges such as '0-4', '1,3,7' or "
                            f"'0-2,7'; bad part {part!r}")
        lo = int(m.group(1))
        out.update(range(lo, int(m.group(2) or lo) + 1))
    return tuple(sorted(out))


# ----------------------------------------------------------------------------------------------------------
# digits

#: the number of training images in the fixed digits split (90 % of 1797); the rest is "test"
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


def _load_digits(spec: _Spec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
    if channels != 1:
        raise DataError(f"data.channels={channels} but {field}='digits' has 1 channel; set data.channels=1")
    images, labels = _digits_all(image_size)
    idx = _digits_split_indices(images.shape[0], split, field)
    return ArraySource(images[idx], labels[idx], f"digits:{split}")


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


def _load_folder(spec: _Spec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
    root = os.path.expanduser(spec.target)
    if not os.path.isdir(root):
        raise DataError(f"{field}='folder:{spec.target}': {root!r} is not a directory")
    if channels not in (1, 3):
        raise DataError(f"data.channels={channels}: folder sources give 1 (grey) or 3 (RGB) channels")
    if split and os.path.isdir(os.path.join(root, split)):
        root = os.path.join(root, split)
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
    return ArraySource(images, labels, f"folder:{root}", class_names)


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


def _load_npz(spec: _Spec, split: str, image_size: int, channels: int, field: str) -> ArraySource:
    path = os.path.expanduser(spec.target)
    where = f"{field}='npz:{spec.target}'"
    if not os.path.isfile(path):
        raise DataError(f"{where}: no such file {path!r}")
    labels = None
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
            try:  # .npz members are read here, lazily: their errors too
                if "images" in keys:
                    arr = loaded["images"]
                    labels = loaded["labels"] if "labels" in keys else None
                elif len(keys) == 1:
                    arr = loaded[keys[0]]
                else:
                    raise DataError(f"{where}: expected a key 'images' or a single array, found keys {keys}")
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
        raise DataError(f"{where}: 'labels' must be integers of shape ({arr.shape[0]},), got "
                        f"{labels.dtype} {labels.shape}")
    images = _resize_all(_to_uint8(arr, where), image_size)
    return ArraySource(images, labels, f"npz:{path}")


# ----------------------------------------------------------------------------------------------------------
# tfds


def _tfds_hint(name: str, data_dir: Optional[str]) -> str:
    dd = f", data_dir={data_dir!r}" if data_dir else ""
    return (f"prepare it once in the array_record format (needs TensorFlow, e.g. pip install tensorflow-cpu, and "
            f"network):\n  python -c \"import tensorflow_datasets as tfds; tfds.builder({name!r}{dd}, "
            f"file_format='array_record').download_and_prepare()\"\nor set data.download=True to let tfds do that "
            "on first use (also needs TensorFlow and network for most catalog data sets)")


def _load_tfds(spec: _Spec, split: str, image_size: int, channels: int, download: bool,
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
# entry points


def _check_int(name: str, value, lo: int) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < lo:
        raise ValueError(f"{name}={value!r}: expected an integer >= {lo}")
    return int(value)


def load_source(source: str, *, split: str, image_size: int, channels: int, download: bool = False,
                field: str = "data.source") -> Source:
    """Opens a source string as uint8 images (N, S, S, C) (+ int32 labels when known).

    Args:
      source: see the module docstring, e.g. ``"digits"``, ``"tfds:mnist"``, ``"folder:/data/mnist"``.
      split: used when the source string names none (``"train"``, ``config.data.eval_split``).
      image_size: S (``data.image_size``); channels: C (``data.channels``).
      download: tfds only: let tfds download and prepare a missing data set (``data.download``).
      field: the config field the string came from, for error messages.

    Returns an :class:`ArraySource` (digits, folder, npz) or a lazily read :class:`TfdsSource`.
    Raises :class:`DataError` (a ValueError) for every problem with the data.
    """
    image_size = _check_int("data.image_size", image_size, 1)
    channels = _check_int("data.channels", channels, 1)
    spec = _parse(source, field)
    split = spec.split or split
    if not split or not isinstance(split, str):
        raise DataError(f"{field}={source!r}: no split given (split={split!r})")
    if spec.split and spec.split != split:
        logging.info("%s=%r names split %r; it wins over the requested one", field, source, spec.split)
    if spec.kind == "digits":
        src = _load_digits(spec, split, image_size, channels, field)
    elif spec.kind == "tfds":
        src = _load_tfds(spec, split, image_size, channels, bool(download), field)
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
    return src


def source_from_config(config, *, split: str = "train", field: str = "data.source") -> Source:
    """:func:`load_source` of the config field ``field`` ("data.source" or "data.end_source") with
    ``config.data.{image_size, channels, download}``."""
    d = config.data
    source = d[field.split(".", 1)[1]]
    return load_source(source, split=split, image_size=int(d.image_size), channels=int(d.channels),
                       download=bool(d.get("download", False)), field=field)


def load_images(config, *, split: str, field: str = "data.source", num: Optional[int] = None,
                seed: Optional[int] = None) -> np.ndarray:
    """Images of a config's source as float32 (N, H, W, C) in [−1, 1]: the one way library code reads data.

    ``num`` (None: all) images: the first ``num`` when ``seed`` is None, else a sorted random subset drawn
    with ``numpy.random.default_rng(seed)``. ``field``: "data.source" or "data.end_source".
    """
    src = source_from_config(config, split=split, field=field)
    n = len(src) if num is None else min(int(num), len(src))
    if seed is None or n == len(src):
        idx = np.arange(n)
    else:
        idx = np.sort(np.random.default_rng(int(seed)).choice(len(src), n, replace=False))
    return normalize(src.get(idx))


# ----------------------------------------------------------------------------------------------------------
# batches

_M64 = (1 << 64) - 1


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finaliser: a bijective avalanche hash of uint64 values (vectorised)."""
    x = np.asarray(x, dtype=np.uint64)
    with np.errstate(over="ignore"):
        x = x + np.uint64(0x9E3779B97F4A7C15)
        x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
        x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    return x ^ (x >> np.uint64(31))


def _derive_seed(seed: int, salt: int) -> int:
    return int(_mix64(np.uint64(seed & _M64) ^ np.uint64(salt)))


@functools.lru_cache(maxsize=16)
def _epoch_permutation(seed: int, epoch: int, n: int) -> np.ndarray:
    """The order of epoch ``epoch``: a permutation of range(n) drawn from (seed, epoch) alone."""
    return _readonly(np.random.default_rng([seed & _M64, epoch, 0x5EED]).permutation(n))


class Batcher:
    """Infinite, seeded, resumable batches of one source, sliced per process.

    ``batch(step)`` is a pure function of (seed, step): float32 (B/P, S, S, C) in [−1, 1], the rows
    [p·B/P, (p+1)·B/P) of global batch ``step`` (B = ``global_batch_size``, P processes, p this one).
    With ``with_labels=True`` it returns ``(images, labels int32 (B/P,))``.
    """

    _FLIP_SALT = 0xF11B

    def __init__(self, source: Source, *, global_batch_size: int, seed: int,
                 process_index: Optional[int] = None, process_count: Optional[int] = None,
                 random_flip: bool = False, with_labels: bool = False):
        process_index = jax.process_index() if process_index is None else process_index
        process_count = jax.process_count() if process_count is None else process_count
        self.global_batch_size = _check_int("train.batch_size", global_batch_size, 1)
        process_count = _check_int("process_count", process_count, 1)
        process_index = _check_int("process_index", process_index, 0)
        if process_index >= process_count:
            raise ValueError(f"process_index={process_index} must be < process_count={process_count}")
        if self.global_batch_size % process_count:
            raise ValueError(f"train.batch_size={global_batch_size} must be divisible by the number of "
                             f"processes ({process_count})")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
            raise ValueError(f"seed={seed!r}: expected an integer")
        if len(source) < 1:
            raise DataError(f"{source.name}: the source is empty")
        if with_labels and source.labels is None:
            raise DataError(f"{source.name}: labels were asked for but this source has none")
        self.source = source
        self.seed = int(seed)
        self.process_index, self.process_count = process_index, process_count
        self.local_batch_size = self.global_batch_size // process_count
        self.random_flip = bool(random_flip)
        self.with_labels = with_labels
        self._flip_key = _derive_seed(self.seed, self._FLIP_SALT)

    def _rows(self) -> np.ndarray:
        """Rows j of the global batch this process owns."""
        start = self.process_index * self.local_batch_size
        return np.arange(start, start + self.local_batch_size, dtype=np.int64)

    def indices(self, step: int) -> np.ndarray:
        """Source indices of this process's examples at ``step`` (int64 (B/P,))."""
        step = _check_int("step", step, 0)
        n = len(self.source)
        g = step * self.global_batch_size + self._rows()
        epoch, pos = g // n, g % n
        out = np.empty_like(g)
        for e in np.unique(epoch):
            sel = epoch == e
            out[sel] = _epoch_permutation(self.seed, int(e), n)[pos[sel]]
        return out

    def flips(self, step: int) -> np.ndarray:
        """bool (B/P,): whether row j of global batch ``step`` is mirrored; a hash of (seed, step, j)."""
        if not self.random_flip:
            return np.zeros(self.local_batch_size, bool)
        h = _mix64(_mix64(np.uint64(self._flip_key) ^ np.uint64(step)) ^ self._rows().astype(np.uint64))
        return (h >> np.uint64(63)).astype(bool)

    def batch(self, step: int):
        idx = self.indices(step)
        images = self.source.get(idx)
        flip = self.flips(step)
        if flip.any():
            images = images.copy()
            images[flip] = images[flip, :, ::-1]
        x = normalize(images)
        if self.with_labels:
            return x, np.asarray(self.source.labels[idx], np.int32)
        return x

    def __call__(self, start_step: int = 0) -> Iterator:
        step = _check_int("start_step", start_step, 0)
        while True:
            yield self.batch(step)
            step += 1


def iterate_batches(source: Source, *, global_batch_size: int, seed: int, process_index: Optional[int] = None,
                    process_count: Optional[int] = None, random_flip: bool = False, start_step: int = 0,
                    with_labels: bool = False) -> Iterator:
    """Yields ``Batcher(...).batch(s)`` for s = start_step, start_step + 1, … (forever).

    ``process_index``/``process_count`` default to ``jax.process_index()``/``jax.process_count()``.
    """
    return Batcher(source, global_batch_size=global_batch_size, seed=seed, process_index=process_index,
                   process_count=process_count, random_flip=random_flip, with_labels=with_labels)(start_step)


def end_source(config, *, split: str = "train", global_batch_size: Optional[int] = None,
               process_index: Optional[int] = None, process_count: Optional[int] = None) -> Optional[Batcher]:
    """A :class:`Batcher` over ``config.data.end_source`` (the images an interpolation moves toward).

    Same image size and channels as the main source, its own seed derived from ``config.seed`` (so its
    order differs from the main stream and is reproducible), the batch size of ``config.train.batch_size``
    unless given. Returns None when ``config.data.end_source`` is empty.
    """
    d = config.data
    if not d.end_source:
        return None
    src = load_source(d.end_source, split=split, image_size=d.image_size, channels=d.channels,
                      download=d.download, field="data.end_source")
    return Batcher(src, global_batch_size=global_batch_size or config.train.batch_size,
                   seed=_derive_seed(int(config.seed), 0xE17D), process_index=process_index,
                   process_count=process_count, random_flip=d.random_flip)


# ----------------------------------------------------------------------------------------------------------
# device placement


def to_global_array(local_batch, mesh: jax.sharding.Mesh, *, axis: str = "data"):
    """Places a process-local batch (a numpy array or a pytree of them, leading dim B/P) on ``mesh``.

    Returns global ``jax.Array``s of leading dim B, sharded ``NamedSharding(mesh, P(axis))``: each of the
    ``mesh.shape[axis]`` devices holds B / n_devices rows; process p's rows are its own local batch.
    """
    n_dev = mesh.shape[axis]
    me = jax.process_index()
    # rows per process must also split over this process's devices (checked for 1-D meshes; on others
    # jax itself validates the layout)
    n_local = (sum(1 for d in mesh.devices.flat if d.process_index == me) if len(mesh.axis_names) == 1
               else 0)
    sharding = NamedSharding(mesh, P(axis))

    def put(x):
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("to_global_array: a batch needs a leading batch dimension")
        global_b = x.shape[0] * jax.process_count()
        if global_b % n_dev or (n_local and x.shape[0] % n_local):
            raise ValueError(f"train.batch_size={global_b} must be divisible by the number of devices on the "
                             f"{axis!r} mesh axis ({n_dev}; {n_local} on this process)")
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, local_batch)
