"""Damaged, foreign and half-written checkpoints: refused with the step and the file named, the previous one
used; the manifest; no pickle.
"""
import glob
import json
import os
import pickle
import re
import shutil

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxdiff import checkpoints as fmt
from jaxdiff.train import checkpoints as ck

from helpers.reliability import (  # noqa: F401 - env, reference, child_cpu_time are fixtures
    child_cpu_time, env, reference, ROOT, TRAIN_PY, NUM_STEPS, Run, report, ckdir, committed, abstract_state,
    load_state, assert_bitwise_equal, copy_workdir, data_files,
)


@pytest.mark.slow
def test_truncated_or_altered_checkpoint_is_refused_and_the_previous_used(env, reference, tmp_path):
    """Cuts and single flipped bits at random offsets in several files of the newest step: each refused
    with a message naming the step and the file, and the previous step restored instead."""
    wd = copy_workdir(reference["workdir"], tmp_path / "wd")
    d40 = os.path.join(ckdir(wd), "40")
    cfg, _ = ck.Checkpointer(ckdir(wd), max_to_keep=None).read_json(36)
    target = abstract_state(cfg)
    prev = load_state(wd, 36)
    rng = np.random.default_rng(7)
    files = data_files(d40)
    assert len(files) >= 6
    # always the biggest file (the arrays) and the config JSON (a flipped bit there still parses), twice each,
    # plus 5 others drawn at random (drawn from the rest, so every run makes exactly 18 trials: the ocdbt file
    # names are random, so the draw must not depend on where those two sort)
    biggest, config_json = max(files, key=os.path.getsize), os.path.join(d40, "config", "metadata")
    others = [f for f in files if f not in (biggest, config_json)]
    assert len(others) >= 5
    chosen = [others[i] for i in sorted(rng.choice(len(others), size=5, replace=False))] + [biggest, config_json] * 2
    trials = []
    c = ck.Checkpointer(ckdir(wd), max_to_keep=None)
    for f in chosen:
        rel = os.path.relpath(f, d40)
        with open(f, "rb") as fh:
            blob = fh.read()
        for how in ("truncate", "flip"):
            off = int(rng.integers(0, len(blob)))
            bad = blob[:off] if how == "truncate" else (
                blob[:off] + bytes([blob[off] ^ (1 << int(rng.integers(8)))]) + blob[off + 1:])
            with open(f, "wb") as fh:
                fh.write(bad)
            with pytest.raises(fmt.CheckpointError, match=rf"step 40: file {re.escape(rel)} ") as e:
                c.load(40, target)
            r = c.load_latest_valid(target)
            assert r.step == 36
            trials.append({"file": rel, "how": how, "offset": off, "size": len(blob), "refused": True,
                           "message": str(e.value)[:160]})
            with open(f, "wb") as fh:
                fh.write(blob)
    # the last load_latest_valid gave 36 bitwise
    got = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(r.state)[0]}
    assert_bitwise_equal(got, prev, "fallback load of step 36")
    # the files orbax rewrites after the manifest hold nothing that is restored: damage there changes nothing
    for name in fmt.UNCOVERED:
        f = os.path.join(d40, name)
        with open(f, "rb") as fh:
            blob = fh.read()
        for bad in (blob[: len(blob) // 2], b"\x00" + blob[1:]):
            with open(f, "wb") as fh:
                fh.write(bad)
            r = c.load(40, target)
            got = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(r.state)[0]}
            assert_bitwise_equal(got, reference["state"], f"damaged {name}")
        with open(f, "wb") as fh:
            fh.write(blob)
    c.close()
    assert len(trials) == 18
    report("damaged_checkpoint", {"trials": len(trials), "refused": len(trials),
                                   "files": sorted({t["file"] for t in trials}), "examples": trials[:3]})


@pytest.mark.slow
def test_restart_on_a_damaged_newest_checkpoint_falls_back_and_finishes_equal(env, reference, tmp_path):
    wd = copy_workdir(reference["workdir"], tmp_path / "wd")
    big = max(data_files(os.path.join(ckdir(wd), "40")), key=os.path.getsize)
    with open(big, "r+b") as fh:
        fh.truncate(os.path.getsize(big) // 3)
    run = Run(env, wd, tmp_path / "restart.log")
    assert run.wait() == 0, run.text()[-3000:]
    text = run.text()
    assert re.search(r"checkpoint step 40: file state/\S+ has \d+ bytes, \d+ were written", text), text[-3000:]
    assert "resumed from" in text and "at step 36" in text
    rejected = glob.glob(os.path.join(ckdir(wd), ck.REJECTED_DIR, "40-*"))
    assert len(rejected) == 1  # moved aside, not deleted
    assert committed(wd) == [32, 36, 40]
    assert_bitwise_equal(load_state(wd, NUM_STEPS), reference["state"], "restart after damage vs uninterrupted")
    report("damaged_newest_restart", {"refused_step": 40, "resumed_at": 36, "final_equal_bitwise": True})


@pytest.mark.slow
def test_sampling_skips_an_altered_checkpoint(env, reference, tmp_path, caplog):
    """sample.py's restore (orbax partial restore of the EMA weights) checks the manifest too: one flipped
    bit in the arrays of the newest step, which tensorstore itself does not notice, makes it use step 36."""
    from jaxdiff.inference import Inference

    wd = copy_workdir(reference["workdir"], tmp_path / "wd")
    big = max(data_files(os.path.join(ckdir(wd), "40")), key=os.path.getsize)
    with open(big, "r+b") as fh:
        fh.seek(os.path.getsize(big) // 2)
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 0x10]))
    inf = Inference.from_workdir(str(wd))
    assert inf.step == 36
    assert re.search(r"step 40: file state/\S+ was altered", caplog.text)
    want = {k: v for k, v in load_state(wd, 36).items() if k.startswith("['ema_params']")}
    got = {"['ema_params']" + jax.tree_util.keystr(p): np.asarray(x)
           for p, x in jax.tree_util.tree_flatten_with_path(inf.params)[0]}
    assert_bitwise_equal(got, want, "EMA weights sampled from")


