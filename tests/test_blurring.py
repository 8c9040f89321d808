"""Blurring diffusion (the dct_blur degradation with a VP schedule) against float64 NumPy/scipy references written here.

The references: d_t = (1 − d_min) exp(−λ σ_B,t²/2) + d_min with λ = π²(k²/H² + l²/W²) and
σ_B,t = σ_B,max sin²(πt/2T) (Hoogeboom & Salimans 2023); ᾱ from the linear β schedule (float64 here);
the DCT from scipy.fft (norm="ortho"); the per-frequency posterior from Bayes' rule on the two Gaussians
q(u_s | u_0) and q(u_t | u_s).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
from jax.sharding import NamedSharding, PartitionSpec as P

import jaxdiff.config as cv
from jaxdiff import sampling
from jaxdiff.processes import schedules
from jaxdiff.processes import BlurringProcess
from jaxdiff.config import ConfigError, validate_config
from jaxdiff.experiment import build_process, describe_process
from jaxdiff.processes import GaussianProcess
from jaxdiff.parameterization import predict
from jaxdiff.priors import store
from jaxdiff.sampling import correctors

T = 50
BETA0, BETA1 = 1e-4, 2e-2
H = W = 8


def abar64(T):
    return np.cumprod(np.concatenate([[1.0], 1.0 - np.linspace(BETA0, BETA1, T)]))


def d64(T, h, w, sigma_max, d_min):
    """(T + 1, h, w) float64 per-frequency scales."""
    k = np.arange(h)[:, None]
    l = np.arange(w)[None, :]
    lam = np.pi**2 * ((k / h) ** 2 + (l / w) ** 2)
    out = np.empty((T + 1, h, w))
    for t in range(T + 1):
        sb = sigma_max * np.sin(np.pi * t / (2 * T)) ** 2
        out[t] = (1 - d_min) * np.exp(-lam * sb**2 / 2) + d_min
    return out


def coef64(T, h, w, sigma_max, d_min):
    """(a, sig2): α_t d_t (T + 1, h, w) and σ_t² (T + 1,)."""
    ab = abar64(T)
    return np.sqrt(ab)[:, None, None] * d64(T, h, w, sigma_max, d_min), 1 - ab


def dct64(x):
    return scipy.fft.dctn(np.asarray(x, np.float64), type=2, norm="ortho", axes=(1, 2))


def idct64(u):
    return scipy.fft.idctn(np.asarray(u, np.float64), type=2, norm="ortho", axes=(1, 2))


def posterior_bayes(a, sig2, t, s):
    """float64 (c0, ct, var) of q(u_s | u_t, u_0) per frequency, from Bayes' rule (s ≥ 1)."""
    a_ts = a[t] / a[s]
    v_ts = sig2[t] - a_ts**2 * sig2[s]
    prec = 1 / sig2[s] + a_ts**2 / v_ts
    var = 1 / prec
    return var * a[s] / sig2[s], var * a_ts / v_ts, var


def proc(sigma_max=3.0, d_min=0.01, T=T, size=H):
    return BlurringProcess(schedules.make_schedule("linear", T, beta_start=BETA0, beta_end=BETA1),
                           image_size=size, sigma_blur_max=sigma_max, d_min=d_min)


def rand_img(seed, shape=(4, H, W, 3)):
    return jax.random.uniform(jax.random.key(seed), shape, minval=-1.0, maxval=1.0)


# --- the forward process ----------------------------------------------------------------------------


def test_F0_is_identity_and_the_scales_are_the_papers():
    p = proc()
    x0 = rand_img(0)
    np.testing.assert_array_equal(p.mean(x0, 0), x0)
    np.testing.assert_array_equal(p.perturb(x0, 0, jnp.ones_like(x0)), x0)  # σ_0 = 0
    a, sig2 = coef64(T, H, W, 3.0, 0.01)
    ts = np.arange(T + 1)
    np.testing.assert_allclose(np.asarray(p.scale(ts))[..., 0], a, rtol=2e-6, atol=1e-7)
    np.testing.assert_allclose(np.asarray(p.std(ts)) ** 2, sig2, rtol=1e-5, atol=1e-7)
    # d_t decreases in t at every frequency but the constant one, which stays 1
    d = d64(T, H, W, 3.0, 0.01)
    assert np.all(np.diff(d, axis=0) <= 0) and np.all(d[:, 0, 0] == 1)


def test_mean_against_scipy_per_example_t():
    p = proc()
    x0 = rand_img(1)
    t = np.array([1, 7, 30, 50])
    a, _ = coef64(T, H, W, 3.0, 0.01)
    ref = idct64(a[t][..., None] * dct64(x0))
    np.testing.assert_allclose(p.mean(x0, jnp.asarray(t)), ref, atol=2e-6)


