"""Fast samplers (dpmpp_2m, euler, heun, heun_karras) and the leading/karras spacings, against float64 NumPy references.

The denoiser is exact for Gaussian data x0 ~ N(μ, s² I): x_t = a x0 + σ ε gives E[x0 | x_t] = μ + a s²/(a² s² + σ²)
(x_t − a μ), and the probability-flow ODE in y = x/a, k = σ/a has the closed form y(k') − μ = (y(k) − μ)
√((s² + k'²)/(s² + k²)). The references below are the published updates written out in float64.
"""
import types

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxdiff import sampling
from jaxdiff.processes import schedules
from jaxdiff.processes import BlurringProcess
from jaxdiff.processes import GaussianProcess

T = 1000
MU, S = 0.3, 0.5
FAST = ("dpmpp_2m", "euler", "heun", "heun_karras")


def abar64(T):
    """float64 ᾱ_0 … ᾱ_T of the DDPM linear schedule (β from 1e-4 to 0.02)."""
    return np.cumprod(np.concatenate([[1.0], 1.0 - np.linspace(1e-4, 2e-2, T)]))


AB = abar64(T)
A64, SG64 = np.sqrt(AB), np.sqrt(1.0 - AB)
with np.errstate(divide="ignore"):
    LAM64 = np.log(A64 / SG64)  # λ_t, +∞ at t = 0
K64 = SG64 / A64  # Karras σ_t


def denoiser64(x, t):
    return MU + A64[t] * S**2 / (A64[t] ** 2 * S**2 + SG64[t] ** 2) * (x - A64[t] * MU)


# the network: the same closed form in JAX (float32 tables from the float64 ones), x0- or ε-prediction
_A32, _SG32 = jnp.asarray(A64, jnp.float32), jnp.asarray(SG64, jnp.float32)


def _x0_net(params, x, t):
    a, sg = _A32[t][:, None, None, None], _SG32[t][:, None, None, None]
    return MU + a * S**2 / (a * a * S**2 + sg * sg) * (x - a * MU)


def _eps_net(params, x, t):
    a, sg = _A32[t][:, None, None, None], _SG32[t][:, None, None, None]
    return (x - a * _x0_net(params, x, t)) / sg


# --- the published updates, float64 -------------------------------------------------------------------


def dpmpp_2m_ref(x, ts):
    """Lu et al. 2022, DPM-Solver++(2M); returns the states after each step."""
    out, x0_prev, h_prev = [], None, None
    for t, tp in zip(ts[:-1], ts[1:]):
        x0 = denoiser64(x, t)
        if tp == 0:
            x = x0
        else:
            h = LAM64[tp] - LAM64[t]
            if x0_prev is None:
                d = x0
            else:
                r = h_prev / h
                d = (1 + 1 / (2 * r)) * x0 - 1 / (2 * r) * x0_prev
            x = SG64[tp] / SG64[t] * x - A64[tp] * (np.exp(-h) - 1) * d
            x0_prev, h_prev = x0, h
        out.append(x)
    return out


def karras_ref(x, ts, heun, *, trapezoid="exponential"):
    """Karras et al. 2022's Euler on y = x/α in σ = √((1 − ᾱ)/ᾱ), and Heun: Euler to σ', the denoiser D' there,
    then ``trapezoid`` "exponential" (jaxdiff's heun): y' = (σ'/σ) y + (1 − σ'/σ) D + φ (D' − D), φ = 1 − (1 −
    σ'/σ)/ln(σ/σ'), or "karras" (their Alg. 1): y' = y + (σ' − σ)(d + d')/2. Returns states and calls."""
    out, calls = [], 0
    for t, tp in zip(ts[:-1], ts[1:]):
        y = x / A64[t]
        x0 = denoiser64(x, t)
        d = (y - x0) / K64[t]
        calls += 1
        y_next = y + (K64[tp] - K64[t]) * d
        if heun and tp > 0:
            x0_next = denoiser64(A64[tp] * y_next, tp)
            calls += 1
            if trapezoid == "karras":
                y_next = y + (K64[tp] - K64[t]) * 0.5 * (d + (y_next - x0_next) / K64[tp])
            else:
                rho = K64[tp] / K64[t]
                y_next = rho * y + (1 - rho) * x0 + (1 - (1 - rho) / np.log(1 / rho)) * (x0_next - x0)
        x = A64[tp] * y_next if tp > 0 else y_next  # σ' = 0: y' = D, the clean image
        out.append(x)
    return out, calls


