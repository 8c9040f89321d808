"""Warm diffusion: the ``warm_blur`` degradation (a DCT heat-kernel blur whose width follows the noise or t), the
``geometric`` noise schedule, and the processes of configs/warm_blur.py and configs/soft_diffusion.py.

Closed forms in float64 (the blur's multipliers, the schedules' tables, the per-frequency posterior, scipy's
DCT); the oracle denoiser through every corrector that applies; the configs' settings and generation facts.
"""
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft

import jaxdiff.config as cv
from jaxdiff import losses, parameterization, sampling
from jaxdiff.degradations import make_degradation
from jaxdiff.experiment import build_process
from jaxdiff.processes import make_process, noise_levels, schedules

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
N = 8
LAM = np.pi**2 * (np.arange(N)[:, None] ** 2 + np.arange(N)[None, :] ** 2) / N**2


def load(name, variant=""):
    path = os.path.join(ROOT, "configs", f"{name}.py")
    return cv.load_config_file(f"{path}:{variant}" if variant else path)


def d64(sigma_b, d_min):
    """d_t per frequency, (T + 1, N, N): (1 − d_min) exp(−λ σ_B²/2) + d_min."""
    return (1 - d_min) * np.exp(-LAM[None] * np.asarray(sigma_b)[:, None, None] ** 2 / 2) + d_min


def offset_cosine64(T, hi=0.95, lo=0.02):
    """The Keras example's schedule: angle linear in τ = t/T from arccos(hi) to arccos(lo); α = cos, σ = sin."""
    tau = np.arange(T + 1) / T
    angle = math.acos(hi) + tau * (math.acos(lo) - math.acos(hi))
    a, s = np.cos(angle), np.sin(angle)
    a[0], s[0] = 1.0, 0.0
    return a, s


# --- the degradation: closed forms ------------------------------------------------------------------------------


def test_blur_tied_to_the_noise_level_is_bnr_times_sigma_over_alpha():
    T = 50
    p = make_process("warm_blur", "offset_cosine", T=T, image_size=N, channels=1,
                     degradation_params=dict(bnr=0.7, sigma_max=6.0, d_min=0.002))
    a, s = offset_cosine64(T)
    sb = np.minimum(0.7 * s / a, 6.0)
    # (the VP schedule's float64 α, σ come from its float32 β: ~1e-7 relative)
    np.testing.assert_allclose(p.degradation.spectrum, d64(sb, 0.002), rtol=1e-6, atol=1e-12)
    assert np.any(0.7 * s / a > 6.0)  # the cap is reached (σ_T/α_T = 50)
    np.testing.assert_array_equal(p.degradation.spectrum[0], np.ones((N, N)))
    # D_t(x) = idct(d_t ⊙ dct(x)) with scipy's orthonormal DCT-II
    x = np.asarray(jax.random.uniform(jax.random.key(0), (3, N, N, 2), minval=-1, maxval=1), np.float64)
    t = np.array([0, 17, T])
    want = scipy.fft.idctn(d64(sb, 0.002)[t][..., None] * scipy.fft.dctn(x, type=2, norm="ortho", axes=(1, 2)),
                           type=2, norm="ortho", axes=(1, 2))
    got = np.asarray(p.degrade(jnp.asarray(x, jnp.float32), jnp.asarray(t)), np.float64)
    np.testing.assert_allclose(got, want, rtol=0, atol=2e-6)
    np.testing.assert_array_equal(got[0], np.asarray(x[0], np.float32))  # D_0 = identity exactly


def test_linear_blur_is_soft_diffusions_levels():
    T = 40
    deg = make_degradation("warm_blur", T=T, image_size=N, channels=1, blur="linear", sigma_min=0.01,
                           sigma_max=3.0, d_min=0.0)
    sb = np.concatenate([[0.0], 0.01 + (3.0 - 0.01) * np.arange(T) / (T - 1)])
    np.testing.assert_allclose(deg.spectrum, d64(sb, 0.0), rtol=1e-9, atol=1e-300)


def test_flow_schedule_blurs_to_sigma_max_where_alpha_is_zero():
    p = make_process("warm_blur", "flow", T=20, image_size=N, channels=1, degradation_params=dict(bnr=0.5, sigma_max=4.0))
    tau = np.arange(21) / 20
    with np.errstate(divide="ignore"):
        sb = np.where(tau < 1, np.minimum(0.5 * tau / (1 - tau), 4.0), 4.0)
    np.testing.assert_allclose(p.degradation.spectrum, d64(sb, 0.001), rtol=1e-9)
    assert p.noise_dominates and p.prior(jax.random.key(0), (2, N, N, 1)).shape == (2, N, N, 1)
    lv = noise_levels(p.schedule)
    assert lv[0] == 0 and np.isinf(lv[-1])


