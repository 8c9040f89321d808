"""Generation priors: shapes, statistics against the fitted parameters, EM, serialisation, config mapping."""
import jax
import ml_collections
import numpy as np
import pytest
from scipy import stats

from jaxdiff import priors as P

KEY = jax.random.PRNGKey(0)


def _coloured_images(rng, n, h, w, mean, cov):
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
    x = _coloured_images(rng, 3000, 8, 8, mean, cov)
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
    c = x.mean(axis=(1, 2))  # (n, 3): the colour + the mean of 64 noise pixels (σ 0.002/8, negligible)
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
    x = _coloured_images(rng, 2000, 6, 6, np.array([-0.3]), np.array([[0.02]])).astype(np.float32)
    p = P.fit_prior("blur_mean", x, noise=0.0)
    assert p.arrays["covs"].shape == (1, 1, 1)
    s = np.asarray(p.sample(KEY, 20000))[:, 0, 0, 0].astype(np.float64)
    mu, var = p.arrays["means"][0, 0], p.arrays["covs"][0, 0, 0]
    _within(s.mean(), mu, np.sqrt(var / s.size))
    _within(s.var(), var, var * np.sqrt(2 / s.size))
    assert stats.kstest(s, stats.norm(mu, np.sqrt(var)).cdf).pvalue > 1e-3


def test_blur_mean_mixture_separates_two_colour_clusters():
    rng = np.random.default_rng(3)
    a = _coloured_images(rng, 600, 4, 4, np.array([-0.6, 0.5]), 0.001 * np.eye(2))
    b = _coloured_images(rng, 1400, 4, 4, np.array([0.4, -0.3]), 0.002 * np.eye(2))
    p = P.fit_prior("blur_mean", np.concatenate([a, b]).astype(np.float32), n_components=2, seed=0)
    order = np.argsort(p.arrays["weights"])
    np.testing.assert_allclose(p.arrays["weights"][order], [0.3, 0.7], atol=0.01)
    np.testing.assert_allclose(p.arrays["means"][order], [[-0.6, 0.5], [0.4, -0.3]], atol=0.01)


# ------------------------------------------------------------------------------------------------
# colour


def test_colour_is_flat_and_uniform():
    p = P.fit_prior("colour", shape=(5, 5, 3))
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
    ref = P.area_downsample(x.astype(np.float64), 8).reshape(-1, 4)
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
# EM


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
    # the mixture explains the data better than one Gaussian
    one = P.fit_gmm(x, 1)
    assert P.gmm_log_likelihood(x, w, mu, cov) > P.gmm_log_likelihood(x, *one) + 0.1


def test_em_is_seeded():
    x = np.random.default_rng(9).normal(size=(300, 2))
    a = P.fit_gmm(x, 3, rng=np.random.default_rng(1))
    b = P.fit_gmm(x, 3, rng=np.random.default_rng(1))
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)


# ------------------------------------------------------------------------------------------------
# serialisation


@pytest.fixture(scope="module")
def fitted(rgb_images):
    x = rgb_images[:300]
    return [
        P.fit_prior("gaussian", x),
        P.fit_prior("blur_mean", x, n_components=2),
        P.fit_prior("colour", x, noise=0.01),
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
        ("colour", np.zeros((2, 4, 4, 1), np.float32), {"low": 0.5, "high": 0.2}, "low"),
        ("superres", np.zeros((2, 4, 4, 1), np.float32), {"T": 0}, "T must"),
    ],
)
def test_bad_input_raises_value_error(kind, images, params, match):
    with pytest.raises(ValueError, match=match):
        P.fit_prior(kind, images, **params)


def test_sample_rejects_bad_n():
    with pytest.raises(ValueError, match="n must"):
        P.fit_prior("gaussian", shape=(2, 2, 1)).sample(KEY, 0)


def _cfg(kind="cold", degradation="blur", end_source="", **sample):
    return ml_collections.ConfigDict(
        {
            "diffusion": {"kind": kind, "degradation": degradation, "T": 3},
            "data": {"end_source": end_source},
            "sample": {"prior_noise": 0.002, **sample},
        }
    )


def test_default_prior_kind():
    from configs.default import get_config

    assert P.default_prior_kind(get_config()) == "blur_mean"
    assert P.default_prior_params(get_config()) == {"noise": 0.002}
    assert P.default_prior_kind(_cfg(kind="gaussian")) == "gaussian"
    assert P.default_prior_kind(_cfg(degradation="superres")) == "superres"
    assert P.default_prior_params(_cfg(degradation="superres")) == {"T": 3}
    assert P.default_prior_kind(_cfg(degradation="fade")) == "colour"
    assert P.default_prior_kind(_cfg(degradation="interpolate", end_source="npz:/x.npz")) == "dataset"
    assert P.default_prior_kind(_cfg(degradation="interpolate")) == "gaussian"  # toward N(0, I) noise
    assert P.default_prior_kind(_cfg(degradation="decolor", prior="colour")) == "colour"
    for restoration_only in ("decolor", "inpaint", "snow"):
        with pytest.raises(ValueError, match="diffusion.degradation"):
            P.default_prior_kind(_cfg(degradation=restoration_only))



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
def test_default_prior_kind_of_shipped_configs(module, expected):
    import importlib

    from jaxdiff.degradations import DEGRADATIONS

    cfg = importlib.import_module(f"configs.{module}").get_config()
    if cfg.diffusion.kind == "cold":
        assert cfg.diffusion.degradation in DEGRADATIONS  # the names mapped here are the registered ones
    if expected is None:
        with pytest.raises(ValueError, match="no generation prior"):
            P.default_prior_kind(cfg)
    else:
        assert P.default_prior_kind(cfg) == expected
    with pytest.raises(ValueError, match="diffusion.kind"):
        P.default_prior_kind(_cfg(kind="warm"))
    with pytest.raises(ValueError, match="sample.prior"):
        P.default_prior_kind(_cfg(prior="nope"))
