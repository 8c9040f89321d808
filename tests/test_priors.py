"""Generation priors: shapes, statistics against the fitted parameters, the mixture fit, serialisation, and the
prior a run generates from (chosen by its degradation, fitted and stored by jaxdiff.priors.store)."""
import runpy

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from scipy import stats
from scipy.special import logsumexp

from jaxdiff import priors as P
from jaxdiff.degradations import make_degradation
from jaxdiff.experiment import build_process
from jaxdiff.processes import ColdProcess, GaussianProcess
from jaxdiff.evaluation.prior_match import PRIOR_MISMATCH_RATIO, prior_match
from jaxdiff.priors import store
from jaxdiff.processes.schedules import make_schedule

KEY = jax.random.PRNGKey(0)


def _colored_images(rng, n, h, w, mean, cov):
    """Images whose per-channel spatial means are exactly draws from N(mean, cov), plus zero-mean texture."""
    m = rng.multivariate_normal(mean, cov, size=n)
    tex = rng.normal(0.0, 0.1, (n, h, w, len(mean)))
    tex -= tex.mean(axis=(1, 2), keepdims=True)
    return np.clip(m[:, None, None, :] + tex, -1, 1).astype(np.float64)


@pytest.fixture(scope="module")
def rgb_images():
    rng = np.random.default_rng(1)
    mean = np.array([0.1, -0.2, 0.3])
    cov = np.array([[0.04, 0.02, -0.01], [0.02, 0.05, 0.0], [-0.01, 0.0, 0.03]])
    x = _colored_images(rng, 3000, 8, 8, mean, cov)
    return x.astype(np.float32)


def _within(est, true, se, k=5.0):
    assert np.all(np.abs(np.asarray(est) - np.asarray(true)) < k * np.asarray(se)), (est, true, se)


# ------------------------------------------------------------------------------------------------
# gaussian


def test_gaussian_shape_and_moments():
    p = P.fit_prior("gaussian", shape=(4, 5, 2))
    x = np.asarray(p.sample(KEY, 2000))
    assert x.shape == (2000, 4, 5, 2) and x.dtype == np.float32
    n = x.size
    _within(x.mean(), 0.0, np.sqrt(1 / n))
    _within(x.var(), 1.0, np.sqrt(2 / n))
    # fitting on images only reads their shape
    q = P.fit_prior("gaussian", np.zeros((3, 4, 5, 2), np.float32))
    np.testing.assert_array_equal(q.sample(KEY, 2000), x)


# ------------------------------------------------------------------------------------------------
# blur_mean


