"""Image-quality and distribution metrics: SSIM, PSNR, RMSE, Fréchet distance, KID.

Images are NHWC (B, H, W, C) in ``in_range`` (default (−1, 1)); pixel metrics first map them to [0, 1],
u = (x − lo)/(hi − lo), as Cold Diffusion reports them (``in_range=None``: already on ``data_range``'s scale).
Per-image metrics are jitted and return (B,) float32; set-level ones run on the host in float64.

    SSIM  Wang et al. 2004 with skimage's gaussian_weights=True, σ = 1.5, use_sample_covariance=False (:func:`ssim`)
    PSNR  10 log10(L²/MSE),  RMSE = √MSE,  MSE = mean((u_a − u_b)²)
    FD    ‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2})  of Gaussians fitted to features (N, D)
    KID   unbiased MMD² with k(x, y) = (x·y/D + 1)³ over random subsets (Bińkowski et al. 2018)

FD and KID depend on the feature network and the sample count: report them with both and with the
real-vs-real floor (:func:`real_floor`); they are not comparable with Inception FIDs.
"""
from __future__ import annotations

import contextlib
import functools
import math
import warnings
from typing import Any, NamedTuple, Optional, Protocol, Sequence, runtime_checkable

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "FeatureNet",
    "KIDResult",
    "gaussian_kernel1d",
    "ssim",
    "mse",
    "psnr",
    "rmse",
    "feature_stats",
    "frechet_distance",
    "frechet_distance_from_stats",
    "kid",
    "batched_features",
    "evaluate_pairs",
    "real_floor",
]

InRange = Optional[Sequence[float]]
_REDUCTIONS = ("none", "mean", "global")


# --------------------------------------------------------------------------------------------
# validation (plain Python, before anything is traced)
# --------------------------------------------------------------------------------------------


def _check_in_range(in_range: InRange, name: str = "in_range") -> Optional[tuple[float, float]]:
    if in_range is None:
        return None
    try:
        lo, hi = (float(v) for v in in_range)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be None or a pair (lo, hi) of numbers, got {in_range!r}") from None
    if not (math.isfinite(lo) and math.isfinite(hi) and lo < hi):
        raise ValueError(f"{name} must be a finite pair with lo < hi, got {in_range!r}")
    return lo, hi


def _check_positive(value, name: str) -> float:
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a positive number, got {value!r}") from None
    if not (math.isfinite(v) and v > 0):
        raise ValueError(f"{name} must be a positive finite number, got {value!r}")
    return v


def _check_pair(a, b, in_range: Optional[tuple[float, float]], fn: str):
    """Shapes (B, H, W, C), equal; integer images need an explicit in_range (e.g. (0, 255))."""
    sa, sb = tuple(np.shape(a)), tuple(np.shape(b))
    if len(sa) != 4:
        raise ValueError(f"{fn}: images must be NHWC (B, H, W, C), got shape {sa} for the first argument")
    if sa != sb:
        raise ValueError(f"{fn}: the two image batches must have the same shape, got {sa} and {sb}")
    if 0 in sa:
        raise ValueError(f"{fn}: empty image batch, shape {sa}")
    for arr, which in ((a, "first"), (b, "second")):
        dt = np.dtype(arr.dtype if hasattr(arr, "dtype") else np.asarray(arr).dtype)
        if not (np.issubdtype(dt, np.floating) or np.issubdtype(dt, np.integer)):
            raise ValueError(f"{fn}: the {which} argument has dtype {dt}; expected a float or integer image array")
        if np.issubdtype(dt, np.integer) and in_range == (-1.0, 1.0):
            raise ValueError(
                f"{fn}: the {which} argument has integer dtype {dt} but in_range is the default (-1, 1); "
                "pass in_range=(0, 255) (or the range your integers use)"
            )
    return sa


def _to_unit(x: jnp.ndarray, in_range: Optional[tuple[float, float]]) -> jnp.ndarray:
    """Maps [lo, hi] → [0, 1] (identity when in_range is None), as float32."""
    x = x.astype(jnp.float32)
    if in_range is None:
        return x
    lo, hi = in_range
    return (x - lo) / (hi - lo)


