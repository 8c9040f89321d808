"""Samplers: timestep sequences, correctors against closed forms, oracle recoveries, the jitted loop."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

import degradation_cases as cases
from helpers.arrays import uniform_images
from jaxdiff import degradations, sampling
from jaxdiff.processes import schedules
from jaxdiff.processes import ColdProcess, GaussianProcess

# ---------------------------------------------------------------------------------------------
# helpers
# ---------------------------------------------------------------------------------------------

BETA0, BETA1 = 1e-4, 2e-2


def abar64(T):
    """Independent float64 ᾱ_0 … ᾱ_T of the DDPM linear schedule."""
    return np.cumprod(np.concatenate([[1.0], 1.0 - np.linspace(BETA0, BETA1, T)]))


def posterior64(T, t, tp):
    """float64 (c1, c2, var) of q(x_tp | x_t, x0) for tp < t, α = ᾱ_t/ᾱ_tp."""
    ab = abar64(T)
    t, tp = np.asarray(t), np.asarray(tp)
    alpha = ab[t] / ab[tp]
    c1 = (1 - alpha) * np.sqrt(ab[tp]) / (1 - ab[t])
    c2 = (1 - ab[tp]) * np.sqrt(alpha) / (1 - ab[t])
    var = (1 - alpha) * (1 - ab[tp]) / (1 - ab[t])
    return c1, c2, var


def b4(v):
    return np.asarray(v, np.float64).reshape(-1, 1, 1, 1)


def rand_img(seed, shape=(4, 8, 8, 3)):
    return uniform_images(seed, shape)


# The degradations come from the one case table, tests/degradation_cases.py (shared with test_degradations.py).
IMG = cases.N


def counting(fn):
    """Wraps a denoiser so that each trace (Python execution) is counted."""
    calls = []

    def den(params, x, t):
        calls.append(1)
        return fn(params, x, t)

    den.calls = calls
    return den


@pytest.fixture(scope="module")
def g50():
    return GaussianProcess(schedules.linear(50))


@pytest.fixture(scope="module")
def g1000():
    return GaussianProcess(schedules.linear(1000))


# ---------------------------------------------------------------------------------------------
# timesteps
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("spacing", sampling.SPACINGS)
@pytest.mark.parametrize("T,n", [(10, 1), (10, 3), (10, 10), (50, 7), (1000, 50), (1000, 30), (1000, 999)])
def test_timesteps_valid(spacing, T, n):
    ts = sampling.timesteps(T, n, spacing=spacing)
    assert ts.dtype == np.int32 and ts.shape == (n + 1,)
    assert ts[0] == T and ts[-1] == 0
    assert np.all(np.diff(ts) < 0)
    np.testing.assert_array_equal(sampling.validate_timesteps(ts, T), ts)


def test_timesteps_shapes_of_spacings():
    # all T steps, whatever the spacing
    for sp in sampling.SPACINGS:
        np.testing.assert_array_equal(sampling.timesteps(20, spacing=sp), np.arange(20, -1, -1))
        np.testing.assert_array_equal(sampling.timesteps(20, 0, spacing=sp), np.arange(20, -1, -1))
    # linear: gaps differ by at most 1 and average T/N
    gaps = -np.diff(sampling.timesteps(1000, 30))
    assert gaps.max() - gaps.min() <= 1 and gaps.sum() == 1000
    # quadratic: gaps shrink toward t = 0
    gaps = -np.diff(sampling.timesteps(1000, 20, spacing="quadratic"))
    assert np.all(np.diff(gaps) <= 0) and gaps[0] > 5 * gaps[-1]
    # trailing: integer stride ⌊T/N⌋ from T, remainder in the final jump
    ts = sampling.timesteps(1000, 30, spacing="trailing")
    np.testing.assert_array_equal(-np.diff(ts)[:-1], 33)
    assert ts[-2] == 1000 - 29 * 33


@pytest.mark.parametrize(
    "args,kw,match",
    [
        ((0,), {}, "T"),
        ((10.0,), {}, "T"),
        ((10, -1), {}, "num_steps"),
        ((10, 11), {}, "num_steps"),
        ((10, 2.5), {}, "num_steps"),
        ((10, 5), {"spacing": "cosine"}, "spacing"),
    ],
)
def test_timesteps_errors(args, kw, match):
    with pytest.raises(ValueError, match=match):
        sampling.timesteps(*args, **kw)


@pytest.mark.parametrize(
    "seq,match",
    [
        ([10, 5, 5, 0], "strictly decreasing"),
        ([5, 10, 0], "strictly decreasing"),
        ([11, 5, 0], "start at or below"),
        ([10, 5, 1], "end at 0"),
        ([0], "at least 2"),
        ([[10, 0]], "1-D"),
        ([10.5, 0.0], "integers"),
    ],
)
def test_validate_timesteps_errors(seq, match):
    with pytest.raises(ValueError, match=match):
        sampling.validate_timesteps(seq, 10)
    # sample() gives the same error before any tracing
    den = counting(lambda p, x, t: x)
    with pytest.raises(ValueError, match=match):
        sampling.sample(den, None, jax.random.key(0), jnp.zeros((1, 2, 2, 1)), process=GaussianProcess(schedules.linear(10)),
                        timesteps=seq)
    assert not den.calls


# ---------------------------------------------------------------------------------------------
# correctors against closed forms
# ---------------------------------------------------------------------------------------------


def test_posterior_coefficients_float64():
    T = 1000
    s = schedules.linear(T)
    rng = np.random.default_rng(0)
    t = rng.integers(1, T + 1, 2000)
    tp = (rng.random(2000) * t).astype(np.int64)  # any 0 ≤ t_prev < t
    for tt, tpp in ((t, tp), (np.arange(1, T + 1), np.arange(T))):
        got = sampling.posterior_coefficients(s, tt, tpp)
        for g, r in zip(got, posterior64(T, tt, tpp)):
            np.testing.assert_allclose(np.asarray(g, np.float64), r, rtol=2e-6, atol=1e-12)
    # adjacent steps: the schedule's own posterior coefficients
    c1, c2, var = sampling.posterior_coefficients(s, np.arange(1, T + 1), np.arange(T))
    np.testing.assert_allclose(c1, s.posterior_mean_coef1[1:], rtol=2e-6)
    np.testing.assert_allclose(c2, s.posterior_mean_coef2[1:], rtol=2e-6)
    np.testing.assert_allclose(var, s.posterior_variance[1:], rtol=2e-6, atol=1e-12)


class TestCorrectors(chex.TestCase):
    T = 50

    def setUp(self):
        super().setUp()
        self.proc = GaussianProcess(schedules.linear(self.T))
        self.x_t = rand_img(1)
        self.x0 = rand_img(2)
        self.eps = jax.random.normal(jax.random.key(3), self.x0.shape)
        self.key = jax.random.key(7)
        self.z = np.asarray(jax.random.normal(self.key, self.x0.shape), np.float64)

    def _call(self, name, proc, t, tp, eta=0.0, x_t=None, x0=None, eps=None, aux=None):
        corr = sampling.CORRECTORS[name]
        fn = self.variant(lambda xt, x0h, e, t, tp, k, eta: corr(proc, xt, x0h, e, t, tp, k, eta=eta, aux=aux))
        return fn(
            self.x_t if x_t is None else x_t,
            self.x0 if x0 is None else x0,
            self.eps if eps is None else eps,
            jnp.asarray(t, jnp.int32),
            jnp.asarray(tp, jnp.int32),
            self.key,
            eta,
        )

    @chex.variants(with_jit=True, without_jit=True)
    def test_ddpm_exact_with_reproduced_noise(self):
        # per-example (t, t_prev): adjacent, strided, and two final steps
        t, tp = np.array([30, 40, 1, 17]), np.array([29, 25, 0, 0])
        out = np.asarray(self._call("ddpm", self.proc, t, tp), np.float64)
        c1, c2, var = posterior64(self.T, t, tp)
        ref = b4(c1) * np.asarray(self.x0) + b4(c2) * np.asarray(self.x_t) + b4(np.sqrt(var)) * self.z
        np.testing.assert_allclose(out[:2], ref[:2], atol=2e-6)
        np.testing.assert_array_equal(out[2:], np.asarray(self.x0)[2:])  # x̂0 exactly, no noise

    @chex.variants(with_jit=True, without_jit=True)
    def test_ddpm_step_statistics(self):
        # Many draws of one step from fixed (x_t, x̂0): mean ≈ posterior mean, variance ≈ posterior variance.
        n = 20000
        x_t = jnp.broadcast_to(rand_img(4, (1, 2, 2, 1)), (n, 2, 2, 1))
        x0 = jnp.broadcast_to(rand_img(5, (1, 2, 2, 1)), (n, 2, 2, 1))
        for t, tp in ((30, 29), (45, 20)):
            out = np.asarray(self._call("ddpm", self.proc, np.full(n, t), np.full(n, tp), x_t=x_t, x0=x0,
                                        eps=jnp.zeros_like(x_t)), np.float64)
            c1, c2, var = posterior64(self.T, t, tp)
            mean = c1 * np.asarray(x0[0]) + c2 * np.asarray(x_t[0])
            # 5 standard errors of the mean and of the variance estimate (4 pixels)
            np.testing.assert_array_less(np.abs(out.mean(0) - mean), 5 * np.sqrt(var / n))
            np.testing.assert_array_less(np.abs(out.var(0) - var), 5 * var * np.sqrt(2 / (n - 1)))

    @chex.variants(with_jit=True, without_jit=True)
    def test_ddim_eta1_adjacent_is_ddpm_posterior(self):
        t = np.array([1, 10, 25, 50])
        tp = t - 1
        ab = abar64(self.T)
        x_t, x0 = np.asarray(self.x_t, np.float64), np.asarray(self.x0, np.float64)
        eps_hat = (x_t - b4(np.sqrt(ab[t])) * x0) / b4(np.sqrt(1 - ab[t]))  # consistent with x_t
        out = np.asarray(self._call("ddim", self.proc, t, tp, eta=1.0, eps=jnp.asarray(eps_hat, jnp.float32)), np.float64)
        c1, c2, var = posterior64(self.T, t, tp)
        ref = b4(c1) * x0 + b4(c2) * x_t + b4(np.sqrt(var)) * self.z
        np.testing.assert_array_equal(out[0], x0[0].astype(np.float32))  # t_prev = 0
        np.testing.assert_allclose(out[1:], ref[1:], atol=5e-6)
        sig = np.asarray(sampling.ddim_sigma(self.proc.schedule, t, tp, 1.0), np.float64)
        np.testing.assert_allclose(sig**2, var, rtol=2e-6, atol=1e-12)
        np.testing.assert_allclose(sig**2, np.asarray(self.proc.schedule.posterior_variance)[t], rtol=2e-6, atol=1e-12)

    @chex.variants(with_jit=True, without_jit=True)
    def test_ddim_strided_closed_form(self):
        t, tp = np.array([50, 40, 33, 9]), np.array([20, 39, 3, 0])
        ab = abar64(self.T)
        for eta in (0.0, 0.5):
            out = np.asarray(self._call("ddim", self.proc, t, tp, eta=eta), np.float64)
            sigma = eta * np.sqrt((1 - ab[tp]) / (1 - ab[t]) * (1 - ab[t] / ab[tp]))
            ref = (b4(np.sqrt(ab[tp])) * np.asarray(self.x0) + b4(np.sqrt(1 - ab[tp] - sigma**2)) * np.asarray(self.eps)
                   + b4(sigma) * self.z)
            np.testing.assert_allclose(out[:3], ref[:3], atol=5e-6)
            np.testing.assert_array_equal(out[3], np.asarray(self.x0[3]))

    @chex.variants(with_jit=True, without_jit=True)
    def test_cold_correctors_decolor_closed_form(self):
        T = 10
        deg = degradations.make_degradation("decolor", T=T, image_size=8, channels=3)

        def F(x, t):  # independent float64 decolor: (1 − t/T) x + (t/T) channel mean
            x = np.asarray(x, np.float64)
            s = b4(np.asarray(t) / T)
            return (1 - s) * x + s * x.mean(-1, keepdims=True)

        t, tp = np.array([10, 7, 3, 2]), np.array([9, 2, 0, 1])
        x_t, x0 = np.asarray(self.x_t), np.asarray(self.x0)
        out = np.asarray(self._call("cold_improved", ColdProcess(deg), t, tp))
        ref = x_t - F(x0, t) + F(x0, tp)
        np.testing.assert_allclose(out[[0, 1, 3]], ref[[0, 1, 3]], atol=2e-6)
        np.testing.assert_array_equal(out[2], x0[2])
        out = np.asarray(self._call("cold_naive", ColdProcess(deg), t, tp))
        np.testing.assert_allclose(out[[0, 1, 3]], F(x0, tp)[[0, 1, 3]], atol=2e-6)
        np.testing.assert_array_equal(out[2], x0[2])
        # with σ > 0 the naive step re-noises to level t_prev
        out = np.asarray(self._call("cold_naive", ColdProcess(deg, noise_std=0.05), t, tp))
        np.testing.assert_allclose(out[[0, 1, 3]], (F(x0, tp) + 0.05 * self.z)[[0, 1, 3]], atol=2e-6)
        np.testing.assert_array_equal(out[2], x0[2])

    @chex.variants(with_jit=True, without_jit=True)
    def test_cold_correctors_on_gaussian(self):
        # α_t D_t(x0) = √ᾱ_t x0, σ_t = √(1 − ᾱ_t): cold_naive re-noises x̂0 to t_prev; cold_improved (the one step)
        # shifts x_t: x_t − (α_t x̂0 + σ_t ε̂) + (α_s x̂0 + σ_s ε̂) for the consistent pair ε̂ = (x_t − α_t x̂0)/σ_t
        t, tp = np.array([30, 12]), np.array([10, 0])
        ab = abar64(self.T)
        x_t, x0 = np.asarray(self.x_t)[:2], np.asarray(self.x0)[:2]
        eps = (x_t.astype(np.float64) - np.sqrt(ab[t])[:, None, None, None] * x0) / np.sqrt(1 - ab[t])[:, None, None, None]
        kw = dict(x_t=jnp.asarray(x_t), x0=jnp.asarray(x0), eps=jnp.asarray(eps, jnp.float32))
        out = np.asarray(self._call("cold_improved", self.proc, t, tp, **kw))
        ref = x_t[0] + (np.sqrt(ab[10]) - np.sqrt(ab[30])) * x0[0] + (np.sqrt(1 - ab[10]) - np.sqrt(1 - ab[30])) * eps[0]
        np.testing.assert_allclose(out[0], ref, atol=2e-6)
        np.testing.assert_array_equal(out[1], x0[1])
        out = np.asarray(self._call("cold_naive", self.proc, t, tp, **kw))
        z = np.asarray(jax.random.normal(self.key, x_t.shape))
        np.testing.assert_allclose(out[0], np.sqrt(ab[10]) * x0[0] + np.sqrt(1 - ab[10]) * z[0], atol=2e-6)
        np.testing.assert_array_equal(out[1], x0[1])


def test_gaussian_correctors_refuse_cold_process():
    # the posterior step and the ODE solvers need D = identity (or DCT-diagonal for ddpm); the one step ddim does not
    deg = degradations.make_degradation("decolor", T=10, image_size=8, channels=3)
    cold = ColdProcess(deg)
    x = jnp.zeros((2, 4, 4, 3))
    t = jnp.array([5, 5])
    for name, why in (("ddpm", r"needs σ_t > 0 for every t >= 1"), ("euler", "needs D = identity"),
                      ("dpmpp_2m", "needs D = identity")):
        with pytest.raises(ValueError, match=why):
            sampling.CORRECTORS[name](cold, x, x, x, t, t - 1, jax.random.key(0))
        den = counting(lambda p, x, t: x)
        with pytest.raises(ValueError, match=f"corrector '{name}' .*{why}.*use one of .*'ddim'"):
            sampling.sample(den, None, jax.random.key(0), x, process=cold, corrector=name, prediction="x0")
        assert not den.calls


def test_register_corrector():
    @sampling.register_corrector("test_identity_x0")
    def identity_x0(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
        return x0_hat + 0.0 * x_t

    try:
        proc = GaussianProcess(schedules.linear(10))
        x0 = rand_img(0, (2, 4, 4, 1))
        out, _ = sampling.sample(lambda p, x, t: p, x0, jax.random.key(0), jnp.zeros_like(x0), process=proc,
                                 corrector="test_identity_x0", prediction="x0")
        np.testing.assert_array_equal(out, x0)
    finally:
        sampling.CORRECTORS.unregister("test_identity_x0")


def test_register_corrector_twice_raises():
    def fn(process, x_t, x0_hat, eps_hat, t, t_prev, key, *, eta=0.0, aux=None):
        return x0_hat

    sampling.register_corrector("test_twice")(fn)
    try:
        with pytest.raises(ValueError, match="corrector 'test_twice' is already registered"):
            sampling.register_corrector("test_twice")(fn)
        with pytest.raises(ValueError, match="already registered"):
            sampling.register_corrector("ddim")(fn)  # a built-in cannot be replaced silently either
        assert sampling.CORRECTORS["ddim"].fn is sampling.ddim
    finally:
        sampling.CORRECTORS.unregister("test_twice")


# ---------------------------------------------------------------------------------------------
# the sampler with oracle denoisers
# ---------------------------------------------------------------------------------------------


def gaussian_oracle(proc, prediction):
    """params = (x0, ε). Along the DDIM η = 0 path x_t = √ᾱ_t x0 + √(1−ᾱ_t) ε with the same ε at every t,
    so the eps oracle is the constant ε: any error in the update moves x_t off the path and x̂0 off x0."""

    def den(params, x_t, t):
        x0, eps = params
        if prediction == "eps":
            return eps
        if prediction == "x0":
            return x0
        a, s = proc.signal(t)[:, None, None, None], proc.std(t)[:, None, None, None]
        return a * eps - s * x0

    return den


_ORACLES = {}


def cached_oracle(proc, prediction):
    # one function object per (process, prediction): the jitted sampler caches on its identity
    return _ORACLES.setdefault((id(proc), prediction), gaussian_oracle(proc, prediction))


def _check_ddim_oracle_run(proc, x0, eps, ts, out, traj, prediction):
    ab = abar64(proc.T)
    np.testing.assert_allclose(out, x0, atol=2e-5, err_msg=prediction)
    np.testing.assert_array_equal(traj["t"], ts[1:])
    tt = np.asarray(ts[1:])
    path = b4(np.sqrt(ab[tt]))[:, None] * np.asarray(x0) + b4(np.sqrt(1 - ab[tt]))[:, None] * np.asarray(eps)
    np.testing.assert_allclose(traj["x_t"], path.reshape(traj["x_t"].shape), atol=2e-5, err_msg=prediction)
    np.testing.assert_allclose(traj["x0_hat"], np.broadcast_to(x0, traj["x0_hat"].shape), atol=2e-5)


def _ddim_oracle_setup(proc):
    x0, eps = rand_img(10), jax.random.normal(jax.random.key(11), (4, 8, 8, 3))
    return x0, eps, proc.perturb(x0, proc.T, eps), sampling.timesteps(proc.T, 12, spacing="quadratic")


class TestDDIMOracle(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_ddim_eta0_v_prediction(self):
        # the loop itself, jitted and not (v: the prediction with the most algebra in it)
        proc = GaussianProcess(schedules.linear(50))
        x0, eps, x_T, ts = _ddim_oracle_setup(proc)
        fn = self.variant(lambda params, key, x_T, ts: sampling.sample_loop(
            gaussian_oracle(proc, "v"), params, key, x_T, ts, process=proc, corrector="ddim", prediction="v",
            return_every=1))
        out, traj = fn((x0, eps), jax.random.key(0), x_T, ts)
        _check_ddim_oracle_run(proc, x0, eps, ts, out, traj, "v")


@pytest.mark.parametrize("prediction", ["eps", "x0"])
def test_ddim_eta0_recovers_x0_and_stays_on_path(g50, prediction):
    x0, eps, x_T, ts = _ddim_oracle_setup(g50)
    out, traj = sampling.sample(cached_oracle(g50, prediction), (x0, eps), jax.random.key(0), x_T, process=g50,
                                corrector="ddim", prediction=prediction, timesteps=ts, return_every=1)
    _check_ddim_oracle_run(g50, x0, eps, ts, out, traj, prediction)


def test_strided_ddim_1000_to_50(g1000):
    x0, eps = rand_img(12), jax.random.normal(jax.random.key(13), (4, 8, 8, 3))
    x_T = g1000.perturb(x0, 1000, eps)
    out, traj = sampling.sample(cached_oracle(g1000, "eps"), (x0, eps), jax.random.key(0), x_T, process=g1000,
                                corrector="ddim", timesteps=50, prediction="eps")
    assert out.shape == x0.shape and traj is None
    # √ᾱ_1000 ≈ 0.0064 amplifies float32 rounding in x̂0 = (x_T − σ ε̂)/√ᾱ on the first step only
    np.testing.assert_allclose(out, x0, atol=2e-4)
    # a non-oracle network: finite output of the right shape, with and without clipping
    out, _ = sampling.sample(lambda p, x, t: jnp.tanh(p * x), 0.5, jax.random.key(0), x_T, process=g1000,
                             corrector="ddim", timesteps=50, eta=0.3, clip=1.0)
    assert out.shape == x0.shape and bool(jnp.all(jnp.isfinite(out)))
    assert float(jnp.max(jnp.abs(out))) <= 1.0  # the last step returns the clipped x̂0


def _cold_oracle(params, x_t, t):
    return params


@pytest.mark.parametrize("case_id", cases.CASE_IDS)
def test_cold_improved_recovers_every_degradation(case_id):
    deg = cases.build(case_id)
    proc = ColdProcess(deg)
    T = deg.T
    x0 = rand_img(20, (2, IMG, IMG, 3))
    aux = proc.sample_aux(jax.random.key(21), x0)
    x_T = proc.mean(x0, jnp.full((2,), T, jnp.int32), aux)
    if not deg.identity:  # (the identity's path is x0 throughout: the walk below still checks every state)
        assert float(jnp.max(jnp.abs(x_T - x0))) > 1e-3, "F_T should change the image"
    out, traj = sampling.sample(_cold_oracle, x0, jax.random.key(0), x_T, process=proc, corrector="cold_improved",
                                prediction="x0", aux=aux, return_every=1)
    np.testing.assert_allclose(out, x0, atol=1e-5)
    np.testing.assert_array_equal(traj["t"], np.arange(T - 1, -1, -1))
    # every intermediate state is F_t(x0): Algorithm 2 with an exact x̂0 walks the degradation path backwards
    for j, t in enumerate(np.asarray(traj["t"])):
        ref = proc.mean(x0, jnp.full((2,), t, jnp.int32), aux)
        np.testing.assert_allclose(traj["x_t"][j], ref, atol=2e-5, err_msg=f"{case_id} t={t}")
    # the naive sampler ends at x0 as well, through F_t(x0) (strided: every other step)
    ts = np.concatenate([np.arange(T, 0, -2), [0]])
    out, traj = sampling.sample(_cold_oracle, x0, jax.random.key(0), x_T, process=proc, corrector="cold_naive",
                                prediction="x0", aux=aux, timesteps=ts, return_every=1)
    np.testing.assert_allclose(out, x0, atol=1e-6)
    for j, t in enumerate(np.asarray(traj["t"])[:-1]):
        np.testing.assert_allclose(traj["x_t"][j], proc.mean(x0, jnp.full((2,), t, jnp.int32), aux), atol=1e-5)


def test_cold_improved_keeps_the_noise():
    # Algorithm 2 with an exact x̂0: x_{t−1} = (F_t(x0) + σ ε) − F_t(x0) + F_{t−1}(x0) = F_{t−1}(x0) + σ ε,
    # the "broken symmetry" noise of x_T is carried down to t = 1 (and dropped by the final x̂0).
    deg = degradations.make_degradation("decolor", T=8, image_size=8, channels=3)
    proc = ColdProcess(deg, noise_std=0.05)
    x0 = rand_img(22, (2, 8, 8, 3))
    eps = jax.random.normal(jax.random.key(23), x0.shape)
    x_T = proc.perturb(x0, 8, eps)
    out, traj = sampling.sample(_cold_oracle, x0, jax.random.key(0), x_T, process=proc, corrector="cold_improved",
                                prediction="x0", return_every=1)
    x0_64, eps64 = np.asarray(x0, np.float64), np.asarray(eps, np.float64)
    for j, t in enumerate(np.asarray(traj["t"])[:-1]):
        s = t / 8  # independent float64 decolor F_t: (1 − t/T) x0 + (t/T) channel mean
        F = (1 - s) * x0_64 + s * x0_64.mean(-1, keepdims=True)
        np.testing.assert_allclose(traj["x_t"][j], F + 0.05 * eps64, atol=2e-6)
    np.testing.assert_array_equal(out, x0)


# ---------------------------------------------------------------------------------------------
# keys, trajectories, sharding, tracing
# ---------------------------------------------------------------------------------------------


def _eps_net(params, x, t):
    return params * jnp.tanh(x)


def test_keys_and_trajectory(g50):
    x_T = jax.random.normal(jax.random.key(30), (4, 8, 8, 1))
    run = lambda key, k=0: sampling.sample(_eps_net, 0.3, key, x_T, process=g50, corrector="ddpm",  # noqa: E731
                                           timesteps=10, return_every=k)
    a, _ = run(jax.random.key(1))
    b, _ = run(jax.random.key(1))
    c, _ = run(jax.random.key(2))
    np.testing.assert_array_equal(a, b)
    assert float(jnp.max(jnp.abs(a - c))) > 0.1
    ts = sampling.timesteps(50, 10)
    _, full = run(jax.random.key(1), 1)
    assert full["x_t"].shape == (10, 4, 8, 8, 1)
    for k, frames in ((3, [2, 5, 8, 9]), (25, [9])):  # N % k ≠ 0 (k = 1 above: N % k = 0), k > N
        out, traj = run(jax.random.key(1), k)
        # the chunking does not change the numbers: same keys per step (a different key moves them by > 0.1,
        # above; XLA may compile the chunked loop body differently, hence 1e-5 rather than bitwise — jax 0.12
        # differs in the last bit)
        np.testing.assert_allclose(out, a, rtol=0, atol=1e-5)
        assert traj["x_t"].shape == (len(frames), 4, 8, 8, 1) and traj["x0_hat"].shape == traj["x_t"].shape
        np.testing.assert_array_equal(traj["t"], ts[np.array(frames) + 1])
        np.testing.assert_allclose(traj["x_t"], full["x_t"][np.array(frames)], rtol=0, atol=1e-5)
        np.testing.assert_allclose(traj["x0_hat"], full["x0_hat"][np.array(frames)], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(traj["x_t"][-1], out)
        np.testing.assert_array_equal(traj["x0_hat"][-1], out)


def test_sharded_equals_single_device(g50):
    n = jax.device_count()
    assert n == 8
    mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sh = NamedSharding(mesh, P("data"))
    x_T = jax.random.normal(jax.random.key(40), (16, 8, 8, 3))
    single, _ = sampling.sample(_eps_net, 0.3, jax.random.key(3), x_T, process=g50, corrector="ddpm", timesteps=8)
    sharded, _ = sampling.sample(_eps_net, 0.3, jax.random.key(3), jax.device_put(x_T, sh), process=g50,
                                 corrector="ddpm", timesteps=8)
    assert len(sharded.sharding.device_set) == n
    np.testing.assert_allclose(sharded, single, atol=1e-6)

    deg = degradations.make_degradation("decolor", T=10, image_size=8, channels=3)
    proc = ColdProcess(deg, noise_std=0.01)
    x0 = rand_img(41, (16, 8, 8, 3))
    x_T = proc.sample(x0, 10, jax.random.key(42))
    net = lambda p, x, t: jnp.clip(x * p, -1, 1)  # noqa: E731
    single, _ = sampling.sample(net, 1.1, jax.random.key(3), x_T, process=proc, corrector="cold_improved",
                                prediction="x0")
    sharded, _ = sampling.sample(net, 1.1, jax.random.key(3), jax.device_put(x_T, sh), process=proc,
                                 corrector="cold_improved", prediction="x0")
    np.testing.assert_allclose(sharded, single, atol=1e-6)


def test_no_retrace_when_timestep_values_change(g50):
    den = counting(_eps_net)
    x_T = jax.random.normal(jax.random.key(50), (2, 4, 4, 1))
    outs = [sampling.sample(den, 0.3, jax.random.key(0), x_T, process=g50, timesteps=ts)[0]
            for ts in ([50, 30, 10, 0], [40, 21, 7, 0], np.array([12, 11, 10, 0]))]
    assert len(den.calls) == 1
    assert float(jnp.max(jnp.abs(outs[0] - outs[1]))) > 1e-3  # the new values were used
    sampling.sample(den, 0.3, jax.random.key(0), x_T, process=g50, timesteps=[50, 25, 0])  # new length
    assert len(den.calls) == 2


def test_sample_inside_jit_with_traced_timesteps(g50):
    # inside a caller's jit the timestep values cannot be checked, only their shape
    x_T = jax.random.normal(jax.random.key(30), (4, 8, 8, 1))
    ts = sampling.timesteps(50, 10, spacing="quadratic")
    run = lambda ts, x: sampling.sample(_eps_net, 0.3, jax.random.key(1), x, process=g50, corrector="ddpm",  # noqa: E731
                                        timesteps=ts)[0]
    np.testing.assert_allclose(jax.jit(run)(ts, x_T), run(ts, x_T), atol=1e-6)


@pytest.mark.parametrize(
    "kw,match",
    [
        (dict(corrector="lms"), "corrector must be one of"),
        (dict(prediction="score"), "prediction must be one of"),
        (dict(eta=-0.1), "eta"),
        (dict(eta=float("nan")), "eta"),
        (dict(clip=-1.0), "clip"),
        (dict(return_every=-1), "return_every"),
        (dict(return_every=1.5), "return_every"),
        (dict(timesteps=51), "num_steps"),
        (dict(timesteps=[60, 0]), "start at or below"),
        (dict(x_T=jnp.zeros((4, 4, 1))), "x_T must be a 4-D"),
        (dict(process="gaussian"), "process"),
    ],
)
def test_sample_validates_before_tracing(g50, kw, match):
    den = counting(_eps_net)
    args = dict(process=g50, x_T=jnp.zeros((2, 4, 4, 1)))
    args.update(kw)
    x_T = args.pop("x_T")
    with pytest.raises(ValueError, match=match):
        sampling.sample(den, 0.3, jax.random.key(0), x_T, **args)
    assert not den.calls


def test_cold_process_needs_x0_prediction():
    deg = degradations.make_degradation("decolor", T=10, image_size=8, channels=3)
    den = counting(_cold_oracle)
    with pytest.raises(ValueError, match="prediction must be 'x0'"):
        sampling.sample(den, None, jax.random.key(0), jnp.zeros((1, 4, 4, 3)), process=ColdProcess(deg),
                        corrector="cold_improved", prediction="eps")
    assert not den.calls


@pytest.mark.parametrize("config,corrector", [("ddim", "ddim"), ("heat", "ddim"), ("warm_blur", "ddim_2m")])
def test_eta_zero_compiles_no_noise_draw_and_samples_what_a_traced_zero_does(config, corrector):
    """sample() runs η = 0 as a program without the per-step Gaussian draw (each draw site costs XLA:CPU most of a
    second to compile); its samples are bitwise those of the program where η is a traced 0 (noise term exactly
    0), and an η > 0 still draws. One process per branch of the steps: pixels, an image-keeping noisy D, a
    per-frequency D."""
    import pathlib
    import runpy

    from jaxdiff.experiment import build_process
    from jaxdiff.sampling.loop import sample_loop_jit

    c = runpy.run_path(str(pathlib.Path(__file__).parent.parent / "configs" / f"{config}.py"))["get_config"]()
    proc = build_process(c)
    pred = str(c.diffusion.prediction)
    shape = (2, int(c.data.image_size), int(c.data.image_size), int(c.data.channels))
    x_T = proc.prior(jax.random.key(3), shape) if not proc.keeps_image else rand_img(4, shape)
    ts = sampling.timesteps(proc.T, 5)

    def net(params, x, t):  # a fixed smooth "network"
        return 0.5 * jnp.tanh(x) + 0.01 * t[:, None, None, None].astype(x.dtype) / proc.T

    kw = dict(process=proc, corrector=corrector, prediction=pred, clip=None, aux=None, return_every=0)
    draws = {eta: "threefry" in sample_loop_jit.lower(net, None, jax.random.key(0), x_T, ts, eta=eta, **kw).as_text()
             for eta in (None, 0.5)}
    assert draws == {None: False, 0.5: True}
    got = sampling.sample(net, None, jax.random.key(0), x_T, process=proc, corrector=corrector, timesteps=ts,
                          prediction=pred, eta=0.0).x0
    traced_zero = sample_loop_jit(net, None, jax.random.key(0), x_T, ts, eta=jnp.float32(0.0), **kw).x0
    np.testing.assert_array_equal(np.asarray(got), np.asarray(traced_zero))
    noisy = sampling.sample(net, None, jax.random.key(0), x_T, process=proc, corrector=corrector, timesteps=ts,
                            prediction=pred, eta=0.5).x0
    assert float(jnp.max(jnp.abs(noisy - got))) > 1e-3  # η > 0 is still stochastic
