"""FID while training (train.eval_every): logged beside the loss, a picture in TensorBoard, and no effect on
what training computes (the final parameters equal those of a run without it, bitwise).

A tiny Gaussian config (8×8 digits, T = 10, a one-level UNet of width 8), scored on the digits features (fast).
"""
import json
import os

import jax
import numpy as np
import pytest

from helpers.configs import tiny_gaussian
from jaxdiff.config import ConfigError, validate_config
from jaxdiff.train import loop as training

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**train):
    return tiny_gaussian(**{**dict(batch_size=16, num_steps=4, log_every=2, checkpoint_every=4, keep_checkpoints=1,
                                   num_sample_images=0, grad_clip_norm=0.0), **train})


def _leaves(state):
    return [np.asarray(jax.device_get(x)) for x in jax.tree_util.tree_leaves(state.params)]


def test_eval_every_logs_fid_and_leaves_training_bitwise_unchanged(tmp_path, monkeypatch):
    monkeypatch.setenv("JAXDIFF_CACHE", str(tmp_path / "cache"))
    plain = training.train_and_evaluate(tiny_config(), str(tmp_path / "plain"))
    evald = training.train_and_evaluate(tiny_config(eval_every=2, eval_samples=16, eval_features="digits"),
                                        str(tmp_path / "eval"))
    for a, b in zip(_leaves(plain), _leaves(evald)):
        np.testing.assert_array_equal(a, b)
    rows = [json.loads(line) for line in open(tmp_path / "eval" / "metrics.jsonl")]
    ev = [r for r in rows if "eval/fid" in r]
    assert [r["step"] for r in ev] == [2, 4]
    for r in ev:
        assert r["eval/fid"] > 0 and r["eval/seconds"] > 0 and 0 <= r["eval/precision"] <= 1
        assert "eval/kid_x1e3" in r and "eval/kid_x1e3_std" in r
    loss_rows = [r for r in rows if "loss" in r]
    assert [r["step"] for r in loss_rows] == [2, 4]  # the loss is logged as before
    plain_rows = [json.loads(line) for line in open(tmp_path / "plain" / "metrics.jsonl")]
    assert [r["loss"] for r in plain_rows] == [r["loss"] for r in loss_rows]
    # the reference statistics of the held-out images were cached once, under the cache dir
    assert len(os.listdir(tmp_path / "cache" / "fid_stats")) == 1
    # the sample grid went to TensorBoard beside the scalars
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tags = set()
    for f in os.listdir(tmp_path / "eval" / "tb"):
        acc = EventAccumulator(str(tmp_path / "eval" / "tb" / f))
        acc.Reload()
        tags |= set(acc.Tags()["images"]) | set(acc.Tags()["scalars"])
    assert {"eval_samples", "eval/fid", "loss"} <= tags


@pytest.mark.parametrize("field,value,msg", [
    ("eval_every", -1, "train.eval_every"),
    ("eval_samples", 3, "train.eval_samples"),
    ("eval_features", "resnet", "train.eval_features"),
])
def test_bad_eval_fields_are_refused_naming_the_field(field, value, msg):
    with pytest.raises(ConfigError, match=msg):
        validate_config(tiny_config(**{field: value}), num_devices=1)


@pytest.mark.slow
def test_restoration_only_run_logs_the_paired_fid_of_restored_images(tmp_path, monkeypatch):
    """cold_inpaint has no generation prior: the evaluation restores held-out images from t = T instead."""
    from jaxdiff.config import files

    monkeypatch.setenv("JAXDIFF_CACHE", str(tmp_path / "cache"))
    c = files.load_config_file(os.path.join(ROOT, "configs", "cold_inpaint.py"))
    c.model.update(dict(ch=8, ch_mult=(1,), num_groups=4))
    c.data.image_size, c.diffusion.T = 8, 4  # small and short: the evaluation's branch is what is tested
    c.train.update(dict(batch_size=16, num_steps=2, log_every=1, checkpoint_every=2, num_sample_images=0,
                        warmup_steps=0, eval_every=2, eval_samples=16, eval_features="digits"))
    training.train_and_evaluate(c, str(tmp_path / "w"))
    rows = [json.loads(line) for line in open(tmp_path / "w" / "metrics.jsonl")]
    ev = [r for r in rows if "eval/fid_restored" in r]
    assert [r["step"] for r in ev] == [2] and ev[0]["eval/fid_restored"] >= 0 and "eval/fid" not in ev[0]