# --------------------------------------------------------------------------------------------
# SSIM
# --------------------------------------------------------------------------------------------


def gaussian_kernel1d(sigma: float, truncate: float = 3.5) -> np.ndarray:
    """scipy.ndimage's Gaussian taps: exp(−x²/(2σ²)) for |x| ≤ r = int(truncate·σ + 0.5), summing to 1 (float64)."""
    r = int(truncate * sigma + 0.5)
    x = np.arange(-r, r + 1, dtype=np.float64)
    w = np.exp(-0.5 * (x / sigma) ** 2)
    return w / w.sum()


def _filter_hw(x: jnp.ndarray, taps: np.ndarray) -> jnp.ndarray:
    """Separable correlation of (B, H, W, K) with ``taps`` along H then W, 'reflect' (half-sample symmetric) borders.

    Written as a sum of shifted slices: the filter is tiny (11 taps) and this keeps the arithmetic identical in
    structure to scipy's correlate1d, which is what the SSIM reference uses.
    """
    r = (len(taps) - 1) // 2
    _, H, W, _ = x.shape
    w = [float(v) for v in taps]
    xp = jnp.pad(x, ((0, 0), (r, r), (0, 0), (0, 0)), mode="symmetric")
    y = sum(w[k] * xp[:, k : k + H] for k in range(len(w)))
    yp = jnp.pad(y, ((0, 0), (0, 0), (r, r), (0, 0)), mode="symmetric")
    return sum(w[k] * yp[:, :, k : k + W] for k in range(len(w)))


