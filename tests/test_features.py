"""The shipped digits feature network: loads without pickle, classifies held-out digits, gives stable features."""
import importlib.resources
import importlib.util
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from jaxdiff import data
from jaxdiff.evaluation import features

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
SCRIPT = os.path.join(REPO, "scripts", "train_feature_net.py")


@pytest.fixture(scope="module")
def clf():
    return features.load_digits_classifier()


@pytest.fixture(scope="module")
def test_digits():
    src = data.load_source("digits", split="test", image_size=features.IMAGE_SIZE, channels=1)
    return data.normalize(src.images), src.labels


def test_shipped_weights_are_a_small_plain_npz():
    res = importlib.resources.files("jaxdiff").joinpath(features.WEIGHTS_FILE)
    assert res.is_file()
    with res.open("rb") as fh:
        blob = fh.read()
    assert len(blob) < 500 * 1024
    with res.open("rb") as fh, np.load(fh, allow_pickle=False) as f:  # raises if anything needs pickle
        arrays = {k: f[k] for k in f.files}
    assert all(a.dtype != object for a in arrays.values())
    assert any(k.startswith("params/") for k in arrays)


def test_held_out_accuracy(clf, test_digits):
    x, y = test_digits
    assert x.shape == (180, 16, 16, 1)  # the fixed 10 % of jaxdiff.data, never seen in training
    acc = float(np.mean(clf.predict(x) == y))
    assert acc >= 0.95, acc
    # the accuracy the training script recorded is the one we measure
    np.testing.assert_allclose(acc, float(clf.meta["test_accuracy"]), atol=1e-6)


