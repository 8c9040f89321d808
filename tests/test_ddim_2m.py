"""ddim_2m: the one reverse step made second order (DPM-Solver++(2M) per DCT frequency, its SDE form for η = 1),
against float64 NumPy.

Gaussian data x0 ~ N(μ, s² I) stay Gaussian in the orthonormal DCT basis: u0 = dct(x0) ~ N(m, s² I) with m the DCT
of the constant image μ. A DCT-diagonal process has u_t = a_t ⊙ u0 + σ_t ε per coefficient (a_t = α_t d_t), so the
posterior mean E[u0 | u_t] = m + a s²/(a² s² + σ²)(u_t − a m) is an exact denoiser, and the probability-flow ODE
keeps (u − a m)/√(a² s² + σ²) fixed per coefficient: its solution in closed form. The references use scipy's DCT
and the degradations' closed forms, not jaxdiff's tables.
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxdiff import sampling
from jaxdiff.degradations import make_degradation
from jaxdiff.processes import ColdProcess, GaussianProcess, make_process, schedules

MU, S = 0.3, 0.5
N = 8  # image side
K = np.arange(N)
LAM = np.pi**2 * (K[:, None] ** 2 + K[None, :] ** 2) / N**2  # heat-equation eigenvalues of the DCT basis
C = scipy.fft.dct(np.eye(N), type=2, norm="ortho", axis=0)  # u = C x Cᵀ


def dct64(x):
    return scipy.fft.dctn(np.asarray(x, np.float64), type=2, norm="ortho", axes=(1, 2))


def idct64(u):
    return scipy.fft.idctn(u, type=2, norm="ortho", axes=(1, 2))


class Case:
    """A process and its float64 closed forms: a (T + 1, N, N) = α_t d_t, sig (T + 1,)."""

    def __init__(self, process, alpha, sig, d):
        self.process, self.T = process, process.T
        self.a = np.asarray(alpha)[:, None, None] * d
        self.sig = np.asarray(sig, np.float64)
        self.m = dct64(np.full((1, N, N, 1), MU))[0, :, :, 0]  # μ·N at DC, 0 elsewhere

    def den64(self, u, t):
        a, sg = self.a[t][None, :, :, None], self.sig[t]
        m = self.m[None, :, :, None]
        return m + a * S**2 / (a * a * S**2 + sg * sg) * (u - a * m)

    def exact(self, u, t0, t1):
        """The probability-flow ODE's solution from u at t0 to t1, per coefficient."""
        a0, a1 = self.a[t0][None, :, :, None], self.a[t1][None, :, :, None]
        m = self.m[None, :, :, None]
        return a1 * m + (u - a0 * m) * np.sqrt((a1**2 * S**2 + self.sig[t1] ** 2) / (a0**2 * S**2 + self.sig[t0] ** 2))

    def net(self):
        """x0-prediction of the exact posterior mean, in float32 (its own DCT matrix)."""
        a32, s32, c32 = jnp.asarray(self.a, jnp.float32), jnp.asarray(self.sig, jnp.float32), jnp.asarray(C, jnp.float32)
        m32 = jnp.asarray(self.m, jnp.float32)[None, :, :, None]
        hi = jax.lax.Precision.HIGHEST

        def net(params, x, t):
            u = jnp.einsum("kh,bhwc,lw->bklc", c32, x, c32, precision=hi)
            a, sg = a32[t][..., None], s32[t][:, None, None, None]
            u0 = m32 + a * S**2 / (a * a * S**2 + sg * sg) * (u - a * m32)
            return jnp.einsum("kh,bklc,lw->bhwc", c32, u0, c32, precision=hi)

        return net