REFS = {
    "dpmpp_2m": dpmpp_2m_ref,
    "euler": lambda x, ts: karras_ref(x, ts, False)[0],
    "heun": lambda x, ts: karras_ref(x, ts, True)[0],
    "heun_karras": lambda x, ts: karras_ref(x, ts, True, trapezoid="karras")[0],
}


def ode_exact(x_T, t0, t1):
    """The probability-flow ODE's solution from x at t0 to t1 for Gaussian data (closed form)."""
    y = x_T / A64[t0]
    return A64[t1] * (MU + (y - MU) * np.sqrt((S**2 + K64[t1] ** 2) / (S**2 + K64[t0] ** 2)))


@pytest.fixture(scope="module")
def g1000():
    return GaussianProcess(schedules.linear(T))


def _x_T(seed=0, shape=(4, 8, 8, 1)):
    return jax.random.normal(jax.random.key(seed), shape, jnp.float32)


def _run(proc, corrector, x_T, ts, prediction="x0", key=1, return_every=0, net=None):
    net = net or (_x0_net if prediction == "x0" else _eps_net)
    return sampling.sample(net, None, jax.random.key(key), x_T, process=proc, corrector=corrector,
                           timesteps=ts, prediction=prediction, return_every=return_every)


# --- a few steps exactly ----------------------------------------------------------------------------


@pytest.mark.parametrize("corrector", FAST)
@pytest.mark.parametrize("ts", [[1000, 700, 400, 150, 40, 0], "karras6", [900, 899, 500, 3, 0]])
def test_steps_match_the_float64_reference(g1000, corrector, ts):
    if ts == "karras6":
        ts = sampling.timesteps_for(g1000, 6, "karras")
    ts = np.asarray(ts)
    x_T = _x_T()
    res = _run(g1000, corrector, x_T, ts, return_every=1)
    ref = REFS[corrector](np.asarray(x_T, np.float64), ts)
    for i, want in enumerate(ref):  # every intermediate state (the multistep state is used from step 2 on)
        scale = max(1.0, float(np.max(np.abs(want))))
        np.testing.assert_allclose(res.trajectory["x_t"][i], want, rtol=0, atol=2e-5 * scale, err_msg=f"step {i}")
    np.testing.assert_allclose(res.x0, ref[-1], rtol=0, atol=2e-5 * max(1.0, float(np.max(np.abs(ref[-1])))))


@pytest.mark.parametrize("corrector", FAST)
def test_eps_prediction_gives_the_same_samples(g1000, corrector):
    ts = sampling.timesteps(T, 8)
    x_T = _x_T(2)
    a = _run(g1000, corrector, x_T, ts, prediction="x0").x0
    b = _run(g1000, corrector, x_T, ts, prediction="eps").x0
    np.testing.assert_allclose(a, b, rtol=0, atol=1e-4)


def test_unclipped_euler_is_ddim(g1000):
    """DDIM (η = 0) is Euler's method on the ODE in (σ, x/α) (Song et al.; Karras et al. §3)."""
    ts = sampling.timesteps(T, 10)
    x_T = _x_T(3)
    np.testing.assert_allclose(_run(g1000, "euler", x_T, ts).x0, _run(g1000, "ddim", x_T, ts).x0, rtol=0, atol=1e-5)


