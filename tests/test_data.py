"""Data sources, seeded resumable per-process batches, and device placement (jaxdiff/data.py)."""
import logging
import socket
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import AxisType, NamedSharding, PartitionSpec as P
from PIL import Image

import tfds_mock
from jaxdiff import data
from jaxdiff.data import ArraySource, Batcher, DataError, iterate_batches, load_source


def _digits_raw_u8():
    from sklearn.datasets import load_digits

    d = load_digits()
    return np.rint(d.images * (255 / 16)).astype(np.uint8), d.target


def _indexed_source(n, size=4):
    """n distinct, left-right asymmetric images: pixel (r, c) of image i = i + 10·c (mod 256); label i."""
    img = (np.arange(n)[:, None, None] + np.arange(size)[None, None, :] * 10 + np.zeros((1, size, 1), int))
    return ArraySource((img % 256).astype(np.uint8)[..., None], np.arange(n), "indexed")


def _ids(batch):
    """Recovers the example ids of un-flipped batches of :func:`_indexed_source`."""
    return np.rint(data.denormalize(batch)[:, 0, 0, 0]).astype(int)


# ---------------------------------------------------------------------------------------------- digits


def test_digits_split_is_a_fixed_partition_of_all_1797_images():
    raw, target = _digits_raw_u8()
    tr = load_source("digits", split="train", image_size=8, channels=1)
    te = load_source("digits", split="test", image_size=8, channels=1)
    assert tr.images.shape == (1617, 8, 8, 1) and te.images.shape == (180, 8, 8, 1)
    assert tr.images.dtype == np.uint8
    # train ∪ test is the whole set (as a multiset of (image, label) rows), so they are disjoint
    def rows(imgs, labels):
        return sorted(map(bytes, np.concatenate([imgs.reshape(len(imgs), -1), labels[:, None].astype(np.uint8)], 1)))
    both = rows(np.concatenate([tr.images[..., 0], te.images[..., 0]]), np.concatenate([tr.labels, te.labels]))
    assert both == rows(raw, target)
    # deterministic and independent of anything a config seeds
    again = load_source("digits:test", split="train", image_size=8, channels=1)  # the string's split wins
    np.testing.assert_array_equal(again.images, te.images)
    np.testing.assert_array_equal(again.labels, te.labels)


def test_digits_resize_matches_an_independent_bilinear_reference():
    raw, _ = _digits_raw_u8()
    allv = load_source("digits:all", split="train", image_size=16, channels=1)
    assert allv.images.shape == (1797, 16, 16, 1)
    ref = jax.image.resize(jnp.asarray(raw[:50, ..., None], jnp.float32), (50, 16, 16, 1), "linear",
                           antialias=False)
    diff = np.abs(allv.images[:50].astype(np.float32) - np.asarray(ref))
    assert diff.max() <= 1.0  # rounding only
    b = Batcher(allv, global_batch_size=256, seed=0, process_count=1, process_index=0).batch(0)
    assert b.dtype == np.float32 and b.shape == (256, 16, 16, 1)
    assert b.min() == -1.0 and b.max() == 1.0  # digits use the whole 0‥16 range


def test_digits_classes_filter():
    full = load_source("digits", split="train", image_size=8, channels=1)
    sub = load_source("digits:train:classes=0-4", split="test", image_size=8, channels=1)
    assert set(np.unique(sub.labels)) == {0, 1, 2, 3, 4}
    assert len(sub) == int(np.sum(full.labels < 5))
    np.testing.assert_array_equal(sub.images, full.images[full.labels < 5])
    odd = load_source("digits:classes=1,3,7-8", split="test", image_size=8, channels=1)
    assert set(np.unique(odd.labels)) == {1, 3, 7, 8}
    assert data.parse_classes("0-2,7") == (0, 1, 2, 7)
    for bad in ("digits:classes=4-1", "digits:classes=a", "digits:classes=42"):
        with pytest.raises(DataError, match="classes"):
            load_source(bad, split="train", image_size=8, channels=1)


def test_bad_source_strings_and_channel_mismatch():
    with pytest.raises(DataError, match="unknown source kind 'mnist'"):
        load_source("mnist", split="train", image_size=8, channels=1)
    with pytest.raises(DataError, match="unknown option 'foo'"):
        load_source("digits:foo=1", split="train", image_size=8, channels=1)
    with pytest.raises(DataError, match="no split 'valid'"):
        load_source("digits", split="valid", image_size=8, channels=1)
    with pytest.raises(DataError, match=r"data\.channels=3 .*1 channel"):
        load_source("digits", split="train", image_size=8, channels=3)
    with pytest.raises(ValueError, match=r"data\.image_size=0"):
        load_source("digits", split="train", image_size=0, channels=1)



