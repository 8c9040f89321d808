"""Class conditioning: the UNet's label embedding, labels from every labelled source, label dropout, the config
and data errors, and a conditioned cold process."""
import os
import runpy

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from PIL import Image

from jaxdiff.config import ConfigError, validate_config
from jaxdiff.data import DataError, check_labels, load_source
from jaxdiff.models.unet import UNet, param_count
from jaxdiff.train.step import drop_labels

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
S, C, CH = 8, 1, 8


def _unet(num_classes=0):
    return UNet(out_channels=C, ch=CH, ch_mult=(1, 2), num_groups=4, num_classes=num_classes, image_size=S,
                in_channels=C)


def _shapes(model):
    """The parameter tree's shapes, traced abstractly (no compile)."""
    x, t = jnp.zeros((1, S, S, C)), jnp.zeros((1,), jnp.int32)
    return jax.eval_shape(model.init, {"params": jax.random.PRNGKey(0)}, x, t)["params"]


_JITTED = {}


def _apply(model, params, x, t, labels=None):
    """model.apply under jit, one program per (model, with labels) (eager flax dispatches op by op: slow on CPU)."""
    key = (model, labels is None)
    if key not in _JITTED:
        _JITTED[key] = (jax.jit(lambda p, x, t: model.apply({"params": p}, x, t)) if labels is None
                        else jax.jit(lambda p, x, t, c: model.apply({"params": p}, x, t, c)))
    args = (params, x, t) if labels is None else (params, x, t, labels)
    return np.asarray(_JITTED[key](*args))


def _randomize(params, seed=1):
    """Every leaf random (shapes from ``params``; a fresh UNet zeroes its last convs, so it would ignore the
    embedding)."""
    rng = np.random.default_rng(seed)  # drawn on the host: one eager jax.random call per leaf shape compiles
    return jax.tree.map(lambda a: jnp.asarray(0.3 * rng.standard_normal(a.shape), jnp.float32), params)


def _inputs(B=4, seed=2):
    x = jax.random.normal(jax.random.PRNGKey(seed), (B, S, S, C))
    return x, jnp.arange(1, B + 1, dtype=jnp.int32) * 7


def test_unconditional_unet_has_no_new_parameter_and_matches_a_zero_embedding():
    p0, p3 = _shapes(_unet(0)), _shapes(_unet(3))
    assert "label_embed" not in p0
    assert set(p3) == set(p0) | {"label_embed"}
    assert p3["label_embed"]["embedding"].shape == (3 + 1, 4 * CH)  # one row per class + the null label
    assert param_count(p3) == param_count(p0) + 4 * 4 * CH
    same = {k: v for k, v in p3.items() if k != "label_embed"}  # every other parameter keeps its name and shape
    assert jax.tree.structure(same) == jax.tree.structure(p0)
    assert [a.shape for a in jax.tree.leaves(same)] == [a.shape for a in jax.tree.leaves(p0)]
    # a conditional UNet whose embedding is zero computes the unconditional function, for any label
    p0 = _randomize(p0)
    pz = dict(p0, label_embed={"embedding": jnp.zeros((4, 4 * CH))})
    x, t = _inputs()
    ref = _apply(_unet(0), p0, x, t)
    for labels in (None, jnp.array([0, 1, 2, 3])):
        np.testing.assert_array_equal(_apply(_unet(3), pz, x, t, labels), ref)


def test_label_changes_the_output_and_none_is_the_null_label():
    model = _unet(3)
    p = _randomize(_shapes(model))
    x, t = _inputs()
    out = {c: _apply(model, p, x, t, jnp.full((4,), c, jnp.int32)) for c in range(4)}
    for a in range(4):
        for b in range(a + 1, 4):
            assert np.abs(out[a] - out[b]).max() > 1e-3
    np.testing.assert_array_equal(_apply(model, p, x, t), out[3])  # None → null row 3
    mixed = _apply(model, p, x, t, jnp.array([0, 1, 2, 3]))
    for i in range(4):  # per-example labels: row i sees label i only
        np.testing.assert_allclose(mixed[i], out[i][i], rtol=1e-5, atol=1e-5)


def test_unet_label_errors():
    x, t = _inputs()
    with pytest.raises(ValueError, match="num_classes=0"):
        _apply(_unet(0), _randomize(_shapes(_unet(0))), x, t, jnp.zeros((4,), jnp.int32))
    p = _randomize(_shapes(_unet(3)))
    with pytest.raises(ValueError, match="labels: dtype"):
        _apply(_unet(3), p, x, t, jnp.zeros((4,), jnp.float32))
    with pytest.raises(ValueError, match=r"labels: shape \(3,\)"):
        _apply(_unet(3), p, x, t, jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match="model.num_classes=-1"):
        _unet(-1)


