"""Schedules against an independent float64 NumPy computation of REFERENCES.md's formulas."""
import math

import numpy as np
import pytest

from jaxdiff.processes import schedules


def _reference(abar_1_to_T):
    """Every field from ᾱ_1 … ᾱ_T, written out term by term (t = 0 prepended as clean data)."""
    T = len(abar_1_to_T)
    ab = [1.0] + [float(a) for a in abar_1_to_T]
    out = {k: [] for k in ("betas", "alphas", "abar", "abar_prev", "c1", "c2", "var")}
    for t in range(T + 1):
        abar_prev = ab[t - 1] if t > 0 else 1.0
        beta = 1.0 - ab[t] / abar_prev if t > 0 else 0.0
        alpha = 1.0 - beta
        out["betas"].append(beta)
        out["alphas"].append(alpha)
        out["abar"].append(ab[t])
        out["abar_prev"].append(abar_prev)
        if t > 0:
            out["c1"].append(beta * math.sqrt(abar_prev) / (1.0 - ab[t]))
            out["c2"].append((1.0 - abar_prev) * math.sqrt(alpha) / (1.0 - ab[t]))
            out["var"].append(beta * (1.0 - abar_prev) / (1.0 - ab[t]))
        else:
            out["c1"].append(1.0)
            out["c2"].append(0.0)
            out["var"].append(0.0)
    return {k: np.array(v) for k, v in out.items()}


def _check_fields(s: schedules.Schedule, ref, rtol=2e-6, atol=1e-7):
    np.testing.assert_allclose(s.betas, ref["betas"], rtol=rtol, atol=atol)
    np.testing.assert_allclose(s.alphas, ref["alphas"], rtol=rtol, atol=atol)
    np.testing.assert_allclose(s.alphas_cumprod, ref["abar"], rtol=rtol, atol=atol)
    np.testing.assert_allclose(s.alphas_cumprod_prev, ref["abar_prev"], rtol=rtol, atol=atol)
    np.testing.assert_allclose(s.sqrt_alphas_cumprod, np.sqrt(ref["abar"]), rtol=rtol, atol=atol)
    np.testing.assert_allclose(s.sqrt_one_minus_alphas_cumprod, np.sqrt(1 - ref["abar"]), rtol=rtol, atol=atol)
    np.testing.assert_allclose(s.posterior_mean_coef1[1:], ref["c1"][1:], rtol=1e-5, atol=atol)
    np.testing.assert_allclose(s.posterior_mean_coef2[1:], ref["c2"][1:], rtol=1e-5, atol=atol)
    np.testing.assert_allclose(s.posterior_variance[1:], ref["var"][1:], rtol=1e-5, atol=1e-9)
    # log clipped at t = 1 by using β̃_2 there
    np.testing.assert_allclose(s.posterior_log_variance_clipped[1], np.log(ref["var"][2]), rtol=1e-5)
    np.testing.assert_allclose(s.posterior_log_variance_clipped[2:], np.log(ref["var"][2:]), rtol=1e-5)
    for f in s.__dataclass_fields__:
        assert getattr(s, f).dtype == np.float32, f
        assert getattr(s, f).shape == (len(ref["betas"]),), f


def test_linear_matches_ddpm():
    T = 1000
    betas = [1e-4 + (2e-2 - 1e-4) * i / (T - 1) for i in range(T)]
    abar, prod = [], 1.0
    for b in betas:
        prod *= 1.0 - b
        abar.append(prod)
    s = schedules.linear(T)
    ref = _reference(abar)
    np.testing.assert_allclose(ref["betas"][1:], betas, rtol=1e-12)
    _check_fields(s, ref)
    assert s.num_timesteps == T


def test_cosine_matches_nichol_dhariwal():
    T, sh = 1000, 0.008
    f = lambda t: math.cos(((t / T) + sh) / (1 + sh) * math.pi / 2) ** 2  # noqa: E731
    abar, prod = [], 1.0
    for t in range(1, T + 1):
        beta = min(1 - (f(t) / f(0)) / (f(t - 1) / f(0)), 0.999)
        prod *= 1 - beta
        abar.append(prod)
    s = schedules.cosine(T)
    _check_fields(s, _reference(abar))
    assert float(np.max(s.betas)) == pytest.approx(0.999, rel=1e-6)  # the clip is active at the end


