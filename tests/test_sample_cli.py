"""sample.py's modes (jaxdiff.cli) end to end on a tiny trained checkpoint; its options and failure messages."""
import json
import os
import runpy
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from jaxdiff import cli
from jaxdiff.experiment import NoCheckpointError

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny(config_file: str, **diffusion):
    c = runpy.run_path(os.path.join(ROOT, "configs", config_file))["get_config"]()
    m, t = c.model, c.train
    m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.num_groups = 8, (1,), 1, (), 4
    t.batch_size, t.num_steps, t.checkpoint_every, t.log_every, t.warmup_steps = 16, 2, 1, 1, 0
    t.num_sample_images, t.keep_checkpoints = 0, 5
    for k, v in diffusion.items():
        setattr(c.diffusion, k, v)
    return c


@pytest.fixture(scope="module")
def trained_blur(tmp_path_factory):
    """(workdir, final TrainState) of a tiny cold_blur run trained for 2 steps (checkpoints at steps 1 and 2)."""
    from jaxdiff.train.loop import train_and_evaluate

    wd = str(tmp_path_factory.mktemp("blur"))
    state = train_and_evaluate(tiny("cold_blur.py", T=8), wd)
    return wd, state


@pytest.fixture(scope="module")
def blur_workdir(trained_blur):
    return trained_blur[0]


def test_no_checkpoint_is_one_clear_message(tmp_path):
    with pytest.raises(NoCheckpointError, match="no checkpoint in"):
        cli.run(workdir=str(tmp_path))
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={tmp_path}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2
    lines = [ln for ln in r.stderr.strip().splitlines() if ln.strip()]
    assert lines[-1].startswith("sample.py: no checkpoint in") and str(tmp_path) in lines[-1]
    assert "Traceback" not in r.stderr


def test_parse_step_counts():
    assert cli.parse_step_counts("5, 10,20", 50) == (5, 10, 20)
    assert cli.parse_step_counts(7) == (7,) and cli.parse_step_counts([0, 3], 3) == (0, 3)
    for bad, match in (("5,x", "integers"), ("5,60", r"\[0, T=50\]"), ("5,5", "repeated"), ("", "no step"),
                       ("-1", ">= 0"), ([2.5], "integers")):
        with pytest.raises(ValueError, match=match):
            cli.parse_step_counts(bad, 50 if bad != "-1" else None)


def test_options_refuse_bad_values_before_anything_is_loaded(tmp_path):
    """Each bad value is one UsageError naming the flag; the workdir is never read (it does not exist)."""
    wd = str(tmp_path / "missing")
    for kw, match in (
        (dict(mode="bogus"), r"--mode='bogus': allowed \['generate'"),
        (dict(num=-1), "--num=-1: must be an integer >= 0"),
        (dict(batch=2.5), "--batch=2.5"),
        (dict(eta=float("nan")), "--eta=nan: must be a finite number >= 0"),
        (dict(prior_noise=-0.1), "--prior_noise=-0.1"),
        (dict(steps="2,3"), "only for --mode=evaluate"),
        (dict(steps="2,x", mode="evaluate"), "--steps='2,x': expected integers"),
        (dict(severity=0), "--severity=0"),
        (dict(input="folder:/x"), "--input is for --mode=restore"),
        (dict(mode="restore", input="png:/x"), "expected folder:<path> or npz:<path>"),
        (dict(sweep="both"), "--sweep='both': allowed auto, generation, restoration"),
        (dict(force="yes"), "--force='yes': must be True or False"),
    ):
        with pytest.raises(cli.UsageError, match=match):
            cli.SampleOptions(workdir=wd, **kw)
    with pytest.raises(cli.UsageError, match="--workdir is required"):
        cli.SampleOptions(workdir="")
    assert not os.path.exists(wd)
    o = cli.SampleOptions(workdir=wd, mode="evaluate", steps="1,2")
    assert o.step_counts == (1, 2) and o.corrector is None