def ref_2m(case, x_T, ts, zs=None):
    """DPM-Solver++(2M) (Lu et al. 2022) in float64, per DCT coefficient with λ = log(a/σ); the states after each step.
    Where h_prev is not positive (a coefficient whose λ did not move) the step is first order (D = û0). With noise
    ``zs`` (one per step, in the basis) its SDE form, SDE-DPM-Solver++(2M) (midpoint):
    u' = (σ'/σ) e^{−h} u + a'(1 − e^{−2h}) D + σ' √(1 − e^{−2h}) z."""
    u, out, u0_prev, h_prev = dct64(x_T), [], None, None
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
        u0 = case.den64(u, t)
        if s == 0:
            u = u0
        else:
            with np.errstate(divide="ignore"):
                lam = lambda v: np.log(case.a[v]) - np.log(case.sig[v])  # noqa: E731
            h = (lam(s) - lam(t))[None, :, :, None]
            d = u0
            if u0_prev is not None:
                ok = h_prev > 0
                c = np.divide(h, 2 * h_prev, out=np.zeros_like(h), where=ok)
                d = (1 + c) * u0 - c * u0_prev
            a_s = case.a[s][None, :, :, None]
            if zs is None:
                u = case.sig[s] / case.sig[t] * u - a_s * np.expm1(-h) * d
            else:
                u = (case.sig[s] / case.sig[t] * np.exp(-h) * u + a_s * (1 - np.exp(-2 * h)) * d
                     + case.sig[s] * np.sqrt(1 - np.exp(-2 * h)) * zs[i])
            u0_prev, h_prev = u0, h
        out.append(idct64(u))
    return out


def _linear_vp(T):
    ab = np.cumprod(np.concatenate([[1.0], 1.0 - np.linspace(1e-4, 2e-2, T)]))
    return np.sqrt(ab), np.sqrt(1.0 - ab)


@pytest.fixture(scope="module")
def warm():
    """Blur + variance-preserving noise: warm_blur (linear σ_B from 0.3 to 4 px, d_min 0.001), DDPM's linear β."""
    T = 1000
    proc = make_process("warm_blur", "linear", T=T, image_size=N, channels=1,
                        degradation_params=dict(blur="linear", sigma_min=0.3, sigma_max=4.0, d_min=1e-3))
    sb = np.concatenate([[0.0], 0.3 + 3.7 * np.arange(T) / (T - 1)])
    d = (1 - 1e-3) * np.exp(-LAM[None] * sb[:, None, None] ** 2 / 2) + 1e-3
    return Case(proc, *_linear_vp(T), d)


@pytest.fixture(scope="module")
def heat():
    """Inverse heat dissipation: heat (σ_B log-spaced from 0.5 to 8 px), α = 1, constant σ = 0.05: x_T keeps the image."""
    T = 100
    proc = ColdProcess(make_degradation("heat", T=T, image_size=N, channels=1, sigma_min=0.5, sigma_max=8.0), 0.05)
    sb = np.concatenate([[0.0], np.exp(np.linspace(np.log(0.5), np.log(8.0), T))])
    return Case(proc, np.ones(T + 1), np.concatenate([[0.0], np.full(T, 0.05)]), np.exp(-LAM[None] * sb[:, None, None] ** 2 / 2))


def _x_T(case, seed=0, b=4):
    if case.process.noise_dominates:
        return jax.random.normal(jax.random.key(seed), (b, N, N, 1), jnp.float32)
    x0 = MU + S * np.asarray(jax.random.normal(jax.random.key(seed + 100), (b, N, N, 1)), np.float64)
    z = np.asarray(jax.random.normal(jax.random.key(seed), (b, N, N, 1)), np.float64)
    return jnp.asarray(idct64(case.a[case.T][None, :, :, None] * dct64(x0)) + case.sig[case.T] * z, jnp.float32)


def _run(case, corrector, x_T, ts, *, net=None, return_every=0, key=1):
    return sampling.sample(net or case.net(), None, jax.random.key(key), x_T, process=case.process, corrector=corrector,
                           timesteps=np.asarray(ts), prediction="x0", return_every=return_every)


# --- the update against float64 -------------------------------------------------------------------------------


@pytest.mark.parametrize("which,ts", [("warm", [1000, 700, 400, 150, 40, 0]), ("warm", [900, 899, 500, 3, 0]),
                                      ("heat", [100, 70, 45, 20, 5, 0]), ("heat", [60, 59, 30, 2, 0])])
