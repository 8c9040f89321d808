"""The feature network behind Fréchet distance, KID and the judge (no Inception download needed).

A small CNN classifier for 16×16 grey images in [−1, 1], trained on the scikit-learn digits train split
(``scripts/train_feature_net.py``) and shipped as ``jaxdiff/assets/digits_classifier.npz``; its 64
penultimate pre-activations are the features (as TF-GAN scores MNIST with a small MNIST classifier).
Numbers on them compare only with each other (same network, same count), never with Inception FIDs.

    feats = load_digits_feature_fn()(images)      # images (N, H, W, C) in [−1, 1] → (N, 64) float32

Other sizes are resized to 16×16 (bilinear, antialiased), 3 channels reduced to their mean. A net trained
for another labelled source (``--config``) is the run's ``<workdir>/feature_net.npz``;
:func:`select_feature_net` picks the one evaluate uses. Weights: a plain npz of float32
``params/<flattened path>`` arrays plus ``meta/*``, read with ``allow_pickle=False``.
"""
from __future__ import annotations

import dataclasses
import functools
import importlib.resources
import io
import os
import zipfile
from typing import Any, Callable, Mapping, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
from flax import traverse_util

__all__ = [
    "DigitsCNN",
    "DigitsClassifier",
    "IMAGE_SIZE",
    "FEATURE_DIM",
    "NUM_CLASSES",
    "WEIGHTS_FILE",
    "preprocess",
    "load_digits_classifier",
    "load_digits_feature_fn",
    "save_weights_npz",
    "load_weights_npz",
    "FEATURE_NET_FILE",
    "FeatureNetChoice",
    "select_feature_net",
]

IMAGE_SIZE = 16
FEATURE_DIM = 64
NUM_CLASSES = 10
#: the shipped weights, inside the installed package
WEIGHTS_FILE = "assets/digits_classifier.npz"
#: a feature net trained for a run's data (scripts/train_feature_net.py --config=…), inside its workdir
FEATURE_NET_FILE = "feature_net.npz"
SHIPPED_NAME = "digits_classifier (jaxdiff/assets/digits_classifier.npz, 64-d penultimate layer)"


class DigitsCNN(nn.Module):
    """(B, 16, 16, 1) → (logits (B, 10), features (B, 64)).

    conv3×3(32)–relu–avgpool2 → conv3×3(64)–relu–avgpool2 → conv3×3(64)–relu–avgpool2 → flatten (2·2·64)
    → dense(64) = features → relu → dense(10) = logits. About 73 k parameters (≈ 0.3 MB in float32).
    """

    widths: tuple[int, ...] = (32, 64, 64)
    feature_dim: int = FEATURE_DIM
    num_classes: int = NUM_CLASSES

    @nn.compact
    def __call__(self, x):
        for w in self.widths:
            x = nn.relu(nn.Conv(w, (3, 3))(x))
            x = nn.avg_pool(x, (2, 2), strides=(2, 2))
        x = x.reshape(x.shape[0], -1)
        # Pre-activations: a ReLU'd layer would leave dead units with zero variance, and Fréchet
        # distance needs the feature covariance to be well conditioned.
        feats = nn.Dense(self.feature_dim)(x)
        logits = nn.Dense(self.num_classes)(nn.relu(feats))
        return logits, feats


def preprocess(images) -> jnp.ndarray:
    """NHWC images in [−1, 1] with C ∈ {1, 3} → (N, 16, 16, 1) float32 (channel mean; bilinear resize)."""
    x = jnp.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"images must be NHWC (N, H, W, C), got shape {tuple(x.shape)}")
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"images must have 1 or 3 channels (NHWC), got C={x.shape[-1]} in shape {tuple(x.shape)}")
    if not jnp.issubdtype(x.dtype, jnp.floating):
        raise ValueError(f"images must be floats in [-1, 1], got dtype {x.dtype}")
    x = x.astype(jnp.float32)
    if x.shape[-1] == 3:
        x = jnp.mean(x, axis=-1, keepdims=True)
    if x.shape[1:3] != (IMAGE_SIZE, IMAGE_SIZE):
        x = jax.image.resize(x, (x.shape[0], IMAGE_SIZE, IMAGE_SIZE, 1), "linear", antialias=True)
    return x