def test_sampler_flag_is_a_deprecated_spelling_of_corrector(tmp_path, caplog):
    import types

    names = [f.name for f in __import__("dataclasses").fields(cli.SampleOptions)]
    flags = dict({n: None for n in names}, workdir=str(tmp_path), mode="generate", num=0, seed=0, batch=0,
                 refit_prior=False, force=False, sweep="auto", frames=10)
    with caplog.at_level("WARNING"):
        o = cli.SampleOptions.from_flags(types.SimpleNamespace(**flags, sampler="cold_naive"))
    assert o.corrector == "cold_naive"
    assert "--sampler is deprecated: use --corrector=cold_naive" in caplog.text
    assert cli.SampleOptions.from_flags(types.SimpleNamespace(**flags, sampler=None)).corrector is None
    with pytest.raises(cli.UsageError, match="disagree"):
        cli.SampleOptions.from_flags(types.SimpleNamespace(**dict(flags, corrector="ddim"), sampler="cold_naive"))
    # the CLI itself: one warning line naming --corrector, then the usual one-line failure (no checkpoint)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={tmp_path}", "--sampler=ddim"],
                       capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    warned = [ln for ln in r.stderr.splitlines() if "deprecated" in ln]
    assert len(warned) == 1 and "--corrector=ddim" in warned[0]


def test_describe_process_names_the_degradation_or_schedule():
    from jaxdiff.degradations import make_degradation
    from jaxdiff.experiment import build_process, describe_process
    from jaxdiff.processes import ColdProcess, GaussianProcess
    from jaxdiff.processes.schedules import make_schedule

    blur = make_degradation("blur", T=6, image_size=16, channels=1, kernel_size=5, std=1.5)
    text = describe_process(ColdProcess(blur))
    assert text.startswith("cold diffusion, blur(") and "kernel_size=5" in text and "std=1.5" in text
    assert text.endswith("T=6")
    assert describe_process(ColdProcess(blur, noise_std=0.01)).endswith("T=6, noise_std=0.01")
    assert describe_process(GaussianProcess(make_schedule("linear", 1000))) == \
        "gaussian diffusion, T=1000, betas 0.0001 to 0.02"  # the linear schedule's ends (Ho et al. 2020)
    config = tiny("cold_blur.py", T=8)
    assert describe_process(config) == describe_process(build_process(config))


@pytest.mark.slow
def test_bad_flags_fail_before_sampling(blur_workdir):
    for kw, match in (
        (dict(steps="2,3"), "only for --mode=evaluate"),
        (dict(steps="9"), r"\[0, T=8\]"),
        (dict(corrector="dpmpp_2m"), "needs D = identity, not 'blur'"),
        (dict(mode="restore", severity=9), "--severity=9"),
        (dict(mode="generate", input="folder:/x"), "--input is for --mode=restore"),
        (dict(step=7), "--step=7"),
    ):
        with pytest.raises(ValueError, match=match):
            cli.run(workdir=blur_workdir, **kw)


@pytest.mark.slow
def test_load_run_newest_step_and_an_old_config_spelling(trained_blur, tmp_path):
    import jax

    from jaxdiff.checkpoints import make_meta
    from jaxdiff.experiment import load_run
    from jaxdiff.train.checkpoints import Checkpointer

    wd, state = trained_blur
    run = load_run(wd)
    assert run.step == 2 and run.workdir == os.path.abspath(wd) and run.meta["step"] == 2
    assert run.process.degradation.name == "blur" and run.process.noise_free and run.process.T == 8
    got, want = jax.tree.leaves(run.params), jax.tree.leaves(state.ema_params)
    assert len(got) == len(want) > 0
    for a, b in zip(got, want):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert load_run(wd, 1).step == 1
    with pytest.raises(ValueError, match=r"step=7: no such checkpoint .*saved steps: \[1, 2\]"):
        load_run(wd, 7)
    # a run stored while the config still said sample.sampler
    config = tiny("cold_blur.py", T=8)
    old = config.to_dict()
    del old["sample"]["corrector"]
    old["sample"]["sampler"] = "cold_naive"
    ckpt = Checkpointer(str(tmp_path / "checkpoints"))
    ckpt.save(0, state.to_pytree(), config=old, meta=make_meta(config))
    ckpt.close()
    old_run = load_run(str(tmp_path))
    assert old_run.config.sample.corrector == "cold_naive" and "sampler" not in old_run.config.sample


