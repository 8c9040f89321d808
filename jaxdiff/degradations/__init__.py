"""Cold-diffusion degradations F_t, each a pure function registered by name.

A degradation is built once from its config by a registered *builder*::

    @register_degradation("decolor", color_only=True)
    def decolor(*, T, image_size, channels):
        def apply(x0, t, aux=None):          # x0 (B, H, W, C) in [-1, 1], t (B,) int32
            ...
            return F_t(x0)
        return apply                          # or a full Degradation(...)

Conventions every degradation follows:

* NHWC, values in [−1, 1], any channel count; jit- and vmap-safe; t may differ per example.
* F_0 is the identity (exactly) and severity never decreases with t; F_T is the most degraded state.
* Cost O(1) in t: tables (composed blur matrices, mask products, snow layers, …) are precomputed at
  build time in NumPy float64, stored float32 and gathered by t, never re-applied t times.
* ``aux`` is the per-example randomness that stays fixed across t (a mask centre, a colour, a target
  image); ``sample_aux(key, x0)`` draws it. Deterministic degradations ignore it.
* Bad parameters raise one ValueError naming the field at build time; a wrong input shape raises a
  ValueError while tracing (before anything is compiled).

Built-in degradations (the names used in configs): ``decolor``, ``blur``, ``inpaint``, ``fade``,
``superres``, ``snow``, ``interpolate``.

Linear separable operators (blur, super-resolution) share one representation: per spatial axis an
N×N matrix P_t, and F_t(x) = P_t · x · P_tᵀ per channel (H and W use the same matrix because images
are square). The stack P_0 … P_T (P_0 = I) is built once, so any t costs two small matmuls.
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

from jaxdiff.forward import bcast
from jaxdiff.registry import Registry

__all__ = [
    "Degradation",
    "DegradationEntry",
    "GenerationPrior",
    "DEGRADATIONS",
    "register_degradation",
    "make_degradation",
    "gray",
    "blur_sigmas",
    "blur_sequential",
]

_HI = jax.lax.Precision.HIGHEST


@dataclasses.dataclass(frozen=True)
class GenerationPrior:
    """How a degradation generates from noise-free data: the prior p(x_T) fitted on its end state.

    kind:        a registered prior kind (``jaxdiff.priors.PRIORS``).
    fit_on:      what the prior is fitted on: "source" (the training images), "end_source" (the images of
                 ``data.end_source``) or "none" (a data-free prior, only the image shape).
    fit_params:  fixed fit parameters (e.g. the super-resolution T).
    prior_noise: whether ``config.sample.prior_noise`` is passed to the fit as its per-pixel ``noise``.
    end_state:   ``images (N, H, W, C) float64 -> what the prior is fitted on`` (e.g. F_T(x0) subsampled);
                 None: the images themselves.
    aux:         ``(x_T, key) -> aux`` consistent with a prior draw x_T (e.g. the colour a fade ends at);
                 None: the degradation's own ``sample_aux(key, x_T)``.
    """

    kind: str
    fit_on: str = "source"
    fit_params: Mapping[str, Any] = dataclasses.field(default_factory=dict)
    prior_noise: bool = False
    end_state: Optional[Callable[[np.ndarray], np.ndarray]] = None
    aux: Optional[Callable[..., Any]] = None


@dataclasses.dataclass(frozen=True, eq=False)
class Degradation:
    """A built degradation: ``apply(x0, t, aux) -> F_t(x0)`` plus what the rest of the library asks of it.

    sample_aux:      ``(key, x0) -> aux`` per-example randomness (leading dim B), fixed across t.
    step:            ``(x_prev, t, aux) -> x_t``, the single forward step x_{t−1} → x_t, where it exists
                     (step(F_{t−1}(x0), t, aux) = F_t(x0) for t ≥ 1).
    prior:           ``(key, shape, aux) -> x_T`` when F_T has a data-free end state (a colour, noise).
    params:          the parameters it was built with (for :meth:`describe`).
    color_only:      it needs 3-channel (colour) images.
    needs_end_source: its aux is an image of a second data set (``data.end_source``).
    generation:      how it generates (:class:`GenerationPrior`), or None: restoration only.
    restoration_aux: ``(key, x0, end_images) -> aux`` for degrading held-out images (end_images: images of
                     the end source or None); None: ``sample_aux(key, x0)``.
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

    def __call__(self, x0, t, aux=None):
        return self.apply(x0, t, aux)

    def describe(self) -> str:
        """``"blur(kernel_size=5, std=0.5), T=20"``: how pictures and reports name it."""
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
        """The builder's own parameters and their defaults (``inspect.Parameter.empty`` when required)."""
        sig = inspect.signature(self.builder)
        return {n: p.default for n, p in sig.parameters.items()
                if p.kind is p.KEYWORD_ONLY or p.kind is p.POSITIONAL_OR_KEYWORD
                if n not in ("T", "image_size", "channels")}


DEGRADATIONS: Registry[DegradationEntry] = Registry("degradation")


