"""``tfds:<name>`` sources: a tensorflow-datasets split read lazily by index through ``tfds.data_source``
(array_record, random access, no TensorFlow); never downloaded unless ``data.download`` asks.
"""
from __future__ import annotations

from typing import Optional, Sequence

import numpy as np

from jaxdiff.data.arrays import ArraySource, DataError, readonly, resize_center_crop
from jaxdiff.data.spec import SourceSpec

__all__ = ["TfdsSource", "load_tfds"]


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
        self._index = None if index is None else readonly(np.asarray(index, dtype=np.int64))
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
        return resize_center_crop(img, self._size)

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
            self._labels = readonly(labels)
        return self._labels

    def select(self, indices: np.ndarray, name: Optional[str] = None) -> "TfdsSource":
        base = np.arange(len(self._ds)) if self._index is None else self._index
        out = TfdsSource(self._ds, name=name or self.name, image_size=self._size, channels=self._channels,
                         index=base[np.asarray(indices)], has_labels=self._has_labels, field=self._field)
        if self._labels is not None:
            out._labels = readonly(self._labels[np.asarray(indices)])
        return out

    def to_array(self) -> ArraySource:
        idx = np.arange(len(self))
        return ArraySource(self.get(idx), self.labels, self.name)


def _tfds_hint(name: str, data_dir: Optional[str]) -> str:
    dd = f", data_dir={data_dir!r}" if data_dir else ""
    return (f"prepare it once in the array_record format (needs TensorFlow, e.g. pip install tensorflow-cpu, and "
            f"network):\n  python -c \"import tensorflow_datasets as tfds; tfds.builder({name!r}{dd}, "
            f"file_format='array_record').download_and_prepare()\"\nor set data.download=True to let tfds do that "
            "on first use (also needs TensorFlow and network for most catalog data sets)")


def load_tfds(spec: SourceSpec, split: str, image_size: int, channels: int, download: bool,
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
