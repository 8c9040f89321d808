"""What a degradation is: the :class:`Degradation` value, its registry and the checks every builder shares.

A builder ``fn(*, T, image_size, channels, **params)`` is registered by name and returns a Degradation
(or just ``apply(x0, t, aux) -> F_t(x0)``); it declares the facts the rest of the library asks about::

    @register_degradation("decolor", color_only=True)
    def decolor(*, T, image_size=32, channels=3): ...

Conventions: NHWC in [−1, 1], any channel count, jit- and vmap-safe, one t per example; F_0 = identity
exactly, severity never decreases with t; tables are built once (float64, stored float32) so F_t costs
O(1) in t. ``aux`` is per-example randomness fixed across t (a mask center, a color, an end image).
Bad parameters raise one ValueError naming the field at build time.
"""
from __future__ import annotations

import dataclasses
import inspect
import math
import numbers
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.checks import check_int
from jaxdiff.registry import Registry

HI = jax.lax.Precision.HIGHEST


FIT_ON = ("source", "end_source", "none")


@dataclasses.dataclass(frozen=True)
class GenerationPrior:
    """How a degradation generates: the prior p(x_T) that stands in for its end state F_T(x0).

    kind:        a registered prior kind (``jaxdiff.priors.PRIORS``).
    fit_on:      what the prior is fitted on: "source" (the training images), "end_source" (the images of
                 ``data.end_source``) or "none" (a data-free prior, only the image shape).
    fit_params:  fixed fit parameters (e.g. the super-resolution T).
    prior_noise: whether ``config.sample.prior_noise`` is passed to the fit as its per-pixel ``noise``.
    end_state:   ``images (N, H, W, C) float64 -> (N, H, W, C) float64``, what the prior is fitted on
                 (e.g. F_T(x0)); None: the images themselves.
    aux:         ``(x_T, key) -> aux`` consistent with a prior draw x_T (e.g. the color a fade ends at);
                 None: the degradation's own ``sample_aux(key, x_T)``.
    corrector:   the registered corrector generation uses when none is asked for (Algorithm 2 by default).
    mismatch_hint: what to change when the fitted prior does not match F_T(x0) (said when generation is refused).
    """

    kind: str
    fit_on: str = "source"
    fit_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prior_noise: bool = False
    end_state: Optional[Callable[[np.ndarray], np.ndarray]] = None
    aux: Optional[Callable[..., Any]] = None
    corrector: str = "cold_improved"
    mismatch_hint: str = ""

    def __post_init__(self):
        if not isinstance(self.kind, str) or not self.kind:
            raise ValueError(f"GenerationPrior.kind must be a prior kind name, got {self.kind!r}")
        if not isinstance(self.corrector, str) or not self.corrector:
            raise ValueError(f"GenerationPrior.corrector must be a corrector name, got {self.corrector!r}")
        if self.fit_on not in FIT_ON:
            raise ValueError(f"GenerationPrior.fit_on must be one of {list(FIT_ON)}, got {self.fit_on!r}")


