"""The train step (device-count invariance, the non-finite guard, learning) and train_and_evaluate end to end.

A tiny config (8×8 digits, T = 5, a one-level UNet of width 8) keeps every compile small. Compiled programs
go to a persistent compilation cache for this module, so the repeated end-to-end runs compile once.
"""
import json
import os
import runpy
import signal
import socket
import subprocess
import sys

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxdiff import data as data_lib
from jaxdiff import experiment
from jaxdiff.train import step as step_lib
from jaxdiff.train import loop as training
from jaxdiff.processes import ColdProcess, GaussianProcess

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**train):
    c = runpy.run_path(os.path.join(ROOT, "configs", "default.py"))["get_config"]()
    c.data.image_size = 8
    c.diffusion.T = 5
    c.diffusion.degradation_params = dict(kernel_size=3, std=1.0, routine="constant", padding="circular")
    c.model.update(dict(ch=8, ch_mult=(1,), attn_resolutions=(), num_groups=4, dropout=0.1))
    with c.unlocked():  # not in configs/default.py's layout (the UNet's default is True)
        c.model.mid_attention = False
    c.train.update(dict(batch_size=16, num_steps=6, log_every=2, checkpoint_every=3, keep_checkpoints=3,
                        num_sample_images=8, warmup_steps=2, ema_warmup=True))
    c.train.update(train)
    return c


@pytest.fixture(scope="module", autouse=True)
def compilation_cache(tmp_path_factory):
    old = (jax.config.jax_compilation_cache_dir, jax.config.jax_persistent_cache_min_compile_time_secs,
           jax.config.jax_persistent_cache_min_entry_size_bytes)
    jax.config.update("jax_compilation_cache_dir", str(tmp_path_factory.mktemp("jax_cache")))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.0)
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    yield
    jax.config.update("jax_compilation_cache_dir", old[0])
    jax.config.update("jax_persistent_cache_min_compile_time_secs", old[1])
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", old[2])


@pytest.fixture(scope="module")
def tiny():
    """(config, model, process, mesh over all 8 devices, fresh state, non-donating step, batches)."""
    cfg = tiny_config()
    model, process = experiment.build_model(cfg), experiment.build_process(cfg)
    mesh = experiment.make_mesh()
    state = step_lib.init_train_state(cfg, model, mesh=mesh)
    step = step_lib.make_train_step(cfg, model, process, mesh=mesh, donate=False)
    src = data_lib.load_source("digits", split="train", image_size=8, channels=1)
    it = data_lib.iterate_batches(src, global_batch_size=16, seed=0, process_index=0, process_count=1)
    batches = [next(it) for _ in range(60)]
    return cfg, model, process, mesh, state, step, batches


def _leaves(tree):
    return [np.asarray(training._host(x)) for x in jax.tree_util.tree_leaves(tree)]


def _max_abs_diff(a, b):
    return max(float(np.max(np.abs(x - y))) for x, y in zip(_leaves(a), _leaves(b)))


def test_build_process():
    c = tiny_config()
    p = experiment.build_process(c)
    assert p.T == 5 and p.degradation.name == "blur" and p.keeps_image and p.noise_free
    c.diffusion.degradation, c.diffusion.degradation_params = "identity", {}
    c.diffusion.schedule = "cosine"
    g = experiment.build_process(c)
    assert g.identity and g.T == 5 and g.noise_dominates and g.has_diffusers_scheduler
    np.testing.assert_allclose(g.schedule.alphas_cumprod[0], 1.0)
    c.diffusion.schedule = "lukewarm"
    with pytest.raises(ValueError, match="unknown schedule 'lukewarm'"):
        experiment.build_process(c)


def test_one_device_and_eight_devices_give_the_same_parameters(tiny):
    cfg, model, process, mesh8, state8, step8, batches = tiny
    mesh1 = experiment.make_mesh(jax.devices()[:1])
    state1 = step_lib.init_train_state(cfg, model, mesh=mesh1)
    step1 = step_lib.make_train_step(cfg, model, process, mesh=mesh1, donate=False)
    assert _max_abs_diff(state1.params, state8.params) == 0.0
    s1, s8 = state1, state8
    for i in range(3):
        s1, m1 = step1(s1, data_lib.to_global_array(batches[i], mesh1), i)
        s8, m8 = step8(s8, data_lib.to_global_array(batches[i], mesh8), i)
        assert abs(float(m1["loss"]) - float(m8["loss"])) < 1e-5
    assert len(s8.params["conv_in"]["kernel"].sharding.device_set) == 8
    assert _max_abs_diff(s1.params, s8.params) < 1e-5
    assert _max_abs_diff(s1.ema_params, s8.ema_params) < 1e-5
    # and the step did something
    assert _max_abs_diff(s1.params, state1.params) > 1e-4


