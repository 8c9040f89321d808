"""Generation priors p(x_T): what the reverse process starts from when there is no degraded input.

A prior is fitted once on training images (NHWC, values in [−1, 1]) and stored with a checkpoint as
plain arrays — a ``kind`` string plus a dict of NumPy arrays, serialisable to npz (no pickle) or JSON::

    prior = fit_prior("blur_mean", train_images, seed=0, noise=0.002)
    x_T = prior.sample(key, 64)                        # (64, H, W, C) float32
    arrays = prior.to_arrays()                         # {"kind": <0-d str array>, "shape": ..., ...}
    prior2 = Prior.from_arrays(arrays)                 # same samples for the same key

Kinds (the registry :data:`PRIORS`, keyed by the names used in configs):

* ``gaussian``  – x_T ~ N(0, I) of the image shape (hot diffusion; nothing to fit).
* ``blur_mean`` – the end state of a full blur is a flat image of the per-channel spatial means
  m = mean_{h,w} x0 ∈ R^C. Fit a K-component full-covariance Gaussian mixture to m (K = 1: one
  Gaussian), draw m, broadcast it over (H, W) and add N(0, noise²) per pixel. noise = 0.002 is the
  "broken symmetry" of Bansal et al. (2022); noise = 0 ("perfect symmetry") gives exactly flat images.
* ``colour``    – a solid colour c ~ U(low, high)^C, (low, high) = (−0.5, 0.5): the end state of the
  fade-to-colour generator (+ optional per-pixel noise).
* ``superres``  – a K-component Gaussian mixture (full or diagonal covariance) on the lowest
  resolution images, x0 area-averaged by 2^T to (H/2^T, W/2^T, C); draws are nearest-up-sampled back
  to (H, W, C) (+ optional per-pixel noise).
* ``dataset``   – a uniformly chosen image from a stored bank of another data set (interpolation /
  animorphosis toward other images).

Mixtures are fitted by EM in float64 NumPy (:func:`fit_gmm`); sampling is pure JAX and can be jitted
with ``n`` static.
"""
from __future__ import annotations

import dataclasses
import functools
import json
from typing import Any, Callable, Mapping, Optional

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "Prior",
    "PriorKind",
    "PRIORS",
    "register_prior",
    "fit_prior",
    "fit_gmm",
    "gmm_log_likelihood",
    "area_downsample",
    "default_prior_kind",
    "default_prior_params",
]


