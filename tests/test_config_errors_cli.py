"""Bad config or data: one message naming the field, the value and what is allowed, before anything is
compiled; train.py exits with code 2.
"""
import os
import re

import numpy as np
import pytest

from helpers.reliability import (  # noqa: F401 - env, reference, child_cpu_time are fixtures
    child_cpu_time, env, ROOT, NUM_STEPS, EVERY, KEEP, TINY_CONFIG, Run, report,
)


@pytest.mark.slow
def test_train_py_bad_config_is_one_line_and_exit_code_2(env, tmp_path):
    run = Run(env, tmp_path / "wd", tmp_path / "bad.log", "--config.train.ema_decay=1.5")
    assert run.wait() == 2
    text = run.text()
    assert "train.py: invalid config: train.ema_decay=1.5 is invalid; allowed: a number in [0, 1)" in text
    assert "Traceback" not in text and not os.path.exists(tmp_path / "wd" / "checkpoints")



def _config_for_checks(source):
    import runpy

    ns = {}
    exec(TINY_CONFIG.format(default=os.path.join(ROOT, "configs", "default.py"), source=source,
                            steps=NUM_STEPS, every=EVERY, keep=KEEP), ns)
    c = ns["get_config"]()
    c.train.batch_size = 8  # the 8 simulated devices of the test session
    return c


def _bad_inputs(tmp):
    """(name, edit of the config, regex the single message must match) for every item of the issue's list."""
    np.save(tmp / "empty.npy", np.zeros((0, 8, 8), np.uint8))
    (tmp / "garbage.npz").write_bytes(b"PK\x03\x04 this is not a zip file")
    ragged = np.array([np.zeros((8, 8)), np.zeros((6, 6))], dtype=object)
    np.save(tmp / "ragged.npy", ragged, allow_pickle=True)
    np.savez(tmp / "ragged.npz", images=ragged)
    np.save(tmp / "int64.npy", np.zeros((4, 8, 8), np.int64))
    np.save(tmp / "complex.npy", np.zeros((4, 8, 8), np.complex64))
    np.save(tmp / "grey.npy", np.zeros((4, 8, 8), np.uint8))
    (tmp / "broken").mkdir()
    (tmp / "broken" / "a.png").write_bytes(b"\x89PNG no")

    def set_(path, value):
        def edit(c):
            node = c
            *head, last = path.split(".")
            for k in head:
                node = node[k]
            node[last] = value
        return edit

    def gaussian(schedule):
        def edit(c):
            c.diffusion.schedule, c.diffusion.degradation, c.diffusion.degradation_params = schedule, "identity", {}
            c.diffusion.prediction, c.sample.corrector = "eps", "ddim"
        return edit

    return [
        ("unknown degradation", set_("diffusion.degradation", "blurr"), r"diffusion\.degradation='blurr'.*'blur'"),
        ("unknown sampler", set_("sample.corrector", "lms"), r"sample\.corrector='lms'.*allowed"),
        ("unknown schedule", gaussian("cosin"), r"diffusion\.schedule='cosin'.*'cosine'"),
        ("T = 0", set_("diffusion.T", 0), r"diffusion\.T=0 .*integer >= 1"),
        ("T < 0", set_("diffusion.T", -4), r"diffusion\.T=-4 .*integer >= 1"),
        ("steps > T", set_("sample.steps", 6), r"sample\.steps=6 .*\[0, diffusion\.T=5\]"),
        ("image size the UNet cannot halve", lambda c: (set_("model.ch_mult", (1, 2))(c), set_("data.image_size", 9)(c)),
         r"data\.image_size=9 .*multiple of 2\*\*\(len\(model\.ch_mult\)-1\) = 2"),
        ("batch not divisible by the devices", set_("train.batch_size", 12), r"train\.batch_size=12 .*devices \(8\)"),
        ("EMA decay = 1", set_("train.ema_decay", 1.0), r"train\.ema_decay=1\.0 .*\[0, 1\)"),
        ("EMA decay < 0", set_("train.ema_decay", -0.5), r"train\.ema_decay=-0\.5 .*\[0, 1\)"),
        ("channels: data 1, model 3", lambda c: (set_("data.source", f"npz:{tmp / 'grey.npy'}")(c),
                                                set_("data.channels", 3)(c)), r"data\.channels=3 .*1 channel"),
        ("empty source", set_("data.source", f"npz:{tmp / 'empty.npy'}"), r"data\.source=.*empty\.npy.*0 images"),
        ("unreadable file", set_("data.source", f"npz:{tmp / 'garbage.npz'}"), r"data\.source=.*garbage\.npz.*cannot read"),
        ("unreadable images", set_("data.source", f"folder:{tmp / 'broken'}"), r"data\.source=.*broken.*could be read"),
        ("mixed sizes (ragged .npy)", set_("data.source", f"npz:{tmp / 'ragged.npy'}"),
         r"data\.source=.*ragged\.npy.*images of different sizes .*allowed: one uint8/float array"),
        ("mixed sizes (ragged .npz)", set_("data.source", f"npz:{tmp / 'ragged.npz'}"),
         r"data\.source=.*ragged\.npz.*images of different sizes .*allowed: one uint8/float array"),
        ("unsupported dtype int64", set_("data.source", f"npz:{tmp / 'int64.npy'}"), r"int64 are not supported; allowed: uint8"),
        ("unsupported dtype complex", set_("data.source", f"npz:{tmp / 'complex.npy'}"), r"complex64 are not supported"),
    ]


