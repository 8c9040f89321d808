"""jaxdiff.evaluation.metrics against scikit-image, closed forms and explicit float64 references."""
import numpy as np
import pytest
import scipy.linalg
from scipy.ndimage import gaussian_filter
from skimage.metrics import mean_squared_error, peak_signal_noise_ratio, structural_similarity

import fake_features as FF
from jaxdiff.evaluation import metrics as M
from references import frechet64


def smooth_images(rng, shape, sigma=1.5):
    """Random smooth images in [0, 1] (N, H, W, C): SSIM of noisy copies then lands mid-range, not near 0."""
    u = gaussian_filter(rng.random(shape), sigma=(0, sigma, sigma, 0), mode="wrap")
    lo = u.min(axis=(1, 2, 3), keepdims=True)
    hi = u.max(axis=(1, 2, 3), keepdims=True)
    return (u - lo) / (hi - lo)


def noisy(rng, u, s=0.1):
    return np.clip(u + s * rng.standard_normal(u.shape), 0.0, 1.0)


def sk_ssim(u, v, **kw):
    args = dict(gaussian_weights=True, sigma=1.5, use_sample_covariance=False, data_range=1.0, channel_axis=-1)
    args.update(kw)
    return np.array([structural_similarity(u[i], v[i], **args) for i in range(u.shape[0])])


# ------------------------------------------------------------------------------------------ SSIM


@pytest.mark.parametrize("shape", [(3, 16, 16, 1), (2, 23, 31, 3), (2, 32, 32, 3), (2, 17, 20, 1)])
def test_ssim_matches_skimage(shape):
    rng = np.random.default_rng(sum(shape))
    u = smooth_images(rng, shape)
    v = noisy(rng, u)
    ref = sk_ssim(u, v)
    assert 0.2 < ref.min() and ref.max() < 0.95  # a discriminating range, not the trivial 0 or 1
    ours = np.asarray(M.ssim(2 * u - 1, 2 * v - 1))  # model range [-1, 1] → mapped to [0, 1]
    assert ours.shape == (shape[0],)
    np.testing.assert_allclose(ours, ref, atol=1e-4)


def test_ssim_matches_skimage_on_white_noise():
    rng = np.random.default_rng(1)
    u, v = rng.random((2, 16, 16, 3)), rng.random((2, 16, 16, 3))
    np.testing.assert_allclose(np.asarray(M.ssim(2 * u - 1, 2 * v - 1)), sk_ssim(u, v), atol=1e-4)


def test_ssim_options_follow_skimage():
    rng = np.random.default_rng(2)
    u = smooth_images(rng, (2, 18, 18, 3))
    v = noisy(rng, u, 0.2)
    # No mapping: data_range refers to the raw values.
    np.testing.assert_allclose(
        np.asarray(M.ssim(2 * u, 2 * v, in_range=None, data_range=2.0)), sk_ssim(2 * u, 2 * v, data_range=2.0), atol=1e-4
    )
    # Filter size follows sigma (radius int(3.5σ + 0.5) = 4 for σ = 1), win_size only sets the crop.
    np.testing.assert_allclose(
        np.asarray(M.ssim(2 * u - 1, 2 * v - 1, sigma=1.0, win_size=7)), sk_ssim(u, v, sigma=1.0, win_size=7), atol=1e-4
    )
    # A crop narrower than the filter radius (3 < 5) keeps pixels whose windows reach past the border:
    # this checks the half-sample-symmetric ('reflect') padding, which the default crop hides.
    np.testing.assert_allclose(
        np.asarray(M.ssim(2 * u - 1, 2 * v - 1, win_size=7)), sk_ssim(u, v, win_size=7), atol=1e-4
    )
    # uint8 input with an explicit range.
    a8, b8 = np.round(u * 255).astype(np.uint8), np.round(v * 255).astype(np.uint8)
    np.testing.assert_allclose(
        np.asarray(M.ssim(a8, b8, in_range=(0, 255))), sk_ssim(a8 / 255.0, b8 / 255.0), atol=1e-4
    )
    np.testing.assert_allclose(np.asarray(M.ssim(2 * u - 1, 2 * u - 1)), 1.0, atol=1e-6)


# ------------------------------------------------------------------------------------------ PSNR / RMSE