@pytest.mark.slow
def test_every_mode_end_to_end(blur_workdir, tmp_path):
    wd = blur_workdir
    # generate: grid, npz, trajectory PNG + GIF, from the prior training stored with its checkpoints
    # (the tiny blur does not flatten the digits by T = 8: generation is refused unless forced)
    # two batches of 8 (the second padded from 4), only the first one recording the trajectory
    from jaxdiff.priors.store import stored_prior_meta

    assert stored_prior_meta(wd)["step"] == 2
    files = cli.run(workdir=wd, mode="generate", num=12, steps=3, frames=2, batch=8, force=True)
    x = np.load(files["npz"])
    assert x["samples"].shape == (12, 16, 16, 1) and x["x_T"].shape == (12, 16, 16, 1)
    assert np.all(np.abs(x["samples"]) <= 1.0)
    assert os.path.exists(os.path.join(wd, "prior.npz"))
    assert Image.open(files["grid"]).size[0] >= 4 * 16
    gif = Image.open(files["trajectory_gif"])
    assert gif.n_frames == 3  # x_T plus ⌈3 / ⌈3/2⌉⌉ = 2 recorded frames
    assert "step2" in files["grid"]  # the newest checkpoint

    # an older checkpoint on request
    files1 = cli.run(workdir=wd, mode="generate", num=8, steps=2, step=1, frames=0, force=True)
    assert "step1" in files1["grid"] and "trajectory_gif" not in files1

    # restore from held-out images at a chosen severity
    files = cli.run(workdir=wd, mode="restore", num=10, severity=5, steps=2)
    r = np.load(files["npz"])
    assert set(r.files) == {"degraded", "original", "direct", "cold_naive", "cold_improved"}
    assert r["degraded"].shape == (10, 16, 16, 1)
    assert not np.allclose(r["degraded"], r["original"])
    assert os.path.exists(files["strip"])

    # restore images that arrive degraded (an npz of them): no original row
    np.savez(tmp_path / "degraded.npz", images=r["degraded"])
    files = cli.run(workdir=wd, mode="restore", input=f"npz:{tmp_path / 'degraded.npz'}", severity=5, steps=2,
                       out=str(tmp_path / "out"))
    r2 = np.load(files["npz"])
    assert "original" not in r2.files and r2["direct"].shape == (10, 16, 16, 1)
    # the npz round trip quantises to uint8, so the restorations are close to, not equal to, the first ones
    np.testing.assert_allclose(r2["direct"], r["direct"], atol=0.1)

    # evaluate: the table, generation metrics and a steps sweep, as JSON and Markdown
    files = cli.run(workdir=wd, mode="evaluate", num=24, steps="1,2", force=True)
    rep = json.load(open(files["json"]))
    rows = rep["restoration"]["rows"]
    assert set(rows) == {"Degraded", "Direct", "Sampled (naive, Alg. 1)", "Sampled (improved, Alg. 2)"}
    assert all({"frechet", "ssim", "rmse", "psnr"} <= set(v) for v in rows.values())
    assert rep["restoration"]["num_images"] == 24 and "same_count" in rep["restoration"]["floor"]
    assert rep["generation"]["num_samples"] == 24 and "kid_mean" in rep["generation"]
    assert rep["generation"]["prior_vs_end_state"]["num_prior"] == 24
    assert [row["steps"] for row in rep["steps_sweep"]["rows"]] == [1, 2]
    assert all(row["seconds"] > 0 and "ssim" in row for row in rep["steps_sweep"]["rows"])
    assert rep["steps_sweep"]["info"]["task"].startswith("restoration")  # cold: sweep the restoration
    md = open(files["markdown"]).read()
    assert "| Degraded |" in md and "## Sampling steps" in md

    # interpolate between two prior draws, and the forward pictures
    files = cli.run(workdir=wd, mode="blend", num=2, steps=2, force=True)
    it = np.load(files["npz"])
    assert it["x_T"].shape == (2, 9, 16, 16, 1) and it["samples"].shape == (2, 9, 16, 16, 1)
    files = cli.run(workdir=wd, mode="forward", num=2)
    assert os.path.exists(files["strip"])


@pytest.mark.slow
def test_cli_subprocess(blur_workdir, tmp_path):
    """The absl entry point: flags reach run(), files are written, exit code 0 (forward mode: no compilation
    of the network, so the subprocess stays cheap)."""
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={blur_workdir}", "--mode=forward",
                        "--num=2", f"--out={tmp_path}"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert os.listdir(tmp_path) == ["forward_step2.png"]
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={blur_workdir}", "--steps=1,2"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 2 and r.stderr.strip().splitlines()[-1].startswith("sample.py: --steps='1,2'")