def test_offset_cosine_signal_rates():
    T = 50
    lo, hi = math.acos(0.95), math.acos(0.02)
    signal = [math.cos(lo + (t / T) * (hi - lo)) for t in range(1, T + 1)]
    s = schedules.offset_cosine(T)
    _check_fields(s, _reference([r * r for r in signal]))
    np.testing.assert_allclose(s.sqrt_alphas_cumprod[T], 0.02, rtol=1e-5)
    np.testing.assert_allclose(s.sqrt_alphas_cumprod[0], 1.0)


def test_sigmoid_matches_jabri_et_al():
    # g(τ) = (σ(e/κ) − σ((τ(e − s) + s)/κ)) / (σ(e/κ) − σ(s/κ)), s = −3, e = 3, κ = 1, floored at 1e-9;
    # ᾱ_t = g(t/T)/g(0) with β_t = 1 − ᾱ_t/ᾱ_{t−1} clipped at 0.999 (ᾱ recomputed from the clipped β)
    T, lo, hi = 100, -3.0, 3.0
    sig = lambda z: 1.0 / (1.0 + math.exp(-z))  # noqa: E731
    g = [max((sig(hi) - sig((t / T) * (hi - lo) + lo)) / (sig(hi) - sig(lo)), 1e-9) for t in range(T + 1)]
    abar, prod = [], 1.0
    for t in range(1, T + 1):
        prod *= 1 - min(1 - g[t] / g[t - 1], 0.999)
        abar.append(prod)
    s = schedules.sigmoid(T)
    ab = np.asarray(s.alphas_cumprod, np.float64)
    assert ab[0] == 1.0 and np.all(np.diff(ab) < 0)
    _check_fields(s, _reference(abar), rtol=1e-5)


VP_SCHEDULES = sorted(n for n in schedules.SCHEDULES if schedules.make_schedule(n, 2).variance_preserving)


def test_variance_preserving_schedules_are_the_beta_ones():
    assert VP_SCHEDULES == ["cosine", "linear", "offset_cosine", "scaled_linear", "sigmoid"]


@pytest.mark.parametrize("name", VP_SCHEDULES)
def test_every_schedule_valid(name):
    s = schedules.make_schedule(name, 30)
    ab = np.asarray(s.alphas_cumprod)
    assert ab[0] == 1.0 and np.all(np.diff(ab) < 0) and ab[-1] > 0
    np.testing.assert_allclose(s.sqrt_alphas_cumprod**2 + s.sqrt_one_minus_alphas_cumprod**2, 1.0, atol=1e-6)
    assert np.all(np.isfinite(s.posterior_log_variance_clipped))
    np.testing.assert_allclose(s.log_snr[1:], np.log(ab[1:] / (1 - ab[1:])), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("T", [0, -3, 2.5, True])
def test_bad_T(T):
    with pytest.raises(ValueError, match="T"):
        schedules.linear(T)


def test_unknown_name():
    with pytest.raises(ValueError, match="unknown schedule 'quadratic'.*allowed"):
        schedules.make_schedule("quadratic", 10)


def test_register_schedule_twice_raises():
    def const(T):
        return schedules.from_alphas_cumprod(np.linspace(0.9, 0.1, T))

    schedules.register_schedule("test_const")(const)
    try:
        assert schedules.make_schedule("test_const", 3).num_timesteps == 3
        with pytest.raises(ValueError, match="schedule 'test_const' is already registered"):
            schedules.register_schedule("test_const")(const)
        with pytest.raises(ValueError, match="already registered"):
            schedules.register_schedule("linear")(const)  # a built-in cannot be replaced silently either
        assert schedules.SCHEDULES["linear"] is schedules.linear
    finally:
        schedules.SCHEDULES.unregister("test_const")
    assert "test_const" not in schedules.SCHEDULES


def test_unknown_name_suggests_the_closest():
    with pytest.raises(ValueError, match=r"unknown schedule 'cosin'.*did you mean 'cosine'"):
        schedules.make_schedule("cosin", 10)
