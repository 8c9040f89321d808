"""Improved precision and recall (Kynkäänniemi et al. 2019) on features, k = 3.

The manifold of a set Φ is the union of balls around its points, each with the radius of the distance to
that point's k-th nearest neighbour in Φ (itself excluded):

    f(x, Φ) = 1 if ‖x − φ‖ ≤ ‖φ − NN_k(φ, Φ)‖ for some φ ∈ Φ, else 0
    precision = mean_{g ∈ generated} f(g, real)         (are the samples inside the real manifold?)
    recall    = mean_{r ∈ real} f(r, generated)         (are the real images inside the samples' manifold?)

Float64 on the host; pairwise squared distances ‖a‖² + ‖b‖² − 2 a·b a block of rows at a time, so memory
stays at ``block × N`` whatever N is.
"""
from __future__ import annotations

from typing import Optional

import numpy as np

__all__ = ["knn_radii", "manifold_coverage", "precision_recall", "DEFAULT_K"]

DEFAULT_K = 3


def _feats(x, name: str, min_rows: int) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim != 2 or a.shape[0] < min_rows or a.shape[1] < 1:
        raise ValueError(f"precision_recall: {name} must be (N, D) features with N >= {min_rows}, got shape {a.shape}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"precision_recall: {name} contains non-finite values")
    return a


def _sq_dists(a: np.ndarray, b: np.ndarray, bb: np.ndarray) -> np.ndarray:
    d = np.einsum("ij,ij->i", a, a)[:, None] + bb[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d, 0.0)


def _block(n_cols: int, block: Optional[int]) -> int:
    return int(block or max(1, min(4096, 20_000_000 // max(n_cols, 1))))


def knn_radii(feats, k: int = DEFAULT_K, *, block: Optional[int] = None) -> np.ndarray:
    """(N,) squared distance from each row to its k-th nearest other row."""
    x = _feats(feats, "feats", k + 1)
    xx = np.einsum("ij,ij->i", x, x)
    out = np.empty(x.shape[0])
    step = _block(x.shape[0], block)
    for i in range(0, x.shape[0], step):
        d = _sq_dists(x[i:i + step], x, xx)
        d[np.arange(d.shape[0]), np.arange(i, i + d.shape[0])] = np.inf  # not its own neighbour
        out[i:i + step] = np.partition(d, k - 1, axis=1)[:, k - 1]
    return out


def manifold_coverage(queries, manifold, radii, *, block: Optional[int] = None) -> np.ndarray:
    """(M,) bool: query j lies in some ball ‖q_j − φ_i‖² ≤ radii_i of the manifold's points φ (N, D)."""
    q = _feats(queries, "queries", 1)
    m = _feats(manifold, "manifold", 1)
    r = np.asarray(radii, np.float64)
    mm = np.einsum("ij,ij->i", m, m)
    out = np.empty(q.shape[0], bool)
    step = _block(m.shape[0], block)
    for j in range(0, q.shape[0], step):
        out[j:j + step] = np.any(_sq_dists(q[j:j + step], m, mm) <= r[None, :], axis=1)
    return out


def precision_recall(real, generated, *, k: int = DEFAULT_K, block: Optional[int] = None) -> dict:
    """{"precision", "recall", "k", "num_real", "num_generated"} of ``generated`` (M, D) against ``real`` (N, D)."""
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or k < 1:
        raise ValueError(f"precision_recall: k must be a positive integer, got {k!r}")
    r = _feats(real, "real", k + 1)
    g = _feats(generated, "generated", k + 1)
    if r.shape[1] != g.shape[1]:
        raise ValueError(f"precision_recall: feature dims differ, {r.shape[1]} vs {g.shape[1]}")
    from jaxdiff.evaluation.metrics import _blas_threads_for  # one BLAS thread for small products

    with _blas_threads_for(r.shape[0] * g.shape[0] * r.shape[1]):
        precision = manifold_coverage(g, r, knn_radii(r, k, block=block), block=block).mean()
        recall = manifold_coverage(r, g, knn_radii(g, k, block=block), block=block).mean()
    return {"precision": float(precision), "recall": float(recall), "k": int(k), "num_real": int(r.shape[0]),
            "num_generated": int(g.shape[0])}