def test_parse_source_splits_kind_target_split_and_options():
    spec = data.parse_source("tfds:mnist:3.0.1:train[:90%]:classes=0-4:data_dir=/d", "data.end_source")
    assert (spec.kind, spec.target, spec.split) == ("tfds", "mnist:3.0.1", "train[:90%]")
    assert spec.options == {"classes": "0-4", "data_dir": "/d"}
    spec = data.parse_source("folder:/a:b/c")
    assert (spec.kind, spec.target, spec.split, spec.options) == ("folder", "/a:b/c", None, {})
    assert data.parse_source("digits:test").split == "test"
    assert set(data.SOURCES) == {"digits", "tfds", "folder", "npz", "photos"}
    with pytest.raises(DataError, match=r"data\.end_source='tfds:': expected 'tfds:<name>"):
        data.parse_source("tfds:", "data.end_source")


def test_parse_classes_names_the_bad_part():
    assert data.parse_classes("7, 22-24") == (7, 22, 23, 24)
    with pytest.raises(DataError, match=r"classes='1,4-2': bad part '4-2'.*'0-2,7'"):
        data.parse_classes("1,4-2")
    with pytest.raises(DataError, match=r"classes='x'"):
        data.parse_classes("x")


# --------------------------------------------------------------------------------------------- batches


def test_each_epoch_is_a_permutation_and_epochs_differ():
    src = _indexed_source(12)
    b = Batcher(src, global_batch_size=4, seed=3, process_index=0, process_count=1)
    ep0 = np.concatenate([_ids(b.batch(s)) for s in range(3)])
    ep1 = np.concatenate([_ids(b.batch(s)) for s in range(3, 6)])
    assert sorted(ep0) == list(range(12)) and sorted(ep1) == list(range(12))
    assert not np.array_equal(ep0, ep1)
    other_seed = np.concatenate([_ids(Batcher(src, global_batch_size=4, seed=4, process_index=0,
                                              process_count=1).batch(s)) for s in range(3)])
    assert not np.array_equal(ep0, other_seed)


def test_resuming_at_step_s_reproduces_the_uninterrupted_batches():
    src = _indexed_source(10)  # batch 4 over 10 examples: batches straddle epoch boundaries
    kw = dict(global_batch_size=4, seed=11, process_index=0, process_count=1, random_flip=True)
    it = iterate_batches(src, **kw)
    uninterrupted = [next(it) for _ in range(9)]
    resumed = iterate_batches(src, start_step=5, **kw)
    for s in range(5, 9):
        np.testing.assert_array_equal(next(resumed), uninterrupted[s])
    # a batch spanning more than one epoch (B > N) is still a full, valid batch
    big = Batcher(_indexed_source(3), global_batch_size=8, seed=0, process_index=0, process_count=1).batch(0)
    ids = _ids(big)
    assert sorted(ids[:6]) == [0, 0, 1, 1, 2, 2]


def test_two_processes_together_give_the_single_process_global_batch():
    src = load_source("digits", split="train", image_size=8, channels=1)
    kw = dict(global_batch_size=16, seed=5, random_flip=True, with_labels=True)
    for step in (0, 7, 250):  # 250·16 > 1617: a later epoch
        x, y = Batcher(src, process_index=0, process_count=1, **kw).batch(step)
        parts = [Batcher(src, process_index=p, process_count=2, **kw).batch(step) for p in (0, 1)]
        assert parts[0][0].shape == (8, 8, 8, 1)
        np.testing.assert_array_equal(np.concatenate([p[0] for p in parts]), x)
        np.testing.assert_array_equal(np.concatenate([p[1] for p in parts]), y)
    with pytest.raises(ValueError, match=r"train\.batch_size=10 .*processes \(4\)"):
        Batcher(src, global_batch_size=10, seed=0, process_index=0, process_count=4)