@pytest.mark.parametrize("shape", [(4, 16, 16, 1), (3, 24, 20, 3)])
def test_psnr_rmse_match_skimage(shape):
    rng = np.random.default_rng(shape[1])
    u = rng.random(shape)
    v = noisy(rng, u, s=rng.uniform(0.02, 0.3, (shape[0], 1, 1, 1)))
    a, b = 2 * u - 1, 2 * v - 1
    per = np.array([peak_signal_noise_ratio(u[i], v[i], data_range=1.0) for i in range(shape[0])])
    np.testing.assert_allclose(np.asarray(M.psnr(a, b)), per, atol=1e-4)
    assert M.psnr(a, b, reduction="mean") == pytest.approx(per.mean(), abs=1e-4)
    assert M.psnr(a, b, reduction="global") == pytest.approx(peak_signal_noise_ratio(u, v, data_range=1.0), abs=1e-4)
    assert M.rmse(a, b) == pytest.approx(np.sqrt(mean_squared_error(u, v)), abs=1e-6)
    per_rmse = np.sqrt([mean_squared_error(u[i], v[i]) for i in range(shape[0])])
    np.testing.assert_allclose(np.asarray(M.rmse(a, b, reduction="none")), per_rmse, atol=1e-6)
    assert M.rmse(a, b, reduction="mean") == pytest.approx(per_rmse.mean(), abs=1e-6)
    # data_range enters as 20 log10(L).
    np.testing.assert_allclose(np.asarray(M.psnr(a, b, 2.0)), per + 20 * np.log10(2.0), atol=1e-4)


def test_bad_inputs_raise_clear_errors():
    x = np.zeros((2, 16, 16, 1), np.float32)
    with pytest.raises(ValueError, match="same shape"):
        M.ssim(x, np.zeros((2, 16, 15, 1), np.float32))
    with pytest.raises(ValueError, match="NHWC"):
        M.ssim(x[0], x[0])
    with pytest.raises(ValueError, match="win_size"):
        M.ssim(x, x, win_size=10)
    with pytest.raises(ValueError, match="win_size=11 exceeds"):
        M.ssim(x[:, :8, :8], x[:, :8, :8])
    with pytest.raises(ValueError, match="in_range=\\(0, 255\\)"):
        M.psnr(x.astype(np.uint8), x.astype(np.uint8))
    with pytest.raises(ValueError, match="data_range"):
        M.psnr(x, x, data_range=0)
    with pytest.raises(ValueError, match="reduction"):
        M.rmse(x, x, reduction="sum")
    with pytest.raises(ValueError, match="in_range"):
        M.ssim(x, x, in_range=(1, -1))
    with pytest.raises(ValueError, match="feature dims differ"):
        M.frechet_distance(np.zeros((5, 3)), np.zeros((5, 4)))
    with pytest.raises(ValueError, match="subset_size"):
        M.kid(np.zeros((5, 3)), np.zeros((6, 3)), subset_size=6)


# ------------------------------------------------------------------------------------------ features


def test_batched_features_pads_and_compiles_once():
    rng = np.random.default_rng(3)
    x = rng.uniform(-1, 1, (37, 16, 16, 1)).astype(np.float32)
    fn = FF.make_random_projection((16, 16, 1), dim=12, seed=0)
    traces = []

    def counted(images):
        traces.append(images.shape)  # runs once per trace, not per call
        return fn(images)

    out = M.batched_features(counted, x, batch_size=16)
    assert out.shape == (37, 12)
    assert traces == [(16, 16, 16, 1)]
    direct = np.asarray(fn(x))
    np.testing.assert_allclose(out, direct, rtol=1e-5, atol=1e-5)
    assert isinstance(fn, M.FeatureNet)
    with pytest.raises(ValueError, match="\\(batch, D\\)"):
        M.batched_features(lambda im: im, x, batch_size=8)


# ------------------------------------------------------------------------------------------ Fréchet


def test_frechet_self_zero_and_grows_with_blur():
    rng = np.random.default_rng(4)
    u = smooth_images(rng, (600, 16, 16, 1), sigma=1.0)
    fn = FF.make_random_projection((16, 16, 1), dim=32, seed=1)
    feats = lambda imgs: M.batched_features(fn, 2 * imgs - 1, batch_size=256)  # noqa: E731
    f0 = feats(u)
    assert abs(M.frechet_distance(f0, f0)) < 1e-8
    assert abs(M.frechet_distance(f0, f0, method="sqrtm")) < 1e-6
    d = [M.frechet_distance(f0, feats(gaussian_filter(u, sigma=(0, s, s, 0)))) for s in (0.5, 1.0, 2.0)]
    assert 0 < d[0] < d[1] < d[2]
    # Pixel features give the same ordering.
    p0 = FF.pixel_features(2 * u - 1)
    pd = [M.frechet_distance(p0, FF.pixel_features(2 * gaussian_filter(u, sigma=(0, s, s, 0)) - 1)) for s in (0.5, 2.0)]
    assert 0 < pd[0] < pd[1]