def test_blur_mean_fit_is_the_float64_sample_moments(rgb_images):
    p = P.fit_prior("blur_mean", rgb_images, reg=0.0)
    m = rgb_images.astype(np.float64).mean(axis=(1, 2))
    np.testing.assert_allclose(p.arrays["weights"], [1.0])
    np.testing.assert_allclose(p.arrays["means"][0], m.mean(0), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.arrays["covs"][0], np.cov(m.T, bias=True), rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(p.arrays["chol"][0] @ p.arrays["chol"][0].T, p.arrays["covs"][0], atol=1e-12)


def test_blur_mean_samples_match_fit_and_are_flat_plus_noise(rgb_images):
    p = P.fit_prior("blur_mean", rgb_images)
    n = 20000
    x = np.asarray(p.sample(KEY, n), np.float64)
    assert x.shape == (n, 8, 8, 3) and float(p.arrays["noise"]) == 0.002
    c = x.mean(axis=(1, 2))  # (n, 3): the color + the mean of 64 noise pixels (σ 0.002/8, negligible)
    mu, cov = p.arrays["means"][0], p.arrays["covs"][0]
    _within(c.mean(0), mu, np.sqrt(np.diag(cov) / n))
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    _within(np.cov(c.T), cov, se_cov)
    # flat up to per-pixel noise of std 0.002
    resid = x - c[:, None, None, :]
    dof = resid.size * (63 / 64)  # one mean removed per (image, channel)
    _within(resid.std() * np.sqrt(resid.size / dof), 0.002, 0.002 / np.sqrt(2 * dof))


def test_blur_mean_without_noise_is_exactly_flat(rgb_images):
    p = P.fit_prior("blur_mean", rgb_images, noise=0.0)
    x = np.asarray(p.sample(KEY, 20000))  # n as above: the compiled sampler is reused
    assert np.array_equal(x, np.broadcast_to(x[:, :1, :1, :], x.shape))
    # and replace(noise=…) switches symmetry breaking on/off without refitting
    y = np.asarray(p.replace(noise=0.002).sample(KEY, 20000))
    assert not np.array_equal(y, np.broadcast_to(y[:, :1, :1, :], y.shape))
    with pytest.raises(ValueError, match="noise"):
        p.replace(noise=-1.0)


def test_blur_mean_one_channel_is_a_1d_gaussian():
    rng = np.random.default_rng(2)
    x = _colored_images(rng, 2000, 6, 6, np.array([-0.3]), np.array([[0.02]])).astype(np.float32)
    p = P.fit_prior("blur_mean", x, noise=0.0)
    assert p.arrays["covs"].shape == (1, 1, 1)
    s = np.asarray(p.sample(KEY, 20000))[:, 0, 0, 0].astype(np.float64)
    mu, var = p.arrays["means"][0, 0], p.arrays["covs"][0, 0, 0]
    _within(s.mean(), mu, np.sqrt(var / s.size))
    _within(s.var(), var, var * np.sqrt(2 / s.size))
    assert stats.kstest(s, stats.norm(mu, np.sqrt(var)).cdf).pvalue > 1e-3


def test_blur_mean_mixture_separates_two_color_clusters():
    rng = np.random.default_rng(3)
    a = _colored_images(rng, 600, 4, 4, np.array([-0.6, 0.5]), 0.001 * np.eye(2))
    b = _colored_images(rng, 1400, 4, 4, np.array([0.4, -0.3]), 0.002 * np.eye(2))
    p = P.fit_prior("blur_mean", np.concatenate([a, b]).astype(np.float32), n_components=2, seed=0)
    order = np.argsort(p.arrays["weights"])
    np.testing.assert_allclose(p.arrays["weights"][order], [0.3, 0.7], atol=0.01)
    np.testing.assert_allclose(p.arrays["means"][order], [[-0.6, 0.5], [0.4, -0.3]], atol=0.01)


# ------------------------------------------------------------------------------------------------
# color


def test_color_is_flat_and_uniform():
    p = P.fit_prior("color", shape=(5, 5, 3))
    x = np.asarray(p.sample(KEY, 5000), np.float64)
    assert x.shape == (5000, 5, 5, 3)
    assert np.array_equal(x, np.broadcast_to(x[:, :1, :1, :], x.shape))
    c = x[:, 0, 0, :]
    assert c.min() >= -0.5 and c.max() <= 0.5
    for ch in range(3):
        assert stats.kstest(c[:, ch], stats.uniform(-0.5, 1.0).cdf).pvalue > 1e-3
    # channels independent
    r = np.corrcoef(c.T)[np.triu_indices(3, 1)]
    assert np.all(np.abs(r) < 5 / np.sqrt(c.shape[0]))


# ------------------------------------------------------------------------------------------------
# superres


def test_area_downsample_is_block_mean():
    x = np.random.default_rng(4).normal(size=(2, 8, 8, 3))
    y = P.area_downsample(x, 4)
    ref = np.array([[[[x[n, 4 * i : 4 * i + 4, 4 * j : 4 * j + 4, c].mean() for c in range(3)] for j in range(2)]
                     for i in range(2)] for n in range(2)])
    np.testing.assert_allclose(y, ref, rtol=1e-12)


def test_superres_constant_on_blocks_and_matches_low_res_moments():
    rng = np.random.default_rng(5)
    low = rng.multivariate_normal([0.2, -0.1, 0.0, 0.3], 0.01 * (np.eye(4) + 0.5), size=3000)
    low = low.reshape(3000, 2, 2, 1)
    x = np.repeat(np.repeat(low, 8, axis=1), 8, axis=2) + rng.normal(0, 0.05, (3000, 16, 16, 1))
    x = np.clip(x, -1, 1).astype(np.float32)
    p = P.fit_prior("superres", x, T=3, n_components=1)  # 16 / 2^3 = 2
    assert p.arrays["means"].shape == (1, 4) and int(p.arrays["factor"]) == 8
    n = 20000
    s = np.asarray(p.sample(KEY, n), np.float64)
    assert s.shape == (n, 16, 16, 1)
    blocks = s.reshape(n, 2, 8, 2, 8, 1)
    assert np.array_equal(blocks, np.broadcast_to(blocks[:, :, :1, :, :1], blocks.shape))
    v = s[:, ::8, ::8, :].reshape(n, 4)
    ref = x.astype(np.float64).reshape(3000, 2, 8, 2, 8, 1).mean(axis=(2, 4)).reshape(-1, 4)  # 8×8 block means
    cov = np.cov(ref.T, bias=True)
    _within(v.mean(0), ref.mean(0), np.sqrt(np.diag(cov) / n))
    _within(np.cov(v.T), cov, np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n))