@pytest.fixture(scope="module")
def ddim_workdir(tmp_path_factory, trained_blur):
    """A DDIM run saved through the training code's checkpointer, with the tiny blur run's weights (the UNet's
    shapes do not depend on the process): the hot-diffusion sampling path needs a checkpoint, not a good model."""
    from jaxdiff.checkpoints import make_meta
    from jaxdiff.train.checkpoints import Checkpointer

    wd = str(tmp_path_factory.mktemp("ddim"))
    config = tiny("ddim.py", T=100)
    state = trained_blur[1]
    ckpt = Checkpointer(os.path.join(wd, "checkpoints"))
    ckpt.save(0, state.to_pytree(), config=config, meta=make_meta(config))
    ckpt.close()
    return wd


@pytest.mark.slow
def test_gaussian_generate_interpolate_evaluate(ddim_workdir):
    wd = ddim_workdir
    files = cli.run(workdir=wd, mode="generate", num=8, steps=2, frames=0)
    assert np.load(files["npz"])["samples"].shape == (8, 16, 16, 1)
    from jaxdiff.priors.store import load_prior

    assert load_prior(wd).kind == "gaussian"
    files = cli.run(workdir=wd, mode="blend", num=2, steps=2)
    assert "spherical" in files["strip"]
    x_T = np.load(files["npz"])["x_T"]
    # the spherical path keeps the norm roughly (the two draws are nearly orthogonal in 256 dimensions)
    norms = np.linalg.norm(x_T.reshape(2, 9, -1), axis=2)
    assert np.all(np.abs(norms / norms[:, :1] - 1) < 0.2)
    files = cli.run(workdir=wd, mode="evaluate", num=16, steps="1,2")
    rep = json.load(open(files["json"]))
    assert "restoration" not in rep and rep["generation"]["num_samples"] == 16
    judged = rep["generation"]["judge"]  # the judge: 16 samples against all 1617 training digits
    assert (judged["num_samples"], judged["num_train"], judged["floor"]["num_a"]) == (16, 1617, 16)
    assert 0 <= judged["confident_fraction"] <= 1 and sum(judged["class_counts"]) == 16
    assert judged["info"]["network_calls"] == 20 and judged["info"]["seconds"] > 0  # the config's 20 DDIM steps
    md = open(files["markdown"]).read()
    assert "### The judge" in md and "nearest training image" in md and "feature_net_note" not in rep
    assert rep["feature_net"].startswith("digits_classifier")
    assert rep["steps_sweep"]["info"]["task"].startswith("generation")
    assert [r["steps"] for r in rep["steps_sweep"]["rows"]] == [1, 2] and "kid_mean" in rep["steps_sweep"]["rows"][0]
    with pytest.raises(ValueError, match="--sweep=restoration needs a cold process"):
        cli.run(workdir=wd, mode="evaluate", steps="1,2", sweep="restoration")
    with pytest.raises(ValueError, match="--input is for --mode=restore"):
        cli.run(workdir=wd, mode="evaluate", input="npz:/x")
    # a feature net stored with the workdir is the one used, and the report says what it was trained on
    from jaxdiff.evaluation import features

    stored = os.path.join(wd, features.FEATURE_NET_FILE)
    features.save_weights_npz(stored, features.load_digits_classifier().params, {"source": "tfds:mnist"})
    try:
        rep = json.load(open(cli.run(workdir=wd, mode="evaluate", num=16, out=os.path.join(wd, "other"))["json"]))
    finally:
        os.remove(stored)
    assert rep["feature_net"].startswith(f"feature_net.npz of the workdir ({stored}; trained on tfds:mnist")
    assert "was trained on tfds:mnist, not on the evaluated source 'digits'" in rep["feature_net_note"]
    assert rep["generation"]["judge"]["feature_net"] == "feature_net.npz"


# ------------------------------------------------------------------ held-out images and output names (issue 12.6)


def _class_ordered_folder(root, classes=10, per_class=12):
    """<root>/test/<k>/<i>.png, every image of class k the constant 20·k + 10; <root>/train/0/a.png."""
    for k in range(classes):
        for i in range(per_class):
            path = root / "test" / str(k) / f"{i:02d}.png"
            path.parent.mkdir(parents=True, exist_ok=True)
            Image.fromarray(np.full((4, 4), 20 * k + 10, np.uint8)).save(path)
    (root / "train" / "0").mkdir(parents=True)
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(root / "train" / "0" / "a.png")