def test_features_shape_deterministic_and_batch_independent(clf, test_digits):
    x = test_digits[0]
    fn = features.load_digits_feature_fn()
    f1 = fn(x)
    assert f1.shape == (180, features.FEATURE_DIM) and f1.dtype == np.float32
    assert np.all(np.isfinite(f1))
    np.testing.assert_array_equal(fn(x), f1)
    # chunking and padding do not change a row: with 64-image chunks the 180 images cross chunk
    # boundaries and the last chunk is padded
    small = features.DigitsClassifier(params=clf.params, batch_size=64)
    np.testing.assert_allclose(small.features(x), f1, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(fn(x[7:9]), f1[7:9], rtol=1e-5, atol=1e-5)
    # features are not degenerate: every dimension varies over real digits
    assert np.all(f1.std(axis=0) > 0)


def test_features_cluster_by_class(clf, test_digits):
    # Fréchet distance compares feature distributions, so the features themselves (not only the logits)
    # must carry the class: nearest class centroid (centroids from the train split) on held-out digits.
    src = data.load_source("digits", split="train", image_size=features.IMAGE_SIZE, channels=1)
    ft, yt = clf.features(data.normalize(src.images)), src.labels
    centroids = np.stack([ft[yt == k].mean(0) for k in range(10)])
    x, y = test_digits
    fe = clf.features(x)
    pred = np.argmin(((fe[:, None, :] - centroids[None]) ** 2).sum(-1), axis=1)
    assert np.mean(pred == y) >= 0.95


def test_small_shifts_keep_the_class(clf, test_digits):
    # trained with shifts of up to 2 px: a 1-px shift of every held-out digit keeps the accuracy
    x, y = test_digits
    shifted = np.concatenate([x[:, 1:], np.full_like(x[:, :1], -1.0)], axis=1)
    assert np.mean(clf.predict(shifted) == y) >= 0.95


def test_rgb_and_other_sizes(test_digits):
    fn = features.load_digits_feature_fn()
    x = test_digits[0][:20]
    # 3 equal channels → their mean is the grey image
    np.testing.assert_allclose(fn(np.repeat(x, 3, axis=-1)), fn(x), rtol=1e-5, atol=1e-5)
    # 32×32 inputs are resized to 16×16 inside; a nearest-up-sampled digit keeps its class
    big = np.repeat(np.repeat(x, 2, axis=1), 2, axis=2)
    assert fn(big).shape == (20, features.FEATURE_DIM)
    clf = features.load_digits_classifier()
    assert np.mean(clf.predict(big) == clf.predict(x)) >= 0.9


@pytest.mark.parametrize(
    "shape, dtype, match",
    [((4, 16, 16), np.float32, "NHWC"), ((4, 16, 16, 2), np.float32, "channels"), ((4, 16, 16, 1), np.uint8, "dtype")],
)
def test_bad_input_raises(shape, dtype, match):
    with pytest.raises(ValueError, match=match):
        features.load_digits_feature_fn()(np.zeros(shape, dtype))


def test_weights_round_trip_is_byte_reproducible(clf, tmp_path):
    a, b = tmp_path / "a.npz", tmp_path / "b.npz"
    features.save_weights_npz(a, clf.params, {"note": "x", "acc": 0.5})
    features.save_weights_npz(b, clf.params, {"note": "x", "acc": 0.5})
    assert a.read_bytes() == b.read_bytes()
    params, meta = features.load_weights_npz(a)
    flat = jax.tree_util.tree_leaves_with_path(params)
    ref = dict(jax.tree_util.tree_leaves_with_path(clf.params))
    assert len(flat) == len(ref)
    for path, leaf in flat:
        np.testing.assert_array_equal(leaf, ref[path])
    assert str(meta["note"]) == "x" and float(meta["acc"]) == 0.5
    # a loaded copy classifies identically
    other = features.load_digits_classifier(a)
    z = np.zeros((2, 16, 16, 1), np.float32)
    np.testing.assert_array_equal(other.logits(z), clf.logits(z))


def test_mismatched_weights_are_rejected(tmp_path):
    bad = tmp_path / "bad.npz"
    features.save_weights_npz(bad, {"Dense_0": {"kernel": np.zeros((3, 3))}})
    with pytest.raises(ValueError, match="DigitsCNN"):
        features.load_digits_classifier(bad)


def test_training_script_cli():
    spec = importlib.util.spec_from_file_location("train_feature_net", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    args = mod.parse_args(["--steps", "10", "--out", "/tmp/x.npz"])
    assert args.steps == 10 and args.out == "/tmp/x.npz" and args.seed == 0
    assert args.out != mod.DEFAULT_OUT and mod.DEFAULT_OUT.endswith(os.path.join("jaxdiff", "assets", "digits_classifier.npz"))
    with pytest.raises(SystemExit):
        mod.parse_args(["--steps", "0"])
    out = subprocess.run([sys.executable, SCRIPT, "--help"], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0 and "--steps" in out.stdout and "--seed" in out.stdout


# --------------------------------------------------------------------------------------------
# which feature net evaluate uses
# --------------------------------------------------------------------------------------------


def test_digits_use_the_shipped_net_without_a_note(tmp_path):
    for source in ("digits", "digits:classes=0-4"):
        choice = features.select_feature_net(str(tmp_path), source)
        assert choice.path is None and choice.note == "" and "digits_classifier" in choice.name


def test_other_data_without_a_stored_net_says_so(tmp_path):
    choice = features.select_feature_net(str(tmp_path), "tfds:fashion_mnist")
    assert choice.path is None and "digits_classifier" in choice.name
    assert "no feature_net.npz in the workdir" in choice.note
    assert "trained on scikit-learn's digits, not on 'tfds:fashion_mnist'" in choice.note
    assert f"scripts/train_feature_net.py --config=<config file> --workdir={tmp_path}" in choice.note


def test_a_net_stored_with_the_workdir_wins(clf, tmp_path):
    stored = tmp_path / features.FEATURE_NET_FILE
    features.save_weights_npz(stored, clf.params, {"source": "tfds:fashion_mnist", "num_classes": 10})
    choice = features.select_feature_net(str(tmp_path), "tfds:fashion_mnist")
    assert choice.path == str(stored) and choice.note == ""
    assert "trained on tfds:fashion_mnist, 10 classes" in choice.name
    # also for digits: the workdir's own net is the one asked for
    other = features.select_feature_net(str(tmp_path), "digits")
    assert other.path == str(stored)
    assert "was trained on tfds:fashion_mnist, not on the evaluated source 'digits'" in other.note


def test_training_script_with_a_config_stores_the_net_in_the_workdir(tmp_path):
    """A short real training on a 5-class source read through a config file: the net lands in
    <workdir>/feature_net.npz with its source and class count, and evaluate's selection loads it."""
    cfg = tmp_path / "five.py"
    cfg.write_text(
        "import runpy, os\n"
        f"_ddim = runpy.run_path({os.path.join(REPO, 'configs', 'ddim.py')!r})\n"
        "def get_config():\n"
        "    c = _ddim['get_config']()\n"
        "    c.data.source = 'digits:classes=0-4'\n"
        "    return c\n")
    wd = tmp_path / "wd"
    out = subprocess.run([sys.executable, SCRIPT, f"--config={cfg}", f"--workdir={wd}", "--steps", "300"],
                         capture_output=True, text=True, timeout=300, cwd=REPO)
    assert out.returncode == 0, out.stderr[-2000:]
    stored = wd / features.FEATURE_NET_FILE
    assert out.stdout.strip().splitlines()[-1].startswith(f"wrote {stored}")
    _, meta = features.load_weights_npz(stored)
    assert str(meta["source"]) == "digits:classes=0-4" and int(meta["num_classes"]) == 5
    choice = features.select_feature_net(str(wd), "digits:classes=0-4")
    assert choice.path == str(stored) and choice.note == ""
    net = features.load_digits_classifier(choice.path)
    src = data.load_source("digits:classes=0-4", split="test", image_size=16, channels=1)
    x = data.normalize(src.images)
    assert net.logits(x).shape == (x.shape[0], 5)
    acc = float(np.mean(net.predict(x) == src.labels))
    np.testing.assert_allclose(acc, float(meta["test_accuracy"]), atol=1e-6)
    assert acc > 0.5  # five classes: chance is 0.2


def test_training_script_refuses_workdir_without_config():
    spec = importlib.util.spec_from_file_location("train_feature_net", SCRIPT)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with pytest.raises(SystemExit):
        mod.parse_args(["--workdir", "/tmp/w"])
    a = mod.parse_args(["--config", "configs/ddim.py:mnist"])
    assert a.out == os.path.join("workdirs", "ddim_mnist", "feature_net.npz")
    assert mod.parse_args([]).out == mod.DEFAULT_OUT