def register_degradation(name: str, *, color_only: bool = False, needs_end_source: bool = False):
    """Decorator: registers a builder ``fn(*, T, image_size, channels, **params)`` under ``name``.

    The builder returns a :class:`Degradation` or just the ``apply`` function. It may declare only
    the keyword arguments it uses and end with ``**_`` to ignore the others (then unknown config
    keys are silently accepted; the built-ins declare everything so that typos raise). ``color_only``
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
        allowed = sorted(k for k in sig.parameters if k not in ("T", "image_size", "channels"))
        raise ValueError(f"degradation {name!r}: unknown parameter(s) {unknown}; allowed: {allowed}")
    out = builder(T=T, image_size=image_size, channels=channels, **params)
    if callable(out) and not isinstance(out, Degradation):
        out = Degradation(name=name, T=T, apply=_accept_missing_aux(out))
    if not isinstance(out, Degradation):
        raise TypeError(f"builder of {name!r} returned {type(out).__name__}, not a Degradation or a function")
    declared = {k: v for k, v in entry.declared_params().items() if v is not inspect.Parameter.empty}
    return dataclasses.replace(out, params={**declared, **params}, color_only=entry.color_only,
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


# --------------------------------------------------------------------------------------------
# shared helpers
# --------------------------------------------------------------------------------------------


def _fail(deg: str, field: str, value, allowed: str):
    raise ValueError(f"degradation {deg!r}: {field} must be {allowed}, got {value!r}")


def _check_int(deg, field, value, *, lo=None):
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or (lo is not None and value < lo):
        _fail(deg, field, value, "an integer" + (f" >= {lo}" if lo is not None else ""))
    return int(value)


def _check_real(deg, field, value, *, positive=False, nonneg=False):
    ok = isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)
    if ok and positive and not value > 0:
        ok = False
    if ok and nonneg and not value >= 0:
        ok = False
    if not ok:
        _fail(deg, field, value, "a finite number" + (" > 0" if positive else " >= 0" if nonneg else ""))
    return float(value)


def _check_choice(deg, field, value, choices):
    if value not in choices:
        _fail(deg, field, value, f"one of {list(choices)}")
    return value


def _check_bool(deg, field, value):
    if not isinstance(value, (bool, np.bool_)):
        _fail(deg, field, value, "True or False")
    return bool(value)


def _check_size(deg, image_size, channels):
    _check_int(deg, "image_size", image_size, lo=1)
    _check_int(deg, "channels", channels, lo=1)
    return int(image_size)


def _t_vec(t, x: jnp.ndarray, deg: str) -> jnp.ndarray:
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


def _check_image(x, deg: str, n: Optional[int] = None):
    if x.ndim != 4:
        raise ValueError(f"degradation {deg!r}: x0 must be NHWC (B, H, W, C), got shape {x.shape}")
    if n is not None and (x.shape[1] != n or x.shape[2] != n):
        raise ValueError(
            f"degradation {deg!r} was built for image_size={n}: x0 must be (B, {n}, {n}, C), got {x.shape}"
        )


def _keep_t0(x0, t, y):
    """Returns x0 exactly where t = 0 (F_0 = identity without rounding), y elsewhere."""
    return jnp.where(bcast(t == 0, y), x0, y)


def _f32(a: np.ndarray) -> jnp.ndarray:
    return jnp.asarray(np.asarray(a, dtype=np.float32))


def _separable(P: jnp.ndarray, x: jnp.ndarray) -> jnp.ndarray:
    """y[b] = P[b] · x[b] · P[b]ᵀ per channel; P (B, N, N), x (B, N, N, C) → (B, N, N, C)."""
    xf = x.astype(jnp.float32)
    y = jnp.einsum("bhk,bkwc->bhwc", P, xf, precision=_HI)
    y = jnp.einsum("bwl,bhlc->bhwc", P, y, precision=_HI)
    return y.astype(x.dtype)


def gray(x: jnp.ndarray) -> jnp.ndarray:
    """Per-pixel channel mean, kept at C channels: (B, H, W, C) → (B, H, W, C)."""
    return jnp.broadcast_to(jnp.mean(x, axis=-1, keepdims=True), x.shape)


# --------------------------------------------------------------------------------------------
# decolor
# --------------------------------------------------------------------------------------------


@register_degradation("decolor", color_only=True)
def decolor(*, T: int, image_size: int = 32, channels: int = 3) -> Degradation:
    """F_t(x) = (1 − t/T)·x + (t/T)·gray(x), gray = per-pixel channel mean. Pointwise: any H, W."""
    _check_size("decolor", image_size, channels)

    def apply(x0, t, aux=None):
        _check_image(x0, "decolor")
        t = _t_vec(t, x0, "decolor")
        s = bcast(t.astype(jnp.float32) / T, x0).astype(x0.dtype)
        return (1 - s) * x0 + s * gray(x0)

    def step(x_prev, t, aux=None):
        # x_t − g = (T − t)/(T − t + 1) · (x_{t−1} − g), and gray(x_{t−1}) = gray(x0) = g.
        _check_image(x_prev, "decolor")
        t = _t_vec(t, x_prev, "decolor")
        g = gray(x_prev)
        tf = bcast(t.astype(jnp.float32), x_prev)
        r = jnp.where(tf > 0, (T - tf) / (T - tf + 1), 1.0)
        return g + r.astype(x_prev.dtype) * (x_prev - g)

    return Degradation(name="decolor", T=T, apply=apply, step=step)


# --------------------------------------------------------------------------------------------
# blur
# --------------------------------------------------------------------------------------------

BLUR_ROUTINES = ("constant", "incremental", "exponential", "affine")
BLUR_PADDINGS = ("circular", "reflect")


def _check_blur_params(*, kernel_size, std, routine, padding, std_increment, image_size=None):
    deg = "blur"
    k = _check_int(deg, "kernel_size", kernel_size, lo=1)
    if k % 2 == 0:
        _fail(deg, "kernel_size", kernel_size, "odd (the kernel is centred)")
    std = _check_real(deg, "std", std, positive=True)
    _check_choice(deg, "routine", routine, BLUR_ROUTINES)
    _check_choice(deg, "padding", padding, BLUR_PADDINGS)
    inc = _check_real(deg, "std_increment", std_increment)
    if padding == "reflect" and image_size is not None and not image_size > k // 2:
        raise ValueError(
            f"degradation 'blur': reflect padding needs image_size > kernel_size//2 "
            f"(got image_size={image_size}, kernel_size={k})"
        )
    return k, std, inc


def blur_sigmas(T: int, *, std: float, routine: str, std_increment: float = 0.01) -> np.ndarray:
    """σ_i of blur step i = 0 … T−1 (float64, shape (T,)).

    constant: σ_i = std;  incremental: σ_i = std·(i+1);  exponential: σ_i = exp(std·i);
    affine: σ_i = std + std_increment·i  (CIFAR-10: std 0.35, std_increment 0.01).
    """
    i = np.arange(T, dtype=np.float64)
    if routine == "constant":
        s = np.full(T, float(std))
    elif routine == "incremental":
        s = std * (i + 1)
    elif routine == "exponential":
        with np.errstate(over="ignore"):
            s = np.exp(std * i)  # may overflow to inf: the Gaussian then becomes a box, still valid
    elif routine == "affine":
        s = std + std_increment * i
    else:
        _fail("blur", "routine", routine, f"one of {list(BLUR_ROUTINES)}")
    if T and not np.all(s > 0):
        j = int(np.argmin(s))
        raise ValueError(
            f"degradation 'blur': every σ_i must be > 0, but routine {routine!r} with std={std}, "
            f"std_increment={std_increment} gives σ_{j} = {s[j]:.4g}"
        )
    return s


def _gauss1d(sigma: float, k: int) -> np.ndarray:
    """1-D Gaussian sampled at integer offsets −k//2 … k//2, normalised to sum 1 (float64)."""
    r = np.arange(-(k // 2), k // 2 + 1, dtype=np.float64)
    with np.errstate(over="ignore"):  # a huge σ gives σ² = inf, i.e. a box: fine
        g = np.exp(-(r**2) / (2.0 * np.float64(sigma) ** 2)) if np.isfinite(sigma) else np.ones_like(r)
    return g / g.sum()


def _blur_matrix(g: np.ndarray, n: int, padding: str) -> np.ndarray:
    """N×N matrix M of the 1-D correlation y[i] = Σ_j g[j] x[pad(i + j − k//2)] with that padding."""
    k = g.size
    rows = np.arange(n)[:, None]
    src = rows + np.arange(k)[None, :] - k // 2  # (n, k) source index before padding
    if padding == "circular":
        src = np.mod(src, n)
    else:  # reflect about the edge sample without repeating it; valid for k//2 <= n-1
        src = np.where(src < 0, -src, src)
        src = np.where(src > n - 1, 2 * (n - 1) - src, src)
    M = np.zeros((n, n), dtype=np.float64)
    np.add.at(M, (np.broadcast_to(rows, src.shape), src), np.broadcast_to(g, src.shape))
    return M


@register_degradation("blur")
def blur(
    *,
    T: int,
    image_size: int = 32,
    channels: int = 3,
    kernel_size: int = 11,
    std: float = 7.0,
    routine: str = "constant",
    padding: str = "circular",
    std_increment: float = 0.01,
    to_mean: bool = False,
) -> Degradation:
    """Cumulative Gaussian blur: F_t = G_{t−1} ∘ … ∘ G_0, F_0 = identity.

    G_i is the depthwise correlation with the separable kernel g_i ⊗ g_i, g_i the 1-D Gaussian of
    σ_i (see :func:`blur_sigmas`) sampled at integer offsets −k//2 … k//2 and normalised to sum 1,
    with circular or reflect (mirror without repeating the edge) padding. Per spatial axis G_i is a
    matrix M_i (N×N); P_t = M_{t−1} ⋯ M_0 (float64, stored float32) and F_t(x) = P_t x P_tᵀ per
    channel, so any t (and a different t per example) costs two N×N matmuls.

    to_mean: the last step (t = T) replaces F_{T−1}(x) by its per-channel spatial mean instead of
    blurring (M_{T−1} = 1/N). With circular padding this equals the published "blur, then take the
    mean", since a circular blur keeps the mean.

    Shapes: x0 (B, N, N, C), t () or (B,), aux ignored. ``step(x_prev, t)`` applies M_{t−1}.
    Severity: every circular M_i has |transfer function| ≤ 1, so the per-channel spatial variance
    never increases with t (for reflect the same holds for the variance of the mirrored image).
    """
    n = _check_size("blur", image_size, channels)
    k, std, inc = _check_blur_params(
        kernel_size=kernel_size, std=std, routine=routine, padding=padding, std_increment=std_increment, image_size=n
    )
    to_mean = _check_bool("blur", "to_mean", to_mean)
    sig = blur_sigmas(T, std=std, routine=routine, std_increment=inc)
    steps = np.empty((T + 1, n, n))
    steps[0] = np.eye(n)
    for i in range(T):
        steps[i + 1] = _blur_matrix(_gauss1d(sig[i], k), n, padding)
    if to_mean:
        steps[T] = np.full((n, n), 1.0 / n)
    cum = np.empty_like(steps)
    cum[0] = steps[0]
    for t in range(1, T + 1):
        cum[t] = steps[t] @ cum[t - 1]
    P, S = _f32(cum), _f32(steps)

    def apply(x0, t, aux=None):
        _check_image(x0, "blur", n)
        t = _t_vec(t, x0, "blur")
        return _keep_t0(x0, t, _separable(P[t], x0))

    def step(x_prev, t, aux=None):
        _check_image(x_prev, "blur", n)
        t = _t_vec(t, x_prev, "blur")
        return _keep_t0(x_prev, t, _separable(S[t], x_prev))

    return Degradation(name="blur", T=T, apply=apply, step=step)


def blur_sequential(
    x0: jnp.ndarray,
    t: int,
    *,
    kernel_size: int = 11,
    std: float = 7.0,
    routine: str = "constant",
    padding: str = "circular",
    std_increment: float = 0.01,
    to_mean: bool = False,
    T: Optional[int] = None,
) -> jnp.ndarray:
    """Plain reference of the cumulative blur: applies the t per-step convolutions one by one.

    x0 (B, H, W, C), t a Python int (the same for the whole batch). Each step pads with
    ``jnp.pad`` (``wrap`` or ``reflect``) and runs a depthwise ``lax.conv_general_dilated`` with
    the 2-D kernel g_i ⊗ g_i. This is the O(t)-per-call way the published code works (O(T²) per
    sample); :func:`blur` is the O(1) equivalent. With ``to_mean`` the step t = T (T required)
    takes the per-channel spatial mean instead of blurring.
    """
    k, std, inc = _check_blur_params(
        kernel_size=kernel_size, std=std, routine=routine, padding=padding, std_increment=std_increment,
        image_size=min(x0.shape[1], x0.shape[2]),
    )
    t = _check_int("blur", "t", t, lo=0)
    if to_mean:
        if T is None or t > T:
            raise ValueError(f"blur_sequential: to_mean needs T >= t, got T={T!r}, t={t}")
    sig = blur_sigmas(t, std=std, routine=routine, std_increment=inc)
    c = x0.shape[-1]
    mode = "wrap" if padding == "circular" else "reflect"
    r = k // 2
    x = x0
    for i in range(t):
        if to_mean and i == T - 1:
            x = jnp.broadcast_to(jnp.mean(x, axis=(1, 2), keepdims=True), x.shape)
            continue
        g = _gauss1d(sig[i], k)
        kern = jnp.asarray(np.outer(g, g)[:, :, None, None].repeat(c, axis=3), x.dtype)  # HWIO, depthwise
        xp = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode=mode)
        x = jax.lax.conv_general_dilated(
            xp, kern, window_strides=(1, 1), padding="VALID",
            dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c, precision=_HI,
        )
    return x


# --------------------------------------------------------------------------------------------
# inpaint and fade (Gaussian masks growing from a centre)
# --------------------------------------------------------------------------------------------


def _check_mask_params(deg, kernel_std, initial_mask, centered):
    ks = _check_real(deg, "kernel_std", kernel_std, positive=True)
    im = _check_real(deg, "initial_mask", initial_mask, positive=True)
    return ks, im, _check_bool(deg, "centered", centered)


def _mask_tables(T: int, n: int, kernel_std: float, initial_mask: float):
    """Mask tables indexed by (t, r²), r² = dy² + dx² ∈ [0, 2(N−1)²] (float64).

    m_i(r²) = 1 − exp(−r² / (2 s_i²)), s_i = kernel_std·(i + initial_mask): the Gaussian bump
    G_i / max G_i with its peak on the (integer) centre pixel. Returns
    step[t] = m_{t−1} (step[0] = 1) and prod[t] = ∏_{i<t} m_i (prod[0] = 1), both (T+1, R).
    """
    r2 = np.arange(2 * (n - 1) ** 2 + 1, dtype=np.float64)
    s = kernel_std * (np.arange(T, dtype=np.float64) + initial_mask)
    m = 1.0 - np.exp(-r2[None, :] / (2.0 * s[:, None] ** 2))
    step = np.concatenate([np.ones((1, r2.size)), m], axis=0)
    return step, np.cumprod(step, axis=0)


def _r2_index(centers: jnp.ndarray, n: int) -> jnp.ndarray:
    """(B, 2) integer centres (row, col) → (B, N, N) int32 squared distances r²."""
    c = jnp.clip(centers.astype(jnp.int32), 0, n - 1)
    ar = jnp.arange(n, dtype=jnp.int32)
    dy = ar[None, :] - c[:, :1]
    dx = ar[None, :] - c[:, 1:]
    return dy[:, :, None] ** 2 + dx[:, None, :] ** 2


def _check_centers(c, x, deg):
    c = jnp.asarray(c)
    if c.shape != (x.shape[0], 2) or not jnp.issubdtype(c.dtype, jnp.integer):
        raise ValueError(
            f"degradation {deg!r}: the mask centres (aux) must be integers of shape (B, 2) = ({x.shape[0]}, 2), "
            f"got {c.dtype}{c.shape}"
        )
    return c


def _sample_centers(key, x0, n):
    return jax.random.randint(key, (x0.shape[0], 2), 0, n, dtype=jnp.int32)


@register_degradation("inpaint")
def inpaint(
    *,
    T: int,
    image_size: int = 32,
    channels: int = 3,
    kernel_std: float = 0.1,
    initial_mask: float = 11.0,
    centered: bool = False,
) -> Degradation:
    """Growing Gaussian-hole inpainting: F_t(x0) = x0 ⊙ ∏_{i<t} m_i (masked pixels become 0).

    m_i = 1 − G_i / max G_i, G_i a Gaussian bump of std kernel_std·(i + initial_mask) pixels at an
    integer centre c (the same for every channel and every t). ``centered=True`` puts c at the image
    centre (N//2, N//2); otherwise c is drawn per example by ``sample_aux(key, x0)`` → int32 (B, 2)
    (row, col), uniform over the pixels, and ``aux=None`` falls back to the image centre.

    m_i depends only on the integer r² = dy² + dx², so the table ∏_{i<t} m_i over (t, r²) is built once
    and any centre is a gather. ``step(x_prev, t, aux)`` multiplies by m_{t−1}.
    """
    n = _check_size("inpaint", image_size, channels)
    ks, im, centered = _check_mask_params("inpaint", kernel_std, initial_mask, centered)
    step_tab, prod_tab = _mask_tables(T, n, ks, im)
    S, P = _f32(step_tab), _f32(prod_tab)

    def mask(table, x, t, aux):
        if centered or aux is None:
            c = jnp.full((x.shape[0], 2), n // 2, jnp.int32)
        else:
            c = _check_centers(aux, x, "inpaint")
        return table[t[:, None, None], _r2_index(c, n)][..., None]  # (B, N, N, 1)

    def apply(x0, t, aux=None):
        _check_image(x0, "inpaint", n)
        t = _t_vec(t, x0, "inpaint")
        return _keep_t0(x0, t, x0 * mask(P, x0, t, aux).astype(x0.dtype))

    def step(x_prev, t, aux=None):
        _check_image(x_prev, "inpaint", n)
        t = _t_vec(t, x_prev, "inpaint")
        return x_prev * mask(S, x_prev, t, aux).astype(x_prev.dtype)

    sample_aux = None if centered else (lambda key, x0: _sample_centers(key, x0, n))
    return Degradation(name="inpaint", T=T, apply=apply, step=step, sample_aux=sample_aux)


@register_degradation("fade")
def fade(
    *,
    T: int,
    image_size: int = 32,
    channels: int = 3,
    kernel_std: float = 0.1,
    initial_mask: float = 11.0,
    centered: bool = True,
) -> Degradation:
    """Fade to a solid colour (the generation variant of inpainting).

        x_t = M_t ⊙ x0 + (1 − M_t) ⊙ c,   M_t = ∏_{i<t} m_i for t < T (the inpaint masks),  M_T = 0,

    c a solid colour per example and channel, c ~ U(−0.5, 0.5). Setting M_T = 0 makes F_T exactly
    the colour image, so x_T carries no information about x0 and ``prior`` is exact. The Gaussian
    masks alone never reach 0, so pick kernel_std·(T + initial_mask) large against the image size
    (e.g. ≥ N) if the last step should not be a jump.

    aux: the colour (B, 1, 1, C), or with ``centered=False`` a dict {"color": (B, 1, 1, C),
    "center": int (B, 2)}; ``sample_aux(key, x0)`` draws that. ``apply`` needs aux (there is no
    default colour). ``prior(key, shape, aux)`` returns the colour image (drawing c if aux is None).
    ``step(x_prev, t, aux)`` = c + m_{t−1} (x_prev − c), with m_{T−1} := 0.
    """
    n = _check_size("fade", image_size, channels)
    ks, im, centered = _check_mask_params("fade", kernel_std, initial_mask, centered)
    step_tab, prod_tab = _mask_tables(T, n, ks, im)
    step_tab[T] = 0.0
    prod_tab[T] = 0.0
    S, P = _f32(step_tab), _f32(prod_tab)

    def split(aux, x):
        if aux is None:
            raise ValueError("degradation 'fade': aux (the end colour) is required; draw it with sample_aux(key, x0)")
        if isinstance(aux, dict):
            color, center = aux.get("color"), aux.get("center")
            if color is None:
                raise ValueError("degradation 'fade': aux dict needs a 'color' entry of shape (B, 1, 1, C)")
        else:
            color, center = aux, None
        color = jnp.asarray(color)
        b, c = x.shape[0], x.shape[-1]
        if color.ndim != 4 or color.shape[0] != b or color.shape[1:3] != (1, 1) or color.shape[3] not in (1, c):
            raise ValueError(f"degradation 'fade': aux color must have shape ({b}, 1, 1, {c}), got {color.shape}")
        if centered or center is None:
            center = jnp.full((b, 2), n // 2, jnp.int32)
        else:
            center = _check_centers(center, x, "fade")
        return color.astype(x.dtype), center

    def blend(table, x, t, aux):
        color, center = split(aux, x)
        m = table[t[:, None, None], _r2_index(center, n)][..., None].astype(x.dtype)
        return color + m * (x - color)

    def apply(x0, t, aux=None):
        _check_image(x0, "fade", n)
        t = _t_vec(t, x0, "fade")
        return _keep_t0(x0, t, blend(P, x0, t, aux))

    def step(x_prev, t, aux=None):
        _check_image(x_prev, "fade", n)
        t = _t_vec(t, x_prev, "fade")
        return _keep_t0(x_prev, t, blend(S, x_prev, t, aux))

    def draw_color(key, b, c, dtype):
        return jax.random.uniform(key, (b, 1, 1, c), dtype, minval=-0.5, maxval=0.5)

    def sample_aux(key, x0):
        kc, kp = jax.random.split(key)
        color = draw_color(kc, x0.shape[0], x0.shape[-1], x0.dtype)
        if centered:
            return color
        return {"color": color, "center": _sample_centers(kp, x0, n)}

    def prior(key, shape, aux=None):
        shape = tuple(shape)
        if aux is None:
            color = draw_color(key, shape[0], shape[-1], jnp.float32)
        else:
            color = jnp.asarray(aux["color"] if isinstance(aux, dict) else aux)
        return jnp.broadcast_to(color, shape)

    return Degradation(name="fade", T=T, apply=apply, step=step, sample_aux=sample_aux, prior=prior)


# --------------------------------------------------------------------------------------------
# super-resolution
# --------------------------------------------------------------------------------------------

SUPERRES_METHODS = ("area", "bicubic")


def _keys_cubic(x: np.ndarray) -> np.ndarray:
    """Keys cubic kernel, a = −0.5 (the kernel of jax.image.resize 'cubic'), of |x|."""
    x = np.abs(x)
    near = ((1.5 * x - 2.5) * x) * x + 1.0
    far = ((-0.5 * x + 2.5) * x - 4.0) * x + 2.0
    return np.where(x < 1.0, near, np.where(x < 2.0, far, 0.0))


def _cubic_down_matrix(n_in: int, n_out: int) -> np.ndarray:
    """(n_out, n_in) antialiased Keys-cubic down-sampling, the same weights as
    ``jax.image.resize(…, 'cubic', antialias=True)`` (the kernel stretched by n_in/n_out, each row
    renormalised to sum 1), computed in float64."""
    inv = n_in / n_out
    centre = (np.arange(n_out, dtype=np.float64) + 0.5) * inv - 0.5
    w = _keys_cubic((centre[:, None] - np.arange(n_in, dtype=np.float64)[None, :]) / max(inv, 1.0))
    return w / w.sum(axis=1, keepdims=True)


@register_degradation("superres")
def superres(*, T: int, image_size: int = 32, channels: int = 3, method: str = "area") -> Degradation:
    """Resolution loss: F_t(x) = up_t(down_t(x)), the image at N/2^t shown at full size N; F_0 = identity.

    down_t: ``area`` = mean over 2^t × 2^t blocks, or ``bicubic`` = Keys cubic with antialiasing
    (``jax.image.resize`` 'cubic', straight from N to N/2^t); up_t = nearest (each low-res pixel
    repeated 2^t × 2^t). Both are separable linear maps, stored as per-axis N×N matrices P_t = U_t D_t.
    Requires N divisible by 2^T (so T ≤ log2 N).

    ``step(x_prev, t)`` exists for ``area`` only: averaging 2^t blocks of an image that is constant on
    2^(t−1) blocks is exactly F_t, so step = the area operator of level t. Chained bicubic resizes do
    not compose to the direct one, so ``bicubic`` has no single step.
    """
    n = _check_size("superres", image_size, channels)
    _check_choice("superres", "method", method, SUPERRES_METHODS)
    if n % (2**T) != 0:
        raise ValueError(
            f"degradation 'superres': image_size must be divisible by 2**T (T <= log2(image_size)); "
            f"got image_size={n}, T={T}"
        )
    mats = np.empty((T + 1, n, n))
    for t in range(T + 1):
        f = 2**t
        lo = n // f
        up = np.zeros((n, lo))
        up[np.arange(n), np.arange(n) // f] = 1.0
        if method == "area" or t == 0:
            down = np.zeros((lo, n))
            down[np.arange(n) // f, np.arange(n)] = 1.0 / f
        else:
            down = _cubic_down_matrix(n, lo)
        mats[t] = up @ down
    P = _f32(mats)

    def apply(x0, t, aux=None):
        _check_image(x0, "superres", n)
        t = _t_vec(t, x0, "superres")
        return _keep_t0(x0, t, _separable(P[t], x0))

    step = (lambda x_prev, t, aux=None: apply(x_prev, t, aux)) if method == "area" else None
    return Degradation(name="superres", T=T, apply=apply, step=step)


# --------------------------------------------------------------------------------------------
# snow
# --------------------------------------------------------------------------------------------


def _shift_zero(img: np.ndarray, dy: int, dx: int) -> np.ndarray:
    """out[y, x] = img[y + dy, x + dx], 0 outside."""
    h, w = img.shape
    out = np.zeros_like(img)
    ys, yd = slice(max(dy, 0), h + min(dy, 0)), slice(max(-dy, 0), h + min(-dy, 0))
    xs, xd = slice(max(dx, 0), w + min(dx, 0)), slice(max(-dx, 0), w + min(-dx, 0))
    if ys.start < ys.stop and xs.start < xs.stop:
        out[yd, xd] = img[ys, xs]
    return out


def _shift_bilinear(img: np.ndarray, dy: float, dx: float) -> np.ndarray:
    """out[y, x] = img(y + dy, x + dx), bilinear, 0 outside."""
    y0, x0 = math.floor(dy), math.floor(dx)
    fy, fx = dy - y0, dx - x0
    out = (1 - fy) * (1 - fx) * _shift_zero(img, y0, x0)
    if fx:
        out += (1 - fy) * fx * _shift_zero(img, y0, x0 + 1)
    if fy:
        out += fy * (1 - fx) * _shift_zero(img, y0 + 1, x0)
    if fx and fy:
        out += fy * fx * _shift_zero(img, y0 + 1, x0 + 1)
    return out


def _zoom_crop(low: np.ndarray, zoom: float, n: int) -> np.ndarray:
    """Bilinear ×zoom up-sampling of a small square array, centre-cropped to n × n."""
    m = low.shape[0]
    off = (m * zoom - n) / 2.0
    p = np.clip((np.arange(n) + 0.5 + off) / zoom - 0.5, 0, m - 1)
    i0 = np.minimum(np.floor(p).astype(int), m - 2) if m > 1 else np.zeros(n, int)
    f = p - i0 if m > 1 else np.zeros(n)
    i1 = np.minimum(i0 + 1, m - 1)
    rows = low[i0] * (1 - f)[:, None] + low[i1] * f[:, None]
    return rows[:, i0] * (1 - f)[None, :] + rows[:, i1] * f[None, :]


def _motion_blur(layer: np.ndarray, sigma: float, angle_deg: float) -> np.ndarray:
    """One-sided Gaussian streak (ImageMagick-style motion blur): Σ_d w_d · layer(p + d·u),
    d = 0 … ceil(3σ), w_d ∝ exp(−d²/2σ²) normalised, u the unit vector at ``angle_deg``."""
    radius = max(1, int(math.ceil(3.0 * sigma)))
    d = np.arange(radius + 1, dtype=np.float64)
    w = np.exp(-(d**2) / (2.0 * sigma**2))
    w /= w.sum()
    a = math.radians(angle_deg)
    uy, ux = math.sin(a), math.cos(a)
    out = np.zeros_like(layer)
    for di, wi in zip(d, w):
        if wi < 1e-12:
            continue
        out += wi * _shift_bilinear(layer, di * uy, di * ux)
    return out


@register_degradation("snow", color_only=True)
def snow(
    *,
    T: int,
    image_size: int = 32,
    channels: int = 3,
    seed: int = 0,
    thr_start: float = 1.15,
    thr_end: float = 0.70,
    sigma_start: float = 0.05,
    sigma_end: float = 16.0,
    loc: float = 0.55,
    scale: float = 0.3,
    zoom: float = 2.5,
) -> Degradation:
    """ImageNet-C-style snow (not cumulative in the image; the snow layer only grows with t).

        x̃ = (x0 + 1)/2,   F_t(x0) = clip(x̃ + S_t + rot180(S_t), 0, 1)·2 − 1   (t ≥ 1),   F_0 = identity.

    One base noise image is drawn at build time from ``seed``: normal(loc, scale) at ceil(N/zoom)²,
    bilinearly zoomed ×zoom and centre-cropped to N×N; one streak angle θ ~ U(−135°, −45°). For
    t = 1 … T (linear in t): thr_t from thr_start to thr_end, σ_t from sigma_start to sigma_end;
    L_t = clip(base · [base ≥ thr_t], 0, 1) motion-blurred with σ_t along θ. A wider blur spreads a
    flake and lowers its peak, so on its own severity could drop; we define
    S_t = max(S_{t−1}, blur_{σ_t}(L_t)) (pointwise, S_0 = 0): snow accumulates and never melts, so
    F_t is pointwise non-decreasing in t. S (T+1, N, N) is a table: F_t is one gather. Same snow on
    every channel and every example; aux ignored.
    """
    n = _check_size("snow", image_size, channels)
    seed = _check_int("snow", "seed", seed, lo=0)
    thr_start = _check_real("snow", "thr_start", thr_start)
    thr_end = _check_real("snow", "thr_end", thr_end)
    if thr_end > thr_start:
        _fail("snow", "thr_end", thr_end, f"<= thr_start = {thr_start} (a falling threshold adds snow)")
    sigma_start = _check_real("snow", "sigma_start", sigma_start, positive=True)
    sigma_end = _check_real("snow", "sigma_end", sigma_end, positive=True)
    loc = _check_real("snow", "loc", loc)
    scale = _check_real("snow", "scale", scale, nonneg=True)
    zoom = _check_real("snow", "zoom", zoom)
    if zoom < 1:
        _fail("snow", "zoom", zoom, ">= 1")

    rng = np.random.default_rng(seed)
    base = _zoom_crop(rng.normal(loc, scale, size=(math.ceil(n / zoom),) * 2), zoom, n)
    angle = float(rng.uniform(-135.0, -45.0))
    frac = np.arange(T, dtype=np.float64) / (T - 1) if T > 1 else np.ones(1)
    thr = thr_start + frac * (thr_end - thr_start)
    sig = sigma_start + frac * (sigma_end - sigma_start)
    layers = np.zeros((T + 1, n, n))
    for t in range(1, T + 1):
        flakes = np.clip(np.where(base >= thr[t - 1], base, 0.0), 0.0, 1.0)
        layers[t] = np.maximum(layers[t - 1], _motion_blur(flakes, sig[t - 1], angle))
    table = _f32(layers + layers[:, ::-1, ::-1])

    def apply(x0, t, aux=None):
        _check_image(x0, "snow", n)
        t = _t_vec(t, x0, "snow")
        s = table[t][..., None].astype(x0.dtype)
        # clip(x̃ + s, 0, 1)·2 − 1 = clip(x0 + 2s, −1, 1)
        return _keep_t0(x0, t, jnp.clip(x0 + 2 * s, -1, 1))

    return Degradation(name="snow", T=T, apply=apply)


# --------------------------------------------------------------------------------------------
# interpolation (animorphosis)
# --------------------------------------------------------------------------------------------


@register_degradation("interpolate", needs_end_source=True)
def interpolate(*, T: int, image_size: int = 32, channels: int = 3) -> Degradation:
    """Interpolation toward another image (animorphosis): x_t = √ᾱ_t x0 + √(1 − ᾱ_t) z.

    ᾱ is ``jaxdiff.schedules.cosine(T).alphas_cumprod`` (its float64-derived √ᾱ, √(1−ᾱ)); ᾱ_T is
    tiny but not 0 (β is clipped at 0.999). z = aux, an image batch of the same shape as x0 (an image
    of another data set); ``sample_aux`` draws Gaussian noise (the Gaussian-diffusion special case).
    ``prior(key, shape, aux)`` returns aux if given, else N(0, I) noise. No single forward step
    (x_t is not a function of x_{t−1} alone without z).
    """
    from jaxdiff.schedules import cosine  # local: schedules is light, but keeps the import graph flat

    _check_size("interpolate", image_size, channels)
    sched = cosine(T)
    a, s = sched.sqrt_alphas_cumprod, sched.sqrt_one_minus_alphas_cumprod

    def apply(x0, t, aux=None):
        _check_image(x0, "interpolate")
        t = _t_vec(t, x0, "interpolate")
        if aux is None:
            raise ValueError(
                "degradation 'interpolate': aux (the end image z, shape of x0) is required; "
                "pass a batch of the other data set or draw noise with sample_aux(key, x0)"
            )
        z = jnp.asarray(aux)
        if z.shape != x0.shape:
            raise ValueError(f"degradation 'interpolate': aux must have the shape of x0 {x0.shape}, got {z.shape}")
        y = bcast(a[t], x0).astype(x0.dtype) * x0 + bcast(s[t], x0).astype(x0.dtype) * z.astype(x0.dtype)
        return _keep_t0(x0, t, y)

    def sample_aux(key, x0):
        return jax.random.normal(key, x0.shape, x0.dtype)

    def prior(key, shape, aux=None):
        if aux is not None:
            z = jnp.asarray(aux)
            if z.shape != tuple(shape):
                raise ValueError(f"degradation 'interpolate': aux must have shape {tuple(shape)}, got {z.shape}")
            return z
        return jax.random.normal(key, tuple(shape), jnp.float32)

    return Degradation(name="interpolate", T=T, apply=apply, sample_aux=sample_aux, prior=prior)
