"""Cold-diffusion degradations F_t, each a builder registered by name (the names used in configs).

    deg = make_degradation("blur", T=20, image_size=32, channels=3, kernel_size=11, std=7.0)
    x_t = deg.apply(x0, t, aux)        # x0 (B, H, W, C) in [−1, 1], t int32 (B,), F_0 = identity

A :class:`Degradation` carries its facts: ``generation`` (the prior it generates from, or None:
restoration only), ``color_only``, ``needs_end_source``, ``restoration_aux`` and ``describe()``.
Modules: ``base`` (the value, the registry, shared checks), ``identity`` (hot diffusion's D_t = identity),
``color`` (decolor, snow), ``blur``, ``heat``, ``dct_blur`` and ``warm_blur`` (diagonal in the DCT basis:
``Degradation.spectrum``),
``masks`` (inpaint, fade), ``superres``, ``interpolate``.
"""
from jaxdiff.degradations.base import (
    DEGRADATIONS, FIT_ON, Degradation, DegradationEntry, GenerationPrior, make_degradation,
    register_degradation
)
from jaxdiff.degradations.blur import BLUR_PADDINGS, BLUR_ROUTINES, blur, blur_sigmas
from jaxdiff.degradations.color import decolor, gray, snow
from jaxdiff.degradations.dct_blur import dct_blur
from jaxdiff.degradations.heat import heat, heat_sigmas
from jaxdiff.degradations.identity import identity
from jaxdiff.degradations.interpolate import interpolate
from jaxdiff.degradations.masks import FADE_COLORS, fade, inpaint
from jaxdiff.degradations.superres import SUPERRES_METHODS, superres
from jaxdiff.degradations.warm_blur import WARM_BLURS, warm_blur, warm_blur_sigmas

__all__ = [
    "Degradation",
    "DegradationEntry",
    "GenerationPrior",
    "FIT_ON",
    "DEGRADATIONS",
    "register_degradation",
    "make_degradation",
    "gray",
    "blur_sigmas",
    "BLUR_ROUTINES",
    "BLUR_PADDINGS",
    "FADE_COLORS",
    "SUPERRES_METHODS",
    "decolor",
    "snow",
    "blur",
    "heat",
    "heat_sigmas",
    "identity",
    "dct_blur",
    "warm_blur",
    "warm_blur_sigmas",
    "WARM_BLURS",
    "inpaint",
    "fade",
    "superres",
    "interpolate",
]
