"""Generation priors p(x_T): what the reverse process starts from when there is no degraded input.

Modules: ``base`` (the stored :class:`Prior`, the registry :data:`PRIORS`, :func:`fit_prior`), ``gmm``
(mixtures by scikit-learn, sampled in JAX), ``kinds`` (gaussian, blur_mean, color, superres, dataset) and
``store`` (the prior of a trained run, chosen by its degradation's ``generation`` and kept in its workdir).
"""
from jaxdiff.priors import kinds as _kinds  # noqa: F401  (registers the kinds)
from jaxdiff.priors.base import PRIORS, RENAMED_KINDS, Prior, PriorKind, fit_prior, register_prior
from jaxdiff.priors.gmm import fit_gmm
from jaxdiff.priors.kinds import area_downsample

__all__ = [
    "Prior",
    "PriorKind",
    "PRIORS",
    "RENAMED_KINDS",
    "register_prior",
    "fit_prior",
    "fit_gmm",
    "area_downsample",
]