def test_nonfinite_batch_skips_the_update_and_counts(tiny):
    cfg, model, process, mesh, state, step, batches = tiny
    good = data_lib.to_global_array(batches[0], mesh)
    bad_np = batches[0].copy()
    bad_np[3, 2, 2, 0] = np.nan
    bad = data_lib.to_global_array(bad_np, mesh)
    s1, m1 = step(state, bad, 0)
    assert int(m1["skipped"]) == 1 and not np.isfinite(float(m1["loss"]))
    assert int(s1.step) == 1 and int(s1.nonfinite_count) == 1 and int(s1.skipped_total) == 1
    assert _max_abs_diff(s1.params, state.params) == 0.0
    assert _max_abs_diff(s1.ema_params, state.ema_params) == 0.0
    assert _max_abs_diff(s1.opt_state, state.opt_state) == 0.0
    s2, m2 = step(s1, bad, 1)
    assert int(s2.nonfinite_count) == 2 and int(s2.skipped_total) == 2
    s3, m3 = step(s2, good, 2)
    assert int(m3["skipped"]) == 0 and np.isfinite(float(m3["loss"]))
    assert int(s3.step) == 3 and int(s3.nonfinite_count) == 0 and int(s3.skipped_total) == 2
    assert _max_abs_diff(s3.params, state.params) > 1e-4
    # the learning rate follows the optimizer's own count (1 update applied → lr(0) = peak / warmup)
    assert float(m3["lr"]) == pytest.approx(cfg.train.learning_rate / cfg.train.warmup_steps, rel=1e-6)
    assert all(np.all(np.isfinite(x)) for x in _leaves(s3.params))


def test_loss_falls(tiny):
    cfg, model, process, mesh, state, step, batches = tiny
    losses = []
    s = state
    for i, b in enumerate(batches):
        s, m = step(s, data_lib.to_global_array(b, mesh), i)
        losses.append(m["loss"])
    losses = np.array([float(x) for x in losses])
    first, last = losses[:10].mean(), losses[-10:].mean()
    assert np.all(np.isfinite(losses))
    assert last < 0.7 * first, (first, last)


def test_end_batch_is_the_interpolation_target(tiny):
    """Animorphosis: the end images come in as a second sharded input and decide x_t."""
    cfg = tiny_config()
    cfg.diffusion.degradation = "interpolate"
    cfg.diffusion.degradation_params = {}
    cfg.data.end_source = "digits:classes=5-9"
    _, model, _, mesh, state, _, batches = tiny
    step = step_lib.make_train_step(cfg, model, mesh=mesh, donate=False)
    x = data_lib.to_global_array(batches[0], mesh)
    z1 = data_lib.to_global_array(batches[1], mesh)
    z2 = data_lib.to_global_array(-batches[1], mesh)
    _, m1 = step(state, x, 0, z1)
    _, m2 = step(state, x, 0, z2)
    _, m1b = step(state, x, 0, z1)
    assert np.isfinite(float(m1["loss"])) and np.isfinite(float(m2["loss"]))
    assert float(m1["loss"]) == float(m1b["loss"])
    assert abs(float(m1["loss"]) - float(m2["loss"])) > 1e-4


def _check_run(workdir, steps_saved, final_step):
    ck = os.path.join(workdir, "checkpoints")
    assert sorted(int(s) for s in os.listdir(ck) if s.isdigit()) == steps_saved
    rows = [json.loads(line) for line in open(os.path.join(workdir, "metrics.jsonl"))]
    assert rows and rows[-1]["step"] == final_step
    assert all(r["loss"] is not None and np.isfinite(r["loss"]) for r in rows)
    assert os.listdir(os.path.join(workdir, "tb"))
    for s in steps_saved:
        png = os.path.join(workdir, "samples", f"step_{s:06d}.png")
        with open(png, "rb") as f:
            assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    # TensorBoard (its own reader): every logged step once, and each sample grid as an image summary
    from PIL import Image
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(os.path.join(workdir, "tb"), size_guidance={"images": 0, "scalars": 0})
    acc.Reload()
    assert [e.step for e in acc.Scalars("loss")] == [r["step"] for r in rows]
    grids = {e.step: e for e in acc.Images("samples")}
    assert sorted(grids) == steps_saved
    for s in steps_saved:
        with Image.open(os.path.join(workdir, "samples", f"step_{s:06d}.png")) as im:
            assert (grids[s].width, grids[s].height) == im.size


def _interrupting_batches(monkeypatch, at_step):
    """Sends SIGTERM to this process when the batch of ``at_step`` is handed out (a real signal)."""
    real = data_lib.iterate_batches

    def wrapped(*args, start_step=0, **kwargs):
        for i, b in enumerate(real(*args, start_step=start_step, **kwargs)):
            if start_step + i == at_step:
                os.kill(os.getpid(), signal.SIGTERM)
            yield b

    monkeypatch.setattr(data_lib, "iterate_batches", wrapped)


