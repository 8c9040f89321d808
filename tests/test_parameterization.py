"""ε / x0 / v conversions: round trips and the cold-family predictor."""
import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff import degradations, parameterization as P
from jaxdiff.processes import schedules
from jaxdiff.processes import ColdProcess, GaussianProcess


def _batch(seed=0, shape=(5, 4, 4, 3)):
    k1, k2 = jax.random.split(jax.random.PRNGKey(seed))
    return jax.random.uniform(k1, shape, minval=-1, maxval=1), jax.random.normal(k2, shape)


class RoundTrips(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @pytest.mark.filterwarnings("ignore")
    def test_every_prediction_recovers_x0_and_eps(self):
        proc = GaussianProcess(schedules.cosine(200))
        x0, eps = _batch()
        t = jnp.array([1, 20, 100, 150, 199])
        xt = proc.perturb(x0, t, eps)
        for pred in P.PREDICTIONS:
            out = P.target(proc, pred, x0, eps, t)
            x0_hat, eps_hat = self.variant(lambda o, x, tt, p=pred: P.predict(proc, p, o, x, tt))(out, xt, t)
            np.testing.assert_allclose(x0_hat, x0, atol=2e-4, err_msg=pred)
            np.testing.assert_allclose(eps_hat, eps, atol=2e-4, err_msg=pred)


def test_v_definition_in_float64():
    proc = GaussianProcess(schedules.linear(50))
    x0, eps = _batch(1)
    t = jnp.array([3, 10, 25, 40, 50])
    # ᾱ_t of the linear schedule in float64, independently of jaxdiff.processes.schedules
    ab64 = np.concatenate([[1.0], np.cumprod(1 - np.linspace(1e-4, 2e-2, 50))])
    ab = ab64[np.asarray(t)][:, None, None, None]
    v_ref = np.sqrt(ab) * np.asarray(eps, np.float64) - np.sqrt(1 - ab) * np.asarray(x0, np.float64)
    np.testing.assert_allclose(P.target(proc, "v", x0, eps, t), v_ref, atol=1e-6)
    # the inverse maps in float64
    xt = np.sqrt(ab) * np.asarray(x0, np.float64) + np.sqrt(1 - ab) * np.asarray(eps, np.float64)
    np.testing.assert_allclose(P.x0_from_v(xt, v_ref, np.sqrt(ab), np.sqrt(1 - ab)), x0, atol=1e-6)
    np.testing.assert_allclose(P.eps_from_v(xt, v_ref, np.sqrt(ab), np.sqrt(1 - ab)), eps, atol=1e-6)


def test_clip_bounds_x0_and_keeps_pair_consistent():
    proc = GaussianProcess(schedules.linear(100))
    x0, eps = _batch(2)
    t = jnp.array([90, 90, 90, 90, 90])
    xt = proc.perturb(3.0 * x0, t, eps)
    x0_hat, eps_hat = P.predict(proc, "x0", 3.0 * x0, xt, t, clip=1.0)
    assert float(jnp.max(jnp.abs(x0_hat))) <= 1.0
    np.testing.assert_allclose(proc.perturb(x0_hat, t, eps_hat), xt, atol=1e-5)
    # ε-prediction keeps the network's ε (DDIM's convention)
    _, e = P.predict(proc, "eps", eps, xt, t, clip=1.0)
    np.testing.assert_array_equal(e, eps)


def test_cold_predicts_x0_only():
    deg = degradations.make_degradation("decolor", T=10, image_size=4, channels=3)
    x0, eps = _batch(3)
    t = jnp.array([0, 2, 5, 7, 10])
    quiet = ColdProcess(deg)
    x0_hat, eps_hat = P.predict(quiet, "x0", x0, quiet.mean(x0, t), t)
    np.testing.assert_array_equal(x0_hat, x0)
    np.testing.assert_array_equal(eps_hat, 0.0)
    noisy = ColdProcess(deg, noise_std=0.1)
    xt = noisy.perturb(x0, t, eps)
    _, eps_hat = P.predict(noisy, "x0", x0, xt, t)
    np.testing.assert_allclose(eps_hat[1:], eps[1:], atol=1e-5)
    np.testing.assert_array_equal(eps_hat[0], 0.0)  # σ_0 = 0
    with pytest.raises(ValueError, match=r"prediction must be 'x0' for cold diffusion"):
        P.predict(quiet, "eps", x0, x0, t)
    with pytest.raises(ValueError, match="unknown prediction 'score'"):
        P.target(quiet, "score", x0, eps, t)