def test_moments_of_x_t():
    p = proc(sigma_max=4.0, d_min=0.001)
    n, t = 20000, 35
    x0 = jnp.broadcast_to(rand_img(2, (1, H, W, 1)), (n, H, W, 1))
    x = np.asarray(p.sample(x0, t, jax.random.key(3)), np.float64).reshape(n, -1)
    a, sig2 = coef64(T, H, W, 4.0, 0.001)
    mean_ref = idct64(a[t][None, ..., None] * dct64(x0[:1])).reshape(-1)
    se = np.sqrt(sig2[t] / n)
    np.testing.assert_allclose(x.mean(0), mean_ref, atol=5 * se)
    cov = np.cov(x, rowvar=False)
    np.testing.assert_allclose(np.diag(cov), sig2[t], rtol=0.07)
    off = cov - np.diag(np.diag(cov))
    assert np.max(np.abs(off)) < 6 * sig2[t] / np.sqrt(n)


def test_d_equal_to_one_is_the_gaussian_process():
    sched = schedules.make_schedule("linear", T, beta_start=BETA0, beta_end=BETA1)
    b = BlurringProcess(sched, image_size=H, sigma_blur_max=0.0, d_min=0.001)
    g = GaussianProcess(sched)
    x0, xt, eps = rand_img(4), rand_img(5), jax.random.normal(jax.random.key(6), (4, H, W, 3))
    t = jnp.array([50, 20, 3, 1])
    tp = jnp.array([40, 19, 0, 0])
    np.testing.assert_allclose(b.mean(x0, t), g.mean(x0, t), atol=2e-6)
    np.testing.assert_array_equal(b.std(t), g.std(t))
    for pred in ("eps", "x0"):
        for clip in (None, 1.0):
            for u, v in zip(predict(b, pred, eps, xt, t, clip=clip), predict(g, pred, eps, xt, t, clip=clip)):
                np.testing.assert_allclose(u, v, rtol=1e-5, atol=1e-4)
    key = jax.random.key(7)
    np.testing.assert_allclose(correctors.ddpm(b, xt, x0, eps, t, tp, key),
                               correctors.ddpm(g, xt, x0, eps, t, tp, key), atol=1e-5)
    for eta in (0.0, 0.5, 1.0):
        np.testing.assert_allclose(correctors.ddim(b, xt, x0, eps, t, tp, key, eta=eta),
                                   correctors.ddim(g, xt, x0, eps, t, tp, key, eta=eta), atol=1e-5)


# --- the posterior and the steps ----------------------------------------------------------------------


@pytest.mark.parametrize("sigma_max,d_min", [(3.0, 0.01), (6.0, 0.001)])
def test_posterior_against_bayes(sigma_max, d_min):
    p = proc(sigma_max, d_min)
    a, sig2 = coef64(T, H, W, sigma_max, d_min)
    pairs = [(2, 1), (10, 9), (50, 49), (50, 10), (30, 5), (25, 24)]
    t = jnp.array([q[0] for q in pairs])
    s = jnp.array([q[1] for q in pairs])
    c0, ct, var = (np.asarray(v)[..., 0] for v in p.posterior(t, s))
    for i, (ti, si) in enumerate(pairs):
        r0, rt, rv = posterior_bayes(a, sig2, ti, si)
        np.testing.assert_allclose(c0[i], r0, rtol=2e-4, atol=1e-7)
        np.testing.assert_allclose(ct[i], rt, rtol=2e-4, atol=1e-7)
        np.testing.assert_allclose(var[i], rv, rtol=2e-4, atol=1e-9)
    # s = 0: the posterior is u_0 itself
    c0, ct, var = (np.asarray(v) for v in p.posterior(jnp.array([7]), jnp.array([0])))
    np.testing.assert_allclose(c0, 1.0, rtol=1e-6)
    np.testing.assert_array_equal(ct, 0.0)
    np.testing.assert_array_equal(var, 0.0)