def _classes_of(images):
    """Inverts _class_ordered_folder's intensities: x = u8 / 127.5 − 1, u8 = 20·k + 10."""
    u8 = (images.mean(axis=(1, 2, 3)) + 1.0) * 127.5
    return sorted(set(np.rint((u8 - 10) / 20).astype(int).tolist()))


def test_held_out_images_are_a_seeded_subset_with_every_class(tmp_path):
    from jaxdiff.cli.common import held_out_images
    from jaxdiff.data import DataError, load_images

    _class_ordered_folder(tmp_path)
    config = tiny("cold_blur.py", T=8)
    config.data.source = f"folder:{tmp_path}"
    # the first 30 of 10 × 12 class-ordered images are classes 0, 1 and 2 only
    assert _classes_of(load_images(config, split="test", num=30)) == [0, 1, 2]
    a, b = held_out_images(config, 30), held_out_images(config, 30)
    np.testing.assert_array_equal(a, b)  # same seed, same images
    assert a.shape == (30, 16, 16, 1) and len(_classes_of(a)) >= 7
    assert not np.array_equal(held_out_images(config, 30, seed=1), a)
    assert held_out_images(config, 500).shape[0] == 120  # all of them when fewer than asked
    # a source with no held-out split is refused, naming the field and the split
    np.save(tmp_path / "all.npy", np.zeros((4, 16, 16), np.uint8))
    config.data.source = f"npz:{tmp_path / 'all.npy'}"
    with pytest.raises(DataError, match=r"data\.source='npz:.*all\.npy' has no held-out split 'test'"):
        held_out_images(config, 4)


def test_end_images_for_held_out_degradation_are_a_seeded_subset_with_every_class(tmp_path):
    import types

    import jax

    from jaxdiff.cli.common import held_out_aux
    from jaxdiff.experiment import build_process

    _class_ordered_folder(tmp_path)
    config = tiny("cold_animorph.py", T=8)
    config.data.end_source = f"folder:{tmp_path}"
    inf = types.SimpleNamespace(config=config, process=build_process(config))
    x0 = np.zeros((30, 16, 16, 1), np.float32)
    a = held_out_aux(inf, x0, jax.random.PRNGKey(0))
    b = held_out_aux(inf, x0, jax.random.PRNGKey(1))
    assert a.shape == x0.shape and len(_classes_of(a)) >= 7  # the first 30 would be classes 0-2 only
    np.testing.assert_array_equal(a, b)  # the end images do not move with the key


def test_output_names_differ_in_every_option_that_changes_the_result():
    from jaxdiff.cli.common import tag
    from jaxdiff.cli.options import ModeSettings

    def name(mode="generate", extra="ddim_20steps", num=64, sweep_steps=None, **kw):
        o = cli.SampleOptions(workdir="w", mode=mode, **kw)
        return tag(ModeSettings(options=o, corrector="ddim", eta=0.0, steps=20, sweep_steps=sweep_steps,
                                sweep="generation", num=num), 3, extra)

    assert name() == "generate_step3_ddim_20steps_n64"
    assert name(prior_noise=0.05, seed=2, batch=8) == "generate_step3_ddim_20steps_noise0.05_n64_b8_seed2"
    variants = [name(), name(prior_noise=0.0), name(prior_noise=0.05), name(num=32), name(batch=8), name(seed=1),
                name(extra="ddim_10steps")]
    assert len(set(variants)) == len(variants)
    ev = [name("evaluate", num=2000), name("evaluate", num=2000, severity=4), name("evaluate", num=2000, prior_noise=0.1),
          name("evaluate", num=2000, steps="1,2", sweep_steps=(1, 2)), name("evaluate", num=100)]
    assert len(set(ev)) == len(ev) and "sweep-generation-1-2" in ev[3] and "_t4_" in ev[1]
    ins = [name("restore", "t8_2steps", 32, input=f"npz:/{d}/x.npz") for d in ("a", "b")]
    assert ins[0] != ins[1] and all("_input-x-" in n for n in ins)
    assert name("forward", "", num=2) == "forward_step3"  # the forward picture's name is unchanged