def test_dpmpp_2m_second_order_term_is_used(g1000):
    """From step 2 on the 2M update differs from its first-order (DDIM-like) version by the x̂0 difference."""
    ts = np.array([1000, 600, 300, 0])
    x_T = np.asarray(_x_T(4), np.float64)
    out = np.asarray(_run(g1000, "dpmpp_2m", jnp.asarray(x_T, jnp.float32), ts, return_every=1).trajectory["x_t"][1])
    x1 = dpmpp_2m_ref(x_T, ts)[0]
    first_order = SG64[300] / SG64[600] * x1 - A64[300] * np.expm1(LAM64[600] - LAM64[300]) * denoiser64(x1, 600)
    assert np.max(np.abs(out - first_order)) > 1e-2
    np.testing.assert_allclose(out, dpmpp_2m_ref(x_T, ts)[1], rtol=0, atol=2e-5)


def test_heun_agrees_with_karras_heun_to_second_order_and_not_across_wide_steps(g1000):
    """The two trapezoids weigh the change of D by φ = 1 − (1 − ρ)/h and φ_K = (1/ρ − 1)/2 (ρ = σ'/σ = e^{−h}):
    equal to O(h²), so one step of each differs by O(h³) as h → 0; across a step that spans a wide range of
    noise (1000 → 300: σ/σ' = 128) Karras's form overshoots the ODE's exact solution by orders of magnitude and
    this one stays closer than Euler."""
    x = np.asarray(_x_T(10), np.float64)
    diffs = []
    for tp in (990, 980, 960):  # h ≈ 0.013, 0.026, 0.052 from t = 1000
        ours = karras_ref(x, [1000, tp], True)[0][0]
        theirs = karras_ref(x, [1000, tp], True, trapezoid="karras")[0][0]
        diffs.append(float(np.max(np.abs(ours - theirs))))
    assert 5.0 < diffs[1] / diffs[0] < 12.0 and 5.0 < diffs[2] / diffs[1] < 12.0, diffs  # ≈ 2³ per halving
    exact = ode_exact(x, 1000, 300)
    err = {k: float(np.max(np.abs(v - exact))) for k, v in (
        ("heun", np.asarray(_run(g1000, "heun", jnp.asarray(x, jnp.float32), [1000, 300, 0], return_every=1)
                            .trajectory["x_t"][0], np.float64)),
        ("karras", karras_ref(x, [1000, 300], True, trapezoid="karras")[0][0]),
        ("euler", karras_ref(x, [1000, 300], False)[0][0]))}
    assert err["heun"] < err["euler"] < 0.1 * err["karras"], err


# --- order of convergence ---------------------------------------------------------------------------


@pytest.mark.parametrize("corrector,ratio", [("dpmpp_2m", 4.0), ("heun", 4.0), ("heun_karras", 4.0), ("euler", 2.0)])
def test_order_of_convergence(g1000, corrector, ratio):
    """Error at t = 200 against the ODE's closed form on grids of 5, 10, 20, 40 steps from t = 1000.

    Heun's error falls at least as fast as second order (here faster: 3.4, 5.6, 6.5 per halving, still on the
    way to 4, as float64 shows on grids of 80–320 steps) and stays below a tenth of Karras's Heun's on every
    grid; the others fall at their order."""
    x_T = _x_T(5, (8, 8, 8, 1))
    want = ode_exact(np.asarray(x_T, np.float64), 1000, 200)
    errs, karras = [], []
    for n in (5, 10, 20, 40):
        ts = np.concatenate([np.linspace(1000, 200, n + 1).round().astype(int), [0]])
        traj = _run(g1000, corrector, x_T, ts, return_every=1).trajectory
        assert int(traj["t"][-2]) == 200
        errs.append(float(np.max(np.abs(np.asarray(traj["x_t"][-2], np.float64) - want))))
        ref = karras_ref(np.asarray(x_T, np.float64), ts[:-1], True, trapezoid="karras")[0][-1]
        karras.append(float(np.max(np.abs(ref - want))))
    ratios = np.array(errs[:-1]) / np.array(errs[1:])
    assert np.all(ratios > 0.8 * ratio), (errs, ratios)
    if corrector == "heun":
        assert np.all(np.array(errs) < 0.1 * np.array(karras)), (errs, karras)
    else:
        assert np.all(ratios < 1.3 * ratio), (errs, ratios)
    assert errs[-1] < 0.05