def test_superres_diag_mixture_and_noise():
    x = np.random.default_rng(6).uniform(-1, 1, (200, 8, 8, 3)).astype(np.float32)
    p = P.fit_prior("superres", x, T=1, n_components=3, covariance="diag", noise=0.01)
    cov = p.arrays["covs"]
    assert cov.shape == (3, 48, 48)
    assert np.array_equal(cov, np.stack([np.diag(np.diag(c)) for c in cov]))
    s = np.asarray(p.sample(KEY, 10))
    assert s.shape == (10, 8, 8, 3)
    assert not np.array_equal(s[:, ::2, ::2], s[:, 1::2, 1::2])  # noise breaks the blocks


def test_superres_rejects_indivisible_size():
    with pytest.raises(ValueError, match="divisible"):
        P.fit_prior("superres", np.zeros((4, 12, 12, 1), np.float32), T=3)


# ------------------------------------------------------------------------------------------------
# dataset


def test_dataset_samples_are_bank_images():
    x = np.random.default_rng(7).uniform(-1, 1, (40, 4, 4, 2)).astype(np.float32)
    p = P.fit_prior("dataset", x, max_images=25, seed=3)
    bank = p.arrays["bank"]
    assert bank.shape == (25, 4, 4, 2)
    flat_x = x.reshape(40, -1)
    assert all(any(np.array_equal(b, r) for r in flat_x) for b in bank.reshape(25, -1))  # a subset of the input
    s = np.asarray(p.sample(KEY, 5000)).reshape(5000, -1)
    idx = np.array([np.flatnonzero((bank.reshape(25, -1) == r).all(1)) for r in s])
    assert idx.shape == (5000, 1)  # every sample is exactly one bank image
    counts = np.bincount(idx[:, 0], minlength=25)
    assert stats.chisquare(counts).pvalue > 1e-3  # uniform over the bank


# ------------------------------------------------------------------------------------------------
# the mixture fit (scikit-learn's EM)


def _mixture_loglik64(x, w, mu, cov):
    """Mean log-likelihood of a mixture in float64, by scipy (independent of the fit)."""
    lp = np.stack([stats.multivariate_normal(mu[k], cov[k]).logpdf(x) for k in range(len(w))], axis=1)
    return float(np.mean(logsumexp(lp + np.log(w), axis=1)))


def test_em_recovers_two_component_1d_mixture():
    rng = np.random.default_rng(8)
    n = 10000
    z = rng.random(n) < 0.3
    x = np.where(z, rng.normal(-3.0, 0.5, n), rng.normal(2.0, 1.0, n))[:, None]
    w, mu, cov = P.fit_gmm(x, 2, rng=np.random.default_rng(0))
    o = np.argsort(mu[:, 0])
    np.testing.assert_allclose(w[o], [0.3, 0.7], atol=0.015)
    np.testing.assert_allclose(mu[o, 0], [-3.0, 2.0], atol=0.05)
    np.testing.assert_allclose(np.sqrt(cov[o, 0, 0]), [0.5, 1.0], atol=0.04)
    # the mixture explains the data better than one Gaussian, and about as well as the true mixture
    one = P.fit_gmm(x, 1)
    ll = _mixture_loglik64(x, w, mu, cov)
    assert ll > _mixture_loglik64(x, *one) + 0.1
    true = _mixture_loglik64(x, np.array([0.3, 0.7]), np.array([[-3.0], [2.0]]), np.array([[[0.25]], [[1.0]]]))
    assert ll >= true - 1e-3  # maximum likelihood: at least the generating parameters' likelihood