def random_rotation(rng, d):
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_frechet_closed_form_commuting_covariances(method):
    rng = np.random.default_rng(5)
    d = 6
    q = random_rotation(rng, d)
    la, lb = rng.uniform(0.1, 3.0, d), rng.uniform(0.1, 3.0, d)
    sa, sb = (q * la) @ q.T, (q * lb) @ q.T
    mu_a, mu_b = rng.standard_normal(d), rng.standard_normal(d)
    # Σ_a, Σ_b share eigenvectors: Tr(Σa + Σb − 2(ΣaΣb)^{1/2}) = Σ (√λa − √λb)².
    closed = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(la) - np.sqrt(lb)) ** 2)
    assert M.frechet_distance_from_stats(mu_a, sa, mu_b, sb, method=method) == pytest.approx(closed, rel=1e-9, abs=1e-9)


@pytest.mark.parametrize("method", ["eigh", "sqrtm"])
def test_frechet_closed_form_2d_noncommuting(method):
    rng = np.random.default_rng(6)
    a = rng.standard_normal((2, 2))
    b = rng.standard_normal((2, 2))
    sa, sb = a @ a.T + 0.1 * np.eye(2), b @ b.T + 0.1 * np.eye(2)
    assert np.abs(sa @ sb - sb @ sa).max() > 0.1
    # For a 2×2 matrix with positive eigenvalues, Tr √P = √(Tr P + 2 √det P).
    p = sa @ sb
    tr_sqrt = np.sqrt(np.trace(p) + 2 * np.sqrt(np.linalg.det(p)))
    mu_a, mu_b = np.array([0.3, -1.0]), np.array([1.0, 0.5])
    closed = np.sum((mu_a - mu_b) ** 2) + np.trace(sa) + np.trace(sb) - 2 * tr_sqrt
    assert M.frechet_distance_from_stats(mu_a, sa, mu_b, sb, method=method) == pytest.approx(closed, rel=1e-9)


def test_frechet_from_samples_approaches_closed_form():
    rng = np.random.default_rng(7)
    d, n = 3, 60000
    q = random_rotation(rng, d)
    la, lb = np.array([0.5, 1.0, 2.0]), np.array([1.5, 0.3, 1.0])
    mu_a, mu_b = np.zeros(d), np.array([0.5, -0.5, 0.0])
    xa = mu_a + (rng.standard_normal((n, d)) * np.sqrt(la)) @ q.T
    xb = mu_b + (rng.standard_normal((n, d)) * np.sqrt(lb)) @ q.T
    closed = np.sum((mu_a - mu_b) ** 2) + np.sum((np.sqrt(la) - np.sqrt(lb)) ** 2)
    mu, sig = M.feature_stats(xa)
    np.testing.assert_allclose(sig, np.cov(xa, rowvar=False), rtol=1e-10)
    assert M.frechet_distance(xa, xb) == pytest.approx(closed, abs=0.03)
    assert scipy.linalg.norm(mu - mu_a) < 0.02


# ------------------------------------------------------------------------------------------ KID


def test_kid_matches_explicit_double_sum():
    rng = np.random.default_rng(8)
    x, y = rng.standard_normal((30, 5)), rng.standard_normal((30, 5)) + 0.3
    m, d = 30, 5
    k = lambda p, q: (p @ q / d + 1.0) ** 3  # noqa: E731
    sxx = sum(k(x[i], x[j]) for i in range(m) for j in range(m) if i != j)
    syy = sum(k(y[i], y[j]) for i in range(m) for j in range(m) if i != j)
    sxy = sum(k(x[i], y[j]) for i in range(m) for j in range(m))
    ref = (sxx + syy) / (m * (m - 1)) - 2 * sxy / m**2
    r = M.kid(x, y, num_subsets=3, subset_size=m, seed=0)  # a full-size subset is a permutation: same value
    assert r.mean == pytest.approx(ref, rel=1e-10)
    assert r.std == pytest.approx(0.0, abs=1e-10)
    assert (r.num_subsets, r.subset_size) == (3, 30)