# --------------------------------------------------------------------------------------------
# The stored prior
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True, eq=False)
class Prior:
    """A fitted prior: ``kind`` names its entry in :data:`PRIORS`; ``arrays`` hold everything fitted.

    Every kind stores ``shape`` = (H, W, C) (int64). ``sample(key, n)`` returns (n, H, W, C) float32.
    """

    kind: str
    arrays: Mapping[str, np.ndarray]

    def __post_init__(self):
        if self.kind not in PRIORS:
            raise ValueError(f"prior kind {self.kind!r} is not registered; allowed: {sorted(PRIORS)}")
        missing = [k for k in PRIORS[self.kind].keys if k not in self.arrays]
        if missing:
            raise ValueError(f"prior {self.kind!r}: arrays lack {missing}; got {sorted(self.arrays)}")
        # Read-only copies: a Prior is a value that a sampler may hold on to.
        frozen = {}
        for k, v in self.arrays.items():
            a = np.array(v, copy=True)
            if a.dtype == object:
                raise ValueError(f"prior {self.kind!r}: array {k!r} has dtype object; only numeric arrays are stored")
            a.setflags(write=False)
            frozen[k] = a
        shape = frozen["shape"]
        if shape.shape != (3,) or shape.dtype.kind not in "iu" or np.any(shape < 1):
            raise ValueError(f"prior {self.kind!r}: 'shape' must hold (H, W, C) positive ints, got {shape!r}")
        object.__setattr__(self, "arrays", frozen)

    @property
    def shape(self) -> tuple[int, int, int]:
        """(H, W, C) of one sample."""
        return tuple(int(s) for s in self.arrays["shape"])  # type: ignore[return-value]

    def sample(self, key: jax.Array, n: int) -> jnp.ndarray:
        """n draws of x_T, shape (n, H, W, C) float32. Jit-safe with ``n`` static."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"prior {self.kind!r}: n must be an integer >= 1, got {n!r}")
        # Integer arrays (shape, factor) fix the program and are static; float arrays are traced
        # arguments, so every prior of the same kind and sizes reuses one compiled sampler.
        static = tuple(
            (k, v.shape, tuple(v.ravel().tolist())) for k, v in sorted(self.arrays.items()) if v.dtype.kind in "iub"
        )
        floats = {k: v.astype(np.float32) for k, v in self.arrays.items() if v.dtype.kind not in "iub"}
        return _sample_jit(key, floats, kind=self.kind, n=int(n), static=static)

    def replace(self, **updates) -> "Prior":
        """A copy with some stored arrays replaced, e.g. ``prior.replace(noise=0.0)`` for perfect symmetry."""
        unknown = [k for k in updates if k not in self.arrays]
        if unknown:
            raise ValueError(f"prior {self.kind!r}: cannot replace {unknown}; stored arrays: {sorted(self.arrays)}")
        new = dict(self.arrays)
        for k, v in updates.items():
            v = np.asarray(v, dtype=self.arrays[k].dtype)
            if v.shape != self.arrays[k].shape:
                raise ValueError(f"prior {self.kind!r}: {k} must have shape {self.arrays[k].shape}, got {v.shape}")
            new[k] = v
        if "noise" in updates and not float(new["noise"]) >= 0.0:
            raise ValueError(f"prior {self.kind!r}: noise must be >= 0, got {float(new['noise'])!r}")
        return Prior(self.kind, new)

    # -- serialisation ---------------------------------------------------------------------

    def to_arrays(self) -> dict[str, np.ndarray]:
        """``{"kind": 0-d unicode array, **arrays}``: savable by ``np.savez`` and loadable without pickle."""
        out = {"kind": np.asarray(self.kind)}
        out.update({k: np.array(v) for k, v in self.arrays.items()})
        return out

    @classmethod
    def from_arrays(cls, arrays: Mapping[str, Any], kind: Optional[str] = None) -> "Prior":
        """Inverse of :meth:`to_arrays`. ``kind`` may be given separately (then ``arrays`` need no "kind")."""
        arrays = dict(arrays)
        stored = arrays.pop("kind", None)
        if kind is None:
            if stored is None:
                raise ValueError("Prior.from_arrays: no 'kind' in arrays and none passed")
            kind = str(np.asarray(stored).item())
        return cls(str(kind), {k: np.asarray(v) for k, v in arrays.items()})

    def to_json(self) -> str:
        """JSON text {"kind": ..., "arrays": {name: {"dtype", "shape", "data"}}} (exact for float32/64)."""
        enc = {
            k: {"dtype": v.dtype.str, "shape": list(v.shape), "data": v.ravel().tolist()} for k, v in self.arrays.items()
        }
        return json.dumps({"kind": self.kind, "arrays": enc})

    @classmethod
    def from_json(cls, text: str) -> "Prior":
        d = json.loads(text)
        arrays = {
            k: np.asarray(v["data"], dtype=np.dtype(v["dtype"])).reshape(v["shape"]) for k, v in d["arrays"].items()
        }
        return cls(d["kind"], arrays)

    def save(self, path) -> None:
        """Writes :meth:`to_arrays` to an .npz file."""
        np.savez(path, **self.to_arrays())

    @classmethod
    def load(cls, path) -> "Prior":
        with np.load(path, allow_pickle=False) as f:
            return cls.from_arrays({k: f[k] for k in f.files})


@functools.partial(jax.jit, static_argnames=("kind", "n", "static"))
def _sample_jit(key, floats, *, kind: str, n: int, static):
    arrays = dict(floats)
    arrays.update({k: np.asarray(vals).reshape(shape) for k, shape, vals in static})
    return PRIORS[kind].sample(arrays, key, n)


# --------------------------------------------------------------------------------------------
# Registry
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass(frozen=True)
class PriorKind:
    """fit: ``(images float64 (N,H,W,C) | None, *, shape, rng, **params) -> dict of arrays`` (incl. "shape").
    sample: ``(arrays, key, n) -> (n, H, W, C) float32``, traced under jit: integer arrays (shape,
    factor) arrive as NumPy constants, float arrays as float32 tracers. keys: arrays every prior holds.
    needs_data: whether fitting requires images (else a ``shape`` is enough)."""

    fit: Callable[..., dict]
    sample: Callable[..., jnp.ndarray]
    keys: tuple[str, ...]
    needs_data: bool = True


PRIORS: dict[str, PriorKind] = {}


def register_prior(name: str, *, sample: Callable[..., jnp.ndarray], keys: tuple[str, ...], needs_data: bool = True):
    """Decorator on a fit function: registers ``PriorKind(fit, sample, keys, needs_data)`` under ``name``."""

    def deco(fit):
        PRIORS[name] = PriorKind(fit=fit, sample=sample, keys=("shape",) + tuple(keys), needs_data=needs_data)
        return fit

    return deco


def fit_prior(
    kind: str,
    images=None,
    *,
    key: Optional[jax.Array] = None,
    seed: int = 0,
    shape: Optional[tuple[int, int, int]] = None,
    **params,
) -> Prior:
    """Fits the prior registered as ``kind`` on ``images`` (N, H, W, C) in [−1, 1].

    ``key`` (a JAX key) or ``seed`` (an int) seeds the fit's randomness (EM initialisation, bank
    subsampling); ``key`` wins when both are given. Data-free kinds (gaussian, colour) accept
    ``shape=(H, W, C)`` instead of images. Unknown parameters raise a ValueError listing the allowed ones.
    """
    if kind not in PRIORS:
        raise ValueError(f"unknown prior kind {kind!r}; allowed: {sorted(PRIORS)}")
    entry = PRIORS[kind]
    allowed = _fit_params(entry.fit)
    unknown = [k for k in params if k not in allowed]
    if unknown:
        raise ValueError(f"prior {kind!r}: unknown parameter(s) {unknown}; allowed: {sorted(allowed)}")

    x = None
    if images is not None:
        x = _check_images(images, kind)
        if shape is not None and tuple(shape) != x.shape[1:]:
            raise ValueError(f"prior {kind!r}: shape={tuple(shape)} disagrees with the images' {x.shape[1:]}")
        shape = x.shape[1:]
    elif entry.needs_data:
        raise ValueError(f"prior {kind!r}: images (N, H, W, C) are required to fit it")
    elif shape is None:
        raise ValueError(f"prior {kind!r}: pass images or shape=(H, W, C)")
    shape = _check_shape(shape, kind)

    if key is not None:
        seed = int(jax.random.randint(key, (), 0, np.iinfo(np.int32).max))
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)):
        raise ValueError(f"prior {kind!r}: seed must be an int, got {seed!r}")
    rng = np.random.default_rng(int(seed))

    arrays = entry.fit(x, shape=shape, rng=rng, **params)
    arrays["shape"] = np.asarray(shape, np.int64)
    return Prior(kind, arrays)


def _fit_params(fit) -> set[str]:
    import inspect

    return {
        n
        for n, p in inspect.signature(fit).parameters.items()
        if p.kind is p.KEYWORD_ONLY and n not in ("shape", "rng")
    }


def _check_images(images, kind: str) -> np.ndarray:
    x = np.asarray(images)
    if x.ndim != 4:
        raise ValueError(f"prior {kind!r}: images must be NHWC (N, H, W, C), got shape {x.shape}")
    if x.shape[0] < 1 or min(x.shape[1:]) < 1:
        raise ValueError(f"prior {kind!r}: images must be non-empty, got shape {x.shape}")
    if not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"prior {kind!r}: images must be floats in [-1, 1], got dtype {x.dtype}")
    x = x.astype(np.float64)
    if not np.all(np.isfinite(x)):
        raise ValueError(f"prior {kind!r}: images contain NaN or inf")
    lo, hi = float(x.min()), float(x.max())
    if lo < -1.0 - 1e-3 or hi > 1.0 + 1e-3:
        raise ValueError(f"prior {kind!r}: images must lie in [-1, 1], got values in [{lo:.4g}, {hi:.4g}]")
    return x


def _check_shape(shape, kind: str) -> tuple[int, int, int]:
    try:
        s = tuple(int(v) for v in shape)
    except TypeError:
        raise ValueError(f"prior {kind!r}: shape must be (H, W, C), got {shape!r}") from None
    if len(s) != 3 or min(s) < 1:
        raise ValueError(f"prior {kind!r}: shape must be (H, W, C) of positive ints, got {shape!r}")
    return s


def _check_noise(noise, kind: str) -> np.ndarray:
    if not (isinstance(noise, (int, float, np.floating, np.integer)) and not isinstance(noise, bool)) or not (
        float(noise) >= 0.0 and np.isfinite(noise)
    ):
        raise ValueError(f"prior {kind!r}: noise must be a finite float >= 0, got {noise!r}")
    return np.asarray(float(noise), np.float64)


def _check_int(value, name: str, kind: str, low: int = 1) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < low:
        raise ValueError(f"prior {kind!r}: {name} must be an integer >= {low}, got {value!r}")
    return int(value)


def _add_noise(x: jnp.ndarray, arrays, key: jax.Array) -> jnp.ndarray:
    # noise = 0 adds exact zeros (0 · finite), so "perfect symmetry" stays exactly flat.
    return x + jnp.asarray(arrays["noise"], jnp.float32) * jax.random.normal(key, x.shape, jnp.float32)


# --------------------------------------------------------------------------------------------
# Gaussian mixtures by EM (float64 NumPy)
# --------------------------------------------------------------------------------------------


def _component_logpdf(x: np.ndarray, means: np.ndarray, covs: np.ndarray) -> np.ndarray:
    """log N(x_n | μ_k, Σ_k) for x (N, D), means (K, D), covs (K, D, D) → (N, K)."""
    n, d = x.shape
    out = np.empty((n, means.shape[0]))
    for k in range(means.shape[0]):  # K is small; each term is vectorised over N
        L = np.linalg.cholesky(covs[k])
        z = np.linalg.solve(L, (x - means[k]).T)  # (D, N): L z = x − μ
        logdet = 2.0 * np.sum(np.log(np.diag(L)))
        out[:, k] = -0.5 * (np.sum(z * z, axis=0) + logdet + d * np.log(2 * np.pi))
    return out


def _logsumexp(a: np.ndarray, axis: int) -> np.ndarray:
    m = np.max(a, axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.sum(np.exp(a - m), axis=axis))


def gmm_log_likelihood(x, weights, means, covs) -> float:
    """Mean log-likelihood (1/N) Σ_n log Σ_k w_k N(x_n | μ_k, Σ_k); x (N, D), covs (K, D, D)."""
    x = np.asarray(x, np.float64)
    lp = _component_logpdf(x, np.asarray(means, np.float64), np.asarray(covs, np.float64))
    return float(np.mean(_logsumexp(lp + np.log(np.asarray(weights, np.float64)), axis=1)))


def _kmeans_pp(x: np.ndarray, k: int, rng: np.random.Generator, iters: int = 10) -> np.ndarray:
    """k-means++ seeding + a few Lloyd iterations: well-spread starting means for EM."""
    n = x.shape[0]
    centres = [x[rng.integers(n)]]
    d2 = np.sum((x - centres[0]) ** 2, axis=1)
    for _ in range(1, k):
        p = d2 / d2.sum() if d2.sum() > 0 else np.full(n, 1.0 / n)
        centres.append(x[rng.choice(n, p=p)])
        d2 = np.minimum(d2, np.sum((x - centres[-1]) ** 2, axis=1))
    c = np.stack(centres)
    for _ in range(iters):
        lab = np.argmin(((x[:, None, :] - c[None]) ** 2).sum(-1), axis=1)
        for j in range(k):
            if np.any(lab == j):
                c[j] = x[lab == j].mean(0)
    return c


def fit_gmm(
    x,
    n_components: int = 1,
    *,
    covariance: str = "full",
    n_iter: int = 100,
    tol: float = 1e-7,
    reg: float = 1e-6,
    rng: Optional[np.random.Generator] = None,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Maximum-likelihood Gaussian mixture by EM, in float64.

    x: (N, D). Returns weights (K,), means (K, D), covs (K, D, D) (diagonal matrices when
    ``covariance="diag"``). E-step r_nk ∝ w_k N(x_n | μ_k, Σ_k); M-step N_k = Σ_n r_nk,
    w_k = N_k / N, μ_k = Σ_n r_nk x_n / N_k, Σ_k = Σ_n r_nk (x_n − μ_k)(x_n − μ_k)ᵀ / N_k + reg·I.
    K = 1 is the closed form (sample mean, biased sample covariance + reg·I). Stops when the mean
    log-likelihood improves by less than ``tol``.
    """
    x = np.asarray(x, np.float64)
    if x.ndim != 2:
        raise ValueError(f"fit_gmm: x must be (N, D), got shape {x.shape}")
    n, d = x.shape
    if isinstance(n_components, bool) or not isinstance(n_components, (int, np.integer)) or n_components < 1:
        raise ValueError(f"fit_gmm: n_components must be an integer >= 1, got {n_components!r}")
    k = int(n_components)
    if k > n:
        raise ValueError(f"fit_gmm: n_components={k} exceeds the number of points N={n}")
    if covariance not in ("full", "diag"):
        raise ValueError(f"fit_gmm: covariance must be 'full' or 'diag', got {covariance!r}")
    rng = rng if rng is not None else np.random.default_rng(0)
    # reg is relative to the data scale, so it neither swamps tiny variances nor vanishes for big ones
    eye = np.eye(d) * (reg * max(float(np.mean(np.var(x, axis=0))), 1e-12))

    def m_step(r):
        nk = r.sum(0) + 1e-300
        w = nk / n
        mu = (r.T @ x) / nk[:, None]
        cov = np.empty((k, d, d))
        for j in range(k):
            xc = x - mu[j]
            if covariance == "full":
                cov[j] = (r[:, j, None] * xc).T @ xc / nk[j] + eye
            else:
                cov[j] = np.diag((r[:, j, None] * xc * xc).sum(0) / nk[j]) + eye
        return w, mu, cov

    if k == 1:
        return m_step(np.ones((n, 1)))

    centres = _kmeans_pp(x, k, rng)
    lab = np.argmin(((x[:, None, :] - centres[None]) ** 2).sum(-1), axis=1)
    w, mu, cov = m_step(np.eye(k)[lab])
    prev = -np.inf
    for _ in range(int(n_iter)):
        lp = _component_logpdf(x, mu, cov) + np.log(np.maximum(w, 1e-300))
        lse = _logsumexp(lp, axis=1)
        ll = float(lse.mean())
        r = np.exp(lp - lse[:, None])
        w, mu, cov = m_step(r)
        if ll - prev < tol:
            break
        prev = ll
    return w, mu, cov


