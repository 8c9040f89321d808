"""The judge of generated images: a classifier's confidence and class histogram, Fréchet/KID with their
real-vs-real floor at the same counts, and the distance to the nearest training image.

    confident   share of samples with max_k softmax(logits)_k ≥ ``confidence`` (default 0.9)
    histogram   counts of argmax_k logits per class; the smallest class's share
    Fréchet/KID samples (N) vs held-out ``real`` (M) on the classifier's features; floor: N training
                images (a seeded random subset of ``train``) vs the same M held-out images
    nearest     per sample, min over ``train`` of RMSE = √(mean_pixels (u_a − u_b)²), u = (x + 1)/2;
                mean and 5th percentile, beside the same for the held-out images (memorising shows as
                samples much nearer the training set than held-out images are)

Images (N, H, W, C) in [−1, 1]. ``classifier``: any object with ``logits(images) -> (N, K)`` and
``features(images) -> (N, D)`` (default: the shipped digits classifier).
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from jaxdiff.evaluation import metrics

__all__ = ["judge", "nearest_rmse", "confidence_stats"]


def _check_images(x, name: str, min_rows: int = 2) -> np.ndarray:
    a = np.asarray(x)
    if a.ndim != 4 or a.shape[0] < min_rows:
        raise ValueError(f"judge: {name} must be NHWC images (N, H, W, C) with N >= {min_rows}, got shape {a.shape}")
    if not np.issubdtype(a.dtype, np.floating):
        raise ValueError(f"judge: {name} must be floats in [-1, 1], got dtype {a.dtype}")
    return a


def confidence_stats(logits, confidence: float = 0.9) -> dict[str, Any]:
    """Confident share, class counts/shares and the smallest class's share of classifier logits (N, K)."""
    z = np.asarray(logits, np.float64)
    if z.ndim != 2 or z.shape[0] < 1 or z.shape[1] < 2:
        raise ValueError(f"judge: logits must be (N, K) with N >= 1 and K >= 2 classes, got shape {z.shape}")
    z = z - z.max(axis=1, keepdims=True)
    p = np.exp(z)
    p /= p.sum(axis=1, keepdims=True)
    n, k = z.shape
    counts = np.bincount(np.argmax(z, axis=1), minlength=k)
    shares = counts / n
    return {
        "confidence": float(confidence),
        "confident_fraction": float(np.mean(p.max(axis=1) >= confidence)),
        "class_counts": [int(c) for c in counts],
        "class_shares": [float(s) for s in shares],
        "classes_present": int(np.count_nonzero(counts)),
        "smallest_class": int(np.argmin(counts)),
        "smallest_class_share": float(shares.min()),
    }