def test_bad_parameters_and_a_missing_noise_schedule_give_one_message():
    with pytest.raises(ValueError, match=r"blur='noise' ties its width to the noise level.*make_process"):
        make_degradation("warm_blur", T=10, image_size=N, channels=1)
    with pytest.raises(ValueError, match=r"'warm_blur': blur must be one of \['noise', 'linear'\], got 'lin'"):
        make_degradation("warm_blur", T=10, image_size=N, channels=1, blur="lin")
    with pytest.raises(ValueError, match=r"d_min must be in \[0, 1\)"):
        make_degradation("warm_blur", T=10, image_size=N, channels=1, blur="linear", d_min=1.0)
    with pytest.raises(ValueError, match=r"noise_levels is not a parameter"):
        make_process("warm_blur", "cosine", T=10, image_size=N, channels=1,
                     degradation_params=dict(noise_levels=np.zeros(11)))
    c = load("warm_blur")
    c.diffusion.degradation_params.bnr = -1.0
    with pytest.raises(cv.ConfigError) as info:
        cv.validate_config(c, num_devices=8)
    assert info.value.fields == ["diffusion.degradation_params.bnr"]
    c = load("warm_blur")
    with c.ignore_type():
        c.diffusion.degradation_params.noise_levels = [0.0]
    with pytest.raises(cv.ConfigError, match=r"diffusion\.degradation_params\.noise_levels"):
        cv.validate_config(c, num_devices=8)
    # a bad schedule is named as such; the tied degradation is not blamed for it
    c = load("warm_blur")
    c.diffusion.schedule_params.min_signal_rate = 0.99
    with pytest.raises(cv.ConfigError) as info:
        cv.validate_config(c, num_devices=8)
    assert info.value.fields == ["diffusion.schedule_params"]


def test_recorded_params_leave_out_the_noise_levels():
    p = make_process("warm_blur", "cosine", T=10, image_size=N, channels=1)
    assert "noise_levels" not in p.degradation.params
    assert p.describe() == ("warm_blur(blur=noise, bnr=0.5, d_min=0.001, sigma_max=16.0, sigma_min=0.01), T=10 with "
                            f"noise {p.schedule.describe()}")


# --- the geometric schedule ------------------------------------------------------------------------------------