@pytest.mark.parametrize("steps", [None, 10])
def test_exact_recovery_with_an_oracle_eps_denoiser(steps):
    p = proc(sigma_max=4.0, d_min=0.01)
    x0 = rand_img(8)
    eps = jax.random.normal(jax.random.key(9), x0.shape)
    x_T = p.perturb(x0, T, eps)
    oracle = lambda params, x, t: eps  # noqa: E731  (η = 0: every x_t of the run is F_t(x0) + σ_t ε)
    out, traj = sampling.sample(oracle, None, jax.random.key(0), x_T, process=p, corrector="blurring_ddim",
                                timesteps=steps, prediction="eps", return_every=1)
    # exact up to float32 rounding, which each step amplifies by 1/(α_t d_t) ≤ 1/(0.78 · 0.01) ≈ 130 at the
    # highest frequencies (a random walk over ≤ 50 steps: ~5e-4 here; a wrong coefficient gives > 1e-2)
    np.testing.assert_allclose(out, x0, atol=1.5e-3)
    ts = sampling.timesteps(T, steps)
    for i, tt in enumerate(ts[1:-1]):  # the intermediate states are the forward process's
        np.testing.assert_allclose(traj["x_t"][i], p.perturb(x0, int(tt), eps), atol=1.5e-3)
    assert float(jnp.max(jnp.abs(out - x0))) < 1e-3


def test_oracle_x0_denoiser_through_blurring_ddpm():
    p = proc()
    x0 = rand_img(10)
    x_T = p.prior(jax.random.key(1), x0.shape)
    out, _ = sampling.sample(lambda params, x, t: x0, None, jax.random.key(2), x_T, process=p,
                             corrector="blurring_ddpm", prediction="x0", timesteps=7)
    np.testing.assert_array_equal(out, x0)


@pytest.mark.parametrize("corrector,eta", [("blurring_ddpm", 0.0), ("blurring_ddim", 1.0)])
def test_step_statistics_are_the_posterior(corrector, eta):
    # DDIM with η = 1 and the ε̂ that x_t and x0 imply has the DDPM posterior's mean and variance.
    sigma_max, d_min, t, s, n = 6.0, 0.001, 30, 20, 20000
    p = proc(sigma_max, d_min)
    a, sig2 = coef64(T, H, W, sigma_max, d_min)
    x0 = rand_img(11, (1, H, W, 1))
    u0 = dct64(x0)[0, ..., 0]
    rng = np.random.default_rng(0)
    ut = a[t] * u0 + np.sqrt(sig2[t]) * rng.normal(size=(H, W))
    xt = idct64(ut[None, ..., None]).astype(np.float32)
    eps = idct64(((ut - a[t] * u0) / np.sqrt(sig2[t]))[None, ..., None]).astype(np.float32)
    rep = lambda v: jnp.broadcast_to(jnp.asarray(v, jnp.float32), (n, H, W, 1))  # noqa: E731
    out = correctors.CORRECTORS[corrector](p, rep(xt), rep(x0), rep(eps), jnp.full((n,), t), jnp.full((n,), s),
                                           jax.random.key(12), eta=eta)
    u = dct64(out)[..., 0]
    c0, ct, var = posterior_bayes(a, sig2, t, s)
    mean = c0 * u0 + ct * ut
    np.testing.assert_allclose(u.mean(0), mean, atol=5 * np.sqrt(var / n).max() + 1e-5)
    np.testing.assert_allclose(u.var(0), var, rtol=0.07)
    # and the frequencies are independent: the correlation of two of them is ~ 0
    assert abs(np.corrcoef(u[:, 1, 2], u[:, 5, 3])[0, 1]) < 5 / np.sqrt(n)


def test_sharded_equals_single_device():
    n = jax.device_count()
    assert n == 8
    mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sh = NamedSharding(mesh, P("data"))
    p = proc(sigma_max=4.0, d_min=0.001)
    x_T = jax.random.normal(jax.random.key(40), (16, H, W, 3))
    net = lambda params, x, t: x * params  # noqa: E731
    for corrector, eta in (("blurring_ddpm", 0.0), ("blurring_ddim", 0.5)):
        kw = dict(process=p, corrector=corrector, timesteps=8, eta=eta, clip=1.0)
        single, _ = sampling.sample(net, 0.3, jax.random.key(3), x_T, **kw)
        sharded, _ = sampling.sample(net, 0.3, jax.random.key(3), jax.device_put(x_T, sh), **kw)
        assert len(sharded.sharding.device_set) == n
        # the same numbers up to the partitioned einsum's rounding, amplified by x̂0 = …/(α_t d_t), d_t ≥ 1e-3
        np.testing.assert_allclose(sharded, single, atol=1e-4)
        assert float(jnp.mean(jnp.abs(sharded - single))) < 1e-6


# --- generation facts, config, errors -----------------------------------------------------------------


def load(variant=""):
    import os

    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "configs",
                        "blurring_diffusion.py")
    return cv.load_config_file(f"{path}:{variant}" if variant else path)