def test_every_bad_input_of_the_issue_fails_with_one_message_before_compiling(tmp_path, monkeypatch):
    """Each item through the real entry point, ``train_and_evaluate``: a ValueError whose message names the
    field, the value and what is allowed, raised before the model's state is built or anything is compiled
    for it (building the state is made to fail loudly), and no workdir left behind."""
    from jaxdiff.train import loop as training

    def must_not_run(*a, **k):
        raise AssertionError("the bad input was not caught before the model was built")

    monkeypatch.setattr(training, "init_train_state", must_not_run)
    monkeypatch.setattr(training, "make_train_step", must_not_run)
    source = f"npz:{tmp_path / 'grey.npy'}"
    cases = _bad_inputs(tmp_path)
    for name, edit, pattern in cases:
        c = _config_for_checks(source)
        edit(c)
        wd = tmp_path / "wd"
        with pytest.raises(ValueError) as e:
            training.train_and_evaluate(c, str(wd))
        assert re.search(pattern, str(e.value), re.S), f"{name}: {e.value}"
        assert str(e.value).count("\n") <= 1 or "problems" in str(e.value), name
        assert not os.path.exists(wd / "checkpoints"), name
    report("bad_input", {"cases": [n for n, _, _ in cases]})


def test_mixed_image_sizes_in_a_folder_are_resized_not_refused(tmp_path):
    """Files are independent images: a folder of mixed sizes is brought to data.image_size (shorter side,
    centre crop), so every batch has one shape; an array source cannot mix sizes (see above)."""
    from PIL import Image

    from jaxdiff.data import load_source

    for i, shape in enumerate([(8, 8), (20, 12), (5, 9)]):
        Image.fromarray(np.full(shape, 40 * i, np.uint8)).save(tmp_path / f"{i}.png")
    s = load_source(f"folder:{tmp_path}", split="train", image_size=8, channels=1)
    assert s.images.shape == (3, 8, 8, 1)
    assert [int(s.images[i].mean()) for i in range(3)] == [0, 40, 80]


def test_timestep_subsets_must_end_at_zero():
    from jaxdiff import sampling

    with pytest.raises(ValueError, match=r"timesteps.*0"):
        sampling.validate_timesteps([5, 3, 1], 5)
    np.testing.assert_array_equal(sampling.validate_timesteps([5, 3, 0], 5), [5, 3, 0])


def test_sample_run_on_a_workdir_without_checkpoints(tmp_path):
    from jaxdiff.cli import run
    from jaxdiff.experiment import NoCheckpointError

    with pytest.raises(NoCheckpointError, match=r"no checkpoint in .*checkpoints: train first"):
        run(workdir=str(tmp_path))