def test_end_to_end_and_interrupted_resume_equals_uninterrupted(tmp_path, monkeypatch, capsys):
    cfg = tiny_config(num_steps=6, checkpoint_every=3)
    full = training.train_and_evaluate(cfg, str(tmp_path / "full"))
    assert int(full.step) == 6
    _check_run(str(tmp_path / "full"), [3, 6], 6)
    out = capsys.readouterr().out
    assert "Checkpoints: " + str(tmp_path / "full" / "checkpoints") in out and "metrics.jsonl" in out

    # SIGTERM while step index 1 runs: the run finishes that step, saves step 2 and returns.
    with monkeypatch.context() as m:
        _interrupting_batches(m, at_step=1)
        cut = training.train_and_evaluate(cfg, str(tmp_path / "cut"))
    assert int(cut.step) == 2
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # handlers restored
    assert sorted(os.listdir(tmp_path / "cut" / "checkpoints")) == ["2"]
    resumed = training.train_and_evaluate(cfg, str(tmp_path / "cut"))
    assert int(resumed.step) == 6
    _check_run(str(tmp_path / "cut"), [2, 3, 6], 6)
    for name in ("params", "ema_params", "opt_state"):
        assert _max_abs_diff(getattr(resumed, name), getattr(full, name)) <= 1e-6, name

    # the saved final checkpoint is the returned state (read back the way samplers load a run)
    from jaxdiff.experiment import load_run

    run = load_run(str(tmp_path / "full"))
    assert run.meta["T"] == 5 and run.meta["image_size"] == 8 and run.step == 6
    assert _max_abs_diff(run.params, full.ema_params) == 0.0
    assert tuple(run.config.model.ch_mult) == (1,)

    # the generation prior is stored with the checkpoints, outside their step directories, once per run
    from jaxdiff.priors import store

    for wd in ("full", "cut"):
        prior, meta = store.load_prior(str(tmp_path / wd)), store.stored_prior_meta(str(tmp_path / wd))
        assert prior.kind == "blur_mean" and prior.shape == (8, 8, 1) and meta["step"] == 6
        assert "blur(" in meta["fitted_for"] and "source=digits" in meta["fitted_for"]
        for step in os.listdir(tmp_path / wd / "checkpoints"):
            if step.isdigit():
                assert "prior.npz" not in os.listdir(tmp_path / wd / "checkpoints" / step)
    np.testing.assert_array_equal(store.load_prior(str(tmp_path / "cut")).arrays["means"],
                                  store.load_prior(str(tmp_path / "full")).arrays["means"])


def test_a_prior_that_fails_to_fit_is_logged_and_training_continues(tmp_path, monkeypatch, caplog):
    from jaxdiff.priors import store

    def broken(*args, **kwargs):
        raise RuntimeError("no prior today")

    monkeypatch.setattr(store, "fit_prior_for_run", broken)
    with caplog.at_level("ERROR"):
        state = training.train_and_evaluate(tiny_config(num_steps=3, checkpoint_every=3, num_sample_images=0),
                                            str(tmp_path / "w"))
    assert int(state.step) == 3 and os.listdir(tmp_path / "w" / "checkpoints") == ["3"]
    assert "could not fit or store the generation prior at step 3 (training continues)" in caplog.text
    assert not (tmp_path / "w" / "prior.npz").exists()


def test_bad_config_fails_before_anything_is_built(tmp_path):
    cfg = tiny_config(batch_size=12)  # not a multiple of 8 devices
    with pytest.raises(ValueError, match="train.batch_size"):
        training.train_and_evaluate(cfg, str(tmp_path / "w"))
    assert not os.path.exists(tmp_path / "w")


def test_end_to_end_on_mock_tfds_mnist(tmp_path):
    tfds = pytest.importorskip("tensorflow_datasets")
    cfg = tiny_config(num_steps=2, checkpoint_every=2, log_every=1)
    cfg.data.source = "tfds:mnist"
    import tfds_mock

    with tfds_mock.mock_data(num_examples=40, policy=tfds.testing.MockPolicy.USE_CODE):
        state = training.train_and_evaluate(cfg, str(tmp_path / "mnist"))
    assert int(state.step) == 2
    _check_run(str(tmp_path / "mnist"), [2], 2)