def test_em_recovers_a_known_2d_full_covariance_mixture():
    rng = np.random.default_rng(10)
    means = np.array([[-1.0, 0.5], [1.5, -0.5]])
    covs = np.array([[[0.2, 0.08], [0.08, 0.1]], [[0.05, -0.02], [-0.02, 0.15]]])
    n = 20000
    z = rng.random(n) < 0.4
    a, b = rng.multivariate_normal(means[0], covs[0], n), rng.multivariate_normal(means[1], covs[1], n)
    x = np.where(z[:, None], a, b)
    w, mu, cov = P.fit_gmm(x, 2, rng=np.random.default_rng(1))
    o = np.argsort(mu[:, 0])
    np.testing.assert_allclose(w[o], [0.4, 0.6], atol=0.01)
    np.testing.assert_allclose(mu[o], means, atol=0.02)
    np.testing.assert_allclose(cov[o], covs, atol=0.01)
    # the stored Cholesky factors reproduce the covariances, and sampling in JAX follows the mixture
    arrays = P.gmm.gmm_arrays(w, mu, cov)
    np.testing.assert_allclose(arrays["chol"] @ np.swapaxes(arrays["chol"], 1, 2), cov, atol=1e-12)
    s = np.asarray(P.gmm.sample_gmm(arrays, jax.random.PRNGKey(0), 40000), np.float64)
    m = w @ mu
    np.testing.assert_allclose(s.mean(0), m, atol=0.02)
    total = sum(w[k] * (cov[k] + np.outer(mu[k] - m, mu[k] - m)) for k in range(2))
    np.testing.assert_allclose(np.cov(s.T), total, atol=0.03)


def test_em_diag_fits_per_dimension_variances():
    rng = np.random.default_rng(11)
    x = rng.normal([0.3, -0.2, 0.1], [0.5, 0.1, 0.2], (5000, 3))
    w, mu, cov = P.fit_gmm(x, 1, covariance="diag", reg=0.0)
    np.testing.assert_allclose(mu[0], x.mean(0), atol=1e-12)
    np.testing.assert_allclose(cov[0], np.diag(x.var(0)), atol=1e-12)  # the biased sample variances, off-diagonal 0


def test_em_is_seeded():
    x = np.random.default_rng(9).normal(size=(300, 2))
    a = P.fit_gmm(x, 3, rng=np.random.default_rng(1))
    b = P.fit_gmm(x, 3, rng=np.random.default_rng(1))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


@pytest.mark.parametrize("kw, match", [(dict(n_components=0), "n_components"), (dict(n_components=5), "exceeds"),
                                       (dict(covariance="spherical"), "covariance"), (dict(reg=-1.0), "reg")])
def test_em_rejects_bad_arguments(kw, match):
    with pytest.raises(ValueError, match=match):
        P.fit_gmm(np.zeros((4, 2)), **{"n_components": 1, **kw})


# ------------------------------------------------------------------------------------------------
# serialisation


@pytest.fixture(scope="module")
def fitted(rgb_images):
    x = rgb_images[:300]
    return [
        P.fit_prior("gaussian", x),
        P.fit_prior("blur_mean", x, n_components=2),
        P.fit_prior("color", x, noise=0.01),
        P.fit_prior("superres", x, T=2, n_components=2),
        P.fit_prior("dataset", x, max_images=50),
    ]


def test_every_registered_kind_is_covered(fitted):
    assert sorted(p.kind for p in fitted) == sorted(P.PRIORS)


def test_round_trips_give_identical_samples(fitted, tmp_path):
    for p in fitted:
        ref = np.asarray(p.sample(KEY, 6))
        assert ref.shape == (6,) + p.shape
        arrays = p.to_arrays()
        assert all(isinstance(v, np.ndarray) and v.dtype != object for v in arrays.values())
        q = P.Prior.from_arrays(arrays)
        np.testing.assert_array_equal(q.sample(KEY, 6), ref)
        # kind passed separately, e.g. from a JSON config next to an array checkpoint
        q = P.Prior.from_arrays({k: v for k, v in arrays.items() if k != "kind"}, kind=p.kind)
        np.testing.assert_array_equal(q.sample(KEY, 6), ref)
        path = tmp_path / f"{p.kind}.npz"
        p.save(path)
        np.testing.assert_array_equal(P.Prior.load(path).sample(KEY, 6), ref)  # np.load without pickle
        np.testing.assert_array_equal(P.Prior.from_json(p.to_json()).sample(KEY, 6), ref)
        # different keys give different draws
        assert not np.array_equal(p.sample(jax.random.PRNGKey(1), 6), ref)