def test_flip_is_deterministic_per_image_and_mirrors_only():
    src = _indexed_source(64)
    kw = dict(global_batch_size=64, seed=2, process_index=0, process_count=1)
    plain = Batcher(src, **kw).batch(3)
    flipper = Batcher(src, random_flip=True, **kw)
    flipped = flipper.batch(3)
    np.testing.assert_array_equal(flipped, Batcher(src, random_flip=True, **kw).batch(3))
    mask = flipper.flips(3)
    np.testing.assert_array_equal(flipped[mask], plain[mask, :, ::-1])
    np.testing.assert_array_equal(flipped[~mask], plain[~mask])
    assert 16 < mask.sum() < 48  # per image, not per batch (P(fail) ≈ 1e-4 for a fair coin; seed fixed)
    assert not np.array_equal(mask, flipper.flips(4))


# ---------------------------------------------------------------------------------------------- folder


def _png(path, arr):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path)


def test_folder_source_converts_resizes_crops_and_skips_corrupt_files(tmp_path, caplog):
    grey = np.full((20, 30), 90, np.uint8)  # grey, landscape
    rgb = np.zeros((24, 24, 3), np.uint8)
    rgb[...] = (200, 100, 50)
    wide = np.zeros((16, 40, 3), np.uint8)  # white center 16 columns, black margins: the crop keeps the center
    wide[:, 12:28] = 255
    _png(tmp_path / "0" / "a.png", grey)
    _png(tmp_path / "1" / "b.png", rgb)
    Image.fromarray(wide).save(tmp_path / "1" / "c.jpg", quality=100)
    (tmp_path / "1" / "broken.png").write_bytes(b"\x89PNG not really")
    (tmp_path / "1" / "notes.txt").write_text("ignored")

    with caplog.at_level(logging.WARNING):
        s3 = load_source(f"folder:{tmp_path}", split="train", image_size=16, channels=3)
    assert "broken.png" in caplog.text
    assert s3.images.shape == (3, 16, 16, 3)
    np.testing.assert_array_equal(s3.labels, [0, 1, 1])
    assert np.all(s3.images[0] == 90)  # grey → RGB by repetition
    assert np.all(s3.images[1] == (200, 100, 50))
    assert s3.images[2].min() >= 250  # center crop of the wide image (JPEG ± a few levels)

    s1 = load_source(f"folder:{tmp_path}:classes=1", split="train", image_size=16, channels=1)
    assert s1.images.shape == (2, 16, 16, 1)
    luma = 0.299 * 200 + 0.587 * 100 + 0.114 * 50
    assert np.all(np.abs(s1.images[0].astype(float) - luma) <= 1)


def test_folder_split_subdirectory_and_errors(tmp_path):
    _png(tmp_path / "train" / "x.png", np.zeros((8, 8), np.uint8))
    _png(tmp_path / "test" / "y.png", np.full((8, 8), 255, np.uint8))
    te = load_source(f"folder:{tmp_path}", split="test", image_size=8, channels=1)
    assert len(te) == 1 and te.images.max() == 255
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match=str(tmp_path / "empty")):
        load_source(f"folder:{tmp_path / 'empty'}", split="train", image_size=8, channels=1)
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "z.png").write_bytes(b"nope")
    with pytest.raises(DataError, match="could be read"):
        load_source(f"folder:{tmp_path / 'junk'}", split="train", image_size=8, channels=1)
    with pytest.raises(DataError, match="not a directory"):
        load_source(f"folder:{tmp_path / 'missing'}", split="train", image_size=8, channels=1)


# ------------------------------------------------------------------------------------------------- npz


def test_npz_uint8_and_float_ranges_give_the_same_images(tmp_path):
    rng = np.random.default_rng(0)
    u8 = rng.integers(0, 256, size=(5, 12, 12, 3), dtype=np.uint8)
    np.savez(tmp_path / "u8.npz", images=u8, labels=np.arange(5))
    np.save(tmp_path / "f01.npy", (u8 / 255.0).astype(np.float32))
    np.savez(tmp_path / "fpm.npz", whatever=(u8 / 127.5 - 1.0))
    ref = load_source(f"npz:{tmp_path / 'u8.npz'}", split="train", image_size=12, channels=3)
    np.testing.assert_array_equal(ref.images, u8)
    np.testing.assert_array_equal(ref.labels, np.arange(5))
    for name in ("f01.npy", "fpm.npz"):
        s = load_source(f"npz:{tmp_path / name}", split="train", image_size=12, channels=3)
        np.testing.assert_array_equal(s.images, u8)
    small = load_source(f"npz:{tmp_path / 'u8.npz'}", split="train", image_size=6, channels=3)
    assert small.images.shape == (5, 6, 6, 3)
    np.save(tmp_path / "grey.npy", u8[..., 0])  # (N, H, W) → 1 channel
    assert load_source(f"npz:{tmp_path / 'grey.npy'}", split="x", image_size=12, channels=1).images.shape == (5, 12, 12, 1)


