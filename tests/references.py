"""Plain references the tests compare the library against (not part of the library)."""
import math

import jax
import jax.numpy as jnp
import numpy as np


def blur_sigmas_ref(n, *, std, routine, std_increment=0.01):
    """σ_0 … σ_{n−1} of the blur routines, written out (float64)."""
    formula = {
        "constant": lambda i: std,
        "incremental": lambda i: std * (i + 1),
        "exponential": lambda i: math.exp(std * i) if std * i < 700 else math.inf,
        "affine": lambda i: std + std_increment * i,
    }[routine]
    return np.array([formula(i) for i in range(n)], np.float64)


def gaussian_kernel_1d(sigma, k):
    """exp(−r²/2σ²) at r = −k//2 … k//2, normalised to sum 1 (a box for σ = inf)."""
    r = np.arange(-(k // 2), k // 2 + 1, dtype=np.float64)
    g = np.ones_like(r) if not np.isfinite(sigma) else np.exp(-(r**2) / (2.0 * float(sigma) ** 2))
    return g / g.sum()


def blur_sequential(x0, t, *, kernel_size=11, std=7.0, routine="constant", padding="circular",
                    std_increment=0.01, to_mean=False, T=None):
    """The cumulative blur applied the published way: t depthwise convolutions one after the other.

    x0 (B, H, W, C), t a Python int (the same for the whole batch). Each step pads with ``jnp.pad``
    (``wrap`` or ``reflect``) and runs ``lax.conv_general_dilated`` with g_i ⊗ g_i. With ``to_mean`` the
    step t = T (T required) takes the per-channel spatial mean instead of blurring.
    """
    if to_mean and (T is None or t > T):
        raise ValueError(f"blur_sequential: to_mean needs T >= t, got T={T!r}, t={t}")
    sig = blur_sigmas_ref(t, std=std, routine=routine, std_increment=std_increment)
    c = x0.shape[-1]
    mode = "wrap" if padding == "circular" else "reflect"
    r = kernel_size // 2
    x = x0
    for i in range(t):
        if to_mean and i == T - 1:
            x = jnp.broadcast_to(jnp.mean(x, axis=(1, 2), keepdims=True), x.shape)
            continue
        g = gaussian_kernel_1d(sig[i], kernel_size)
        kern = jnp.asarray(np.outer(g, g)[:, :, None, None].repeat(c, axis=3), x.dtype)  # HWIO, depthwise
        xp = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode=mode)
        x = jax.lax.conv_general_dilated(
            xp, kern, window_strides=(1, 1), padding="VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"),
            feature_group_count=c, precision=jax.lax.Precision.HIGHEST,
        )
    return x


def frechet64(fa, fb):
    """‖μa − μb‖² + Tr(Σa + Σb − 2 (Σa Σb)^½) of two feature sets, float64, with scipy's sqrtm."""
    import scipy.linalg

    fa, fb = np.asarray(fa, np.float64), np.asarray(fb, np.float64)
    ma, mb = fa.mean(0), fb.mean(0)
    sa, sb = np.cov(fa, rowvar=False), np.cov(fb, rowvar=False)
    cm = scipy.linalg.sqrtm(sa @ sb).real
    return float(np.sum((ma - mb) ** 2) + np.trace(sa + sb - 2 * cm))


def kid64(fa, fb, *, num_subsets, subset_size, seed):
    """(mean, std) of the unbiased MMD² with k(x, y) = (x·y/D + 1)³ over subsets drawn as documented:
    ``np.random.default_rng(seed)``, per subset ``subset_size`` rows of a then of b without replacement."""
    fa, fb = np.asarray(fa, np.float64), np.asarray(fb, np.float64)
    d, m = fa.shape[1], subset_size
    rng = np.random.default_rng(seed)
    vals = []
    for _ in range(num_subsets):
        x = fa[rng.choice(fa.shape[0], m, replace=False)]
        y = fb[rng.choice(fb.shape[0], m, replace=False)]
        kxx, kyy, kxy = ((x @ x.T / d + 1) ** 3, (y @ y.T / d + 1) ** 3, (x @ y.T / d + 1) ** 3)
        off = ~np.eye(m, dtype=bool)
        vals.append(kxx[off].sum() / (m * (m - 1)) + kyy[off].sum() / (m * (m - 1)) - 2 * kxy.mean())
    vals = np.asarray(vals)
    return float(vals.mean()), float(vals.std(ddof=1)) if num_subsets > 1 else 0.0