def _gmm_arrays(w, mu, cov) -> dict[str, np.ndarray]:
    return {
        "weights": w.astype(np.float64),
        "means": mu.astype(np.float64),
        "covs": cov.astype(np.float64),
        # the sampler needs Σ^{1/2}; computing it here keeps Cholesky out of every sample call
        "chol": np.linalg.cholesky(cov).astype(np.float64),
    }


def _sample_gmm(arrays, key: jax.Array, n: int) -> jnp.ndarray:
    """n draws (n, D) float32: k ~ Cat(w), v = μ_k + L_k z, z ~ N(0, I)."""
    w = jnp.asarray(arrays["weights"], jnp.float32)
    mu = jnp.asarray(arrays["means"], jnp.float32)
    L = jnp.asarray(arrays["chol"], jnp.float32)
    k1, k2 = jax.random.split(key)
    comp = jax.random.categorical(k1, jnp.log(w), shape=(n,))
    z = jax.random.normal(k2, (n, mu.shape[1]), jnp.float32)
    return mu[comp] + jnp.einsum("nij,nj->ni", L[comp], z)


# --------------------------------------------------------------------------------------------
# gaussian
# --------------------------------------------------------------------------------------------


def _sample_gaussian(arrays, key, n):
    return jax.random.normal(key, (n,) + tuple(int(s) for s in arrays["shape"]), jnp.float32)


