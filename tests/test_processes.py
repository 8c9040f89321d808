"""The one process x_t = α_t·D_t(x0) + σ_t·ε: the new schedules (flow, ve, constant), flow matching and EDM tested
like the old processes — closed-form tables in float64, moments of q(x_t | x0), predictions, the oracle denoiser
through every corrector that applies, 1 vs 8 devices — and the one reverse step against float64 references.

The data are Gaussian, x0 ~ N(μ, s² I), so the posterior mean E[x0 | x_t] = μ + a s²/(a² s² + σ²)(x_t − a μ)
(a = α_t) is an exact denoiser in closed form, written here in float64 and in JAX.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxdiff import losses, parameterization, sampling
from jaxdiff.degradations import make_degradation
from jaxdiff.processes import ColdProcess, GaussianProcess, Process, make_process, schedules
from jaxdiff.processes.tsampling import t_logits

T = 100
MU, S = 0.3, 0.5
SHAPE = (6, 8, 8, 1)


def flow64(T, shift=1.0):
    u = np.arange(T + 1) / T
    tau = shift * u / (1 + (shift - 1) * u)
    return 1 - tau, tau


def ve64(T, lo=0.002, hi=80.0, rho=7.0):
    i = np.arange(T) / (T - 1)
    sig = (lo ** (1 / rho) + i * (hi ** (1 / rho) - lo ** (1 / rho))) ** rho
    return np.ones(T + 1), np.concatenate([[0.0], sig])


def identity_process(schedule_name, **params):
    return make_process("identity", schedule_name, T=T, image_size=8, channels=1, schedule_params=params)


FLOW = identity_process("flow")
VE = identity_process("ve")


# --- the schedules, closed forms in float64 --------------------------------------------------------------------
@pytest.mark.parametrize("shift", [1.0, 3.0])
def test_flow_schedule_is_the_linear_interpolation(shift):
    s = schedules.flow(T, shift=shift)
    a, sig = flow64(T, shift)
    np.testing.assert_allclose(s.alpha64, a, rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.sigma64, sig, rtol=0, atol=1e-15)
    np.testing.assert_allclose(s.alpha, a.astype(np.float32))
    u = np.arange(T + 1) / T
    np.testing.assert_allclose(s.dsigma64, shift / (1 + (shift - 1) * u) ** 2, rtol=1e-12)
    np.testing.assert_allclose(s.dalpha64, -s.dsigma64)
    assert s.prior_std == 1.0 and not s.variance_preserving
    np.testing.assert_array_equal(s.ode_scale, np.ones(T + 1, np.float32))  # α + σ = 1: z = x, r = τ


def test_ve_schedule_is_edms_rho_spacing():
    s = schedules.ve(T)
    a, sig = ve64(T)
    np.testing.assert_allclose(s.sigma64, sig, rtol=1e-13)
    assert s.sigma64[1] == pytest.approx(0.002) and s.sigma64[-1] == pytest.approx(80.0)
    np.testing.assert_array_equal(s.alpha64, a)
    assert s.prior_std == pytest.approx(80.0)
    # dσ/dτ (τ = t/T) against a fine central difference of the closed form in continuous t
    lo, hi, rho = 0.002, 80.0, 7.0
    sig_t = lambda t: (lo ** (1 / rho) + (t - 1) / (T - 1) * (hi ** (1 / rho) - lo ** (1 / rho))) ** rho  # noqa: E731
    t = np.arange(1, T + 1, dtype=np.float64)
    np.testing.assert_allclose(s.dsigma64[1:], (sig_t(t + 1e-5) - sig_t(t - 1e-5)) / 2e-5 * T, rtol=1e-6)


def test_constant_schedule():
    s = schedules.constant(10, std=0.05)
    np.testing.assert_array_equal(s.sigma64, [0.0] + [0.05] * 10)
    np.testing.assert_array_equal(s.alpha64, np.ones(11))
    with pytest.raises(ValueError, match="std must be a finite number >= 0"):
        schedules.constant(10, std=-1.0)


@pytest.mark.parametrize("name", ["flow", "ve", "linear", "cosine"])
def test_generic_posterior_equals_the_float64_formula(name):
    s = schedules.make_schedule(name, T)
    a, sig = np.asarray(s.alpha64), np.asarray(s.sigma64)
    t = np.array([T, 80, 50, 7, 2])
    s_ = np.array([T - 1, 60, 49, 0, 1])
    with np.errstate(divide="ignore", invalid="ignore"):
        ats = a[t] / a[s_]
    ats = np.where(np.isfinite(ats), ats, 0.0)
    var_ts = sig[t] ** 2 - ats**2 * sig[s_] ** 2
    c1, c2, var = (np.asarray(v, np.float64) for v in s.posterior(t, s_))
    np.testing.assert_allclose(c1, a[s_] * var_ts / sig[t] ** 2, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(c2, ats * sig[s_] ** 2 / sig[t] ** 2, rtol=2e-5, atol=1e-7)
    np.testing.assert_allclose(var, var_ts * sig[s_] ** 2 / sig[t] ** 2, rtol=2e-5, atol=1e-9)


# --- the forward process -------------------------------------------------------------------------------------------
@pytest.mark.parametrize("proc,tables", [(FLOW, flow64(T)), (VE, ve64(T))], ids=["flow", "edm"])
def test_moments_of_q_xt_given_x0(proc, tables):
    a, sig = tables
    x0 = jnp.full((4000, 2, 2, 1), 0.7, jnp.float32)
    for t in (1, 37, T):
        xt = np.asarray(proc.sample(x0, t, jax.random.key(t)), np.float64)
        n = xt.size
        assert abs(xt.mean() - a[t] * 0.7) < 4 * max(sig[t], 1e-6) / math.sqrt(n) + 1e-6
        assert xt.std() == pytest.approx(sig[t], rel=0.03, abs=1e-6)
    assert proc.noise_dominates and proc.generation().kind == "gaussian"
    draws = np.asarray(proc.prior(jax.random.key(3), (2000, 2, 2, 1)))
    assert draws.std() == pytest.approx(proc.schedule.prior_std, rel=0.03)


def test_the_old_processes_are_configurations_of_the_one():
    g = GaussianProcess(schedules.linear(T))
    assert g.identity and g.schedule.variance_preserving and g.has_diffusers_scheduler and g.noise_dominates
    c = ColdProcess(make_degradation("blur", T=10, image_size=8, channels=1), noise_std=0.01)
    assert not c.identity and c.unit_signal and c.keeps_image and not c.has_diffusers_scheduler
    assert c.restoration_correctors("ddim") == ("cold_naive", "cold_improved")
    assert g.restoration_correctors("ddpm") == ("ddpm",)
    assert isinstance(g, Process) and isinstance(c, Process)


# --- predictions ---------------------------------------------------------------------------------------------------
@pytest.mark.parametrize("proc", [FLOW, VE, GaussianProcess(schedules.cosine(T))], ids=["flow", "edm", "vp"])
def test_every_allowed_prediction_round_trips(proc):
    x0 = jax.random.uniform(jax.random.key(0), SHAPE, minval=-1, maxval=1)
    eps = jax.random.normal(jax.random.key(1), SHAPE)
    t = jnp.array([1, 9, 33, 50, 80, T - 1])
    x_t = proc.perturb(x0, t, eps)
    scale = np.asarray(jnp.max(jnp.abs(x_t)))
    for pred in proc.predictions:
        y = parameterization.target(proc, pred, x0, eps, t)
        x0_hat, eps_hat = parameterization.predict(proc, pred, y, x_t, t)
        np.testing.assert_allclose(x0_hat, x0, atol=2e-4 * max(scale, 1), err_msg=pred)
        np.testing.assert_allclose(eps_hat, eps, atol=2e-3, err_msg=pred)


def test_flow_velocity_is_eps_minus_x0_and_the_others_refuse_what_they_cannot_invert():
    x0 = jax.random.uniform(jax.random.key(0), SHAPE, minval=-1, maxval=1)
    eps = jax.random.normal(jax.random.key(1), SHAPE)
    t = jnp.arange(1, 7) * 15
    np.testing.assert_allclose(parameterization.target(FLOW, "velocity", x0, eps, t), eps - x0, atol=1e-6)
    assert FLOW.predictions == ("x0", "v", "velocity")  # α_T = 0: ε-prediction cannot give x̂0 at t = T
    with pytest.raises(ValueError, match=r"'eps' needs α_t·D_t invertible"):
        FLOW.check_prediction("eps")
    cold = ColdProcess(make_degradation("inpaint", T=10, image_size=8, channels=1), noise_std=0.1)
    with pytest.raises(ValueError, match="'v' needs α_t·D_t invertible on the image; D_t = 'inpaint'"):
        cold.check_prediction("v")


def test_edm_preconditioning_coefficients_and_loss_weight():
    t = jnp.array([1, 40, T])
    sig = np.asarray(VE.schedule.sigma64)[[1, 40, T]]
    c_skip, c_out, c_in = (np.asarray(v, np.float64) for v in parameterization.edm_coefficients(VE, t))
    sd = 0.5
    np.testing.assert_allclose(c_skip, sd**2 / (sig**2 + sd**2), rtol=1e-5)
    np.testing.assert_allclose(c_out, sig * sd / np.sqrt(sig**2 + sd**2), rtol=1e-5)
    np.testing.assert_allclose(c_in, 1 / np.sqrt(sig**2 + sd**2), rtol=1e-5)
    np.testing.assert_allclose(parameterization.edm_input_scale(VE)[[1, 40, T]], c_in, rtol=1e-5)
    # EDM's λ(σ) = (σ² + σ_d²)/(σ σ_d)² on the x0 error is an unweighted loss on F: λ c_out² = 1
    w = np.asarray(losses.loss_weights(VE, t, weighting="edm", prediction="edm"))
    np.testing.assert_allclose(w, 1.0, rtol=1e-4)
    w0 = np.asarray(losses.loss_weights(VE, t, weighting="edm", prediction="x0"), np.float64)
    np.testing.assert_allclose(w0, (sig**2 + sd**2) / (sig * sd) ** 2, rtol=1e-4)


def test_min_snr_weights_for_v_on_a_flow_schedule_against_float64():
    t = jnp.array([5, 50, 95])
    a, sig = (v[[5, 50, 95]] for v in flow64(T))
    snr = (a / sig) ** 2
    w = np.asarray(losses.loss_weights(FLOW, t, weighting="min_snr", prediction="v"), np.float64)
    np.testing.assert_allclose(w, np.minimum(snr, 5.0) * sig**2 / (a**2 + sig**2) ** 2, rtol=1e-4)


def test_soft_loss_is_the_x0_error_after_degradation():
    deg = make_degradation("blur", T=10, image_size=8, channels=1, kernel_size=3, std=1.0)
    proc = ColdProcess(deg, noise_std=0.02)
    x0 = jax.random.uniform(jax.random.key(0), SHAPE, minval=-1, maxval=1)
    x0_hat = x0 + 0.1 * jax.random.normal(jax.random.key(1), SHAPE)
    t = jnp.arange(1, 7)
    x_t = proc.perturb(x0, t, jax.random.normal(jax.random.key(2), SHAPE))
    got = float(losses.soft_loss(proc, "x0", x0_hat, x_t, t, x0, kind="l2"))
    d = np.asarray(deg.apply(x0_hat, t), np.float64) - np.asarray(deg.apply(x0, t), np.float64)
    assert got == pytest.approx(float(np.mean(d**2)), rel=1e-5)
    assert got < float(jnp.mean((x0_hat - x0) ** 2))  # the blur averages the error down


# --- t sampling ----------------------------------------------------------------------------------------------------
def test_logit_normal_and_log_normal_t_against_scipy():
    p = np.exp(np.asarray(t_logits(FLOW, "logit_normal", mean=0.0, std=1.0), np.float64))
    u = np.arange(T + 1) / T
    ref = np.diff(scipy.stats.norm.cdf(scipy.special.logit(u)))
    np.testing.assert_allclose(p, ref / ref.sum(), rtol=1e-5, atol=1e-9)
    q = np.exp(np.asarray(t_logits(VE, "log_normal", mean=-1.2, std=1.2), np.float64))
    lv = np.log(ve64(T)[1][1:])
    edges = np.concatenate([[-np.inf], 0.5 * (lv[:-1] + lv[1:]), [np.inf]])
    ref = np.diff(scipy.stats.norm.cdf(edges, loc=-1.2, scale=1.2))
    np.testing.assert_allclose(q, ref / ref.sum(), rtol=1e-5, atol=1e-9)
    assert t_logits(FLOW, "uniform") is None
    with pytest.raises(ValueError, match="grows with t"):
        t_logits(ColdProcess(make_degradation("blur", T=10, image_size=8, channels=1)), "log_normal")


# --- the reverse step ----------------------------------------------------------------------------------------------
def _gauss_x0(proc):
    a32, s32 = proc.schedule.alpha, proc.schedule.sigma

    def net(params, x, t):  # x0-prediction of the exact posterior mean
        a, sg = a32[t][:, None, None, None], s32[t][:, None, None, None]
        return MU + a * S**2 / (a * a * S**2 + sg * sg) * (x - a * MU)

    return net


def test_the_one_step_on_flow_is_the_flow_matching_euler_step():
    x_t = jax.random.normal(jax.random.key(0), SHAPE)
    x0_hat = jax.random.uniform(jax.random.key(1), SHAPE, minval=-1, maxval=1)
    t, s = jnp.full((6,), 60), jnp.full((6,), 45)
    _, eps_hat = parameterization.predict(FLOW, "x0", x0_hat, x_t, t)
    out = np.asarray(sampling.CORRECTORS["ddim"](FLOW, x_t, x0_hat, eps_hat, t, s, jax.random.key(2)), np.float64)
    xt64, x064 = np.asarray(x_t, np.float64), np.asarray(x0_hat, np.float64)
    u = (xt64 - x064) / 0.60  # dx/dτ = ε − x0 = (x − x0)/τ
    np.testing.assert_allclose(out, xt64 + (0.45 - 0.60) * u, atol=2e-6)
    eul = sampling.CORRECTORS["euler"](FLOW, x_t, x0_hat, eps_hat, t, s, jax.random.key(2))
    np.testing.assert_allclose(eul, out, atol=2e-6)  # the same step in the ODE's own variables


@pytest.mark.parametrize("proc", [FLOW, VE], ids=["flow", "edm"])
def test_oracle_recovers_x0_through_every_corrector_that_applies(proc):
    x0 = jax.random.uniform(jax.random.key(0), SHAPE, minval=-1, maxval=1)
    x_T = proc.prior(jax.random.key(1), SHAPE)
    correctors = [n for n, c in sampling.CORRECTORS.items() if c.applies(proc) is None]
    assert {"ddim", "ddpm", "cold_naive", "euler", "heun", "dpmpp_2m"} <= set(correctors)
    for pred in proc.predictions:
        def oracle(params, x, t, pred=pred):  # the exact target for x0 given x_t
            eps = (x - proc.mean(x0, t)) / jnp.maximum(proc.std(t), 1e-30)[:, None, None, None]
            return parameterization.target(proc, pred, x0, eps, t)

        for name in correctors:
            out = sampling.sample(oracle, None, jax.random.key(2), x_T, process=proc, corrector=name, timesteps=8,
                                  prediction=pred).x0
            np.testing.assert_allclose(out, x0, atol=2e-4, err_msg=f"{pred} {name}")


@pytest.mark.parametrize("proc", [FLOW, VE], ids=["flow", "edm"])
def test_deterministic_samplers_converge_to_the_ode_solution(proc):
    """On Gaussian data the probability-flow ODE keeps (x − a μ)/√(a² s² + σ²) fixed: each sampler's error falls
    as the steps double (second order for heun and dpmpp_2m)."""
    a, sig = np.asarray(proc.schedule.alpha64), np.asarray(proc.schedule.sigma64)
    x_T = np.asarray(proc.prior(jax.random.key(5), (2, 4, 4, 1)), np.float64)
    z = (x_T - a[T] * MU) / math.sqrt(a[T] ** 2 * S**2 + sig[T] ** 2)
    exact = MU + S * z  # the solution at t = 0 (σ = 0, a = 1)
    net = _gauss_x0(proc)
    errs = {}
    for name in ("euler", "heun", "dpmpp_2m", "ddim"):
        errs[name] = []
        for n in (10, 20, 40):
            out = sampling.sample(net, None, jax.random.key(0), jnp.asarray(x_T, jnp.float32), process=proc,
                                  corrector=name, timesteps=n, prediction="x0").x0
            errs[name].append(float(np.max(np.abs(np.asarray(out, np.float64) - exact))))
    for name, e in errs.items():
        assert e[2] < e[0], (name, e)  # converges
    assert errs["heun"][2] < errs["euler"][2]


@pytest.mark.parametrize("proc", [FLOW, VE], ids=["flow", "edm"])
def test_one_and_eight_devices_give_the_same_samples(proc):
    n = jax.device_count()
    assert n == 8
    mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    shape = (16, 8, 8, 1)
    x_T = proc.prior(jax.random.key(4), shape)
    net = _gauss_x0(proc)
    for name in ("heun", "ddpm"):
        single = sampling.sample(net, None, jax.random.key(6), x_T, process=proc, corrector=name, timesteps=6,
                                 prediction="x0").x0
        sharded = sampling.sample(net, None, jax.random.key(6), jax.device_put(x_T, NamedSharding(mesh, P("data"))),
                                  process=proc, corrector=name, timesteps=6, prediction="x0").x0
        assert len(sharded.sharding.device_set) == n
        np.testing.assert_allclose(sharded, single, rtol=0, atol=1e-5)
