"""Image sources: a source string (``config.data.source``) → uint8 images (N, S, S, C) and int32 labels.

Kinds: ``digits`` and ``photos`` (shipped), ``tfds:<name>`` (random access, no TensorFlow), ``folder:<path>``,
``npz:<path>``; the grammar is in :func:`load_source`. Library code reads a config's images through
:func:`load_images` (float32 in [−1, 1], x = u8 / 127.5 − 1, NHWC).
"""
from __future__ import annotations

from typing import Optional, Union

import numpy as np
from absl import logging

from jaxdiff.checks import check_int
from jaxdiff.data.arrays import ArraySource, DataError, denormalize, normalize
from jaxdiff.data.folder import load_folder
from jaxdiff.data.npz import load_npz
from jaxdiff.data.shipped import DIGITS_NUM_TRAIN, PHOTOS_NUM_CROPS, load_digits, load_photos, photo_crop_boxes
from jaxdiff.data.spec import SOURCES, SourceSpec, parse_classes, parse_source
from jaxdiff.data.tfds_source import TfdsSource, load_tfds

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

Source = Union[ArraySource, TfdsSource]

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
        logging.info("%s=%r names split %r; it wins over the requested one", field, source, spec.split)
    if spec.kind == "digits":
        src = load_digits(spec, split, image_size, channels, field)
    elif spec.kind == "tfds":
        src = load_tfds(spec, split, image_size, channels, bool(download), field)
    elif spec.kind == "photos":
        src = load_photos(spec, split, image_size, channels, field)
    elif spec.kind == "folder":
        src = load_folder(spec, split, image_size, channels, field)
    else:
        src = load_npz(spec, split, image_size, channels, field)
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
