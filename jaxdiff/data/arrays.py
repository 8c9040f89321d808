"""Images in memory: uint8 (N, H, W, C) ↔ float32 in [−1, 1], the array source every loader returns, resizing.

:class:`ArraySource` (+ int32 labels) is what the digits, photos, folder and npz loaders return; a tfds split is
read lazily instead (:class:`~jaxdiff.data.tfds_source.TfdsSource`) with the same ``get``/``labels``/``select``.
"""
from __future__ import annotations

import dataclasses
from typing import Any, Optional

import numpy as np
from PIL import Image

__all__ = ["DataError", "normalize", "denormalize", "readonly", "ArraySource", "resize_center_crop", "resize_all"]


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


def readonly(a: np.ndarray) -> np.ndarray:
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
        object.__setattr__(self, "images", readonly(self.images))
        if self.labels is not None:
            object.__setattr__(self, "labels", readonly(self.labels.astype(np.int32)))

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


def resize_center_crop(img: np.ndarray, size: int) -> np.ndarray:
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


def resize_all(images: np.ndarray, size: int) -> np.ndarray:
    if images.shape[1:3] == (size, size):
        return images
    return np.stack([resize_center_crop(im, size) for im in images])