def test_geometric_schedule_against_its_closed_form():
    T = 101
    s = schedules.geometric(T, sigma_min=0.01, sigma_max=100.0)
    t = np.arange(1, T + 1)
    sig = 0.01 * 1e4 ** ((t - 1) / (T - 1))
    np.testing.assert_allclose(s.sigma64[1:], sig, rtol=1e-13)
    assert s.sigma64[0] == 0 and np.all(s.alpha64 == 1) and s.prior_std == pytest.approx(100.0)
    assert s.sigma64[1 + (T - 1) // 4] == pytest.approx(0.1, rel=1e-12)  # ×10 over the first quarter
    f = lambda u: 0.01 * 1e4 ** ((u - 1) / (T - 1))  # noqa: E731  (dσ/dτ, τ = t/T, by central differences)
    np.testing.assert_allclose(s.dsigma64[1:], (f(t + 1e-6) - f(t - 1e-6)) / 2e-6 * T, rtol=1e-6)
    with pytest.raises(ValueError, match=r"sigma_max must be >= sigma_min"):
        schedules.geometric(10, sigma_min=1.0, sigma_max=0.5)


# --- the process per frequency ---------------------------------------------------------------------------------


def test_posterior_per_frequency_against_float64():
    T = 30
    p = make_process("warm_blur", "offset_cosine", T=T, image_size=N, channels=1, degradation_params=dict(bnr=1.0))
    a, s = offset_cosine64(T)
    d = d64(np.minimum(s / a, 16.0), 0.001)
    A = a[:, None, None] * d  # a_t per frequency
    t, r = np.array([30, 20, 9, 2]), np.array([29, 10, 0, 1])
    ats = A[t] / A[r]
    var_ts = s[t, None, None] ** 2 - ats**2 * s[r, None, None] ** 2
    c0, ct, var = (np.asarray(v, np.float64)[..., 0] for v in p.posterior(t, r))
    np.testing.assert_allclose(c0, A[r] * var_ts / s[t, None, None] ** 2, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(ct, ats * s[r, None, None] ** 2 / s[t, None, None] ** 2, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(var, var_ts * s[r, None, None] ** 2 / s[t, None, None] ** 2, rtol=2e-5, atol=1e-9)


def test_a_blur_that_underflows_float32_refuses_eps_and_velocity_prediction():
    soft = build_process(load("soft_diffusion"))  # d_min = 0, σ_B,T = 5.75 px: the highest frequencies vanish
    assert np.asarray(soft.degradation.spectrum).min() > 0 and np.asarray(soft._scale).min() == 0.0
    assert soft.predictions == ("x0", "v")  # v's x̂0 = (α x_t − σ v̂)/(α² d + σ²) needs no d > 0; ε, u do
    warm = build_process(load("warm_blur"))
    assert warm.predictions == ("eps", "x0", "v", "velocity")


def test_soft_loss_is_the_error_after_the_blur():
    p = build_process(load("soft_diffusion"))
    k = jax.random.split(jax.random.key(0), 3)
    x0 = jax.random.uniform(k[0], (4, 16, 16, 1), minval=-1, maxval=1)
    x0_hat = x0 + 0.1 * jax.random.normal(k[1], x0.shape)
    t = jnp.array([1, 300, 700, 1000])
    x_t = p.perturb(x0, t, jax.random.normal(k[2], x0.shape))
    got = float(losses.soft_loss(p, "x0", x0_hat, x_t, t, x0, kind="l2"))
    err = scipy.fft.dctn(np.asarray(x0_hat, np.float64) - np.asarray(x0, np.float64), type=2, norm="ortho", axes=(1, 2))
    sb = np.concatenate([[0.0], 0.01 + (5.75 - 0.01) * np.arange(1000) / 999])
    lam = np.pi**2 * (np.arange(16)[:, None] ** 2 + np.arange(16)[None, :] ** 2) / 256
    dt = np.exp(-lam[None] * sb[np.asarray(t)][:, None, None] ** 2 / 2)
    # orthonormal: the mean square of D_t e over pixels is that of d_t ⊙ dct(e) over frequencies
    assert got == pytest.approx(float(np.mean((dt[..., None] * err) ** 2)), rel=1e-4)


# --- the configs' processes: the oracle through every corrector that applies -----------------------------------


def _oracle(proc, x0, pred):
    def net(params, x, t):
        eps = (x - proc.mean(x0, t)) / jnp.maximum(proc.std(t), 1e-30)[:, None, None, None]
        return parameterization.target(proc, pred, x0, eps, t)

    return net


FLOW_WARM = ("diffusion.schedule", "flow"), ("diffusion.schedule_params", {"shift": 1.0}), \
    ("diffusion.prediction", "velocity")


def _config_process(name, overrides=()):
    c = load(name)
    with c.unlocked():
        for k, v in overrides:
            sec, leaf = k.split(".")
            c[sec][leaf] = v
    cv.validate_config(c, num_devices=8)
    return build_process(c), c


@pytest.mark.parametrize("name,overrides", [("warm_blur", ()), ("soft_diffusion", ()), ("warm_blur", FLOW_WARM)],
                         ids=["warm_blur", "soft_diffusion", "warm_blur_flow"])
def test_oracle_recovers_x0_through_every_corrector_that_applies(name, overrides):
    """Every prediction the process allows through the one step; every corrector that applies (and η = 1) with
    the config's prediction."""
    proc, c = _config_process(name, overrides)
    shape = (4, 16, 16, 1)
    x0 = jax.random.uniform(jax.random.key(0), shape, minval=-1, maxval=1)
    x_T = proc.prior(jax.random.key(1), shape)
    fits = [n for n, e in sampling.CORRECTORS.items() if e.applies(proc) is None]
    assert {"ddim", "ddpm", "cold_naive", "ddim_2m"} <= set(fits)
    assert not {"dpmpp_2m", "euler", "heun"} & set(fits)  # D is not the identity
    pred0 = c.diffusion.prediction
    runs = [(p, "ddim", 0.0) for p in proc.predictions] + [(pred0, "ddim", 1.0)] + [
        (pred0, n, 0.0) for n in ("ddpm", "cold_naive", "ddim_2m")]
    for pred, corr, eta in runs:
        out = sampling.sample(_oracle(proc, x0, pred), None, jax.random.key(2), x_T, process=proc, corrector=corr,
                              timesteps=8, prediction=pred, eta=eta).x0
        np.testing.assert_allclose(out, x0, atol=5e-4, err_msg=f"{name} {pred} {corr} eta={eta}")


@pytest.mark.parametrize("name", ["warm_blur", "soft_diffusion"])
def test_the_noise_dominates_x_T_and_the_prior_is_gaussian(name):
    """F_T: α_T D_T(x0) is small against σ_T (the prior N(0, σ_T² I) needs nothing fitted)."""
    proc, c = _config_process(name)
    assert proc.noise_dominates and not proc.keeps_image
    gen = proc.generation()
    assert (gen.kind, gen.fit_on) == ("gaussian", "none")
    from jaxdiff import data

    x0 = data.load_images(c, split="train", num=64, seed=0)
    end = np.asarray(proc.mean(jnp.asarray(x0), jnp.full((64,), proc.T, jnp.int32)), np.float64)
    assert np.sqrt(np.mean(end**2)) < 0.05 * float(proc.schedule.sigma64[-1])
    draws = np.asarray(proc.prior(jax.random.key(3), (512, 16, 16, 1)))
    assert draws.std() == pytest.approx(float(proc.schedule.prior_std), rel=0.02)
    assert proc.generation_corrector(c.sample.corrector) == c.sample.corrector