@pytest.fixture(scope="module")
def npz_workdirs(tmp_path_factory, trained_blur):
    """Two runs saved with the tiny blur run's weights, trained (as the config says) on an npz of digits:
    'single' (one array: no splits) and 'split' (train / test arrays, test = 6 distinct flat images)."""
    from jaxdiff.checkpoints import make_meta
    from jaxdiff.data import load_source
    from jaxdiff.train.checkpoints import Checkpointer

    root = tmp_path_factory.mktemp("npz")
    train = load_source("digits", split="train", image_size=16, channels=1).images[:64, ..., 0]
    test = np.repeat(np.arange(6, dtype=np.uint8)[:, None, None] * 40 + 20, 16, 1).repeat(16, 2)
    np.save(root / "single.npy", train)
    np.savez(root / "split.npz", train=train, test=test)
    out = {}
    for name, file in (("single", "single.npy"), ("split", "split.npz")):
        wd = str(root / name)
        config = tiny("cold_blur.py", T=8)
        config.data.source = f"npz:{root / file}"
        ckpt = Checkpointer(os.path.join(wd, "checkpoints"))
        ckpt.save(0, trained_blur[1].to_pytree(), config=config, meta=make_meta(config))
        ckpt.close()
        out[name] = wd
    return out, test


@pytest.mark.slow
def test_evaluate_and_restore_refuse_a_source_without_a_held_out_split(npz_workdirs):
    from jaxdiff.data import DataError

    wds, test = npz_workdirs
    for mode in ("evaluate", "restore"):
        with pytest.raises(DataError, match=r"data\.source='npz:.*single\.npy' has no held-out split 'test'"):
            cli.run(workdir=wds["single"], mode=mode, num=4, steps=1)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={wds['single']}",
                        "--mode=evaluate", "--num=4"], capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("sample.py: data.source='npz:") and "no held-out split 'test'" in last
    # the split layout: restore reads the test array (6 flat images, values 20, 60, …, 220), not the digits
    files = cli.run(workdir=wds["split"], mode="restore", num=4, severity=2, steps=1)
    orig = np.rint((np.load(files["npz"])["original"] + 1.0) * 127.5)
    assert orig.shape == (4, 16, 16, 1) and np.all(orig == orig[:, :1, :1])
    assert set(orig[:, 0, 0, 0].astype(int).tolist()) <= {20, 60, 100, 140, 180, 220}


@pytest.mark.slow
def test_two_runs_differing_only_in_prior_noise_write_two_files(blur_workdir, tmp_path):
    out = str(tmp_path)
    a = cli.run(workdir=blur_workdir, mode="generate", num=4, steps=1, frames=0, prior_noise=0.0, force=True, out=out)
    first = np.load(a["npz"])["samples"]
    b = cli.run(workdir=blur_workdir, mode="generate", num=4, steps=1, frames=0, prior_noise=0.3, force=True, out=out)
    assert a["npz"] != b["npz"] and "noise0.3" in b["npz"] and "noise0_" in a["npz"]
    assert sorted(os.listdir(out)) == sorted(os.path.basename(p) for p in (a["npz"], a["grid"], b["npz"], b["grid"]))
    np.testing.assert_array_equal(np.load(a["npz"])["samples"], first)  # the first run's file is untouched
    assert not np.allclose(np.load(b["npz"])["samples"], first)


def _copy_run(wd: str, config, state) -> str:
    """A workdir holding ``state`` under ``config`` (the UNet's shapes do not depend on the process)."""
    from jaxdiff.checkpoints import make_meta
    from jaxdiff.train.checkpoints import Checkpointer

    ckpt = Checkpointer(os.path.join(wd, "checkpoints"))
    ckpt.save(0, state.to_pytree(), config=config, meta=make_meta(config))
    ckpt.close()
    return wd


def test_generate_defaults_to_the_generation_corrector():
    import types

    from jaxdiff.experiment import build_process

    config = tiny("cold_blur.py", T=8)
    config.sample.corrector = "cold_naive"
    run = types.SimpleNamespace(process=build_process(config), config=config)
    for mode, corrector in (("generate", "cold_improved"), ("blend", "cold_improved"),
                            ("restore", "cold_naive"), ("evaluate", "cold_naive")):
        assert cli.SampleOptions(workdir="w", mode=mode).resolve(run).corrector == corrector, mode
    asked = cli.SampleOptions(workdir="w", mode="generate", corrector="cold_naive")
    assert asked.resolve(run).corrector == "cold_naive"
    inpaint = tiny("cold_inpaint.py")
    run = types.SimpleNamespace(process=build_process(inpaint), config=inpaint)
    for mode in ("generate", "blend"):
        with pytest.raises(cli.UsageError, match=f"^--mode={mode}: diffusion.degradation='inpaint' has no "
                                                 "generation prior.*use --mode=restore"):
            cli.SampleOptions(workdir="w", mode=mode).resolve(run)
    assert cli.SampleOptions(workdir="w", mode="restore").resolve(run).corrector == "cold_improved"