@dataclasses.dataclass(frozen=True, eq=False)
class Degradation:
    """A built degradation: ``apply(x0, t, aux) -> F_t(x0)`` plus what the rest of the library asks of it.

    sample_aux:      ``(key, x0) -> aux`` per-example randomness (leading dim B), fixed across t.
    step:            ``(x_prev, t, aux) -> x_t``, the single forward step x_{t−1} → x_t, where it exists
                     (step(F_{t−1}(x0), t, aux) = F_t(x0) for t ≥ 1).
    prior:           ``(key, shape, aux) -> x_T`` when F_T has a data-free end state (a color, noise).
    params:          the parameters it was built with (for :meth:`describe`).
    color_only:      it needs 3-channel (color) images.
    needs_end_source: its aux is an image of a second data set (``data.end_source``).
    generation:      how it generates (:class:`GenerationPrior`), or None: restoration only.
    restoration_aux: ``(key, x0, end_images) -> aux`` for degrading held-out images (end_images: images of
                     the end source or None); None: ``sample_aux(key, x0)``.
    identity:        D_t(x) = x for every t (hot diffusion's degradation).
    spectrum:        float64 (T + 1, H, W) multipliers d_t when D_t is diagonal in the orthonormal 2-D DCT basis,
                     D_t(x) = idct2(d_t ⊙ dct2(x)) per channel (d_0 = 1); None otherwise. A process inverts such
                     a D_t where d_t > 0 and steps per frequency.
    """

    name: str
    T: int
    apply: Callable[..., jnp.ndarray]
    sample_aux: Optional[Callable[..., Any]] = None
    step: Optional[Callable[..., jnp.ndarray]] = None
    prior: Optional[Callable[..., jnp.ndarray]] = None
    params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    color_only: bool = False
    needs_end_source: bool = False
    generation: Optional[GenerationPrior] = None
    restoration_aux: Optional[Callable[..., Any]] = None
    identity: bool = False
    spectrum: Optional[np.ndarray] = None

    def __call__(self, x0, t, aux=None):
        return self.apply(x0, t, aux)

    def describe(self) -> str:
        """``"blur(kernel_size=5, std=0.5), T=20"``: how pictures and reports name it."""
        if self.identity:
            return "identity"
        params = ", ".join(f"{k}={v}" for k, v in sorted(self.params.items()))
        return f"{self.name}({params}), T={self.T}"


@dataclasses.dataclass(frozen=True)
class DegradationEntry:
    """A registered builder and the facts declared with it (known before anything is built)."""

    name: str
    builder: Callable[..., Any]
    color_only: bool = False
    needs_end_source: bool = False

    def declared_params(self) -> dict[str, Any]:
        """The builder's own parameters and their defaults (``inspect.Parameter.empty`` when required); not the
        ones the library passes (T, image_size, channels, :data:`PROCESS_ARGS`)."""
        sig = inspect.signature(self.builder)
        return {n: p.default for n, p in sig.parameters.items()
                if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
                if n not in ("T", "image_size", "channels") + PROCESS_ARGS}

    @property
    def needs_noise_levels(self) -> bool:
        """The builder declares ``noise_levels`` (σ_t/α_t of the process's noise schedule, (T + 1,) float64)."""
        return "noise_levels" in inspect.signature(self.builder).parameters


DEGRADATIONS: Registry[DegradationEntry] = Registry("degradation")

#: builder arguments the process passes, not config parameters: ``noise_levels`` = σ_t/α_t of the noise schedule
#: (t = 0 … T, float64, +inf where α_t = 0), for a degradation tied to the noise (warm diffusion's blur)
PROCESS_ARGS = ("noise_levels",)


def register_degradation(name: str, *, color_only: bool = False, needs_end_source: bool = False):
    """Decorator: registers a builder ``fn(*, T, image_size, channels, **params)`` under ``name``.

    The builder returns a :class:`Degradation` or just the ``apply`` function. It may declare only
    the keyword arguments it uses and end with ``**_`` to ignore the others (then unknown config
    keys are silently accepted; the built-ins declare everything so that typos raise). A builder that declares
    ``noise_levels`` receives σ_t/α_t of the process's noise schedule from
    :func:`jaxdiff.processes.make_process` (:data:`PROCESS_ARGS`: not a config parameter). ``color_only``
    and ``needs_end_source`` are facts about every degradation the builder makes; a name registered twice
    raises.
    """

    def deco(builder):
        DEGRADATIONS.register(name, DegradationEntry(name, builder, color_only=color_only,
                                                     needs_end_source=needs_end_source))
        return builder

    return deco


def make_degradation(name: str, *, T: int, image_size: int = 32, channels: int = 3, **params) -> Degradation:
    """Builds the degradation registered as ``name`` (the names used in configs)."""
    entry = DEGRADATIONS.get_or_raise(name)
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise ValueError(f"degradation {name!r}: T must be an integer >= 1, got {T!r}")
    builder = entry.builder
    sig = inspect.signature(builder)
    accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
    unknown = [k for k in params if k not in sig.parameters and not accepts_any]
    if unknown:
        allowed = sorted(k for k in sig.parameters if k not in ("T", "image_size", "channels") + PROCESS_ARGS)
        raise ValueError(f"degradation {name!r}: unknown parameter(s) {unknown}; allowed: {allowed}")
    out = builder(T=T, image_size=image_size, channels=channels, **params)
    if callable(out) and not isinstance(out, Degradation):
        out = Degradation(name=name, T=T, apply=_accept_missing_aux(out))
    if not isinstance(out, Degradation):
        raise TypeError(f"builder of {name!r} returned {type(out).__name__}, not a Degradation or a function")
    declared = {k: v for k, v in entry.declared_params().items() if v is not inspect.Parameter.empty}
    given = {k: v for k, v in params.items() if k not in PROCESS_ARGS}
    return dataclasses.replace(out, params={**declared, **given}, color_only=entry.color_only,
                               needs_end_source=entry.needs_end_source)