@pytest.mark.slow
def test_checkpoint_of_another_config_names_step_and_leaf(env, reference, tmp_path):
    wd = copy_workdir(reference["workdir"], tmp_path / "wd")
    c = ck.Checkpointer(ckdir(wd), max_to_keep=None)
    cfg, _ = c.read_json(40)
    cfg["model"]["ch"] = 16  # a wider UNet: every kernel has another shape
    with pytest.raises(fmt.CheckpointError, match=r"step 40: leaf (ema_)?params/\S+ is stored as float32\(.*8,?\) "
                                                 r"but the config builds float32\(.*16,?\)"):
        c.load(40, abstract_state(cfg))
    with pytest.raises(fmt.CheckpointError, match=r"no checkpoint in .* loads:(\n[^\n]*step (40|36|32):[^\n]*){3}"):
        c.load_latest_valid(abstract_state(cfg), quarantine=True)
    c.close()
    assert committed(wd) == [32, 36, 40]  # nothing moved when nothing loads


def test_loading_never_unpickles(tmp_path, monkeypatch):
    """Saving and restoring go through orbax/tensorstore and JSON: with every pickle entry point disabled
    both still work; and no jaxdiff module asks numpy for pickles."""
    def boom(*a, **k):
        raise AssertionError("pickle used")

    for name in ("load", "loads", "Unpickler"):
        monkeypatch.setattr(pickle, name, boom)
    state = {"w": jnp.arange(12.0).reshape(3, 4), "n": jnp.int32(3)}
    c = ck.Checkpointer(str(tmp_path), max_to_keep=2)
    c.save(1, state, config={"a": 1}, meta={"b": 2})
    c.wait()
    r = c.load(1, ck.abstract_like(state))
    c.close()
    np.testing.assert_array_equal(np.asarray(r.state["w"]), np.asarray(state["w"]))
    for path in glob.glob(os.path.join(ROOT, "jaxdiff", "**", "*.py"), recursive=True) + [
            TRAIN_PY, os.path.join(ROOT, "sample.py")]:
        with open(path) as fh:
            src = fh.read()
        if path.endswith(os.path.join("evaluation", "inception_weights.py")):
            # the one reader of a pickle (the TorchScript archive of the FID network): a restricted Unpickler whose
            # find_class accepts tensor records only (tests/test_inception.py checks that os.system is refused)
            assert "class _TensorUnpickler(pickle.Unpickler)" in src and "def find_class" in src
            src = src.replace("import pickle\n", "\n")
        assert not re.search(r"allow_pickle\s*=\s*True|import (c?pickle|dill|cloudpickle)|pickle\.loads?\(", src), path



def test_leftovers_of_killed_processes_are_invisible_and_cleaned(tmp_path):
    state = {"w": jnp.ones((4, 4))}
    c = ck.Checkpointer(str(tmp_path), max_to_keep=2)
    c.save(1, state, config={}, meta={})
    c.wait()
    c.close()
    # what a SIGKILL can leave: a half-written step, a half-deleted one, a renamed step without manifest
    os.makedirs(tmp_path / f"2{ck.TMP_SUFFIX}" / "state")
    shutil.copytree(tmp_path / "1", tmp_path / f"{ck.DELETING_PREFIX}0-1-2")
    shutil.copytree(tmp_path / "1", tmp_path / "3")
    os.remove(tmp_path / "3" / fmt.MANIFEST)
    c = ck.Checkpointer(str(tmp_path), max_to_keep=2)
    assert c.all_steps() == [1, 3]
    with pytest.raises(fmt.CheckpointError, match="step 3: no integrity manifest"):
        c.load(3, ck.abstract_like(state))
    r = c.load_latest_valid(ck.abstract_like(state), quarantine=True)
    assert r.step == 1 and c.all_steps() == [1]
    assert len(os.listdir(tmp_path / ck.REJECTED_DIR)) == 1
    c.save(4, state, config={}, meta={})  # the first save of a writer removes the leftovers
    c.wait()
    assert sorted(os.listdir(tmp_path)) == ["1", "4", ck.REJECTED_DIR]
    c.close()


def test_manifest_is_in_place_when_the_step_appears(tmp_path):
    """The manifest is written before orbax's rename: a complete step never lacks it, and it covers
    every file of the step except the two orbax rewrites at the rename."""
    c = ck.Checkpointer(str(tmp_path), max_to_keep=None)
    c.save(5, {"w": jnp.ones(3)}, config={"x": [1, 2]}, meta={"m": 1})
    c.wait()
    c.close()
    with open(tmp_path / "5" / fmt.MANIFEST) as fh:
        rec = json.load(fh)
    on_disk = {os.path.relpath(f, tmp_path / "5") for f in glob.glob(str(tmp_path / "5" / "**"), recursive=True)
               if os.path.isfile(f)}
    assert set(rec["files"]) == on_disk - {fmt.MANIFEST, *fmt.UNCOVERED}
    assert {"config/metadata", "meta/metadata"} <= set(rec["files"])
    assert any(f.startswith("state/") for f in rec["files"]) and rec["step"] == 5