def test_steps_match_the_float64_reference(which, ts, request):
    case = request.getfixturevalue(which)
    x_T = _x_T(case)
    res = _run(case, "ddim_2m", x_T, ts, return_every=1)
    ref = ref_2m(case, np.asarray(x_T, np.float64), ts)
    for i, want in enumerate(ref):  # every state: from step 2 on the multistep history is used
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(res.trajectory["x_t"][i], want, rtol=0, atol=2e-5 * scale, err_msg=f"step {i}")


def test_second_order_term_is_used(warm):
    """From step 2 on the update differs from the first-order one (ddim, η = 0) by the extrapolated x̂0."""
    ts = np.array([1000, 600, 300, 0])
    x_T = _x_T(warm, 4)
    two = np.asarray(_run(warm, "ddim_2m", x_T, ts, return_every=1).trajectory["x_t"][1], np.float64)
    one = np.asarray(_run(warm, "ddim", x_T, ts, return_every=1).trajectory["x_t"][1], np.float64)
    assert np.max(np.abs(two - one)) > 50 * 2e-5  # far beyond the tolerance the reference is matched to
    np.testing.assert_allclose(two, ref_2m(warm, np.asarray(x_T, np.float64), ts)[1], rtol=0, atol=2e-5)


def test_eta_one_is_sde_dpm_solver_2m(warm):
    """η = 1: SDE-DPM-Solver++(2M) with the noise ddim draws (step i: normal(fold_in(key, i)), in the DCT basis)."""
    ts = [1000, 700, 400, 150, 40, 0]
    x_T = _x_T(warm, 12)
    res = sampling.sample(warm.net(), None, jax.random.key(3), x_T, process=warm.process, corrector="ddim_2m",
                          timesteps=np.asarray(ts), prediction="x0", eta=1.0, return_every=1)
    zs = [dct64(np.asarray(jax.random.normal(jax.random.fold_in(jax.random.key(3), i), x_T.shape, jnp.float32)))
          for i in range(len(ts) - 1)]
    ref = ref_2m(warm, np.asarray(x_T, np.float64), ts, zs)
    for i, want in enumerate(ref):
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(res.trajectory["x_t"][i], want, rtol=0, atol=3e-5 * scale, err_msg=f"step {i}")
    # its first step is ddim's η = 1 step, noise and all
    one = sampling.sample(warm.net(), None, jax.random.key(3), x_T, process=warm.process, corrector="ddim",
                          timesteps=np.asarray(ts), prediction="x0", eta=1.0, return_every=1)
    np.testing.assert_allclose(res.trajectory["x_t"][0], one.trajectory["x_t"][0], rtol=0, atol=3e-5)


def test_first_step_is_the_one_step(warm, heat):
    for case, ts in ((warm, [1000, 500, 0]), (heat, [100, 50, 0])):
        x_T = _x_T(case, 5)
        a = _run(case, "ddim_2m", x_T, ts, return_every=1).trajectory["x_t"][0]
        b = _run(case, "ddim", x_T, ts, return_every=1).trajectory["x_t"][0]
        np.testing.assert_allclose(a, b, rtol=0, atol=2e-5)


def test_on_an_identity_process_it_is_dpmpp_2m():
    g = GaussianProcess(schedules.linear(1000))
    a64, s64 = _linear_vp(1000)
    case = Case(g, a64, s64, np.ones((1001, N, N)))
    x_T = _x_T(case, 6)
    for ts in ([1000, 700, 300, 80, 0], sampling.timesteps(1000, 12)):
        np.testing.assert_allclose(_run(case, "ddim_2m", x_T, ts).x0, _run(case, "dpmpp_2m", x_T, ts).x0,
                                   rtol=0, atol=1e-6)


# --- order of convergence -------------------------------------------------------------------------------------


@pytest.mark.parametrize("which,t0,t1,corrector,ratio", [("warm", 1000, 200, "ddim_2m", 4.0),
                                                         ("heat", 100, 20, "ddim_2m", 4.0),
                                                         ("warm", 1000, 200, "ddim", 2.0)])  # the first-order step