def test_sample_jits_with_static_n(fitted):
    for p in fitted[1:2]:  # sample() is jitted already; this checks it nests under a user's jit
        f = jax.jit(p.sample, static_argnums=1)
        np.testing.assert_allclose(f(KEY, 4), p.sample(KEY, 4), rtol=1e-6, atol=1e-6)


def test_fit_seed_and_key_are_reproducible(rgb_images):
    x = rgb_images[:300]
    a = P.fit_prior("superres", x, T=2, n_components=3, key=jax.random.PRNGKey(5))
    b = P.fit_prior("superres", x, T=2, n_components=3, key=jax.random.PRNGKey(5))
    np.testing.assert_array_equal(a.arrays["means"], b.arrays["means"])


# ------------------------------------------------------------------------------------------------
# errors and config


@pytest.mark.parametrize(
    "kind, images, params, match",
    [
        ("nope", np.zeros((2, 4, 4, 1), np.float32), {}, "unknown prior kind"),
        ("blur_mean", np.zeros((2, 4, 4, 1), np.float32), {"sigma": 1}, "unknown parameter"),
        ("blur_mean", np.zeros((4, 4, 1), np.float32), {}, "NHWC"),
        ("blur_mean", np.full((2, 4, 4, 1), 3.0, np.float32), {}, r"\[-1, 1\]"),
        ("blur_mean", np.zeros((2, 4, 4, 1), np.uint8), {}, "dtype"),
        ("blur_mean", np.zeros((2, 4, 4, 1), np.float32), {"noise": -0.1}, "noise"),
        ("blur_mean", np.zeros((2, 4, 4, 1), np.float32), {"n_components": 0}, "n_components"),
        ("blur_mean", None, {}, "required"),
        ("color", np.zeros((2, 4, 4, 1), np.float32), {"low": 0.5, "high": 0.2}, "low"),
        ("superres", np.zeros((2, 4, 4, 1), np.float32), {"T": 0}, "T must"),
    ],
)
def test_bad_input_raises_value_error(kind, images, params, match):
    with pytest.raises(ValueError, match=match):
        P.fit_prior(kind, images, **params)


def test_sample_rejects_bad_n():
    with pytest.raises(ValueError, match="n must"):
        P.fit_prior("gaussian", shape=(2, 2, 1)).sample(KEY, 0)


# ------------------------------------------------------------------------------------------------
# registry and stored files


def test_a_duplicate_prior_kind_is_refused():
    with pytest.raises(ValueError, match="'gaussian' is already registered"):
        P.register_prior("gaussian", sample=lambda arrays, key, n: None, keys=())(lambda x, *, shape, rng: {})
    assert P.fit_prior("gaussian", shape=(2, 2, 1)).sample(KEY, 3).shape == (3, 2, 2, 1)  # the first stays


def test_a_stored_colour_prior_loads_as_color(tmp_path):
    # a prior.npz written before the rename: kind "colour", the arrays of today's "color"
    np.savez(tmp_path / "prior.npz", kind=np.asarray("colour"), shape=np.asarray([4, 4, 3], np.int64),
             low=np.asarray(-0.5), high=np.asarray(0.5), noise=np.asarray(0.0))
    p = store.load_prior(str(tmp_path))
    assert p.kind == "color" and p.shape == (4, 4, 3)
    x = np.asarray(p.sample(KEY, 200))
    assert np.array_equal(x, np.broadcast_to(x[:, :1, :1, :], x.shape)) and np.abs(x).max() <= 0.5
    q = P.Prior.from_json(p.to_json().replace('"kind": "color"', '"kind": "colour"'))
    np.testing.assert_array_equal(q.sample(KEY, 5), p.sample(KEY, 5))
    assert "colour" not in P.PRIORS


