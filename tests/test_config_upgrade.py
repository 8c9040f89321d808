"""upgrade_stored_config: a config read back from an older checkpoint's JSON loads in today's layout."""
import copy

import numpy as np

import ml_collections
import pytest

from jaxdiff.config import upgrade_stored_config

# What an older checkpoint's config JSON held (before sample.corrector, with data.shuffle_buffer and
# sample.prior, before train.keep_checkpoints / train.max_consecutive_nonfinite / sample.prior_noise and
# without blur's std_increment / to_mean): JSON lists for tuples, plain dicts for sections.
OLD = {
    "seed": 3,
    "data": {"source": "digits", "eval_split": "test", "image_size": 16, "channels": 1, "random_flip": False,
             "shuffle_buffer": 0, "download": False, "end_source": ""},
    "diffusion": {"kind": "cold", "T": 20, "degradation": "blur",
                  "degradation_params": {"kernel_size": 5, "std": 0.5, "routine": "constant", "padding": "circular"},
                  "noise_std": 0.0, "schedule": "linear", "schedule_params": {}, "prediction": "x0", "loss": "l1",
                  "loss_weighting": "none"},
    "model": {"ch": 8, "ch_mult": [1, 2], "num_res_blocks": 1, "attn_resolutions": [], "dropout": 0.0,
              "num_groups": 4, "dtype": "float32"},
    "train": {"batch_size": 16, "num_steps": 40, "learning_rate": 0.002, "warmup_steps": 10, "weight_decay": 0.0,
              "grad_clip_norm": 1.0, "ema_decay": 0.995, "ema_every": 1, "ema_start": 0, "ema_warmup": True,
              "log_every": 5, "checkpoint_every": 10, "num_sample_images": 4, "distributed": False},
    "sample": {"sampler": "cold_naive", "steps": 0, "eta": 0.0, "clip": 1.0, "prior": "gmm"},
}


def test_old_keys_are_renamed_removed_and_missing_ones_filled():
    stored = copy.deepcopy(OLD)
    c = upgrade_stored_config(stored)
    assert stored == OLD  # the input is left alone
    assert isinstance(c, ml_collections.ConfigDict)
    assert c.sample.corrector == "cold_naive" and "sampler" not in c.sample
    assert "prior" not in c.sample and "shuffle_buffer" not in c.data
    # fields today's layout has and the old run lacked: configs/default.py's values
    assert c.train.keep_checkpoints == 3 and c.train.max_consecutive_nonfinite == 20
    assert c.sample.prior_noise == 0.002
    # stored values stay; JSON lists become the layout's tuples
    assert (c.seed, c.train.num_steps, c.model.ch) == (3, 40, 8)
    assert c.model.ch_mult == (1, 2) and c.model.attn_resolutions == ()
    # the degradation's own declared defaults fill its section, the stored values stay
    assert c.diffusion.degradation_params.to_dict() == dict(kernel_size=5, std=0.5, routine="constant",
                                                            padding="circular", std_increment=0.01, to_mean=False)


def test_the_result_validates_and_is_locked():
    from jaxdiff.config import validate_config

    c = upgrade_stored_config(OLD)
    validate_config(c, num_devices=8)
    with pytest.raises(AttributeError, match="num_step"):
        c.train.num_step = 3


def test_a_stored_corrector_wins_over_a_leftover_sampler_and_configdicts_are_accepted():
    stored = copy.deepcopy(OLD)
    stored["sample"]["corrector"] = "cold_improved"
    c = upgrade_stored_config(ml_collections.ConfigDict(stored))
    assert c.sample.corrector == "cold_improved" and "sampler" not in c.sample


def test_degradation_params_of_another_degradation_are_not_filled_with_blurs():
    stored = copy.deepcopy(OLD)
    stored["diffusion"]["degradation"] = "inpaint"
    stored["diffusion"]["degradation_params"] = {"kernel_std": 0.2}
    p = upgrade_stored_config(stored).diffusion.degradation_params.to_dict()
    assert p == dict(kernel_std=0.2, initial_mask=11.0, centered=False)


def test_gaussian_schedule_params_are_kept_as_stored():
    stored = copy.deepcopy(OLD)
    stored["diffusion"].update(kind="gaussian", schedule="cosine", schedule_params={"s": 0.01}, prediction="eps")
    stored["sample"]["sampler"] = "ddim"
    c = upgrade_stored_config(stored)
    assert c.diffusion.schedule_params.to_dict() == {"s": 0.01} and c.sample.corrector == "ddim"


def test_not_a_mapping_is_refused():
    with pytest.raises(TypeError, match="mapping"):
        upgrade_stored_config(["not", "a", "config"])


@pytest.mark.parametrize("kind,fields,expect", [
    ("gaussian", dict(schedule="cosine", degradation="blur", noise_std=0.0),
     dict(degradation="identity", schedule="cosine")),
    ("cold", dict(schedule="linear", degradation="blur", noise_std=0.02),
     dict(degradation="blur", schedule="constant", std=0.02)),
    ("blurring", dict(schedule="cosine", degradation="blur", blur_sigma_max=12.0, blur_d_min=0.01),
     dict(degradation="dct_blur", schedule="cosine", sigma_max=12.0, d_min=0.01)),
])
def test_a_stored_diffusion_kind_maps_to_degradation_and_schedule(kind, fields, expect):
    from jaxdiff.config.files import default_config
    from jaxdiff.processes import build_process

    stored = default_config().to_dict()
    f = stored["diffusion"]
    for k in ("degradation", "degradation_params", "schedule", "schedule_params", "t_sampling", "t_sampling_params"):
        f.pop(k, None)
    f.update(kind=kind, T=10, **fields)
    f["degradation_params"] = {"kernel_size": 3, "std": 1.0} if fields["degradation"] == "blur" else {}
    f["schedule_params"] = {}
    up = upgrade_stored_config(stored)
    g = up.diffusion
    assert "kind" not in g and "noise_std" not in g and "blur_sigma_max" not in g
    assert (g.degradation, g.schedule) == (expect["degradation"], expect["schedule"])
    p = build_process(up)
    if kind == "cold":
        np.testing.assert_allclose(np.asarray(p.std(np.arange(11))), [0.0] + [0.02] * 10, rtol=1e-7)
    if kind == "blurring":
        assert (g.degradation_params.sigma_max, g.degradation_params.d_min) == (12.0, 0.01)
        assert p.describe() == "blurring diffusion, T=10, sigma_blur_max=12, d_min=0.01"
    if kind == "gaussian":
        assert p.identity and p.schedule.variance_preserving


def test_an_unknown_stored_kind_is_named():
    with pytest.raises(ValueError, match=r"diffusion.kind='lukewarm' is not one jaxdiff ever wrote"):
        upgrade_stored_config({"diffusion": {"kind": "lukewarm"}})