# --- network calls ----------------------------------------------------------------------------------


def test_network_calls_counted_and_reported():
    assert [sampling.network_calls(c, 10) for c in ("ddpm", "ddim", "dpmpp_2m", "euler", "heun", "heun_karras")] == [
        10, 10, 10, 10, 19, 19]
    assert sampling.network_calls("heun", 1) == 1 and sampling.network_calls("cold_improved", 7) == 7
    with pytest.raises(ValueError, match="corrector must be one of"):
        sampling.network_calls("heuns", 3)


@pytest.mark.parametrize("corrector", FAST)
def test_network_calls_made(g1000, corrector):
    """The jitted program evaluates the network exactly network_calls(N) times (Heun: none at the last step)."""
    seen = []

    def net(params, x, t):
        jax.debug.callback(lambda tt: seen.append(int(tt[0])), t)
        return _x0_net(params, x, t)

    ts = np.array([1000, 600, 200, 50, 0])
    _run(g1000, corrector, _x_T(6, (2, 4, 4, 1)), ts, net=net).x0.block_until_ready()
    jax.effects_barrier()
    assert len(seen) == sampling.network_calls(corrector, 4)
    want = [1000, 600, 200, 50] if not corrector.startswith("heun") else [1000, 600, 600, 200, 200, 50, 50]
    assert sorted(seen, reverse=True) == want
    _, calls = karras_ref(np.zeros(1), ts, heun=True)
    assert calls == sampling.network_calls("heun", 4)


# --- determinism, sharding, one program ---------------------------------------------------------------


@pytest.mark.parametrize("corrector", FAST)
def test_same_key_same_result_and_deterministic(g1000, corrector):
    x_T = _x_T(7)
    ts = sampling.timesteps(T, 6)
    a = _run(g1000, corrector, x_T, ts, key=1).x0
    b = _run(g1000, corrector, x_T, ts, key=1).x0
    c = _run(g1000, corrector, x_T, ts, key=2).x0
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(a, c)  # ODE solvers draw no noise


@pytest.mark.parametrize("corrector", FAST)
def test_sharded_equals_single_device(g1000, corrector):
    n = jax.device_count()
    assert n == 8
    mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x_T = _x_T(8, (16, 8, 8, 1))
    ts = sampling.timesteps(T, 5)
    single = _run(g1000, corrector, x_T, ts).x0
    sharded = _run(g1000, corrector, jax.device_put(x_T, NamedSharding(mesh, P("data"))), ts).x0
    assert len(sharded.sharding.device_set) == n
    np.testing.assert_allclose(sharded, single, rtol=0, atol=1e-6)


@pytest.mark.parametrize("corrector", ("dpmpp_2m", "heun"))
def test_one_program_for_new_timestep_values(g1000, corrector):
    traces = []

    def net(params, x, t):
        traces.append(1)
        return _x0_net(params, x, t)

    x_T = _x_T(9, (2, 4, 4, 1))
    outs = [_run(g1000, corrector, x_T, ts, net=net).x0 for ts in ([1000, 500, 100, 0], [900, 400, 20, 0])]
    assert len(traces) == (1 if corrector == "dpmpp_2m" else 2)  # heun traces the network twice, once
    assert float(jnp.max(jnp.abs(outs[0] - outs[1]))) > 1e-3


# --- spacings ---------------------------------------------------------------------------------------


