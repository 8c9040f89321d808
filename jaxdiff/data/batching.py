"""Seeded, resumable, per-process batches: the batch of step s is a pure function of (seed, s).

Global position g = s·B + j (j < B, the global batch size) is entry g mod N of epoch ⌊g/N⌋'s permutation, drawn
from (seed, epoch); process p of P takes rows [p·B/P, (p+1)·B/P). The optional horizontal flip of row j at step s
is a hash of (seed, s, j). A resumed run sees exactly the batches an uninterrupted one would, on any number of
processes or devices. Batches are float32 (B/P, S, S, C) in [−1, 1].
"""
from __future__ import annotations

import functools
from typing import Iterator, Optional

import jax
import numpy as np

from jaxdiff.checks import check_int
from jaxdiff.data.arrays import DataError, normalize, readonly
from jaxdiff.data.sources import Source, source_from_config

__all__ = ["Batcher", "iterate_batches", "end_source"]


_M64 = (1 << 64) - 1
#: salt of the end source's seed (derived from config.seed, so its order differs from the main stream's)
_END_SOURCE_SALT = 0xE17D


def _mix64(x: np.ndarray) -> np.ndarray:
    """splitmix64 finalizer: a bijective avalanche hash of uint64 values (vectorized)."""
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
    return readonly(np.random.default_rng([seed & _M64, epoch, 0x5EED]).permutation(n))


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
        self.global_batch_size = check_int(global_batch_size, field="train.batch_size", lo=1)
        process_count = check_int(process_count, field="process_count", lo=1)
        process_index = check_int(process_index, field="process_index", lo=0)
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
        step = check_int(step, field="step", lo=0)
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
        step = check_int(start_step, field="start_step", lo=0)
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
    src = source_from_config(config, split=split, field="data.end_source")
    return Batcher(src, global_batch_size=global_batch_size or config.train.batch_size,
                   seed=_derive_seed(int(config.seed), _END_SOURCE_SALT), process_index=process_index,
                   process_count=process_count, random_flip=d.random_flip)
