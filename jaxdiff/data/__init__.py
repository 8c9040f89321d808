"""Image sources → seeded, resumable, per-process batches → globally sharded arrays.

:mod:`~jaxdiff.data.sources` (source strings, loaders, :func:`load_images`), :mod:`~jaxdiff.data.batching`
(:class:`Batcher`: batch = f(seed, step)), :mod:`~jaxdiff.data.sharding` (:func:`to_global_array`).
"""
from jaxdiff.data.batching import Batcher, end_source, iterate_batches
from jaxdiff.data.sharding import to_global_array
from jaxdiff.data.sources import (
    DIGITS_NUM_TRAIN,
    SOURCES,
    ArraySource,
    DataError,
    Source,
    SourceSpec,
    TfdsSource,
    denormalize,
    load_images,
    load_source,
    normalize,
    parse_classes,
    parse_source,
    source_from_config,
)

__all__ = [
    "DataError",
    "ArraySource",
    "TfdsSource",
    "Source",
    "SOURCES",
    "SourceSpec",
    "parse_source",
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