def test_npz_errors(tmp_path):
    np.save(tmp_path / "i64.npy", np.zeros((2, 4, 4), np.int64))
    with pytest.raises(DataError, match="int64.*allowed: uint8"):
        load_source(f"npz:{tmp_path / 'i64.npy'}", split="train", image_size=4, channels=1)
    np.save(tmp_path / "big.npy", np.full((2, 4, 4), 3.0, np.float32))
    with pytest.raises(DataError, match=r"\[3, 3\]"):
        load_source(f"npz:{tmp_path / 'big.npy'}", split="train", image_size=4, channels=1)
    np.savez(tmp_path / "two.npz", a=np.zeros((2, 4, 4), np.uint8), b=np.zeros((2, 4, 4), np.uint8))
    with pytest.raises(DataError, match="'images'"):
        load_source(f"npz:{tmp_path / 'two.npz'}", split="train", image_size=4, channels=1)
    np.save(tmp_path / "empty.npy", np.zeros((0, 4, 4), np.uint8))
    with pytest.raises(DataError, match="0 images"):
        load_source(f"npz:{tmp_path / 'empty.npy'}", split="train", image_size=4, channels=1)
    np.save(tmp_path / "rgb.npy", np.zeros((2, 4, 4, 3), np.uint8))
    with pytest.raises(DataError, match=r"data\.channels=1 .*3 channel"):
        load_source(f"npz:{tmp_path / 'rgb.npy'}", split="train", image_size=4, channels=1)
    with pytest.raises(DataError, match="labels"):
        load_source(f"npz:{tmp_path / 'rgb.npy'}:classes=1", split="train", image_size=4, channels=3)


def test_npz_split_layout_reads_each_split_and_its_labels(tmp_path):
    rng = np.random.default_rng(1)
    tr, te = (rng.integers(0, 256, size=(n, 6, 6), dtype=np.uint8) for n in (5, 3))
    np.savez(tmp_path / "bare.npz", train=tr, test=te, test_labels=np.array([7, 8, 9]))
    np.savez(tmp_path / "suffixed.npz", train_images=tr, train_labels=np.arange(5), test_images=te)
    for name in ("bare.npz", "suffixed.npz"):
        a = load_source(f"npz:{tmp_path / name}", split="train", image_size=6, channels=1)
        b = load_source(f"npz:{tmp_path / name}", split="test", image_size=6, channels=1, require_split=True)
        np.testing.assert_array_equal(a.images[..., 0], tr)
        np.testing.assert_array_equal(b.images[..., 0], te)
        assert a.unsplit == "" and b.unsplit == "" and b.name.endswith(":test")
        with pytest.raises(DataError, match=r"no split 'validation'; its splits: \['test', 'train'\]"):
            load_source(f"npz:{tmp_path / name}", split="validation", image_size=6, channels=1)
    np.testing.assert_array_equal(load_source(f"npz:{tmp_path / 'bare.npz'}", split="test", image_size=6,
                                              channels=1).labels, [7, 8, 9])
    assert load_source(f"npz:{tmp_path / 'bare.npz'}", split="train", image_size=6, channels=1).labels is None
    np.testing.assert_array_equal(load_source(f"npz:{tmp_path / 'suffixed.npz'}", split="train", image_size=6,
                                              channels=1).labels, np.arange(5))
    for kw, match in ((dict(train=tr, images=te), "mixes the single-array layout"),
                      (dict(train=tr, test=te, test_images=te), "split 'test' is stored twice"),
                      (dict(train=tr, val_labels=np.arange(3)), r"labels \['val_labels'\] have no images"),
                      (dict(train=tr, test=te, test_labels=np.arange(4)), "'test_labels' must be integers of shape")):
        np.savez(tmp_path / "bad.npz", **kw)
        with pytest.raises(DataError, match=match):
            load_source(f"npz:{tmp_path / 'bad.npz'}", split="test", image_size=6, channels=1)