def _accept_missing_aux(fn):
    """Lets a user's ``apply(x0, t)`` without an aux argument be called as ``apply(x0, t, aux)``."""
    try:
        n = len(inspect.signature(fn).parameters)
    except (TypeError, ValueError):
        return fn
    if n >= 3:
        return fn
    return lambda x0, t, aux=None: fn(x0, t)


# shared checks and helpers of the builders


def fail(deg: str, field: str, value, allowed: str):
    raise ValueError(f"degradation {deg!r}: {field} must be {allowed}, got {value!r}")


def check_real(deg, field, value, *, positive=False, nonneg=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and positive and not value > 0:
        ok = False
    if ok and nonneg and not value >= 0:
        ok = False
    if not ok:
        fail(deg, field, value, "a finite number" + (" > 0" if positive else " >= 0" if nonneg else ""))
    return float(value)


def check_choice(deg, field, value, choices):
    if value not in choices:
        fail(deg, field, value, f"one of {list(choices)}")
    return value


def check_bool(deg, field, value):
    if not isinstance(value, (bool, np.bool_)):
        fail(deg, field, value, "True or False")
    return bool(value)


def check_size(deg, image_size, channels):
    check_int(image_size, field="image_size", lo=1, owner=f"degradation {deg!r}")
    check_int(channels, field="channels", lo=1, owner=f"degradation {deg!r}")
    return int(image_size)


def t_vec(t, x: jnp.ndarray, deg: str) -> jnp.ndarray:
    """t as int32 of shape (B,) for x of shape (B, ...); a scalar t is broadcast."""
    t = jnp.asarray(t)
    if not jnp.issubdtype(t.dtype, jnp.integer):
        raise ValueError(f"degradation {deg!r}: t must be an integer array, got dtype {t.dtype}")
    t = t.astype(jnp.int32)
    if t.ndim == 0:
        return jnp.broadcast_to(t, (x.shape[0],))
    if t.shape != (x.shape[0],):
        raise ValueError(f"degradation {deg!r}: t must be a scalar or have shape (B,) = ({x.shape[0]},), got {t.shape}")
    return t


def check_image(x, deg: str, n: Optional[int] = None):
    if x.ndim != 4:
        raise ValueError(f"degradation {deg!r}: x0 must be NHWC (B, H, W, C), got shape {x.shape}")
    if n is not None and (x.shape[1] != n or x.shape[2] != n):
        raise ValueError(
            f"degradation {deg!r} was built for image_size={n}: x0 must be (B, {n}, {n}, C), got {x.shape}"
        )


def bcast(v: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """Reshapes a per-example (B,) or scalar array so it broadcasts against x (B, ...)."""
    v = jnp.asarray(v)
    if v.ndim == 0:
        return v
    return v.reshape(v.shape + (1,) * (x.ndim - v.ndim))


def keep_t0(x0, t, y):
    """Returns x0 exactly where t = 0 (F_0 = identity without rounding), y elsewhere."""
    return jnp.where(bcast(t == 0, y), x0, y)


def f32(a: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(np.asarray(a, dtype=np.float32))


def separable(P: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """y[b] = P[b] · x[b] · P[b]ᵀ per channel; P (B, N, N), x (B, N, N, C) → (B, N, N, C)."""
    xf = x.astype(jnp.float32)
    y = jnp.einsum("bhk,bkwc->bhwc", P, xf, precision=HI)
    y = jnp.einsum("bwl,bhlc->bhwc", P, y, precision=HI)
    return y.astype(x.dtype)