def test_a_stored_mixture_prior_loads_and_samples_the_same(tmp_path):
    # the arrays a mixture prior has stored since before scikit-learn: weights, means, covs, chol, noise
    cov = np.array([[[0.04, 0.01], [0.01, 0.02]]])
    np.savez(tmp_path / "prior.npz", kind=np.asarray("blur_mean"), shape=np.asarray([3, 3, 2], np.int64),
             weights=np.array([1.0]), means=np.array([[0.1, -0.2]]), covs=cov, chol=np.linalg.cholesky(cov),
             noise=np.asarray(0.0))
    p = store.load_prior(str(tmp_path))
    x = np.asarray(p.sample(KEY, 20000), np.float64)[:, 0, 0, :]
    _within(x.mean(0), [0.1, -0.2], np.sqrt(np.diag(cov[0]) / x.shape[0]))
    _within(np.cov(x.T), cov[0], np.sqrt((np.outer(np.diag(cov[0]), np.diag(cov[0])) + cov[0] ** 2) / x.shape[0]))


# ------------------------------------------------------------------------------------------------
# the prior a run generates from (jaxdiff.priors.store)


def _config(degradation="blur", T=3, kind="cold", end_source="", image_size=8, **params):
    """A tiny config: kind "cold" is ``degradation`` with a constant σ = 0, "gaussian" the identity with a linear
    VP schedule (the degradation ignored), any other kind names a noise schedule."""
    c = runpy.run_path("configs/default.py")["get_config"]()
    c.diffusion.schedule = {"cold": "constant", "gaussian": "linear"}.get(kind, kind)
    if kind == "gaussian":
        degradation = "identity"
    c.diffusion.degradation = degradation
    c.diffusion.T = T
    c.diffusion.degradation_params = ml_collections.ConfigDict(params)
    c.data.image_size = image_size
    c.data.end_source = end_source
    return c


def test_prior_kind_comes_from_the_degradation():
    from configs.default import get_config

    assert (build_process(get_config())).generation().kind == "blur_mean"
    assert store.fit_params_for(get_config(), build_process(get_config())) == {"noise": 0.002}
    assert (GaussianProcess(make_schedule("linear", 10))).generation().kind == "gaussian"
    sr = build_process(_config("superres"))
    assert sr.generation().kind == "superres"
    assert store.fit_params_for(_config("superres"), sr) == {"T": 3}
    assert (build_process(_config("fade"))).generation().kind == "color"
    assert (build_process(_config("interpolate", end_source="digits"))).generation().kind == "dataset"
    for restoration_only in ("decolor", "inpaint", "snow"):
        proc = ColdProcess(make_degradation(restoration_only, T=3, image_size=8, channels=3))
        assert not proc.can_generate
        msg = f"diffusion.degradation='{restoration_only}' has no generation prior.*--mode=restore"
        with pytest.raises(ValueError, match=msg):
            proc.generation().kind


@pytest.mark.parametrize(
    "module, expected",
    [
        ("cold_blur", "blur_mean"),
        ("cold_superres", "superres"),
        ("cold_animorph", "dataset"),
        ("ddpm", "gaussian"),
        ("ddim", "gaussian"),
        ("cold_inpaint", None),
        ("cold_decolor", None),
        ("cold_snow", None),
    ],
)
def test_prior_kind_of_shipped_configs(module, expected):
    import importlib

    from jaxdiff.degradations import DEGRADATIONS

    cfg = importlib.import_module(f"configs.{module}").get_config()
    if cfg.diffusion.degradation != "identity":
        assert cfg.diffusion.degradation in DEGRADATIONS  # the names used here are the registered ones
    process = build_process(cfg)
    assert process.can_generate == (expected is not None)
    if expected is None:
        with pytest.raises(ValueError, match="no generation prior"):
            process.generation().kind
    else:
        assert process.generation().kind == expected
    with pytest.raises(ValueError, match="unknown schedule 'warm'"):
        build_process(_config(kind="warm"))


def test_an_unregistered_prior_kind_of_a_degradation_is_named():
    deg = make_degradation("fade", T=3, image_size=8, channels=1)
    import dataclasses

    from jaxdiff.degradations import GenerationPrior

    bad = ColdProcess(dataclasses.replace(deg, generation=GenerationPrior(kind="nope", fit_on="none")))
    with pytest.raises(ValueError, match=r"'nope'.*allowed prior kinds"):
        bad.generation().kind