def nearest_rmse(queries, references, *, chunk: Optional[int] = None) -> np.ndarray:
    """(N,) float64: for each query image, min over ``references`` (M) of the per-pixel RMSE on [0, 1].

    ‖a − b‖² = ‖a‖² + ‖b‖² − 2 a·b in float64, a (chunk × M) matrix at a time (default: ≤ 2·10⁷ entries).
    """
    q = np.asarray(queries, np.float64).reshape(len(queries), -1)
    r = np.asarray(references, np.float64).reshape(len(references), -1)
    if q.shape[1] != r.shape[1] or r.shape[0] < 1:
        raise ValueError(f"judge: nearest_rmse needs images of one shape and >= 1 reference, got {np.shape(queries)} "
                         f"and {np.shape(references)}")
    chunk = int(chunk or max(1, min(1024, 20_000_000 // r.shape[0])))
    q, r = (q + 1.0) / 2.0, (r + 1.0) / 2.0
    rr = np.einsum("ij,ij->i", r, r)
    out = np.empty(q.shape[0], np.float64)
    for i in range(0, q.shape[0], chunk):
        a = q[i : i + chunk]
        d2 = np.einsum("ij,ij->i", a, a)[:, None] + rr[None, :] - 2.0 * (a @ r.T)
        out[i : i + chunk] = np.sqrt(np.clip(d2.min(axis=1), 0.0, None) / q.shape[1])
    return out


def _fd_kid(fa: np.ndarray, fb: np.ndarray, kid_subsets: int, seed: int) -> dict[str, Any]:
    out: dict[str, Any] = {"frechet": metrics.frechet_distance(fa, fb)}
    m = min(1000, fa.shape[0] // 2, fb.shape[0] // 2)
    if kid_subsets > 0 and m >= 2:
        r = metrics.kid(fa, fb, num_subsets=kid_subsets, subset_size=m, seed=seed)
        out.update(kid_mean=r.mean, kid_std=r.std, kid_subset_size=r.subset_size, kid_num_subsets=r.num_subsets)
    return out


def judge(samples, *, real, train, classifier=None, confidence: float = 0.9, seed: int = 0, kid_subsets: int = 50,
          feature_net: str = "", info: Optional[dict] = None) -> dict[str, Any]:
    """Judges ``samples`` (N, H, W, C) against held-out ``real`` (M, …) and ``train`` (L, …) images.

    Returns a dict: num_samples/num_real/num_train, the :func:`confidence_stats` fields, frechet and
    kid_mean/kid_std (samples vs real), ``floor`` (N training images vs the same real images: frechet, kid_*,
    confident_fraction, smallest_class_share), ``nearest_train`` ({mean, p5} of :func:`nearest_rmse` for the
    samples) and ``nearest_train_floor`` (the same for the held-out images), feature_net and ``info``.
    """
    x = _check_images(samples, "samples")
    re = _check_images(real, "real")
    tr = _check_images(train, "train")
    if not (x.shape[1:] == re.shape[1:] == tr.shape[1:]):
        raise ValueError(f"judge: samples, real and train must have one image shape, got {x.shape[1:]}, "
                         f"{re.shape[1:]} and {tr.shape[1:]}")
    if isinstance(confidence, bool) or not isinstance(confidence, (int, float)) or not 0 < confidence <= 1:
        raise ValueError(f"judge: confidence must be a number in (0, 1], got {confidence!r}")
    if isinstance(kid_subsets, bool) or not isinstance(kid_subsets, (int, np.integer)) or kid_subsets < 0:
        raise ValueError(f"judge: kid_subsets must be an integer >= 0, got {kid_subsets!r}")
    if classifier is None:
        from jaxdiff.evaluation.features import load_digits_classifier

        classifier = load_digits_classifier()
    n = x.shape[0]
    rng = np.random.default_rng(seed)
    floor_idx = np.sort(rng.choice(tr.shape[0], min(n, tr.shape[0]), replace=False))
    xs, xf = np.asarray(x, np.float32), np.asarray(tr[floor_idx], np.float32)
    fs, fr, ff = (np.asarray(classifier.features(v), np.float64) for v in (xs, np.asarray(re, np.float32), xf))
    out: dict[str, Any] = {"kind": "judge", "num_samples": int(n), "num_real": int(re.shape[0]),
                           "num_train": int(tr.shape[0])}
    if feature_net:
        out["feature_net"] = feature_net
    out.update(confidence_stats(classifier.logits(xs), confidence))
    out.update(_fd_kid(fs, fr, kid_subsets, seed))
    floor = {"num_a": int(ff.shape[0]), "num_b": int(fr.shape[0]), **_fd_kid(ff, fr, kid_subsets, seed)}
    fc = confidence_stats(classifier.logits(xf), confidence)
    floor.update(confident_fraction=fc["confident_fraction"], smallest_class_share=fc["smallest_class_share"])
    out["floor"] = floor
    for key, imgs in (("nearest_train", x), ("nearest_train_floor", re)):
        d = nearest_rmse(imgs, tr)
        out[key] = {"mean": float(d.mean()), "p5": float(np.percentile(d, 5)), "num": int(d.shape[0])}
    if info:
        out["info"] = dict(info)
    return out