def test_karras_spacing(g1000):
    sig = K64
    for n in (2, 5, 10, 20, 50, 200, 1000):
        ts = sampling.timesteps_for(g1000, n, "karras")
        assert ts.shape == (n + 1,) and ts[0] == T and ts[-2] == 1 and ts[-1] == 0
        assert np.all(np.diff(ts) < 0)
    np.testing.assert_array_equal(sampling.timesteps_for(g1000, T, "karras"), np.arange(T, -1, -1))
    np.testing.assert_array_equal(sampling.timesteps_for(g1000, 1, "karras"), [T, 0])
    # by hand (few steps: no two σ_i share a t): σ_i of EDM's formula, each at the t of nearest log σ
    n, rho = 6, 7.0
    s_i = (sig[T] ** (1 / rho) + np.arange(n) / (n - 1) * (sig[1] ** (1 / rho) - sig[T] ** (1 / rho))) ** rho
    want = [1 + int(np.argmin(np.abs(np.log(sig[1:]) - np.log(v)))) for v in s_i] + [0]
    assert len(set(want)) == n + 1
    np.testing.assert_array_equal(sampling.timesteps_for(g1000, n, "karras"), want)
    # the mapped σ are within one discrete step of EDM's
    assert np.all(np.abs(np.log(sig[np.asarray(want[:-1])] / s_i)) < 0.05)


def test_karras_needs_a_schedule():
    from jaxdiff import degradations
    from jaxdiff.processes import ColdProcess

    cold = ColdProcess(degradations.make_degradation("blur", T=10, image_size=8, channels=1))
    with pytest.raises(ValueError, match="karras.*needs noise levels that grow with t; cold diffusion"):
        sampling.timesteps_for(cold, 5, "karras")
    with pytest.raises(ValueError, match="karras.*sigmas"):
        sampling.timesteps(10, 5, spacing="karras")


@pytest.mark.parametrize("T_,n,offset", [(1000, 50, 0), (1000, 30, 0), (1000, 10, 1), (50, 7, 0), (20, 20, 0)])
def test_leading_spacing_is_diffusers(T_, n, offset):
    """diffusers' DDIMScheduler "leading": (arange(N) · (T // N)).round()[::-1] + steps_offset, an index; t = +1."""
    step_ratio = T_ // n
    diffusers = (np.arange(0, n) * step_ratio).round()[::-1].astype(np.int64) + offset
    ts = sampling.timesteps(T_, n, spacing="leading", steps_offset=offset)
    np.testing.assert_array_equal(ts, np.concatenate([diffusers + 1, [0]]))
    assert ts.dtype == np.int32 and np.all(np.diff(ts) < 0)
    np.testing.assert_array_equal(sampling.validate_timesteps(ts, T_), ts)
    with pytest.raises(ValueError, match="steps_offset"):
        sampling.timesteps(20, 20, spacing="leading", steps_offset=1)


def test_spacing_names():
    assert set(sampling.SPACINGS) < set(sampling.SPACING_NAMES)
    assert {"leading", "karras"} <= set(sampling.SPACING_NAMES)
    with pytest.raises(ValueError, match=r"spacing must be one of \['linear', 'quadratic', 'trailing', 'leading', "
                                         r"'karras'\], got 'karas'"):
        sampling.timesteps(10, 5, spacing="karas")


# --- bad names: one clear message ---------------------------------------------------------------------


def test_bad_corrector_names_and_processes(g1000):
    with pytest.raises(ValueError, match=r"corrector must be one of .*'dpmpp_2m'.*got 'dpmpp2m'"):
        sampling.sample(_x0_net, None, jax.random.key(0), _x_T(), process=g1000, corrector="dpmpp2m", prediction="x0")
    blur = BlurringProcess(schedules.linear(20), 8)
    for c in FAST:
        with pytest.raises(ValueError, match=rf"corrector '{c}' .*needs D = identity, not 'dct_blur'.*; "
                                             r"for blurring diffusion, .* use one of .*'ddim'"):
            sampling.check_corrector(c, blur)