def test_fit_for_run_of_a_data_free_prior_and_the_store(tmp_path, monkeypatch):
    cfg = _config("fade", T=4, kernel_std=0.5, initial_mask=1.0, centered=False)
    process = build_process(cfg)
    prior = store.load_or_fit_prior(cfg, str(tmp_path), process=process)
    assert prior.kind == "color" and prior.shape == (8, 8, 1) and (tmp_path / "prior.npz").exists()
    assert float(prior.arrays["low"]) == -0.5 and float(prior.arrays["high"]) == 0.5

    def boom(*a, **k):
        raise AssertionError("refitted although a matching prior is stored")

    monkeypatch.setattr(store, "fit_prior_for_run", boom)
    again = store.load_or_fit_prior(cfg, str(tmp_path), process=process)
    for k, v in prior.arrays.items():
        np.testing.assert_array_equal(again.arrays[k], v)
    monkeypatch.undo()
    # generation aux from a prior draw: the fade ends exactly at x_T
    x_T = prior.sample(KEY, 4)
    aux = process.generation_aux(x_T, jax.random.PRNGKey(1))
    x0 = jax.random.uniform(KEY, x_T.shape, minval=-1, maxval=1)
    np.testing.assert_allclose(process.mean(x0, 4, aux), x_T, atol=1e-5)
    # another process is asked for: refit and overwrite
    gcfg = _config(kind="gaussian")
    gauss = GaussianProcess(make_schedule("linear", 5))
    assert store.load_or_fit_prior(gcfg, str(tmp_path), process=gauss).kind == "gaussian"
    assert store.load_prior(str(tmp_path)).kind == "gaussian"


def test_fit_for_run_of_superres_is_on_its_end_state():
    from jaxdiff.data import load_images

    cfg = _config("superres", T=2, method="bicubic")
    process = build_process(cfg)
    prior = store.fit_prior_for_run(cfg, process, max_images=300)
    x = load_images(cfg, split="train", num=300, seed=int(cfg.seed))
    # independent: the antialiased cubic resize straight to 2×2, as jax.image.resize computes it
    low = np.asarray(jax.image.resize(jnp.asarray(x), (x.shape[0], 2, 2, 1), "cubic", antialias=True), np.float64)
    w, mu = prior.arrays["weights"], prior.arrays["means"]
    np.testing.assert_allclose((w[:, None] * mu).sum(0), low.reshape(x.shape[0], -1).mean(0), atol=1e-5)
    assert int(prior.arrays["factor"]) == 4


def test_fit_for_run_of_blur_takes_the_prior_noise():
    from jaxdiff.data import load_images

    cfg = _config("blur", T=3, kernel_size=3, std=1.0)
    cfg.sample.prior_noise = 0.01
    prior = store.fit_prior_for_run(cfg, build_process(cfg), max_images=200)
    x = load_images(cfg, split="train", num=200, seed=int(cfg.seed)).astype(np.float64)
    np.testing.assert_allclose(prior.arrays["means"][0], x.mean(axis=(1, 2)).mean(0), rtol=1e-6)
    assert float(prior.arrays["noise"]) == 0.01


def test_fit_for_run_on_the_end_source_and_restoration_aux():
    cfg = _config("interpolate", T=5, end_source="digits:classes=5-9")
    process = build_process(cfg)
    prior = store.fit_prior_for_run(cfg, process, max_images=50)
    assert prior.kind == "dataset" and prior.arrays["bank"].shape == (50, 8, 8, 1)
    x_T = prior.sample(KEY, 3)
    np.testing.assert_array_equal(process.generation_aux(x_T, KEY), x_T)
    x0 = jnp.zeros((3, 8, 8, 1))
    end = np.asarray(prior.arrays["bank"][:2])
    np.testing.assert_array_equal(process.restoration_aux(x0, KEY, end_images=end), end[[0, 1, 0]])
    assert process.restoration_aux(x0, KEY).shape == x0.shape  # no end images: Gaussian noise
    cfg.data.end_source = ""
    with pytest.raises(ValueError, match="data.end_source"):
        store.fit_prior_for_run(cfg, process)


