"""The numbers a paper quotes, from two sets of features: FID, KID ×10³ and precision/recall.

    s = scores(real_feats, generated_feats)       # (N, D), (M, D) → dict
    s["fid"], s["kid_x1e3"], s["kid_x1e3_std"], s["precision"], s["recall"]

    FID   ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2})                     (Heusel et al. 2017)
    KID   unbiased MMD², k(x, y) = (x·y/D + 1)³, mean ± std over ``kid_subsets`` random subsets of
          m = min(1000, N//2, M//2) rows each (≤ 1000, as clean-fid; halves of small sets so the spread
          says something), reported ×10³                                         (Bińkowski et al. 2018)
    P/R   Kynkäänniemi et al. 2019, k = 3 (:mod:`jaxdiff.evaluation.precision_recall`)

On Inception pool features these are the published metrics; on other features (the digits classifier) they
only rank models against each other. The real set may come as statistics only (``real_stats``: mean and
covariance), then KID and P/R need its features too and are left out when they are missing.
"""
from __future__ import annotations

from typing import Any, Optional

import numpy as np

from jaxdiff.evaluation import metrics, precision_recall

__all__ = ["scores", "default_subset", "KID_SUBSETS", "KID_SCALE", "fid_from_stats"]

KID_SUBSETS = 100
#: KID is quoted ×10³
KID_SCALE = 1e3


def default_subset(n_a: int, n_b: int) -> int:
    """min(1000, N_a//2, N_b//2), at least 2."""
    return max(2, min(1000, int(n_a) // 2, int(n_b) // 2))


def fid_from_stats(mu_a, sigma_a, mu_b, sigma_b) -> float:
    """FID of two Gaussians (float64, the symmetric eigenvalue form of Tr (Σ_a Σ_b)^{1/2})."""
    return metrics.frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b)


def scores(real, generated, *, real_stats: Optional[tuple] = None, kid_subsets: int = KID_SUBSETS,
           kid_subset_size: Optional[int] = None, pr_k: int = precision_recall.DEFAULT_K, seed: int = 0,
           feature_net: str = "") -> dict[str, Any]:
    """FID, KID ×10³ (mean, std), precision and recall of ``generated`` (M, D) against ``real`` (N, D).

    ``real`` may be None when ``real_stats`` = (μ, Σ) is given (then only FID). ``kid_subsets=0`` skips KID;
    ``kid_subset_size`` None: :func:`default_subset`.
    """
    g = np.asarray(generated, np.float64)
    out: dict[str, Any] = {"num_generated": int(g.shape[0])}
    if feature_net:
        out["features"] = feature_net
    if real is None and real_stats is None:
        raise ValueError("scores: pass the real features or their statistics (real_stats=(mu, sigma))")
    if real_stats is not None:
        mu, sigma = real_stats
        out["fid"] = fid_from_stats(mu, sigma, *metrics.feature_stats(g))
    else:
        out["fid"] = metrics.frechet_distance(real, g)
    if real is None:
        return out
    r = np.asarray(real, np.float64)
    out["num_real"] = int(r.shape[0])
    if kid_subsets > 0 and min(r.shape[0], g.shape[0]) >= 4:
        m = default_subset(r.shape[0], g.shape[0]) if kid_subset_size is None else int(kid_subset_size)
        k = metrics.kid(r, g, num_subsets=int(kid_subsets), subset_size=m, seed=seed)
        out.update(kid_x1e3=k.mean * KID_SCALE, kid_x1e3_std=k.std * KID_SCALE, kid_subset_size=k.subset_size,
                   kid_subsets=k.num_subsets)
    if min(r.shape[0], g.shape[0]) > pr_k:
        out.update({k: v for k, v in precision_recall.precision_recall(r, g, k=pr_k).items()
                    if k in ("precision", "recall")}, pr_k=int(pr_k))
    return out