def test_config_builds_the_process_and_generates_from_n01():
    c = load()
    validate_config(c, num_devices=8)
    p = build_process(c)
    assert p.degradation.name == "dct_blur" and p.T == 1000 and p.scale(jnp.array([0])).shape[1:3] == (16, 16)
    assert (p.degradation.params["sigma_max"], p.degradation.params["d_min"]) == (10.0, 0.001)
    assert describe_process(p) == "blurring diffusion, T=1000, sigma_blur_max=10, d_min=0.001"
    assert (c.diffusion.prediction, c.sample.corrector, c.sample.steps, c.sample.eta) == ("x0", "ddim", 20, 0.0)
    # prior N(0, I): the signal left at T is negligible, the noise is ≈ 1
    assert float(jnp.max(p.scale(1000))) < 1e-3 and abs(float(p.std(1000)) - 1) < 1e-6
    assert p.noise_dominates and p.generation().kind == "gaussian" and p.can_generate
    x = p.prior(jax.random.key(0), (2, 16, 16, 1))
    assert x.shape == (2, 16, 16, 1) and x.dtype == jnp.float32


def _bad(field, value):
    c = load()
    *sections, name = field.split(".")
    node = c
    for section in sections:
        node = node[section]
    with c.ignore_type():
        node[name] = value
    with pytest.raises(ConfigError) as info:
        validate_config(c, num_devices=8)
    assert info.value.fields == [field]
    return str(info.value)


@pytest.mark.parametrize("field,value,allowed", [
    ("diffusion.degradation_params.d_min", 0.0, "(0, 1]"),
    ("diffusion.degradation_params.d_min", 1.5, "(0, 1]"),
    ("diffusion.degradation_params.d_min", "small", "a finite number"),
    ("diffusion.degradation_params.sigma_max", -1.0, ">= 0"),
    ("diffusion.prediction", "edm", "'eps', 'x0', 'v', 'velocity' for blurring diffusion"),
    ("sample.corrector", "dpmpp_2m", "for blurring diffusion"),
    ("diffusion.loss_weighting", "p2", "'none', 'snr'"),
    ("diffusion.degradation", "dct_blurr", "'dct_blur', 'heat', 'identity'"),
])
def test_bad_config_values_give_one_message(field, value, allowed):
    msg = _bad(field, value)
    assert field in msg and repr(value) in msg and allowed in msg


def test_bad_process_arguments_and_mismatched_correctors_are_refused():
    sched = schedules.make_schedule("linear", T)
    for kw, what in ((dict(sigma_blur_max=-1.0), "sigma_max"), (dict(d_min=0.0), "d_min"),
                     (dict(image_size=0), "image_size")):
        with pytest.raises(ValueError, match=what):
            BlurringProcess(sched, **{"image_size": H, **kw})
    p = proc()
    with pytest.raises(ValueError, match="8x8 images"):
        p.mean(rand_img(0, (1, 4, 4, 1)), 3)
    with pytest.raises(ValueError, match=r"'dpmpp_2m' .*needs D = identity.*'ddim'"):
        sampling.sample(lambda *a: a[1], None, jax.random.key(0), rand_img(0), process=p, corrector="dpmpp_2m")
    # blurring diffusion's DDIM is the one step, registered once under both names
    assert sampling.CORRECTORS["blurring_ddim"] is sampling.CORRECTORS["ddim"]
    assert sampling.CORRECTORS["blurring_ddpm"] is sampling.CORRECTORS["ddpm"]


def test_restoring_a_blurring_run_uses_its_configured_corrector():
    from jaxdiff import degradations
    from jaxdiff.processes import ColdProcess
    from jaxdiff.sampling import restoration

    assert restoration.default_correctors(proc(), "blurring_ddim") == ("blurring_ddim",)
    gauss = GaussianProcess(schedules.make_schedule("linear", T))
    assert restoration.default_correctors(gauss, "ddpm") == ("ddpm",)
    cold = ColdProcess(degradations.make_degradation("decolor", T=4, image_size=H, channels=3))
    assert restoration.default_correctors(cold, "cold_improved") == ("cold_naive", "cold_improved")
    # the chosen corrector really runs on the process (the cold ones are not silently used)
    x0 = rand_img(3)
    eps_net = lambda params, x_t, t: jnp.zeros_like(x_t)  # noqa: E731
    out = restoration.restore(eps_net, None, jnp.asarray(x0), process=proc(), key=jax.random.PRNGKey(0),
                              severity=T // 2, correctors=("blurring_ddim",), prediction="eps", clip=None, steps=None)
    assert set(out) == {"direct", "blurring_ddim"} and np.all(np.isfinite(np.asarray(out["blurring_ddim"])))