def test_generation_corrector_is_declared_by_the_process():
    import dataclasses

    from jaxdiff.degradations import GenerationPrior

    for module, corrector in (("ddim", "ddim"), ("ddpm", "ddpm"), ("cold_blur", "cold_improved"),
                              ("cold_superres", "cold_improved"), ("cold_animorph", "cold_improved")):
        cfg = runpy.run_path(f"configs/{module}.py")["get_config"]()
        assert (build_process(cfg)).generation_corrector(cfg.sample.corrector) == corrector, module
    cfg = runpy.run_path("configs/ddim.py")["get_config"]()
    cfg.sample.corrector = "ddpm"  # Gaussian diffusion generates with the config's corrector
    assert (build_process(cfg)).generation_corrector(cfg.sample.corrector) == "ddpm"
    cfg = _config("inpaint")
    with pytest.raises(ValueError, match="no generation prior.*--mode=restore"):
        (build_process(cfg)).generation_corrector(cfg.sample.corrector)
    deg = make_degradation("fade", T=3, image_size=8, channels=1)
    with_corrector = lambda c: ColdProcess(  # noqa: E731
        dataclasses.replace(deg, generation=dataclasses.replace(deg.generation, corrector=c)))
    assert (with_corrector("cold_naive")).generation_corrector(cfg.sample.corrector) == "cold_naive"
    bad = with_corrector("nope")
    with pytest.raises(ValueError, match="generation corrector of degradation 'fade'='nope': allowed correctors"):
        bad.generation_corrector(cfg.sample.corrector)
    with pytest.raises(ValueError, match="GenerationPrior.corrector must be a corrector name"):
        GenerationPrior(kind="color", corrector="")


def test_the_prior_is_stored_with_each_checkpoint_and_fitted_once(tmp_path, monkeypatch):
    cfg = _config("blur", T=3, kernel_size=3, std=1.0)
    process = build_process(cfg)
    prior = store.store_prior_with_checkpoint(cfg, str(tmp_path), 3, process=process)
    meta = store.stored_prior_meta(str(tmp_path))
    assert meta["step"] == 3 and "blur(" in meta["fitted_for"] and "prior_noise=0.002" in meta["fitted_for"]
    assert set(store.load_prior(str(tmp_path)).arrays) == set(prior.arrays)  # the meta_* entries are not the prior

    def boom(*a, **k):
        raise AssertionError("refitted although the stored prior was fitted for this run")

    monkeypatch.setattr(store, "fit_prior_for_run", boom)
    again = store.store_prior_with_checkpoint(cfg, str(tmp_path), 6, process=process)  # e.g. after a resume
    assert store.stored_prior_meta(str(tmp_path))["step"] == 6
    for k, v in prior.arrays.items():
        np.testing.assert_array_equal(again.arrays[k], v)
    assert store.load_or_fit_prior(cfg, str(tmp_path), process=process).kind == "blur_mean"
    monkeypatch.undo()
    # another prior noise is another prior: load_or_fit_prior refits, keeping the checkpoint step
    cfg.sample.prior_noise = 0.05
    refit = store.load_or_fit_prior(cfg, str(tmp_path), process=process)
    assert float(refit.arrays["noise"]) == 0.05 and store.stored_prior_meta(str(tmp_path))["step"] == 6
    # restoration only: nothing is stored
    icfg = _config("inpaint")
    assert store.store_prior_with_checkpoint(icfg, str(tmp_path / "inpaint"), 3) is None
    assert not (tmp_path / "inpaint" / "prior.npz").exists()


def test_prior_match_against_the_real_floor():
    """Gaussian noise and a blur that ends flat match their priors (far below the floor); a blur that leaves
    the digits visible at T does not (far above the refusal ratio)."""
    gcfg = runpy.run_path("configs/ddim.py")["get_config"]()
    gauss = build_process(gcfg)
    m = prior_match(gcfg, gauss, P.fit_prior("gaussian", shape=(16, 16, 1)), num=100)
    assert m["num"] == 100 and m["floor"] > 0 and m["ratio"] == pytest.approx(m["frechet"] / m["floor"])
    assert m["ratio"] < 1.0
    cfg = runpy.run_path("configs/cold_blur.py")["get_config"]()  # the main job: 5×5, σ 0.5, T = 20
    blur = build_process(cfg)
    m = prior_match(cfg, blur, store.fit_prior_for_run(cfg, blur), num=100)
    assert m["ratio"] > 2 * PRIOR_MISMATCH_RATIO
    cfg.diffusion.degradation_params.to_mean = True
    flat = build_process(cfg)
    m = prior_match(cfg, flat, store.fit_prior_for_run(cfg, flat), num=100)
    assert m["ratio"] < 1.0