@dataclasses.dataclass(frozen=True, eq=False)
class DigitsClassifier:
    """A loaded classifier. ``features``/``logits``/``predict`` take NHWC images in [−1, 1] of any N.

    Inputs are evaluated in fixed-size chunks of ``batch_size`` (the last one padded) so any N
    reuses one compiled function.
    """

    params: Mapping[str, Any]
    meta: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)
    batch_size: int = 256
    module: DigitsCNN = dataclasses.field(default_factory=DigitsCNN)

    @functools.cached_property
    def _apply(self) -> Callable:
        return jax.jit(lambda p, x: self.module.apply({"params": p}, x))

    def _run(self, images) -> tuple[np.ndarray, np.ndarray]:
        x = preprocess(images)
        n, b = x.shape[0], self.batch_size
        if n == 0:
            return np.zeros((0, self.module.num_classes), np.float32), np.zeros((0, self.module.feature_dim), np.float32)
        logits, feats = [], []
        for i in range(0, n, b):
            chunk = x[i : i + b]
            m = chunk.shape[0]
            if m < b:
                chunk = jnp.concatenate([chunk, jnp.zeros((b - m,) + chunk.shape[1:], chunk.dtype)])
            lo, fe = self._apply(self.params, chunk)
            logits.append(np.asarray(lo[:m]))
            feats.append(np.asarray(fe[:m]))
        return np.concatenate(logits), np.concatenate(feats)

    def features(self, images) -> np.ndarray:
        """(N, H, W, C) in [−1, 1] → penultimate-layer features (N, 64) float32."""
        return self._run(images)[1]

    def logits(self, images) -> np.ndarray:
        """(N, H, W, C) → class logits (N, K) float32 (K = 10 for digits)."""
        return self._run(images)[0]

    def predict(self, images) -> np.ndarray:
        """(N, H, W, C) → predicted digit (N,) int."""
        return np.argmax(self.logits(images), axis=-1)


# --------------------------------------------------------------------------------------------
# Weights file: plain npz, written byte-reproducibly
# --------------------------------------------------------------------------------------------


