"""The forward process x_t = F_t(x0) + σ_t ε, for the Gaussian and the cold family."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import degradations
from jaxdiff.processes import schedules
from jaxdiff.processes import ColdProcess, GaussianProcess


@pytest.fixture(scope="module")
def gauss():
    return GaussianProcess(schedules.linear(100))


def linear_abar64(T, beta_start=1e-4, beta_end=2e-2):
    """ᾱ_0 … ᾱ_T of the DDPM linear schedule in float64 (ᾱ_0 = 1), independently of jaxdiff.processes.schedules."""
    return np.concatenate([[1.0], np.cumprod(1 - np.linspace(beta_start, beta_end, T))])


def cosine_abar64(T, s=0.008):
    """ᾱ_0 … ᾱ_T of the cosine schedule (Nichol & Dhariwal, β ≤ 0.999) in float64."""
    f = np.cos((np.arange(T + 1) / T + s) / (1 + s) * np.pi / 2) ** 2
    return np.concatenate([[1.0], np.cumprod(1 - np.minimum(1 - f[1:] / f[:-1], 0.999))])


def decolor64(x0, t, T):
    """F_t(x0) = (1 − t/T) x0 + (t/T) · channel mean, float64; t scalar or (B,)."""
    x0 = np.asarray(x0, np.float64)
    s = np.asarray(t, np.float64).reshape(-1, 1, 1, 1) / T
    return (1 - s) * x0 + s * x0.mean(-1, keepdims=True)


class TestGaussian(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_q_sample_moments(self):
        proc = GaussianProcess(schedules.cosine(100))
        n = 20000
        x0 = jnp.full((n, 2, 2, 1), 0.7)
        t = jnp.tile(jnp.array([1, 30, 60, 99]), n // 4)
        xt = self.variant(proc.sample)(x0, t, jax.random.PRNGKey(0))
        ab = cosine_abar64(100)
        for tv in (1, 30, 60, 99):
            sel = np.asarray(xt)[np.asarray(t) == tv].ravel()
            m, v = np.sqrt(ab[tv]) * 0.7, 1 - ab[tv]
            k = sel.size
            # 5 standard errors of the mean and of the variance estimate
            assert abs(sel.mean() - m) < 5 * np.sqrt(v / k)
            assert abs(sel.var() - v) < 5 * v * np.sqrt(2 / k)

    @chex.variants(with_jit=True, without_jit=True)
    def test_single_step_composes_to_marginal(self):
        # x_t = √(1−β_t) x_{t−1} + √β_t ε applied from x0 for t steps has the marginal N(√ᾱ_t x0, 1−ᾱ_t).
        proc = GaussianProcess(schedules.linear(20, beta_start=0.01, beta_end=0.2))
        n = 40000
        x = jnp.full((n, 1, 1, 1), -0.5)
        step = self.variant(proc.step)
        for t in range(1, 8):
            x = step(x, jnp.full((n,), t), jax.random.PRNGKey(t))
        ab = linear_abar64(20, 0.01, 0.2)[7]
        xs = np.asarray(x).ravel()
        assert abs(xs.mean() - np.sqrt(ab) * -0.5) < 5 * np.sqrt((1 - ab) / n)
        assert abs(xs.var() - (1 - ab)) < 5 * (1 - ab) * np.sqrt(2 / n)


def test_mean_std_per_example_t(gauss):
    x0 = jax.random.uniform(jax.random.PRNGKey(1), (4, 3, 3, 2), minval=-1, maxval=1)
    t = jnp.array([0, 5, 50, 100])
    m = gauss.mean(x0, t)
    # float64 references: the stored √ᾱ_t, σ_t were computed in float64 before rounding
    ab64 = linear_abar64(100)
    for i, tv in enumerate([0, 5, 50, 100]):
        np.testing.assert_allclose(m[i], np.sqrt(ab64[tv]) * np.asarray(x0[i], np.float64), rtol=1e-6)
    np.testing.assert_allclose(gauss.std(t), np.sqrt(1 - ab64)[[0, 5, 50, 100]], rtol=1e-6)
    # t = 0 is the identity with no noise
    xt = gauss.sample(x0, 0, jax.random.PRNGKey(2))
    np.testing.assert_array_equal(xt, x0)


def test_perturb_is_mean_plus_std_eps(gauss):
    x0 = jnp.ones((2, 2, 2, 1))
    eps = jnp.arange(8.0).reshape(2, 2, 2, 1)
    t = jnp.array([10, 90])
    xt = gauss.perturb(x0, t, eps)
    ab = linear_abar64(100)[np.asarray(t)].reshape(-1, 1, 1, 1)
    ref = np.sqrt(ab) * np.asarray(x0, np.float64) + np.sqrt(1 - ab) * np.asarray(eps, np.float64)
    np.testing.assert_allclose(xt, ref, rtol=1e-6)


def test_gaussian_prior_is_standard_normal(gauss):
    x = gauss.prior(jax.random.PRNGKey(0), (64, 8, 8, 3))
    assert x.shape == (64, 8, 8, 3)
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05


def test_cold_process_decolor():
    deg = degradations.make_degradation("decolor", T=10, image_size=4, channels=3)
    proc = ColdProcess(deg, noise_std=0.0)
    x0 = jax.random.uniform(jax.random.PRNGKey(0), (3, 4, 4, 3), minval=-1, maxval=1)
    t = jnp.array([0, 4, 10])
    xt = proc.sample(x0, t, jax.random.PRNGKey(1))
    np.testing.assert_allclose(xt, decolor64(x0, t, 10), atol=1e-6)
    # the forward step chains to the closed form
    x = x0
    for tv in range(1, 11):
        x = proc.step(x, tv, jax.random.PRNGKey(tv))
        np.testing.assert_allclose(x, decolor64(x0, tv, 10), atol=1e-5)
    np.testing.assert_array_equal(proc.std(t), [0.0, 0.0, 0.0])


def test_cold_process_noise():
    deg = degradations.make_degradation("decolor", T=10, image_size=4, channels=3)
    proc = ColdProcess(deg, noise_std=0.05)
    np.testing.assert_allclose(proc.std(jnp.array([0, 1, 10])), [0.0, 0.05, 0.05])
    x0 = jnp.zeros((4000, 2, 2, 3))
    xt = proc.sample(x0, 5, jax.random.PRNGKey(0))
    assert abs(float(xt.std()) - 0.05) < 0.002
    with pytest.raises(ValueError, match="noise_std"):
        ColdProcess(deg, noise_std=-1.0)
    with pytest.raises(ValueError, match="prior"):
        proc.prior(jax.random.PRNGKey(0), (1, 2, 2, 3))


def test_processes_are_static_jit_args(gauss):
    f = jax.jit(lambda p, x, t: p.mean(x, t), static_argnums=0)
    x = jnp.ones((2, 2, 2, 1))
    np.testing.assert_allclose(f(gauss, x, jnp.array([3, 4])), gauss.mean(x, jnp.array([3, 4])))