def _refusal_numbers(message: str):
    import re

    m = re.search(r"Fréchet distance ([0-9.]+) between (\d+) prior draws .*?, ([0-9.]+)× the real-vs-real floor "
                  r"([0-9.]+) \(refused above 3×\)", message)
    assert m, message
    return float(m.group(1)), int(m.group(2)), float(m.group(3)), float(m.group(4))


@pytest.mark.slow
def test_generation_from_a_prior_that_does_not_match_F_T_is_refused(blur_workdir, trained_blur, tmp_path):
    from jaxdiff.cli.common import GenerationRefused

    wd = blur_workdir  # trained: a 5×5 σ 0.5 blur, T = 8 leaves the digits readable; the prior is flat
    for mode in ("generate", "blend"):
        with pytest.raises(GenerationRefused) as e:
            cli.run(workdir=wd, mode=mode, num=4, steps=2, out=str(tmp_path / mode))
        msg = str(e.value)
        assert msg.startswith(f"--mode={mode}: the fitted 'blur_mean' prior does not match what the network saw")
        fd, n, ratio, floor = _refusal_numbers(msg)
        assert n == 300 and fd > 3 * floor and ratio == pytest.approx(fd / floor, rel=0.01, abs=0.1)
        assert "--mode=restore" in msg and "to_mean=True" in msg and "--force" in msg
        assert not os.listdir(tmp_path / mode)  # nothing sampled, nothing written
    # evaluate keeps the restoration table and says why there are no generation numbers
    files = cli.run(workdir=wd, mode="evaluate", num=16, out=str(tmp_path / "eval"))
    rep = json.load(open(files["json"]))
    assert "generation" not in rep and rep["restoration"]["num_images"] == 16
    assert rep["generation_refused"].startswith("--mode=evaluate: the fitted 'blur_mean' prior does not match")

    # the main job (configs/cold_blur.py: 5×5 σ 0.5, T = 20) through sample.py: one line, exit 2
    main_job = _copy_run(str(tmp_path / "cold_blur"), tiny("cold_blur.py"), trained_blur[1])
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={main_job}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr, r.stderr[-2000:]
    last = r.stderr.strip().splitlines()[-1]
    assert last.startswith("sample.py: --mode=generate: the fitted 'blur_mean' prior does not match")
    fd, n, ratio, floor = _refusal_numbers(last)
    assert fd > 3 * floor and "--mode=restore" in last
    assert not os.path.exists(os.path.join(main_job, "samples")) or not os.listdir(os.path.join(main_job, "samples"))


@pytest.mark.slow
def test_a_trained_gaussian_run_stores_its_prior_and_generates(tmp_path):
    from jaxdiff.priors.store import load_prior, stored_prior_meta
    from jaxdiff.train.loop import train_and_evaluate

    wd = str(tmp_path / "ddim")
    train_and_evaluate(tiny("ddim.py", T=100), wd)
    assert load_prior(wd).kind == "gaussian" and stored_prior_meta(wd)["step"] == 2
    files = cli.run(workdir=wd, mode="generate", num=4, steps=2, frames=0)  # not refused, no --force
    assert np.load(files["npz"])["samples"].shape == (4, 16, 16, 1) and "ddim_2steps" in files["npz"]


def test_a_variance_exploding_run_generates_without_force(tmp_path):
    """EDM's x_T = x0 + 80 ε: the prior is the process's own N(0, 80² I), so the fitted-prior check does not refuse
    it (it did: the digits features of x_T are too spread at σ = 80 for a floor of clean images)."""
    from jaxdiff.priors.store import load_prior
    from jaxdiff.train.loop import train_and_evaluate

    wd = str(tmp_path / "edm")
    train_and_evaluate(tiny("edm.py"), wd)
    assert load_prior(wd).kind == "gaussian" and float(load_prior(wd).arrays["std"]) == 80.0
    files = cli.run(workdir=wd, mode="generate", num=4, steps=2, frames=0)  # no --force
    assert np.load(files["npz"])["samples"].shape == (4, 16, 16, 1)