def save_weights_npz(path, params: Mapping[str, Any], meta: Optional[Mapping[str, Any]] = None) -> None:
    """Writes ``params/<flattened path>`` float32 arrays and ``meta/<name>`` arrays to an npz.

    Entries are sorted and stamped with a fixed date, so the same weights give the same bytes.
    """
    flat = traverse_util.flatten_dict(jax.device_get(dict(params)), sep="/")
    entries = {f"params/{k}": np.asarray(v, np.float32) for k, v in flat.items()}
    for k, v in (meta or {}).items():
        a = np.asarray(v)
        if a.dtype == object:
            raise ValueError(f"meta[{k!r}] must be a numeric or string array, got dtype object")
        entries[f"meta/{k}"] = a
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name in sorted(entries):
            buf = io.BytesIO()
            np.lib.format.write_array(buf, np.array(entries[name], order="C"), allow_pickle=False)
            info = zipfile.ZipInfo(name + ".npy", date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = zipfile.ZIP_DEFLATED
            info.external_attr = 0o644 << 16
            zf.writestr(info, buf.getvalue())


def load_weights_npz(source) -> tuple[dict, dict]:
    """(params pytree, meta dict) from an npz path or binary file object (no pickle)."""
    with np.load(source, allow_pickle=False) as f:
        flat = {k[len("params/") :]: np.asarray(f[k]) for k in f.files if k.startswith("params/")}
        meta = {k[len("meta/") :]: np.asarray(f[k]) for k in f.files if k.startswith("meta/")}
    if not flat:
        raise ValueError(f"{source!r} holds no 'params/…' arrays: not a jaxdiff classifier weights file")
    return traverse_util.unflatten_dict(flat, sep="/"), meta


def _num_classes(meta: Mapping[str, np.ndarray]) -> int:
    return int(meta["num_classes"]) if "num_classes" in meta else NUM_CLASSES


def _check_params(params, num_classes: int = NUM_CLASSES) -> None:
    expected = jax.eval_shape(
        lambda: DigitsCNN(num_classes=num_classes).init(
            jax.random.PRNGKey(0), jnp.zeros((1, IMAGE_SIZE, IMAGE_SIZE, 1)))["params"]
    )
    exp = {k: v.shape for k, v in traverse_util.flatten_dict(expected, sep="/").items()}
    got = {k: v.shape for k, v in traverse_util.flatten_dict(params, sep="/").items()}
    if exp != got:
        raise ValueError(f"classifier weights do not match DigitsCNN: expected {exp}, got {got}")


@functools.lru_cache(maxsize=None)
def _load_cached(path: Optional[str]) -> DigitsClassifier:
    if path is None:
        with importlib.resources.files("jaxdiff").joinpath(WEIGHTS_FILE).open("rb") as fh:
            params, meta = load_weights_npz(fh)
    else:
        params, meta = load_weights_npz(path)
    k = _num_classes(meta)
    _check_params(params, k)
    params = jax.tree_util.tree_map(jnp.asarray, params)
    return DigitsClassifier(params=params, meta=meta, module=DigitsCNN(num_classes=k))


def load_digits_classifier(path: Optional[str] = None) -> DigitsClassifier:
    """The shipped digits classifier (or the weights at ``path``), loaded once and cached."""
    return _load_cached(None if path is None else os.fspath(path))


def load_digits_feature_fn(path: Optional[str] = None) -> Callable[[Any], np.ndarray]:
    """``fn(images (N, H, W, C) in [−1, 1]) -> features (N, 64)`` of the shipped digits classifier."""
    return load_digits_classifier(path).features


@dataclasses.dataclass(frozen=True)
class FeatureNetChoice:
    """The feature net evaluate uses: ``path`` (None: the shipped digits net), a ``name`` for reports and a
    ``note`` ("" when the net was trained on the evaluated data, else what it was trained on instead)."""

    path: Optional[str]
    name: str
    note: str = ""


def select_feature_net(workdir: str, source: str) -> FeatureNetChoice:
    """``<workdir>/feature_net.npz`` if present, else the shipped digits net (with a note unless ``source``
    is the digits source)."""
    from jaxdiff.data.sources import parse_source

    stored = os.path.join(os.fspath(workdir), FEATURE_NET_FILE)
    if os.path.isfile(stored):
        _, meta = load_weights_npz(stored)
        trained_on = str(meta["source"]) if "source" in meta else "unknown data (no meta/source in the file)"
        name = f"feature_net.npz of the workdir ({stored}; trained on {trained_on}, {_num_classes(meta)} classes)"
        note = "" if trained_on == str(source) else (
            f"the workdir's feature net {stored} was trained on {trained_on}, not on the evaluated source "
            f"{source!r}; its numbers only rank models against each other")
        return FeatureNetChoice(stored, name, note)
    if parse_source(str(source)).kind == "digits":
        return FeatureNetChoice(None, SHIPPED_NAME)
    return FeatureNetChoice(None, SHIPPED_NAME, (
        f"no {FEATURE_NET_FILE} in the workdir, so the features come from the shipped digits classifier, trained "
        f"on scikit-learn's digits, not on {source!r}: Fréchet, KID and the confident fraction only rank models "
        f"against each other; train a feature net for this data with "
        f"scripts/train_feature_net.py --config=<config file> --workdir={workdir}"))