@register_prior("gaussian", sample=_sample_gaussian, keys=(), needs_data=False)
def _fit_gaussian(x, *, shape, rng):
    """x_T ~ N(0, I): only the shape is stored."""
    return {}


# --------------------------------------------------------------------------------------------
# blur_mean
# --------------------------------------------------------------------------------------------


def _sample_blur_mean(arrays, key, n):
    h, w, c = (int(s) for s in arrays["shape"])
    k1, k2 = jax.random.split(key)
    colour = _sample_gmm(arrays, k1, n)  # (n, C)
    x = jnp.broadcast_to(colour[:, None, None, :], (n, h, w, c))
    return _add_noise(x, arrays, k2)


@register_prior("blur_mean", sample=_sample_blur_mean, keys=("weights", "means", "covs", "chol", "noise"))
def _fit_blur_mean(
    x, *, shape, rng, n_components: int = 1, noise: float = 0.002, n_iter: int = 100, reg: float = 1e-6
):
    """GMM (full covariance) on m_n = mean_{h,w} x_n ∈ R^C; x_T = m ⊗ 1_{H×W} + noise·ε."""
    k = _check_int(n_components, "n_components", "blur_mean")
    noise = _check_noise(noise, "blur_mean")
    means = x.mean(axis=(1, 2))  # (N, C)
    w, mu, cov = fit_gmm(means, k, covariance="full", n_iter=_check_int(n_iter, "n_iter", "blur_mean"), reg=reg, rng=rng)
    return {**_gmm_arrays(w, mu, cov), "noise": noise}


