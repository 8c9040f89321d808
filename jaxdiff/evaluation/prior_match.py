"""Does a fitted generation prior stand in for what the network saw at t = T?

:func:`prior_match`: Fréchet distance (digits features) between prior draws and x_T = α_T D_T(x0) + σ_T ε of
training images, against the real-vs-real floor at the same count. Generation is refused (sample.py, exit 2)
when the ratio exceeds :data:`PRIOR_MISMATCH_RATIO` (measurements: docs/EVALUATION.md, "The prior check").
"""
from __future__ import annotations

import jax
import numpy as np

__all__ = ["PRIOR_CHECK_IMAGES", "PRIOR_MISMATCH_RATIO", "prior_match"]

#: the prior check: prior draws against α_T D_T(x0) + σ_T ε of this many training images (a seeded subset)
PRIOR_CHECK_IMAGES = 300
#: generation is refused when the prior-vs-x_T Fréchet distance exceeds this multiple of the real-vs-real floor
PRIOR_MISMATCH_RATIO = 3.0


def prior_match(config, process, prior, *, num: int = PRIOR_CHECK_IMAGES, seed: int = 0, feature_fn=None) -> dict:
    """Fréchet distance between ``num`` prior draws and x_T of ``num`` training images A, against the floor A vs
    ``num`` other training images B. Returns {"frechet", "floor", "ratio", "num"}; ratio > PRIOR_MISMATCH_RATIO
    means a mismatch."""
    import jax.numpy as jnp

    from jaxdiff import data as data_lib
    from jaxdiff import evaluation
    from jaxdiff.data.end_images import end_images_for

    feature_fn = feature_fn or evaluation.digits_feature_fn()
    images = data_lib.load_images(config, split="train", num=2 * int(num), seed=seed)
    n = images.shape[0] // 2
    a, b = images[:n], images[n:2 * n]
    k_aux, k_eps, k_prior = jax.random.split(jax.random.PRNGKey(seed), 3)
    end_images = end_images_for(config, process, n, split="train", seed=seed + 1)
    aux = process.restoration_aux(jnp.asarray(a), k_aux, end_images=end_images)
    eps = jax.random.normal(k_eps, a.shape, jnp.float32)
    x_T = np.asarray(process.perturb(jnp.asarray(a), jnp.full((n,), process.T, jnp.int32), eps, aux))
    draws = np.asarray(prior.sample(k_prior, n))
    fd = float(evaluation.prior_check(draws, x_T, feature_fn)["frechet"])
    floor = float(evaluation.floor_metrics(a, b, feature_fn, num=n, seed=seed, kid_subsets=0)["same_count"]["frechet"])
    return {"frechet": fd, "floor": floor, "ratio": fd / max(floor, 1e-12), "num": int(n)}