def _biased_mmd2(x, y):
    d = x.shape[1]
    k = lambda p, q: (p @ q.T / d + 1.0) ** 3  # noqa: E731
    return k(x, x).mean() + k(y, y).mean() - 2 * k(x, y).mean()


def test_kid_is_unbiased_under_the_null():
    # Independent draws of the same distribution: the full-sample MMD²_u has expectation exactly 0.
    rng = np.random.default_rng(9)
    n, d, reps = 60, 8, 60
    ours, biased = [], []
    for _ in range(reps):
        x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
        ours.append(M.kid(x, y, num_subsets=1, subset_size=n).mean)
        biased.append(_biased_mmd2(x, y))
    t = lambda v: np.mean(v) / (np.std(v, ddof=1) / np.sqrt(len(v)))  # noqa: E731
    assert abs(t(ours)) < 4.0
    assert t(biased) > 10.0  # the test has power: the V-statistic's bias is caught


def test_kid_subsets_null_and_alternative():
    rng = np.random.default_rng(10)
    n, d = 1000, 16
    x, y = rng.standard_normal((n, d)), rng.standard_normal((n, d))
    z = rng.standard_normal((n, d)) * 1.2 + 0.2
    same = M.kid(x, y, num_subsets=50, subset_size=200, seed=1)
    diff = M.kid(x, z, num_subsets=50, subset_size=200, seed=1)
    # Overlapping subsets: the mean's spread is that of the full-sample estimate, ≈ std · m/n,
    # plus std/√S for the subset sampling; allow 4 of each.
    tol = 4 * same.std * (200 / n + 1 / np.sqrt(50))
    assert abs(same.mean) < tol
    assert diff.mean > 10 * diff.std / np.sqrt(50) and diff.mean > 10 * abs(same.mean)
    assert M.kid(x, y, num_subsets=50, subset_size=200, seed=1) == same  # seeded


# ------------------------------------------------------------------------------------------ table cell, floor


def test_evaluate_pairs_consistent_with_parts():
    rng = np.random.default_rng(11)
    u = smooth_images(rng, (10, 16, 16, 1))
    v = noisy(rng, u, 0.15)
    a, b = (2 * u - 1).astype(np.float32), (2 * v - 1).astype(np.float32)
    fn = FF.make_random_projection((16, 16, 1), dim=4, seed=2)
    out = M.evaluate_pairs(a, b, fn, batch_size=4, kid_subsets=5)
    assert out["num_images"] == 10
    assert out["ssim"] == pytest.approx(sk_ssim(u, v).mean(), abs=1e-4)
    assert out["rmse"] == pytest.approx(np.sqrt(mean_squared_error(u, v)), abs=1e-6)
    psnr_ref = np.mean([peak_signal_noise_ratio(u[i], v[i], data_range=1.0) for i in range(len(u))])
    assert out["psnr"] == pytest.approx(psnr_ref, abs=1e-4)
    assert out["psnr_global"] == pytest.approx(peak_signal_noise_ratio(u, v, data_range=1.0), abs=1e-4)
    fa, fb = np.asarray(fn(a)), np.asarray(fn(b))
    assert out["frechet"] == pytest.approx(frechet64(fa, fb), rel=1e-4)
    assert out["feature_dim"] == 4 and out["kid_num_subsets"] == 5 and out["kid_subset_size"] == 10
    assert "frechet" not in M.evaluate_pairs(a, b)


def test_real_floor_reports_counts_and_is_below_a_real_gap():
    rng = np.random.default_rng(12)
    u = smooth_images(rng, (401, 16, 16, 1))
    fn = FF.make_random_projection((16, 16, 1), dim=8, seed=3)
    floor = M.real_floor(2 * u - 1, fn, kid_subsets=20)
    assert (floor["num_a"], floor["num_b"], floor["feature_dim"]) == (200, 200, 8)
    assert floor["kid_subset_size"] == 200 and floor["kid_num_subsets"] == 20
    # Same halves, features given directly: the same numbers.
    feats = M.batched_features(fn, 2 * u - 1)
    again = M.real_floor(feats, None, kid_subsets=20)
    assert again["frechet"] == pytest.approx(floor["frechet"], rel=1e-5)
    # A blurred set is farther from the real data than one real half is from the other.
    blurred = M.batched_features(fn, 2 * gaussian_filter(u, sigma=(0, 1.5, 1.5, 0)) - 1)
    perm = np.random.default_rng(0).permutation(401)
    gap = M.frechet_distance(feats[perm[:200]], blurred[perm[200:400]])
    assert 0 <= floor["frechet"] < gap / 3