def test_a_source_without_a_held_out_split_is_refused_only_when_one_is_required(tmp_path):
    u8 = np.arange(4 * 16, dtype=np.uint8).reshape(4, 4, 4)
    np.save(tmp_path / "one.npy", u8)
    np.savez(tmp_path / "one.npz", images=u8)
    for name in ("one.npy", "one.npz"):
        src = f"npz:{tmp_path / name}"
        # training (and any split without require_split) still reads every image, as before
        for split in ("train", "test"):
            np.testing.assert_array_equal(load_source(src, split=split, image_size=4, channels=1).images[..., 0], u8)
        with pytest.raises(DataError, match=rf"^--input='npz:.*{name}' has no held-out split 'test'.*training "
                                            r"images.*'train' and 'test' arrays"):
            load_source(src, split="test", image_size=4, channels=1, field="--input", require_split=True)
    # a folder without <root>/<split>: refused; with it: the split's files only
    _png(tmp_path / "f" / "0" / "a.png", np.zeros((4, 4), np.uint8))
    with pytest.raises(DataError, match=r"data\.source='folder:.*' has no held-out split 'test'.*no folder "
                                        r"'.*test'"):
        load_source(f"folder:{tmp_path / 'f'}", split="test", image_size=4, channels=1, require_split=True)
    assert load_source(f"folder:{tmp_path / 'f'}", split="test", image_size=4, channels=1).unsplit
    _png(tmp_path / "g" / "train" / "a.png", np.zeros((4, 4), np.uint8))
    _png(tmp_path / "g" / "test" / "b.png", np.full((4, 4), 200, np.uint8))
    te = load_source(f"folder:{tmp_path / 'g'}", split="test", image_size=4, channels=1, require_split=True)
    assert len(te) == 1 and te.images.min() == 200 and te.unsplit == ""
    # a split named in the source string wins over the requested one: refused when held-out images are asked for
    with pytest.raises(DataError, match=r"data\.source='digits:train' names split 'train', which wins over the "
                                        r"held-out split 'test'"):
        load_source("digits:train", split="test", image_size=8, channels=1, require_split=True)
    assert len(load_source("digits:test", split="test", image_size=8, channels=1, require_split=True)) == \
        1797 - data.DIGITS_NUM_TRAIN
    assert len(load_source("digits", split="test", image_size=8, channels=1, require_split=True)) == \
        1797 - data.DIGITS_NUM_TRAIN


# ------------------------------------------------------------------------------------------------ tfds


@pytest.fixture
def no_network(monkeypatch):
    def refuse(*args, **kwargs):
        raise AssertionError("network access attempted")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket, "create_connection", refuse)


def test_tfds_through_mock_data_without_tensorflow_or_network(monkeypatch, no_network):
    import tensorflow_datasets as tfds

    calls = []
    real = tfds.data_source

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tfds, "data_source", spy)
    with tfds_mock.mock_data(num_examples=10, policy=tfds.testing.MockPolicy.USE_CODE):
        src = load_source("tfds:mnist", split="train", image_size=16, channels=1)
        raw = real("mnist", split="train", download=False)
        expect = np.stack([np.asarray(Image.fromarray(raw[i]["image"][..., 0]).resize(
            (16, 16), Image.Resampling.BILINEAR)) for i in range(10)])[..., None]
        assert len(src) == 10
        np.testing.assert_array_equal(src.get(np.arange(10)), expect)
        np.testing.assert_array_equal(src.labels, [raw[i]["label"] for i in range(10)])
        x, y = Batcher(src, global_batch_size=4, seed=0, process_index=0, process_count=1,
                       with_labels=True).batch(3)  # crosses into epoch 1
        assert x.shape == (4, 16, 16, 1) and x.dtype == np.float32 and -1 <= x.min() <= x.max() <= 1
        sub = load_source(f"tfds:mnist:test:classes={int(src.labels[0])}", split="train", image_size=16,
                          channels=1)
        assert len(sub) == int(np.sum(src.labels == src.labels[0])) and set(sub.labels) == {src.labels[0]}
        with pytest.raises(DataError, match=r"data\.channels=3 .*1 channel"):
            load_source("tfds:mnist", split="train", image_size=16, channels=3)
    assert calls and all(c["download"] is False for c in calls)
    assert calls[-2]["split"] == "test"
    assert "tensorflow" not in sys.modules