def test_label_dropout_rate_is_binomial_and_deterministic():
    n, rate, null = 200_000, 0.1, 10
    labels = jnp.asarray(np.arange(n) % 10, jnp.int32)
    key = jax.random.PRNGKey(3)
    out = np.asarray(drop_labels(key, labels, rate, null))
    dropped = out == null
    sd = np.sqrt(n * rate * (1 - rate))
    assert abs(dropped.sum() - n * rate) < 5 * sd  # ±5σ of Binomial(n, 0.1)
    np.testing.assert_array_equal(out[~dropped], np.asarray(labels)[~dropped])  # the rest keep their label
    for c in range(10):  # no class is dropped more than another (±5σ per class)
        k = np.asarray(labels) == c
        assert abs(dropped[k].sum() - k.sum() * rate) < 5 * np.sqrt(k.sum() * rate * (1 - rate))
    np.testing.assert_array_equal(np.asarray(drop_labels(key, labels, rate, null)), out)
    assert not np.array_equal(np.asarray(drop_labels(jax.random.PRNGKey(4), labels, rate, null)), out)
    assert not (np.asarray(drop_labels(key, labels, 0.0, null)) == null).any()


# --- labels from the data sources ---------------------------------------------------------------


def test_digits_labels_are_sklearns_targets():
    from sklearn.datasets import load_digits

    d = load_digits()
    src = load_source("digits:all", split="train", image_size=8, channels=1)
    np.testing.assert_array_equal(src.labels, d.target)
    np.testing.assert_array_equal(src.images[..., 0], np.rint(d.images * 255 / 16).astype(np.uint8))
    train = load_source("digits", split="train", image_size=8, channels=1)
    assert set(np.unique(train.labels)) == set(range(10))
    five = load_source("digits:classes=5-9", split="train", image_size=8, channels=1)
    assert five.labels.min() == 5 and five.labels.max() == 9


def test_npz_labels_single_and_split_layout(tmp_path):
    rng = np.random.default_rng(0)
    x = rng.integers(0, 256, (6, 8, 8), dtype=np.uint8)
    y = np.array([0, 2, 1, 2, 0, 1])
    np.savez(tmp_path / "one.npz", images=x, labels=y)
    np.testing.assert_array_equal(load_source(f"npz:{tmp_path}/one.npz", split="train", image_size=8,
                                              channels=1).labels, y)
    np.savez(tmp_path / "split.npz", train=x, train_labels=y, test=x[:2], test_labels=y[:2] + 3)
    np.testing.assert_array_equal(load_source(f"npz:{tmp_path}/split.npz", split="test", image_size=8,
                                              channels=1).labels, [3, 5])
    np.savez(tmp_path / "none.npz", images=x)
    src = load_source(f"npz:{tmp_path}/none.npz", split="train", image_size=8, channels=1)
    assert src.labels is None
    with pytest.raises(DataError, match=r"model.num_classes=10 needs labels.*data.source='npz:"):
        check_labels(src, 10, source_string=f"npz:{tmp_path}/none.npz")


def test_folder_class_directories_are_labels(tmp_path):
    for cls, n in (("3", 2), ("7", 3)):
        os.makedirs(tmp_path / "train" / cls)
        for i in range(n):
            Image.fromarray(np.full((8, 8), 40 * i, np.uint8)).save(tmp_path / "train" / cls / f"{i}.png")
    src = load_source(f"folder:{tmp_path}", split="train", image_size=8, channels=1)
    np.testing.assert_array_equal(np.sort(src.labels), [3, 3, 7, 7, 7])
    np.testing.assert_array_equal(check_labels(src, 8, source_string="folder"), src.labels)
    with pytest.raises(DataError, match=r"model.num_classes=5: data.source='folder' has labels 3 … 7; allowed: 0 … 4"):
        check_labels(src, 5, source_string="folder")
    os.makedirs(tmp_path / "named" / "cat")
    os.makedirs(tmp_path / "named" / "dog")
    for d in ("cat", "dog"):
        Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "named" / d / "a.png")
    named = load_source(f"folder:{tmp_path}/named", split="train", image_size=8, channels=1)
    assert list(named.labels) == [0, 1] and named.class_names == ("cat", "dog")


def test_tfds_labels_through_the_mock():
    from tensorflow_datasets.testing import MockPolicy

    from tests.tfds_mock import mock_data

    with mock_data(num_examples=12, policy=MockPolicy.USE_CODE):
        src = load_source("tfds:mnist", split="train", image_size=8, channels=1)
        labels = src.labels
        ref = [int(ex["label"]) for ex in (src._ds[i] for i in range(len(src)))]
    assert labels.dtype == np.int32 and labels.shape == (12,)
    np.testing.assert_array_equal(labels, ref)
    assert labels.min() >= 0 and labels.max() < 10


def test_batcher_delivers_the_labels_of_its_images():
    from jaxdiff.data import Batcher, normalize

    src = load_source("digits", split="train", image_size=8, channels=1)
    b = Batcher(src, global_batch_size=16, seed=0, process_index=0, process_count=1, with_labels=True)
    x, y = b.batch(3)
    idx = b.indices(3)
    np.testing.assert_array_equal(y, src.labels[idx])
    np.testing.assert_array_equal(x, normalize(src.images[idx]))