def test_order_of_convergence(which, t0, t1, corrector, ratio, request):
    """Error at t1 against the ODE's closed form on grids of 10, 20, 40 steps from t0: it falls by 2^order."""
    case = request.getfixturevalue(which)
    x_T = _x_T(case, 7, 8)
    want = idct64(case.exact(dct64(x_T), t0, t1))
    errs = []
    for n in (10, 20, 40):
        ts = np.concatenate([np.linspace(t0, t1, n + 1).round().astype(int), [0]])
        traj = _run(case, corrector, x_T, ts, return_every=1).trajectory
        assert int(traj["t"][-2]) == t1
        errs.append(float(np.max(np.abs(np.asarray(traj["x_t"][-2], np.float64) - want))))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all(ratios > 0.75 * ratio) and np.all(ratios < 1.4 * ratio), (errs, ratios)


# --- network calls, devices, one program ----------------------------------------------------------------------


def test_network_calls_counted_and_made(warm):
    assert sampling.network_calls("ddim_2m", 10) == 10
    seen = []
    net0 = warm.net()

    def net(params, x, t):
        jax.debug.callback(lambda tt: seen.append(int(tt[0])), t)
        return net0(params, x, t)

    ts = np.array([1000, 600, 200, 50, 0])
    _run(warm, "ddim_2m", _x_T(warm, 8, 2), ts, net=net).x0.block_until_ready()
    jax.effects_barrier()
    assert len(seen) == sampling.network_calls("ddim_2m", 4)
    assert sorted(seen, reverse=True) == [1000, 600, 200, 50]


@pytest.mark.parametrize("which", ["warm", "heat"])
def test_one_and_eight_devices_give_the_same_samples(which, request):
    case = request.getfixturevalue(which)
    n = jax.device_count()
    assert n == 8
    mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x_T = _x_T(case, 9, 16)
    ts = sampling.timesteps(case.T, 6)
    single = _run(case, "ddim_2m", x_T, ts).x0
    sharded = _run(case, "ddim_2m", jax.device_put(x_T, NamedSharding(mesh, P("data"))), ts).x0
    assert len(sharded.sharding.device_set) == n
    np.testing.assert_allclose(sharded, single, rtol=0, atol=1e-5)


def test_one_program_for_new_timestep_values(warm):
    traces = []
    net0 = warm.net()

    def net(params, x, t):
        traces.append(1)
        return net0(params, x, t)

    x_T = _x_T(warm, 10, 2)
    outs = [_run(warm, "ddim_2m", x_T, ts, net=net).x0 for ts in ([1000, 500, 100, 0], [900, 400, 20, 0])]
    assert len(traces) == 1
    assert float(jnp.max(jnp.abs(outs[0] - outs[1]))) > 1e-3


def test_deterministic_at_eta_zero(warm):
    x_T = _x_T(warm, 11)
    ts = sampling.timesteps(1000, 6)
    np.testing.assert_array_equal(_run(warm, "ddim_2m", x_T, ts, key=1).x0, _run(warm, "ddim_2m", x_T, ts, key=2).x0)


# --- where it does not apply: one clear message ---------------------------------------------------------------


def test_refuses_processes_without_a_diagonal_flow():
    blur = ColdProcess(make_degradation("blur", T=10, image_size=N, channels=1), noise_std=0.05)
    with pytest.raises(ValueError, match=r"corrector 'ddim_2m' .*needs D = identity or a DCT-diagonal degradation, "
                                         r"not 'blur'.*use one of .*'ddim'"):
        sampling.check_corrector("ddim_2m", blur)
    quiet = ColdProcess(make_degradation("heat", T=10, image_size=N, channels=1), noise_std=0.0)
    with pytest.raises(ValueError, match=r"corrector 'ddim_2m' needs σ_t > 0 for every t >= 1"):
        sampling.check_corrector("ddim_2m", quiet)


def test_config_names_it_and_refuses_it_for_cold_blur():
    import os

    import jaxdiff.config as cv

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    heat_cfg = cv.load_config_file(os.path.join(root, "configs", "heat.py"))
    heat_cfg.sample.corrector = "ddim_2m"
    cv.validate_config(heat_cfg, num_devices=8)
    cold = cv.load_config_file(os.path.join(root, "configs", "cold_blur.py"))
    cold.sample.corrector = "ddim_2m"
    with pytest.raises(cv.ConfigError, match=r"sample\.corrector='ddim_2m'.*needs σ_t > 0"):
        cv.validate_config(cold, num_devices=8)