def test_tfds_not_prepared_gives_one_error_with_the_preparation_hint(tmp_path, no_network):
    with pytest.raises(DataError) as err:
        load_source(f"tfds:mnist:train:data_dir={tmp_path}", split="test", image_size=16, channels=1)
    msg = str(err.value)
    assert "not prepared" in msg and str(tmp_path) in msg
    assert "download_and_prepare()" in msg and "file_format='array_record'" in msg and "data.download=True" in msg
    with pytest.raises(DataError, match="no data set 'no_such_set_xyz'"):
        load_source(f"tfds:no_such_set_xyz:data_dir={tmp_path}", split="train", image_size=16, channels=1)


# ------------------------------------------------------------------------------------- config helpers


def _config(**data_overrides):
    import importlib.util
    import pathlib

    path = pathlib.Path(__file__).resolve().parents[1] / "configs" / "default.py"
    spec = importlib.util.spec_from_file_location("_default_config", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    c = module.get_config()
    c.data.update(data_overrides)
    c.train.batch_size = 8
    return c


def test_end_source_uses_its_own_seed_and_the_same_shapes():
    c = _config(end_source="digits:train:classes=5-9")
    main = Batcher(data.source_from_config(c), global_batch_size=8, seed=c.seed, process_index=0, process_count=1)
    end = data.end_source(c, process_index=0, process_count=1)
    assert end.seed != c.seed
    xe = end.batch(0)
    assert xe.shape == main.batch(0).shape
    assert set(end.source.labels[end.indices(0)]) <= {5, 6, 7, 8, 9}
    np.testing.assert_array_equal(xe, data.end_source(c, process_index=0, process_count=1).batch(0))
    assert data.end_source(_config()) is None
    with pytest.raises(DataError, match=r"data\.end_source"):
        data.end_source(_config(end_source="digits:oops=1"))


# ------------------------------------------------------------------------------------- device placement


def test_to_global_array_shards_the_batch_over_the_data_axis():
    mesh = jax.make_mesh((8,), ("data",), axis_types=(AxisType.Auto,))
    src = load_source("digits", split="test", image_size=8, channels=1)
    x, y = Batcher(src, global_batch_size=16, seed=0, with_labels=True).batch(0)
    gx, gy = data.to_global_array((x, y), mesh)
    assert gx.shape == (16, 8, 8, 1) and gx.sharding == NamedSharding(mesh, P("data"))
    np.testing.assert_array_equal(np.asarray(gx), x)
    np.testing.assert_array_equal(np.asarray(gy), y)
    assert sorted(s.data.shape[0] for s in gx.addressable_shards) == [2] * 8
    for shard in gx.addressable_shards:
        np.testing.assert_array_equal(np.asarray(shard.data), x[shard.index])
    with pytest.raises(ValueError, match=r"train\.batch_size=12 .*\(8"):
        data.to_global_array(np.zeros((12, 8, 8, 1), np.float32), mesh)


# ---------------------------------------------------------------------------------------------- photos
# Expected values come from scikit-learn's photographs read here and float64 NumPy box means written here.


def _sample_photo(index):
    """The photographs in file-name order (china.jpg, flower.jpg), as scikit-learn ships them."""
    from sklearn.datasets import load_sample_image

    return load_sample_image(("china.jpg", "flower.jpg")[index])


def _box_mean_reference(photo, top, left, side, size):
    """float64 means of the side/size × side/size blocks of a window, rounded half up, uint8 (size, size, 3)."""
    k = side // size
    window = photo[top:top + side, left:left + side].astype(np.float64)
    return np.floor(window.reshape(size, k, size, k, 3).mean(axis=(1, 3)) + 0.5).astype(np.uint8)


def test_photos_shapes_dtype_range_and_counts():
    tr = load_source("photos", split="train", image_size=16, channels=3)
    te = load_source("photos", split="test", image_size=16, channels=3)
    assert tr.images.shape == (8192, 16, 16, 3) and te.images.shape == (512, 16, 16, 3)
    assert tr.images.dtype == np.uint8 and tr.labels is None and te.labels is None
    assert tr.images.min() < 20 and tr.images.max() > 235  # dark foliage and bright sky both occur
    both = load_source("photos:all", split="train", image_size=16, channels=3)
    np.testing.assert_array_equal(both.images, np.concatenate([tr.images, te.images]))
    x = data.normalize(te.images)
    assert x.dtype == np.float32 and -1.0 <= x.min() and x.max() <= 1.0
    # colour, not grey: the channels differ substantially
    assert np.abs(tr.images[..., 0].astype(int) - tr.images[..., 2]).mean() > 20
    few = load_source("photos:test:crops=7", split="train", image_size=8, channels=3)
    assert few.images.shape == (7, 8, 8, 3)


@pytest.mark.parametrize("split", ["train", "test"])
def test_photo_crops_are_box_means_of_their_windows(split):
    boxes = data.photo_crop_boxes(split, 8, seed=3, num=200)
    crops = load_source(f"photos:{split}:seed=3:crops=200", split="train", image_size=8, channels=3).images
    assert set(np.unique(boxes[:, 3])) == {8, 16, 24, 32}  # every scale k = 1 … 4 occurs
    assert set(np.unique(boxes[:, 0])) == {0, 1}  # both photographs
    for (p, top, left, side), crop in zip(boxes, crops):
        np.testing.assert_array_equal(crop, _box_mean_reference(_sample_photo(p), top, left, side, 8))


def test_photo_train_and_test_crops_never_share_a_pixel():
    """The pixels every train crop reads and every test crop reads are disjoint sets, in each photograph."""
    train = data.photo_crop_boxes("train", 16, seed=0, num=8192)
    test = data.photo_crop_boxes("test", 16, seed=0, num=512)
    for p in (0, 1):
        h, w, _ = _sample_photo(p).shape
        covered = {}
        for name, boxes in (("train", train), ("test", test)):
            mask = np.zeros((h, w), bool)
            for _, top, left, side in boxes[boxes[:, 0] == p]:
                assert 0 <= top and top + side <= h and 0 <= left and left + side <= w
                mask[top:top + side, left:left + side] = True
            covered[name] = mask
        assert not np.any(covered["train"] & covered["test"])
        assert not covered["test"][:, : w - w // 4].any()  # test: the right quarter only
        assert covered["train"][:, w - w // 4 - 1].any() and covered["test"][:, w - w // 4].any()


def test_photos_are_deterministic_and_the_held_out_crops_ignore_the_seed():
    a = load_source("photos", split="train", image_size=8, channels=3).images
    b = load_source("photos:seed=0", split="train", image_size=8, channels=3).images
    c = load_source("photos:seed=1", split="train", image_size=8, channels=3).images
    np.testing.assert_array_equal(a, b)
    assert np.mean(np.any(a != c, axis=(1, 2, 3))) > 0.9
    tests = [load_source(f"photos:test:seed={s}", split="train", image_size=8, channels=3).images for s in (0, 5)]
    np.testing.assert_array_equal(tests[0], tests[1])
    # crops= takes a prefix of the same sequence
    np.testing.assert_array_equal(load_source("photos:test:crops=64", split="train", image_size=8,
                                              channels=3).images, tests[0][:64])


def test_photos_bad_channels_size_split_and_options():
    with pytest.raises(DataError, match=r"^data\.channels=1 but data\.source='photos' has 3 channels .*"
                                        r"set data\.channels=3$"):
        load_source("photos", split="train", image_size=16, channels=1)
    with pytest.raises(DataError, match=r"^data\.image_size=161: .*allowed: 1 … 160$"):
        load_source("photos", split="train", image_size=161, channels=3)
    with pytest.raises(DataError, match=r"no split 'valid'"):
        load_source("photos", split="valid", image_size=16, channels=3)
    for bad, match in (("photos:seed=x", r"seed='x' must be an integer ≥ 0"),
                       ("photos:crops=0", r"crops='0' must be an integer ≥ 1"),
                       ("photos:val", r"expected 'photos\[:split\]"),
                       ("photos:classes=1", r"unknown option 'classes' for 'photos'")):
        with pytest.raises(DataError, match=match):
            data.parse_source(bad)
    assert data.KNOWN_CHANNELS["photos"] == 3


def test_color_only_configs_read_the_photos_through_load_images():
    import jaxdiff.config as cv  # noqa: PLC0415

    import os

    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    config = cv.load_config_file(os.path.join(root, "configs", "cold_decolor.py"))
    held_out = data.load_images(config, split=config.data.eval_split, num=40, seed=1)
    assert held_out.shape == (40, 16, 16, 3) and held_out.dtype == np.float32
    full = data.normalize(load_source("photos", split="test", image_size=16, channels=3).images)
    idx = np.sort(np.random.default_rng(1).choice(512, 40, replace=False))
    np.testing.assert_array_equal(held_out, full[idx])