# --------------------------------------------------------------------------------------------
# colour
# --------------------------------------------------------------------------------------------


def _sample_colour(arrays, key, n):
    h, w, c = (int(s) for s in arrays["shape"])
    k1, k2 = jax.random.split(key)
    colour = jax.random.uniform(
        k1, (n, c), jnp.float32, minval=arrays["low"], maxval=arrays["high"]
    )
    return _add_noise(jnp.broadcast_to(colour[:, None, None, :], (n, h, w, c)), arrays, k2)


@register_prior("colour", sample=_sample_colour, keys=("low", "high", "noise"), needs_data=False)
def _fit_colour(x, *, shape, rng, low: float = -0.5, high: float = 0.5, noise: float = 0.0):
    """x_T = c ⊗ 1_{H×W} (+ noise·ε), c ~ U(low, high) independently per channel."""
    if not (-1.0 <= float(low) < float(high) <= 1.0):
        raise ValueError(f"prior 'colour': need -1 <= low < high <= 1, got low={low!r}, high={high!r}")
    return {"low": np.asarray(float(low)), "high": np.asarray(float(high)), "noise": _check_noise(noise, "colour")}


# --------------------------------------------------------------------------------------------
# superres
# --------------------------------------------------------------------------------------------


def area_downsample(x: np.ndarray, factor: int) -> np.ndarray:
    """Mean over non-overlapping factor×factor blocks: (N, H, W, C) → (N, H/f, W/f, C)."""
    n, h, w, c = x.shape
    return x.reshape(n, h // factor, factor, w // factor, factor, c).mean(axis=(2, 4))


def _sample_superres(arrays, key, n):
    h, w, c = (int(s) for s in arrays["shape"])
    f = int(arrays["factor"])
    k1, k2 = jax.random.split(key)
    low = _sample_gmm(arrays, k1, n).reshape(n, h // f, w // f, c)
    x = jnp.repeat(jnp.repeat(low, f, axis=1), f, axis=2)  # nearest up-sampling
    return _add_noise(x, arrays, k2)


@register_prior(
    "superres", sample=_sample_superres, keys=("weights", "means", "covs", "chol", "noise", "factor")
)
def _fit_superres(
    x,
    *,
    shape,
    rng,
    T: int,
    n_components: int = 8,
    covariance: str = "full",
    noise: float = 0.0,
    n_iter: int = 100,
    reg: float = 1e-6,
    downsample: Optional[Callable[[np.ndarray], np.ndarray]] = None,
):
    """GMM on the 2^T-times area-down-sampled images (flattened to h·w·C dims); draws are nearest-up-sampled.

    ``downsample`` (optional, fit time only) replaces area averaging, e.g. by the super-resolution
    degradation's own F_T followed by taking every 2^T-th pixel, so the prior matches its end state.
    """
    T = _check_int(T, "T", "superres")
    f = 2**T
    h, w, c = shape
    if h % f or w % f:
        raise ValueError(f"prior 'superres': image size {h}x{w} is not divisible by 2^T = {f} (T={T})")
    if covariance not in ("full", "diag"):
        raise ValueError(f"prior 'superres': covariance must be 'full' or 'diag', got {covariance!r}")
    low = area_downsample(x, f) if downsample is None else np.asarray(downsample(x), np.float64)
    if low.shape != (x.shape[0], h // f, w // f, c):
        raise ValueError(f"prior 'superres': downsample returned {low.shape}, expected {(x.shape[0], h // f, w // f, c)}")
    k = _check_int(n_components, "n_components", "superres")
    gw, mu, cov = fit_gmm(
        low.reshape(x.shape[0], -1), k, covariance=covariance, n_iter=_check_int(n_iter, "n_iter", "superres"),
        reg=reg, rng=rng,
    )
    return {**_gmm_arrays(gw, mu, cov), "noise": _check_noise(noise, "superres"), "factor": np.asarray(f, np.int64)}


# --------------------------------------------------------------------------------------------
# dataset
# --------------------------------------------------------------------------------------------


def _sample_dataset(arrays, key, n):
    bank = jnp.asarray(arrays["bank"], jnp.float32)
    idx = jax.random.randint(key, (n,), 0, bank.shape[0])
    return bank[idx]


@register_prior("dataset", sample=_sample_dataset, keys=("bank",))
def _fit_dataset(x, *, shape, rng, max_images: int = 2048):
    """Stores up to ``max_images`` of the given images (a seeded random subset when there are more)."""
    m = _check_int(max_images, "max_images", "dataset")
    if x.shape[0] > m:
        x = x[np.sort(rng.choice(x.shape[0], m, replace=False))]
    return {"bank": x.astype(np.float32)}


# --------------------------------------------------------------------------------------------
# From a config
# --------------------------------------------------------------------------------------------

#: cold degradation name → the prior that generates from its end state
_COLD_PRIOR = {
    "blur": "blur_mean",
    "superres": "superres",
    "super_resolution": "superres",
    "superresolution": "superres",
    "fade": "colour",
    "colour_fade": "colour",
    "color_fade": "colour",
    "inpaint_colour": "colour",
    "inpaint_color": "colour",
}
#: interpolations end at an image of ``data.end_source`` (→ dataset), or at N(0, I) noise without one
_INTERPOLATIONS = ("interpolate", "interpolation", "animorphosis")


def _get(cfg, path: str, default=None):
    cur = cfg
    for part in path.split("."):
        try:
            cur = cur[part]
        except (KeyError, TypeError, AttributeError):
            try:
                cur = getattr(cur, part)
            except AttributeError:
                return default
    return cur


def default_prior_kind(config) -> str:
    """The prior kind for a config: ``config.sample.prior`` when set; else gaussian for hot diffusion,
    and for cold diffusion by ``diffusion.degradation``: blur → blur_mean, superres → superres,
    fade → colour, interpolate → dataset (the images of ``data.end_source``; gaussian without one).
    Degradations whose end state depends on the image (inpaint, decolor, snow) raise a ValueError."""
    explicit = _get(config, "sample.prior", "")
    if explicit:
        if explicit not in PRIORS:
            raise ValueError(f"config.sample.prior={explicit!r} is not a prior kind; allowed: {sorted(PRIORS)}")
        return str(explicit)
    kind = _get(config, "diffusion.kind")
    if kind == "gaussian":
        return "gaussian"
    if kind != "cold":
        raise ValueError(f"config.diffusion.kind={kind!r}; allowed: ['cold', 'gaussian']")
    name = _get(config, "diffusion.degradation")
    if name in _COLD_PRIOR:
        return _COLD_PRIOR[name]
    if name in _INTERPOLATIONS:
        return "dataset" if _get(config, "data.end_source", "") else "gaussian"
    raise ValueError(
        f"config.diffusion.degradation={name!r} has no generation prior (its x_T depends on the image: "
        f"restore from a degraded input instead, or set config.sample.prior); degradations with one: "
        f"{sorted(set(_COLD_PRIOR) | set(_INTERPOLATIONS))}"
    )


def default_prior_params(config, kind: Optional[str] = None) -> dict:
    """Fit parameters implied by a config: blur_mean/superres noise = ``sample.prior_noise``, superres T = ``diffusion.T``."""
    kind = kind or default_prior_kind(config)
    out: dict[str, Any] = {}
    noise = _get(config, "sample.prior_noise", None)
    if kind == "blur_mean" and noise is not None:
        out["noise"] = float(noise)
    if kind == "superres":
        out["T"] = int(_get(config, "diffusion.T"))
    return out