@functools.partial(jax.jit, static_argnames=("in_range", "win_size", "sigma", "k1", "k2"))
def _ssim_jit(a, b, data_range, *, in_range, win_size, sigma, k1, k2):
    x, y = _to_unit(a, in_range), _to_unit(b, in_range)
    C = x.shape[-1]
    taps = gaussian_kernel1d(sigma, 3.5)
    # One filter pass over the five moment maps stacked along channels.
    stats = _filter_hw(jnp.concatenate([x, y, x * x, y * y, x * y], axis=-1), taps)
    mx, my, mxx, myy, mxy = (stats[..., i * C : (i + 1) * C] for i in range(5))
    vx, vy, vxy = mxx - mx * mx, myy - my * my, mxy - mx * my
    c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
    s = ((2 * mx * my + c1) * (2 * vxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    # skimage's crop. With win_size = 2·radius + 1 it removes exactly the pixels whose window reaches past
    # the border, so the padding mode only matters for a smaller win_size.
    p = (win_size - 1) // 2
    H, W = s.shape[1], s.shape[2]
    return jnp.mean(s[:, p : H - p, p : W - p, :], axis=(1, 2, 3))


def ssim(
    a,
    b,
    *,
    data_range: float = 1.0,
    win_size: int = 11,
    sigma: float = 1.5,
    k1: float = 0.01,
    k2: float = 0.03,
    in_range: InRange = (-1.0, 1.0),
) -> jax.Array:
    """Mean structural similarity per image, (B, H, W, C) × 2 → (B,) float32.

    With G the 2-D Gaussian filter (σ = 1.5: 11 taps, 'reflect' borders), C1 = (k1·L)², C2 = (k2·L)²:
    μ_x = G*x, σ_x² = G*(x²) − μ_x², σ_xy = G*(xy) − μ_x μ_y and
    S = (2 μ_x μ_y + C1)(2 σ_xy + C2) / ((μ_x² + μ_y² + C1)(σ_x² + σ_y² + C2)), averaged over the pixels left after
    cropping (win_size − 1)/2 from every border, then over channels. Matches ``skimage.metrics.structural_similarity(u_a, u_b, gaussian_weights=True, sigma=sigma,
    use_sample_covariance=False, data_range=data_range, win_size=win_size, channel_axis=-1)`` on the
    [0, 1]-mapped images u. As in skimage, the Gaussian filter's size follows ``sigma`` (radius
    int(3.5σ + 0.5)); ``win_size`` only sets the border crop ((win_size − 1)//2 pixels per side) and the
    minimum image size. Multichannel SSIM is the mean over channels.
    """
    rng = _check_in_range(in_range)
    _, H, W, _ = _check_pair(a, b, rng, "ssim")
    data_range = _check_positive(data_range, "data_range")
    sigma = _check_positive(sigma, "sigma")
    if isinstance(win_size, bool) or not isinstance(win_size, (int, np.integer)) or win_size < 1 or win_size % 2 == 0:
        raise ValueError(f"ssim: win_size must be an odd positive integer, got {win_size!r}")
    if win_size > min(H, W):
        raise ValueError(
            f"ssim: win_size={win_size} exceeds the image size {H}x{W}; use images >= win_size or a smaller win_size"
        )
    for name, k in (("k1", k1), ("k2", k2)):
        try:
            ok = float(k) >= 0
        except (TypeError, ValueError):
            ok = False
        if not ok:
            raise ValueError(f"ssim: {name} must be a number >= 0, got {k!r}")
    return _ssim_jit(
        jnp.asarray(a), jnp.asarray(b), jnp.float32(data_range),
        in_range=rng, win_size=int(win_size), sigma=sigma, k1=float(k1), k2=float(k2),
    )


# --------------------------------------------------------------------------------------------
# MSE / PSNR / RMSE
# --------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("in_range",))
def _mse_jit(a, b, *, in_range):
    d = _to_unit(a, in_range) - _to_unit(b, in_range)
    return jnp.mean(d * d, axis=(1, 2, 3))


def mse(a, b, *, in_range: InRange = (-1.0, 1.0)) -> jax.Array:
    """Per-image mean squared error on the [0, 1]-mapped images, (B, H, W, C) × 2 → (B,) float32."""
    rng = _check_in_range(in_range)
    _check_pair(a, b, rng, "mse")
    return _mse_jit(jnp.asarray(a), jnp.asarray(b), in_range=rng)


def _check_reduction(reduction: str, fn: str):
    if reduction not in _REDUCTIONS:
        raise ValueError(f"{fn}: reduction must be one of {list(_REDUCTIONS)}, got {reduction!r}")


def _psnr_from_mse(m, data_range: float):
    with np.errstate(divide="ignore"):
        return 10.0 * np.log10(data_range**2 / np.asarray(m, np.float64))


def psnr(
    a,
    b,
    data_range: float = 1.0,
    *,
    reduction: str = "none",
    in_range: InRange = (-1.0, 1.0),
):
    """Peak signal-to-noise ratio 10 log10(L²/MSE) in dB on the [0, 1]-mapped images.

    reduction: ``"none"`` → per image, (B,) float32 jax.Array (identical images give +inf);
    ``"mean"`` → the mean of the per-image PSNRs (float); ``"global"`` → the PSNR of the MSE over the
    whole set (float), i.e. skimage's ``peak_signal_noise_ratio`` on the full (B, H, W, C) tensor.
    """
    _check_reduction(reduction, "psnr")
    data_range = _check_positive(data_range, "data_range")
    m = mse(a, b, in_range=in_range)
    if reduction == "none":
        return 10.0 * jnp.log10(jnp.float32(data_range) ** 2 / m)
    m64 = np.asarray(m, np.float64)
    if reduction == "mean":
        return float(np.mean(_psnr_from_mse(m64, data_range)))
    return float(_psnr_from_mse(m64.mean(), data_range))  # every image has the same pixel count


def rmse(a, b, *, reduction: str = "global", in_range: InRange = (-1.0, 1.0)):
    """Root mean squared error on the [0, 1]-mapped images.

    reduction: ``"global"`` (default, Cold Diffusion's number) → √(mean over the whole tensor) (float);
    ``"none"`` → per image, (B,) float32 jax.Array; ``"mean"`` → mean of the per-image RMSEs (float).
    """
    _check_reduction(reduction, "rmse")
    m = mse(a, b, in_range=in_range)
    if reduction == "none":
        return jnp.sqrt(m)
    m64 = np.asarray(m, np.float64)
    return float(np.sqrt(m64.mean())) if reduction == "global" else float(np.mean(np.sqrt(m64)))


# --------------------------------------------------------------------------------------------
# Feature networks
# --------------------------------------------------------------------------------------------


@runtime_checkable
class FeatureNet(Protocol):
    """Any function ``images (N, H, W, C) in [−1, 1] -> features (N, D)``, jittable.

    A small classifier trained on the same data is the intended choice (TF-GAN's approach for MNIST), e.g.
    :func:`jaxdiff.evaluation.features.load_digits_feature_fn`.
    """

    def __call__(self, images: jax.Array) -> jax.Array: ...


def batched_features(
    fn: FeatureNet,
    images,
    batch_size: int = 256,
    *,
    jit: bool = True,
    progress: Optional[bool] = None,
    desc: str = "features",
) -> np.ndarray:
    """Runs ``fn`` over ``images`` (N, H, W, C) in batches → (N, D) float32 NumPy array.

    The last batch is zero-padded to the batch size so the jitted ``fn`` compiles once. ``progress``:
    show a tqdm bar (None: only when there are at least 20 batches). The next batch is dispatched before
    the previous one is pulled to the host, so device work and transfer overlap.
    """
    shape = tuple(np.shape(images))
    if len(shape) != 4 or shape[0] == 0:
        raise ValueError(f"batched_features: images must be a non-empty NHWC batch (N, H, W, C), got shape {shape}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"batched_features: batch_size must be a positive integer, got {batch_size!r}")
    if not callable(fn):
        raise ValueError(f"batched_features: fn must be callable images -> (N, D) features, got {type(fn).__name__}")
    n = shape[0]
    bs = min(int(batch_size), n)
    num_batches = -(-n // bs)
    f = jax.jit(fn) if jit else fn
    show = num_batches >= 20 if progress is None else bool(progress)

    def run(i):
        chunk = jnp.asarray(images[i * bs : (i + 1) * bs])
        k = chunk.shape[0]
        if k < bs:
            chunk = jnp.concatenate([chunk, jnp.zeros((bs - k,) + chunk.shape[1:], chunk.dtype)], axis=0)
        out = f(chunk)
        if np.ndim(out) != 2 or np.shape(out)[0] != bs:
            raise ValueError(
                f"batched_features: fn must return (batch, D) features; for a batch of {bs} it returned shape "
                f"{np.shape(out)}"
            )
        return out, k

    outs = []
    it = range(num_batches)
    if show:
        from tqdm.auto import tqdm

        it = tqdm(it, desc=desc, total=num_batches, leave=False)
    pending = None
    for i in it:
        cur = run(i)
        if pending is not None:
            outs.append(np.asarray(pending[0], np.float32)[: pending[1]])
        pending = cur
    outs.append(np.asarray(pending[0], np.float32)[: pending[1]])
    return np.concatenate(outs, axis=0)


# --------------------------------------------------------------------------------------------
# Fréchet distance
# --------------------------------------------------------------------------------------------


def _blas_threads_for(flops: float):
    """One BLAS thread for small products (host-side, float64).

    OpenBLAS spins up its threads for matrices as small as KID's 1000×64 subsets, where, on a machine shared
    with other jobs, the busy-waiting threads made a 200×16 product ~100× slower than one thread does.
    Large products (Inception-sized features) keep the default threading.
    """
    if flops >= 2e8:
        return contextlib.nullcontext()
    try:
        from threadpoolctl import threadpool_limits  # a scikit-learn dependency
    except ImportError:  # pragma: no cover
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def _check_feats(x, name: str, min_rows: int = 2) -> np.ndarray:
    arr = np.asarray(x, dtype=np.float64)
    if arr.ndim != 2:
        raise ValueError(f"{name} must be a 2-D (N, D) feature array, got shape {arr.shape}")
    if arr.shape[0] < min_rows or arr.shape[1] < 1:
        raise ValueError(f"{name} needs at least {min_rows} rows and 1 column, got shape {arr.shape}")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} contains non-finite values")
    return arr


def feature_stats(feats) -> tuple[np.ndarray, np.ndarray]:
    """Mean (D,) and covariance (D, D) (normalized by N − 1) of features (N, D), in float64."""
    x = _check_feats(feats, "feats")
    mu = x.mean(axis=0)
    xc = x - mu
    return mu, (xc.T @ xc) / (x.shape[0] - 1)


def _psd_sqrt(s: np.ndarray) -> np.ndarray:
    w, v = np.linalg.eigh((s + s.T) / 2)
    return (v * np.sqrt(np.clip(w, 0.0, None))) @ v.T


def frechet_distance_from_stats(mu_a, sigma_a, mu_b, sigma_b, *, method: str = "eigh", eps: float = 1e-6) -> float:
    """‖μ_a − μ_b‖² + Tr(Σ_a + Σ_b − 2 (Σ_a Σ_b)^{1/2}) in float64.

    method="eigh" (default): Tr (Σ_a Σ_b)^{1/2} = Σ_i √λ_i(Σ_a^{1/2} Σ_b Σ_a^{1/2}), a symmetric PSD
    eigenproblem that is real by construction (tiny negative eigenvalues from round-off are clipped to 0).
    method="sqrtm": scipy.linalg.sqrtm(Σ_a Σ_b); if the result is not finite, ``eps``·I is added to both
    covariances; imaginary parts from round-off are dropped (a warning is raised if they are not tiny).
    """
    mu_a, mu_b = np.asarray(mu_a, np.float64).reshape(-1), np.asarray(mu_b, np.float64).reshape(-1)
    sa, sb = np.atleast_2d(np.asarray(sigma_a, np.float64)), np.atleast_2d(np.asarray(sigma_b, np.float64))
    d = mu_a.shape[0]
    if mu_b.shape != (d,) or sa.shape != (d, d) or sb.shape != (d, d):
        raise ValueError(
            f"frechet_distance: shapes must be mu (D,), sigma (D, D) for both sets, got mu_a {mu_a.shape}, "
            f"sigma_a {sa.shape}, mu_b {mu_b.shape}, sigma_b {sb.shape}"
        )
    if method not in ("eigh", "sqrtm"):
        raise ValueError(f"frechet_distance: method must be 'eigh' or 'sqrtm', got {method!r}")
    diff = mu_a - mu_b
    if method == "eigh":
        ra = _psd_sqrt(sa)
        m = ra @ sb @ ra
        tr_cov = float(np.sum(np.sqrt(np.clip(np.linalg.eigvalsh((m + m.T) / 2), 0.0, None))))
    else:
        import scipy.linalg

        covmean = scipy.linalg.sqrtm(sa @ sb)
        if not np.all(np.isfinite(covmean)):
            off = eps * np.eye(d)
            covmean = scipy.linalg.sqrtm((sa + off) @ (sb + off))
        if np.iscomplexobj(covmean):
            imag = np.max(np.abs(np.diagonal(covmean).imag))
            if imag > 1e-3 * max(1.0, np.max(np.abs(np.diagonal(covmean).real))):
                warnings.warn(f"frechet_distance: sqrtm has a large imaginary component {imag:.3g}; dropping it")
            covmean = covmean.real
        tr_cov = float(np.trace(covmean))
    return float(diff @ diff + np.trace(sa) + np.trace(sb) - 2.0 * tr_cov)


def frechet_distance(feats_a, feats_b, *, method: str = "eigh") -> float:
    """Fréchet distance between Gaussians fitted to features (N_a, D) and (N_b, D) (float64, host)."""
    a = _check_feats(feats_a, "feats_a")
    b = _check_feats(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"frechet_distance: feature dims differ, {a.shape[1]} vs {b.shape[1]}")
    d = a.shape[1]
    with _blas_threads_for(max(a.shape[0], b.shape[0], d) * d * d):
        return frechet_distance_from_stats(*feature_stats(a), *feature_stats(b), method=method)


# --------------------------------------------------------------------------------------------
# KID
# --------------------------------------------------------------------------------------------


class KIDResult(NamedTuple):
    """Mean and standard deviation (ddof=1; 0 for one subset) of MMD²_u over subsets, and how it was taken."""

    mean: float
    std: float
    num_subsets: int
    subset_size: int


def _mmd2_unbiased(x: np.ndarray, y: np.ndarray) -> float:
    m, d = x.shape

    def k(p, q):
        g = p @ q.T
        g /= d
        g += 1.0
        return g * g * g  # explicit products: numpy's float ** 3 goes through the slow generic pow

    kxx, kyy, kxy = k(x, x), k(y, y), k(x, y)
    off = lambda k: k.sum() - np.trace(k)  # noqa: E731 - the i = j terms make the estimate biased
    return float((off(kxx) + off(kyy)) / (m * (m - 1)) - 2.0 * kxy.mean())


def kid(feats_a, feats_b, *, num_subsets: int = 100, subset_size: Optional[int] = None, seed: int = 0) -> KIDResult:
    """Kernel Inception(-style) Distance: unbiased MMD², kernel k(x, y) = (x·y/D + 1)³, over random subsets.

    MMD²_u = Σ_{i≠j} k(x_i, x_j)/(m(m−1)) + Σ_{i≠j} k(y_i, y_j)/(m(m−1)) − 2 Σ_{i,j} k(x_i, y_j)/m² for subsets of m.

    Each subset draws ``subset_size`` rows without replacement from each set (default min(1000, N_a, N_b)).
    When the subset is as large as both sets, every subset is the whole set: the std is then 0 and says
    nothing about the sampling error; pass a smaller ``subset_size`` for a meaningful spread.
    Float64 on the host; cost O(num_subsets · m² · D).
    """
    a = _check_feats(feats_a, "feats_a")
    b = _check_feats(feats_b, "feats_b")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"kid: feature dims differ, {a.shape[1]} vs {b.shape[1]}")
    if isinstance(num_subsets, bool) or not isinstance(num_subsets, (int, np.integer)) or num_subsets < 1:
        raise ValueError(f"kid: num_subsets must be a positive integer, got {num_subsets!r}")
    n_max = min(a.shape[0], b.shape[0])
    if subset_size is None:
        subset_size = min(1000, n_max)
    if isinstance(subset_size, bool) or not isinstance(subset_size, (int, np.integer)) or not 2 <= subset_size <= n_max:
        raise ValueError(f"kid: subset_size must be an integer in [2, min(N_a, N_b) = {n_max}], got {subset_size!r}")
    rng = np.random.default_rng(seed)
    vals = np.empty(num_subsets, np.float64)
    with _blas_threads_for(subset_size * subset_size * a.shape[1]):
        for s in range(num_subsets):
            ia = rng.choice(a.shape[0], subset_size, replace=False)
            ib = rng.choice(b.shape[0], subset_size, replace=False)
            vals[s] = _mmd2_unbiased(a[ia], b[ib])
    std = float(vals.std(ddof=1)) if num_subsets > 1 else 0.0
    return KIDResult(float(vals.mean()), std, int(num_subsets), int(subset_size))


# --------------------------------------------------------------------------------------------
# The Cold Diffusion table cell, and the real-vs-real floor
# --------------------------------------------------------------------------------------------


@functools.partial(jax.jit, static_argnames=("in_range",))
def _pair_metrics_jit(a, b, *, in_range):
    return _ssim_jit(a, b, jnp.float32(1.0), in_range=in_range, win_size=11, sigma=1.5, k1=0.01, k2=0.03), _mse_jit(
        a, b, in_range=in_range
    )


def evaluate_pairs(
    originals,
    outputs,
    feature_fn: Optional[FeatureNet] = None,
    *,
    batch_size: int = 256,
    in_range: InRange = (-1.0, 1.0),
    kid_subsets: int = 100,
    kid_subset_size: Optional[int] = None,
    seed: int = 0,
    progress: Optional[bool] = None,
) -> dict[str, Any]:
    """One cell of Cold Diffusion's table: outputs (restored / sampled / degraded) against their originals.

    Both (N, H, W, C) in ``in_range``, pixel metrics on [0, 1] with data range 1:
      ssim        mean per-image SSIM (11×11 Gaussian window, σ 1.5)
      psnr        mean per-image PSNR (dB; +inf if some pair is identical); psnr_global: PSNR of the set MSE
      rmse        RMSE over the whole tensor
    and, with a ``feature_fn``, the paired-set Fréchet distance ``frechet`` between the features of the
    originals and of the outputs, ``kid_mean``/``kid_std`` (if kid_subsets > 0), and ``feature_dim``.
    Always includes ``num_images``. Runs in batches of ``batch_size`` (one compilation).
    """
    rng = _check_in_range(in_range)
    shape = _check_pair(originals, outputs, rng, "evaluate_pairs")
    if min(shape[1], shape[2]) < 11:
        raise ValueError(f"evaluate_pairs: SSIM needs images of at least 11x11, got {shape[1]}x{shape[2]}")
    if isinstance(batch_size, bool) or not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
        raise ValueError(f"evaluate_pairs: batch_size must be a positive integer, got {batch_size!r}")
    n = shape[0]
    bs = min(int(batch_size), n)
    ssims, mses = [], []
    for i in range(0, n, bs):
        a, b = jnp.asarray(originals[i : i + bs]), jnp.asarray(outputs[i : i + bs])
        k = a.shape[0]
        if k < bs:  # pad so the jitted function sees one shape
            pad = lambda x: jnp.concatenate([x, jnp.zeros((bs - k,) + x.shape[1:], x.dtype)], axis=0)  # noqa: E731
            a, b = pad(a), pad(b)
        s, m = _pair_metrics_jit(a, b, in_range=rng)
        ssims.append(np.asarray(s, np.float64)[:k])
        mses.append(np.asarray(m, np.float64)[:k])
    s64, m64 = np.concatenate(ssims), np.concatenate(mses)
    out: dict[str, Any] = {
        "num_images": int(n),
        "ssim": float(s64.mean()),
        "psnr": float(np.mean(_psnr_from_mse(m64, 1.0))),
        "psnr_global": float(_psnr_from_mse(m64.mean(), 1.0)),
        "rmse": float(np.sqrt(m64.mean())),
    }
    if feature_fn is not None:
        fa = batched_features(feature_fn, originals, batch_size, progress=progress, desc="features (originals)")
        fb = batched_features(feature_fn, outputs, batch_size, progress=progress, desc="features (outputs)")
        out["feature_dim"] = int(fa.shape[1])
        out["frechet"] = frechet_distance(fa, fb)
        if kid_subsets > 0:
            r = kid(fa, fb, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
            out.update(kid_mean=r.mean, kid_std=r.std, kid_subset_size=r.subset_size, kid_num_subsets=r.num_subsets)
    return out


def real_floor(
    images,
    feature_fn: Optional[FeatureNet],
    *,
    seed: int = 0,
    batch_size: int = 256,
    kid_subsets: int = 100,
    kid_subset_size: Optional[int] = None,
    progress: Optional[bool] = None,
) -> dict[str, Any]:
    """Real-vs-real floor of the Fréchet distance and KID: two disjoint random halves of ``images``.

    ``images`` (N, H, W, C) in [−1, 1] go through ``feature_fn``; with ``feature_fn=None`` they are taken to
    be features (N, D) already. Returns ``frechet``, ``kid_mean``, ``kid_std`` together with the sample
    counts ``num_a``, ``num_b`` (N//2 each; an odd last image is left out), ``kid_subset_size``,
    ``kid_num_subsets`` and ``feature_dim``. The Fréchet distance is biased upward at small N, so compare a
    model's number with a floor computed at the same sample count.
    """
    if feature_fn is None:
        feats = _check_feats(images, "real_floor features", min_rows=4)
    else:
        shape = tuple(np.shape(images))
        if len(shape) != 4 or shape[0] < 4:
            raise ValueError(f"real_floor: images must be NHWC with at least 4 images, got shape {shape}")
        feats = batched_features(feature_fn, images, batch_size, progress=progress, desc="features (real)")
    n = feats.shape[0]
    perm = np.random.default_rng(seed).permutation(n)
    half = n // 2
    fa, fb = feats[perm[:half]], feats[perm[half : 2 * half]]
    out: dict[str, Any] = {
        "num_a": int(half),
        "num_b": int(half),
        "feature_dim": int(feats.shape[1]),
        "frechet": frechet_distance(fa, fb),
    }
    if kid_subsets > 0:
        r = kid(fa, fb, num_subsets=kid_subsets, subset_size=kid_subset_size, seed=seed)
        out.update(kid_mean=r.mean, kid_std=r.std, kid_subset_size=r.subset_size, kid_num_subsets=r.num_subsets)
    return out