_WORKER = r"""
import json, os, sys
import numpy as np
import ml_collections
import jax
from jaxdiff.train import loop as training
cfg = ml_collections.ConfigDict(json.loads(sys.argv[1]))
state = training.train_and_evaluate(cfg, sys.argv[2])
leaves = {jax.tree_util.keystr(p): np.asarray(training._host(x))
          for p, x in jax.tree_util.tree_flatten_with_path(state.params)[0]}
np.savez(sys.argv[3], **leaves)
print("DONE", jax.process_index(), jax.process_count(), jax.device_count(), flush=True)
"""


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _two_processes(cfg, workdir, tmp_path) -> list:
    """Runs _WORKER as 2 jax.distributed processes on 127.0.0.1 (2 CPU devices each): [(rc, out, err)] * 2."""
    cfg_json = json.dumps(cfg.to_dict())
    env = dict(os.environ)
    env.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=2",
               JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{_free_port()}", JAX_NUM_PROCESSES="2",
               PYTHONPATH=ROOT + os.pathsep + env.get("PYTHONPATH", ""))
    procs = []
    for i in range(2):
        e = dict(env, JAX_PROCESS_ID=str(i))
        procs.append(subprocess.Popen(
            [sys.executable, "-c", _WORKER, cfg_json, str(workdir), str(tmp_path / f"p{i}.npz")],
            env=e, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    try:
        for p in procs:
            out, err = p.communicate(timeout=240)
            outs.append((p.returncode, out, err))
    finally:
        for p in procs:
            if p.poll() is None:
                p.kill()
    return outs


@pytest.mark.slow
def test_two_processes_train_together_like_one(tmp_path):
    cfg = tiny_config(num_steps=4, checkpoint_every=4, log_every=2, num_sample_images=0)
    outs = _two_processes(cfg, tmp_path / "multi", tmp_path)
    for rc, out, err in outs:
        assert rc == 0, err[-3000:]
    assert "DONE 0 2 4" in outs[0][1] and "DONE 1 2 4" in outs[1][1]
    assert sorted(os.listdir(tmp_path / "multi" / "checkpoints")) == ["4"]

    single = training.train_and_evaluate(cfg, str(tmp_path / "single"))  # 1 process, 8 devices
    ref = {jax.tree_util.keystr(p): np.asarray(training._host(x))
           for p, x in jax.tree_util.tree_flatten_with_path(single.params)[0]}
    p0, p1 = np.load(tmp_path / "p0.npz"), np.load(tmp_path / "p1.npz")
    assert set(p0.files) == set(ref)
    for k in ref:
        np.testing.assert_array_equal(p0[k], p1[k])
        np.testing.assert_allclose(p0[k], ref[k], atol=1e-5, rtol=0)


@pytest.mark.slow
def test_a_busy_workdir_stops_every_process_of_a_multi_process_run(tmp_path):
    from jaxdiff.train.lock import WorkdirLock

    wd = tmp_path / "busy"
    with WorkdirLock(str(wd)):  # another trainer holds the workdir
        outs = _two_processes(tiny_config(num_steps=2, checkpoint_every=2, log_every=1, num_sample_images=0),
                              wd, tmp_path)
    for rc, out, err in outs:
        assert rc != 0 and "DONE" not in out
        assert "WorkdirBusyError" in err and f"workdir {wd} is in use by another training process" in err
    assert "could not lock" in outs[1][2]  # process 1 heard it from process 0
    assert not (wd / "checkpoints").exists() and not (tmp_path / "p0.npz").exists()


def test_default_workdir_names_config_and_variant():
    # The function train.py uses (train.py itself is not run here: its absl flags are process-global and
    # sample.py's tests define --workdir too).
    from jaxdiff.config import default_workdir

    assert default_workdir("configs/cold_blur.py") == os.path.join("workdirs", "cold_blur")
    assert default_workdir("/x/configs/ddpm.py:mnist") == os.path.join("workdirs", "ddpm_mnist")


@pytest.mark.slow
def test_train_cli_runs_a_few_steps(tmp_path):
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    env.pop("XLA_FLAGS", None)
    cmd = [sys.executable, "train.py", "--config=configs/cold_blur.py", f"--workdir={tmp_path / 'cli'}",
           "--config.train.num_steps=2", "--config.train.batch_size=8", "--config.train.log_every=1",
           "--config.train.checkpoint_every=2", "--config.train.num_sample_images=4",
           "--config.data.image_size=8", "--config.model.ch=8", "--config.model.ch_mult=(1,)",
           "--config.model.num_groups=4", "--config.diffusion.degradation_params.kernel_size=3"]
    r = subprocess.run(cmd, cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr[-3000:]
    assert f"Checkpoints: {tmp_path / 'cli' / 'checkpoints'}" in r.stdout
    _check_run(str(tmp_path / "cli"), [2], 2)
    # With no device count chosen, train.py splits the batch over the cores as CPU devices (jaxdiff.cpu.devices).
    from jaxdiff.cpu.devices import auto_count

    n = auto_count(8)
    if n > 1:
        assert f"the batch is split over {n} XLA CPU devices" in r.stderr + r.stdout
