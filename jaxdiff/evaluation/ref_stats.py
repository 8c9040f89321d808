"""Reference statistics of a data source's split, computed once and cached beside the Inception weights.

    ref = reference_stats("digits", split="test", image_size=16, channels=1, extractor=ext)
    ref.mu (D,), ref.sigma (D, D), ref.features (N, D), ref.path

Like clean-fid's custom statistics, but keyed by a fingerprint of everything that changes them: the source
string, split, image size and channels, the count and seed of a subset, the feature network's fingerprint
(its weights and preprocessing) and, for ``folder:``/``npz:`` sources, the names, sizes and modification
times of the files. The file is ``<cache>/fid_stats/<source>-<split>-<fingerprint>.npz`` (mu, sigma,
features and a ``meta`` JSON string), written atomically; a file whose stored fingerprint differs is
recomputed. ``scripts/fid_stats.py`` writes them for a source.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
import os
import re
from typing import Optional

import numpy as np

__all__ = ["RefStats", "reference_stats", "stats_path", "fingerprint", "STATS_DIR", "load_source_images"]

log = logging.getLogger(__name__)

STATS_DIR = "fid_stats"
#: bump when the way images reach the network changes (it is part of every fingerprint)
PIPELINE_VERSION = 1


@dataclasses.dataclass(frozen=True)
class RefStats:
    mu: np.ndarray
    sigma: np.ndarray
    features: np.ndarray
    meta: dict
    path: str


def _files_signature(spec) -> list:
    """Names, sizes and mtimes of the files a folder:/npz: source reads (so edits invalidate the cache)."""
    path = os.path.abspath(os.path.expanduser(spec.target))
    if os.path.isfile(path):
        st = os.stat(path)
        return [[path, st.st_size, int(st.st_mtime_ns)]]
    out = []
    for root, _, files in os.walk(path):
        for f in sorted(files):
            st = os.stat(os.path.join(root, f))
            out.append([os.path.relpath(os.path.join(root, f), path), st.st_size, int(st.st_mtime_ns)])
    return sorted(out)


def fingerprint(source: str, *, split: str, image_size: int, channels: int, num: Optional[int], seed: int,
                extractor_fingerprint: str) -> tuple[dict, str]:
    """(the fingerprinted facts, their SHA-256 hex digest)."""
    from jaxdiff.data import parse_source

    spec = parse_source(source, field="source")
    facts = {"source": source, "split": split, "image_size": int(image_size), "channels": int(channels),
             "num": None if num is None else int(num), "seed": int(seed), "features": extractor_fingerprint,
             "pipeline": PIPELINE_VERSION}
    if spec.kind in ("folder", "npz"):
        facts["files"] = _files_signature(spec)
    digest = hashlib.sha256(json.dumps(facts, sort_keys=True).encode()).hexdigest()
    return facts, digest


def _label(source: str, split: str) -> str:
    """``digits:test`` for ("digits:test", "test") and ("digits", "test")."""
    from jaxdiff.data import parse_source

    return source if parse_source(source, field="source").split else f"{source}:{split}"


def stats_path(source: str, split: str, digest: str) -> str:
    from jaxdiff.evaluation.inception_weights import cache_dir

    slug = re.sub(r"[^A-Za-z0-9.-]+", "-", _label(source, split)).strip("-")[:80]
    return os.path.join(cache_dir(), STATS_DIR, f"{slug}-{digest[:16]}.npz")


def load_source_images(source: str, *, split: str, image_size: int, channels: int, num: Optional[int] = None,
                       seed: int = 0) -> np.ndarray:
    """uint8 images (N, S, S, C) of a source string's split; ``num``: a sorted seeded subset."""
    from jaxdiff.data import load_source

    src = load_source(source, split=split, image_size=int(image_size), channels=int(channels), field="source")
    n = len(src) if num is None else min(int(num), len(src))
    idx = np.arange(n) if n == len(src) else np.sort(np.random.default_rng(int(seed)).choice(len(src), n,
                                                                                             replace=False))
    return np.asarray(src.get(idx))


def reference_stats(source: str, *, split: str, image_size: int, channels: int, extractor,
                    num: Optional[int] = None, seed: int = 0, recompute: bool = False,
                    progress: Optional[bool] = None) -> RefStats:
    """The cached statistics of ``source``'s ``split`` on ``extractor``'s features (computed when missing)."""
    from jaxdiff.evaluation import metrics
    from jaxdiff.files import atomic_write

    facts, digest = fingerprint(source, split=split, image_size=image_size, channels=channels, num=num, seed=seed,
                                extractor_fingerprint=extractor.fingerprint)
    path = stats_path(source, split, digest)
    if not recompute and os.path.isfile(path):
        try:
            with np.load(path, allow_pickle=False) as f:
                meta = json.loads(str(f["meta"]))
                if meta.get("fingerprint") == digest:
                    return RefStats(f["mu"], f["sigma"], f["features"], meta, path)
        except (OSError, ValueError, KeyError) as e:
            log.warning("reference statistics %s unreadable (%s): computing them again", path, e)
    images = load_source_images(source, split=split, image_size=image_size, channels=channels, num=num, seed=seed)
    feats = extractor.features(images, progress=progress, desc=f"reference {_label(source, split)}")
    mu, sigma = metrics.feature_stats(feats)
    meta = {**facts, "fingerprint": digest, "num_images": int(images.shape[0]), "feature_net": extractor.name}
    atomic_write(path, lambda f: np.savez(f, mu=mu, sigma=sigma, features=feats, meta=np.asarray(json.dumps(meta))))
    return RefStats(mu, sigma, feats, meta, path)