def test_config_and_cli_names():
    import os

    from jaxdiff.cli.options import SampleOptions, UsageError
    import jaxdiff.config as cv
    from jaxdiff.config.upgrade import upgrade_stored_config

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = cv.load_config_file(os.path.join(root, "configs", "ddim.py"))
    assert cfg.sample.spacing == "linear"  # the default: results of older runs stay bitwise
    for c in FAST:
        for sp in sampling.SPACING_NAMES:
            cfg.sample.corrector, cfg.sample.spacing = c, sp
            cv.validate_config(cfg, num_devices=8)
    cfg.sample.spacing = "karas"
    with pytest.raises(cv.ConfigError, match=r"sample\.spacing='karas' is invalid; allowed: one of 'linear'"):
        cv.validate_config(cfg, num_devices=8)
    cold = cv.load_config_file(os.path.join(root, "configs", "cold_blur.py"))
    cold.sample.spacing = "karras"
    with pytest.raises(cv.ConfigError, match=r"sample\.spacing='karras'.*needs noise levels that grow with t"):
        cv.validate_config(cold, num_devices=8)
    cold.sample.spacing, cold.sample.corrector = "linear", "heun"
    with pytest.raises(cv.ConfigError, match=r"sample\.corrector='heun'.*needs D = identity"):
        cv.validate_config(cold, num_devices=8)
    # a config stored before sample.spacing existed loads with the default
    stored = cv.load_config_file(os.path.join(root, "configs", "ddim.py")).to_dict()
    del stored["sample"]["spacing"]
    assert upgrade_stored_config(stored).sample.spacing == "linear"
    # the flag: one UsageError naming the allowed values; generation modes only
    assert SampleOptions(workdir="w", spacing="karras").spacing == "karras"
    with pytest.raises(UsageError, match=r"--spacing='karas': allowed linear, quadratic, trailing, leading, karras"):
        SampleOptions(workdir="w", spacing="karas")
    with pytest.raises(UsageError, match=r"--spacing is for --mode=generate\|evaluate\|blend"):
        SampleOptions(workdir="w", mode="restore", spacing="leading")


def test_cli_resolve_spacing_and_heun_tag():
    import os

    from jaxdiff.cli.common import corrector_tag
    from jaxdiff.cli.options import SampleOptions, UsageError
    import jaxdiff.config as cv
    from jaxdiff.experiment import build_process
    from jaxdiff.inference import Inference

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    cfg = cv.load_config_file(os.path.join(root, "configs", "ddim.py"))
    run = types.SimpleNamespace(process=build_process(cfg), config=cfg)
    s = SampleOptions(workdir="w", corrector="heun", steps=5, spacing="karras").resolve(run)
    assert (s.corrector, s.spacing, s.steps) == ("heun", "karras", 5)
    inf = types.SimpleNamespace(config=cfg, process=run.process)
    inf.timesteps = lambda steps=None, spacing=None: Inference.timesteps(inf, steps, spacing)
    np.testing.assert_array_equal(inf.timesteps(5, "karras"), sampling.timesteps_for(run.process, 5, "karras"))
    assert corrector_tag(s, inf) == "heun_5steps_karras"
    assert SampleOptions(workdir="w", corrector="ddim", steps=5).resolve(run).spacing == "linear"
    cold_cfg = cv.load_config_file(os.path.join(root, "configs", "cold_blur.py"))
    cold = types.SimpleNamespace(process=build_process(cold_cfg), config=cold_cfg)
    with pytest.raises(UsageError, match=r"--spacing=karras: spacing 'karras' needs noise levels that grow with t"):
        SampleOptions(workdir="w", mode="evaluate", spacing="karras").resolve(cold)
