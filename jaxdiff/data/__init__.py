"""Image sources → seeded, resumable, per-process batches → globally sharded arrays.

:mod:`~jaxdiff.data.sources` (source string → loader, labels, :func:`load_images`; the grammar in
:mod:`~jaxdiff.data.spec`, the loaders in ``arrays``, ``shipped``, ``tfds_source``, ``folder``, ``npz``),
:mod:`~jaxdiff.data.batching` (:class:`Batcher`: batch = f(seed, step)), :mod:`~jaxdiff.data.sharding`
(:func:`to_global_array`).
"""
from jaxdiff.data.sources import *  # noqa: F403
from jaxdiff.data.sources import __all__ as _sources_all
from jaxdiff.data.batching import *  # noqa: F403
from jaxdiff.data.batching import __all__ as _batching_all
from jaxdiff.data.sharding import *  # noqa: F403
from jaxdiff.data.sharding import __all__ as _sharding_all

__all__ = [*_sources_all, *_batching_all, *_sharding_all]