# --- config -------------------------------------------------------------------------------------


def _config(**model):
    c = runpy.run_path(os.path.join(ROOT, "configs", "ddim_cond.py"))["get_config"]()
    for k, v in model.items():
        setattr(c.model, k, v)
    return c


def test_ddim_cond_config_validates_and_bad_conditioning_is_one_message():
    c = _config()
    validate_config(c, num_devices=1)
    assert c.model.num_classes == 10 and c.train.label_dropout == 0.1
    c.data.source, c.data.channels = "photos", 3
    with pytest.raises(ConfigError, match=r"model.num_classes=10 is invalid.*data.source='photos'.*no labels"):
        validate_config(c, num_devices=1)
    with pytest.raises(ConfigError, match=r"model.num_classes=5 is invalid.*data.source='digits' has label 9"):
        validate_config(_config(num_classes=5), num_devices=1)
    c = _config(num_classes=5)
    c.data.source = "digits:classes=0-4"
    validate_config(c, num_devices=1)
    for field, value in (("train.label_dropout", 1.0), ("sample.guidance", -1.0), ("model.num_classes", -2)):
        c = _config()
        section, key = field.split(".")
        setattr(c[section], key, value)
        with pytest.raises(ConfigError, match=rf"{field}={value}"):
            validate_config(c, num_devices=1)


def test_an_older_stored_config_loads_unconditional():
    from jaxdiff.config.upgrade import upgrade_stored_config

    stored = runpy.run_path(os.path.join(ROOT, "configs", "ddim.py"))["get_config"]().to_dict()
    del stored["model"]["num_classes"], stored["train"]["label_dropout"], stored["sample"]["guidance"]
    c = upgrade_stored_config(stored)
    assert c.model.num_classes == 0 and c.train.label_dropout == 0.1 and c.sample.guidance == 0.0
    validate_config(c, num_devices=1)


# --- a conditioned cold process -----------------------------------------------------------------


def test_cold_restoration_given_a_label():
    """Restoration runs the same UNet path: the label reaches every step, the null label is the plain model."""
    from jaxdiff.degradations import make_degradation
    from jaxdiff.processes import ColdProcess
    from jaxdiff.sampling import guidance, restoration

    process = ColdProcess(make_degradation("blur", T=4, image_size=S, channels=C, kernel_size=3, std=1.0))
    model = _unet(3)
    p = _randomize(_shapes(model))
    x_t = jax.random.uniform(jax.random.PRNGKey(5), (4, S, S, C), minval=-1, maxval=1)

    def plain(params, x, t):
        return model.apply({"params": params}, x, t)

    def run(denoiser, params):
        out = restoration.restore(denoiser, params, x_t, process=process, key=jax.random.PRNGKey(0), severity=4,
                                  correctors=("cold_improved",), prediction="x0", clip=None, steps=None)
        return np.asarray(out["cold_improved"])

    base = run(plain, p)
    cond = guidance.conditional_denoiser(model)
    np.testing.assert_allclose(run(cond, (p, jnp.full((4,), 3, jnp.int32))), base, rtol=1e-5, atol=1e-5)
    with_label = run(cond, (p, jnp.array([0, 1, 2, 0], jnp.int32)))
    assert np.abs(with_label - base).max() > 1e-3
    g, gp = guidance.guided_params(model, p, jnp.array([0, 1, 2, 0], jnp.int32), 2.0)
    assert np.abs(run(g, gp) - with_label).max() > 1e-3


# --- end to end ---------------------------------------------------------------------------------


@pytest.mark.slow
def test_train_a_tiny_conditional_model_then_sample_a_row_per_label(tmp_path):
    from jaxdiff import cli
    from jaxdiff.cli.options import UsageError
    from jaxdiff.train.loop import train_and_evaluate

    c = _config(ch=8, ch_mult=(1,), num_groups=4)
    t = c.train
    t.batch_size, t.num_steps, t.checkpoint_every, t.log_every, t.warmup_steps = 16, 3, 3, 1, 0
    t.num_sample_images = 0
    wd = str(tmp_path / "run")
    state = train_and_evaluate(c, wd)
    assert int(state.step) == 3 and state.params["label_embed"]["embedding"].shape == (11, 32)
    files = cli.run(workdir=wd, labels="0-2", num=6, steps=2, guidance=1.0, frames=0)
    assert os.path.basename(files["grid"]) == "generate_step3_ddim_2steps_labels0-2_w1_n6.png"
    with np.load(files["npz"]) as z:
        np.testing.assert_array_equal(z["labels"], [0, 0, 1, 1, 2, 2])
        assert z["samples"].shape == (6, 16, 16, 1) and np.isfinite(z["samples"]).all()
    with Image.open(files["grid"]) as im:
        assert im.size[0] < im.size[1] * 2  # 2 columns × 3 rows of tiles, not one long row
    with pytest.raises(UsageError, match=r"--label=10: label 10 does not exist; allowed: 0 … 9"):
        cli.run(workdir=wd, label=10, num=2, steps=2)
