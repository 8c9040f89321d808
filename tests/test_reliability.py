"""Reliability: interrupted runs, damaged checkpoints, numerical faults, bad input, full disks, determinism.

The end-to-end tests (``slow``) run the real ``train.py`` in subprocesses on a tiny problem (8×8 digits
from an npz file, T = 5, a one-level UNet of width 8, batch 8, 40 steps, a checkpoint every 4 steps, the
last 3 kept) with one persistent compilation cache, so restarts load the compiled programs instead of
compiling them. Every run's final state is compared leaf by leaf, bitwise, with one uninterrupted run of
the same config and seed. The numbers these tests measure are written up in docs/RELIABILITY.md; set
JAXDIFF_RELIABILITY_REPORT=<path> to get them as JSON.
"""
import glob
import json
import os
import pickle
import re
import resource
import shutil
import signal
import subprocess
import sys
import threading
import time

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from jaxdiff.train import checkpoints as ck
from jaxdiff.train import faults

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TRAIN_PY = os.path.join(ROOT, "train.py")
NUM_STEPS, EVERY, KEEP = 40, 4, 3
KILL_TRIALS = 20  # SIGKILLs (the issue asks for at least 20)
RUN_TIMEOUT = 300  # seconds for any one process (a hang fails the test instead of CI)

TINY_CONFIG = """
import runpy


def get_config():
    c = runpy.run_path({default!r})["get_config"]()
    c.seed = 3
    c.data.source = {source!r}
    c.data.eval_split = "train"
    c.data.image_size = 8
    c.diffusion.T = 5
    c.diffusion.degradation_params = dict(kernel_size=3, std=1.0, routine="constant", padding="circular")
    c.model.update(dict(ch=8, ch_mult=(1,), num_res_blocks=1, attn_resolutions=(), num_groups=4))
    c.train.update(dict(batch_size=8, num_steps={steps}, log_every={every}, checkpoint_every={every},
                        keep_checkpoints={keep}, num_sample_images=0, warmup_steps=2))
    return c
"""

REPORT: dict = {}


@pytest.fixture(scope="module", autouse=True)
def _child_cpu_time():
    """Reports the CPU seconds of every train.py process of this module (on a machine of its own, the
    wall time of the module is about that, as the children run one at a time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    yield
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    _report("module_time", {"wall_s": round(time.monotonic() - t0, 1),
                            "children_cpu_s": round(after.ru_utime + after.ru_stime
                                                    - before.ru_utime - before.ru_stime, 1),
                            "load_average_at_end": [round(x, 1) for x in os.getloadavg()]})


def _report(key, value):
    REPORT[key] = value
    path = os.environ.get("JAXDIFF_RELIABILITY_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(REPORT, fh, indent=1, sort_keys=True)


# ----------------------------------------------------------------------------------------------------
# the subprocess harness


@pytest.fixture(scope="module")
def env(tmp_path_factory):
    """Data (npz of the 8×8 digits), the tiny config file, a shared compilation cache, the child environment."""
    from sklearn.datasets import load_digits

    root = tmp_path_factory.mktemp("reliability")
    images = np.rint(load_digits().images * (255.0 / 16.0)).astype(np.uint8)[..., None]
    np.savez(root / "digits8.npz", images=images[:512])
    cfg = root / "tiny.py"
    cfg.write_text(TINY_CONFIG.format(default=os.path.join(ROOT, "configs", "default.py"),
                                      source=f"npz:{root / 'digits8.npz'}", steps=NUM_STEPS, every=EVERY,
                                      keep=KEEP))
    child = dict(os.environ)
    child.update(JAX_PLATFORMS="cpu", XLA_FLAGS="--xla_force_host_platform_device_count=1",
                 JAX_COMPILATION_CACHE_DIR=str(root / "jax_cache"),
                 JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0", JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES="0",
                 PYTHONUNBUFFERED="1")
    child.pop(faults.ENV_NAN_STEPS, None)
    return {"root": root, "config": str(cfg), "env": child}


class Run:
    """One ``train.py`` process; output goes to a log file. ``pipe=True`` routes it through a pipe copied
    by a thread of this process (for a child whose own file writes are limited)."""

    def __init__(self, env, workdir, log, *overrides, extra_env=None, pipe=False):
        self.log = str(log)
        e = dict(env["env"], **(extra_env or {}))
        self._fh = open(self.log, "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, TRAIN_PY, f"--config={env['config']}", f"--workdir={workdir}", *overrides],
            stdout=subprocess.PIPE if pipe else self._fh, stderr=subprocess.STDOUT, env=e, cwd=ROOT)
        self._copier = None
        if pipe:
            self._copier = threading.Thread(target=self._copy, daemon=True)
            self._copier.start()

    def _copy(self):
        for chunk in iter(lambda: self.proc.stdout.read1(4096), b""):
            self._fh.write(chunk.decode(errors="replace"))
            self._fh.flush()

    @property
    def pid(self):
        return self.proc.pid

    def poll(self):
        return self.proc.poll()

    def wait(self, timeout=RUN_TIMEOUT):
        try:
            rc = self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail(f"train.py did not finish in {timeout} s; log:\n{self.text()[-3000:]}")
        self._close()
        return rc

    def _close(self):
        if self._copier is not None:
            self._copier.join(timeout=30)
        self._fh.close()

    def signal(self, sig):
        self.proc.send_signal(sig)

    def kill(self):
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait()
        self._close()

    def text(self):
        with open(self.log, errors="replace") as fh:
            return fh.read()

    def elapsed(self):
        return time.monotonic() - self.t0


def _ckdir(workdir):
    return os.path.join(str(workdir), "checkpoints")


def _committed(workdir):
    """Steps whose directory is complete (renamed by orbax and holding the manifest)."""
    d = _ckdir(workdir)
    if not os.path.isdir(d):
        return []
    return sorted(int(n) for n in os.listdir(d)
                  if n.isdigit() and os.path.isfile(os.path.join(d, n, ck.MANIFEST)))


def _tmp_entries(workdir):
    """{(name, inode, ctime)} of orbax's temporary step directories (inode and ctime tell a new one from a
    stale one of the same name: a freed inode number is soon reused)."""
    d = _ckdir(workdir)
    out = set()
    try:
        names = [n for n in os.listdir(d) if ck.TMP_SUFFIX in n]
    except FileNotFoundError:
        return out
    for n in names:
        try:
            st = os.stat(os.path.join(d, n))
            out.add((n, st.st_ino, st.st_ctime_ns))
        except FileNotFoundError:
            pass
    return out


def _wait_for(cond, run, timeout=RUN_TIMEOUT, poll=0.002):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        v = cond()
        if v:
            return v
        if run.poll() is not None:
            return cond()
        time.sleep(poll)
    pytest.fail("timed out waiting")


def _abstract_state(config_dict):
    """The abstract TrainState tree of a config, on one device, traced only (nothing compiled)."""
    import ml_collections

    from jaxdiff.train import loop as training
    from jaxdiff.train.state import create_train_state, make_optimizer

    cfg = ml_collections.ConfigDict(config_dict)
    model = training.build_model(cfg)
    tx = make_optimizer(cfg.train)
    s, c = int(cfg.data.image_size), int(cfg.data.channels)

    def init():
        v = model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)},
                       jnp.zeros((1, s, s, c)), jnp.zeros((1,), jnp.int32), train=False)
        return create_train_state(params=v["params"], apply_fn=model.apply, tx=tx).to_pytree()

    dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return ck.abstract_like(jax.eval_shape(init), dev)


def _load_state(workdir, step, config_dict=None):
    """{leaf path: np.ndarray} of checkpoint ``step`` (manifest and shapes checked)."""
    c = ck.Checkpointer(_ckdir(workdir), max_to_keep=None)
    try:
        cfg, _ = c.read_json(step) if config_dict is None else (config_dict, None)
        r = c.restore(step, _abstract_state(cfg))
    finally:
        c.close()
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(r.state)[0]}


def _assert_bitwise_equal(a, b, what):
    assert a.keys() == b.keys(), what
    bad = [k for k in a if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
           or a[k].tobytes() != b[k].tobytes()]
    assert not bad, f"{what}: {len(bad)} of {len(a)} leaves differ, e.g. {bad[:3]}"


def _metrics(workdir):
    path = os.path.join(str(workdir), "metrics.jsonl")
    rows = []
    if os.path.exists(path):
        with open(path) as fh:
            for line in fh:
                line = line.strip()
                if line:
                    try:
                        rows.append(json.loads(line))
                    except json.JSONDecodeError:
                        pass  # a line cut by a SIGKILL
    return rows


@pytest.fixture(scope="module")
def reference(env):
    """Two uninterrupted runs of the same config and seed. The first fills the compilation cache; the
    second, timed, must end bitwise equal to it (determinism on one machine). Returns the workdir, the
    final state, the wall time of a cached run and its time until the first checkpoint write starts."""
    times = []
    for name in ("reference_cold", "reference"):
        wd = env["root"] / name
        run = Run(env, wd, env["root"] / f"{name}.log")
        _wait_for(lambda: _committed(wd) or _tmp_entries(wd), run, poll=0.005)
        first_save = run.elapsed()
        rc = run.wait()
        assert rc == 0, run.text()[-3000:]
        assert _committed(wd) == [32, 36, 40]
        times.append((run.elapsed(), first_save))
    state = _load_state(wd, NUM_STEPS)
    _assert_bitwise_equal(_load_state(env["root"] / "reference_cold", NUM_STEPS), state, "two uninterrupted runs")
    _report("reference_run", {"seconds_compiling": round(times[0][0], 2), "seconds_cached": round(times[1][0], 2),
                              "first_save_s_cached": round(times[1][1], 2), "two_runs_equal_bitwise": True})
    return {"workdir": wd, "state": state, "seconds": times[1][0], "first_save": times[1][1]}


# ----------------------------------------------------------------------------------------------------
# 1. interruption


_RESUMED = re.compile(r"resumed from .* at step (\d+)")


def _kill_moment(run, wd, mode, rng, reference, stale, newest):
    """Waits for the moment ``mode`` picks; returns False if the process ended first.

    startup   uniform in [0, 0.9 t_first): imports, data, restore, loading the compiled programs
    anytime   uniform in [0, L/2): L the expected life of a process resuming at ``newest``
    write1/2  0-30 ms after the 1st/2nd new temporary step directory of this process appears
    """
    first, whole = reference["first_save"], reference["seconds"]
    if mode == "startup":
        delay = rng.uniform(0.0, 0.9 * first)
    elif mode == "anytime":
        delay = rng.uniform(0.0, 0.5 * (first + (whole - first) * (NUM_STEPS - newest) / NUM_STEPS))
    else:
        seen = set()

        def nth_write():
            seen.update(e[:2] for e in _tmp_entries(wd) - stale)
            return len(seen) >= int(mode[-1])

        if not _wait_for(nth_write, run, poll=0.001):
            return False
        delay = rng.uniform(0.0, 0.03)
    deadline = time.monotonic() + delay
    while time.monotonic() < deadline and run.poll() is None:
        time.sleep(0.001)
    return run.poll() is None


def _kill_chain(env, wd, rng, reference, kills_wanted, log_prefix):
    """Kill, restart, kill, … until ``kills_wanted`` kills, then lets the run finish (or until it finishes
    by itself first). Returns (kills, logs of the processes).

    Which family a kill comes from is random, weighted so that the run moves forward at the pace the
    remaining kills allow: with probability p = (saves left − 1) / (kills left + 1) a family that lets the
    process make progress (anytime, write2), else one that mostly does not (startup, write1).
    """
    kills, logs = [], []
    while True:
        stale = _tmp_entries(wd)  # left by the previous kill; the next writer removes them
        logs.append(env["root"] / f"{log_prefix}_{len(logs):02d}.log")
        run = Run(env, wd, logs[-1])
        if len(kills) < kills_wanted:
            newest = max(_committed(wd), default=0)
            p = max(0.0, ((NUM_STEPS - newest) // EVERY - 1) / (kills_wanted - len(kills) + 1))
            families = ("anytime", "write2") if rng.uniform() < p else ("startup", "write1")
            mode = families[int(rng.integers(2))]
            if _kill_moment(run, wd, mode, rng, reference, stale, newest):
                run.kill()
                # After the kill nothing changes any more: a new tmp directory still there was cut mid-write.
                cut = sorted(e[0] for e in _tmp_entries(wd) - stale)
                kills.append({"mode": mode, "at_s": round(run.elapsed(), 3), "tmp_left": cut,
                              "steps_on_disk": _committed(wd)})
                continue
        rc = run.wait()
        assert rc == 0, run.text()[-3000:]
        return kills, logs


@pytest.mark.slow
def test_sigkill_chain_resumes_and_ends_bitwise_equal(env, reference):
    """≥ 20 SIGKILLs at random moments (several inside a checkpoint write), each followed by a restart,
    as one chain until the run finishes by itself.

    After every kill the next process must resume from the newest step that was complete at the kill
    (nothing committed is refused or lost), and the chain must end with the reference's state, bitwise.
    Kill moments are drawn (seeded) from four families (see ``_kill_moment``): any time in the process's
    expected life, during start-up, and right after its first or second checkpoint write began; the
    weights keep the run moving at the pace the remaining kills allow, so one chain holds all of them.
    Should a process still finish before its kill (timing on a loaded machine), a new chain in a fresh
    workdir takes the remaining kills (the report counts the chains).
    """
    rng = np.random.default_rng(20260105)
    t_chain = time.monotonic()
    kills, chains, resumed_all, checked = [], 0, [], 0
    while len(kills) < KILL_TRIALS:
        wd = env["root"] / f"chain{chains}"
        got, logs = _kill_chain(env, wd, rng, reference, KILL_TRIALS - len(kills), f"chain{chains}")
        chains += 1
        # Every process that got past its restore started from the newest step complete at the previous
        # kill (no refusals). One killed before it finished restoring (no progress bar yet) shows nothing.
        resumed_at = []
        for path in logs:
            with open(path, errors="replace") as fh:
                text = fh.read()
            assert "trying an older checkpoint" not in text, f"{path} refused a checkpoint:\n{text[-2000:]}"
            m = _RESUMED.search(text)
            resumed_at.append(int(m.group(1)) if m else (0 if "train:" in text else None))
        for k, kill in enumerate(got):
            newest = kill["steps_on_disk"][-1] if kill["steps_on_disk"] else 0
            if resumed_at[k + 1] is not None:
                assert resumed_at[k + 1] == newest, (k, kill, resumed_at)
                checked += 1
            kill["phase"] = ("before restore" if resumed_at[k] is None else
                             "inside a checkpoint write" if kill["tmp_left"] else "training or between writes")
        assert resumed_at[-1] is not None
        assert _committed(wd) == [32, 36, 40] and not _tmp_entries(wd)
        assert not [n for n in os.listdir(_ckdir(wd)) if n.startswith(ck.DELETING_PREFIX) or n == ck.REJECTED_DIR]
        _assert_bitwise_equal(_load_state(wd, NUM_STEPS), reference["state"], f"killed chain {chains} vs uninterrupted")
        kills += got
        resumed_all.append(resumed_at)

    inside_write = sum(bool(k["tmp_left"]) for k in kills)
    assert len(kills) >= 20 and checked >= 5
    assert inside_write >= 3, kills  # enough kills landed while a step was being written
    _report("sigkill", {"kills": len(kills), "chains": chains, "inside_checkpoint_write": inside_write,
                        "processes": sum(len(r) for r in resumed_all),
                        "kills_by_mode": {m: sum(k["mode"] == m for k in kills)
                                          for m in ("anytime", "startup", "write1", "write2")},
                        "kills_by_phase": {p: sum(k["phase"] == p for k in kills) for p in (
                            "before restore", "training or between writes", "inside a checkpoint write")},
                        "resumed_at": resumed_all, "resumes_checked": checked, "refused": 0,
                        "final_equal_bitwise": True, "chain_seconds": round(time.monotonic() - t_chain, 1),
                        "kill_times_s": [k["at_s"] for k in kills]})


@pytest.mark.slow
def test_sigterm_and_sigint_save_and_exit_cleanly(env, reference):
    wd = env["root"] / "term"
    rng = np.random.default_rng(11)
    stops = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        run = Run(env, wd, env["root"] / f"term_{sig.name}.log")
        start = max(_committed(wd), default=0)
        # interrupt once training is under way (the process has logged a step beyond where it started),
        # 0-0.3 s later, so that the stop may fall between two checkpoint steps
        _wait_for(lambda: any(r["step"] > start for r in _metrics(wd)), run, poll=0.005)
        time.sleep(rng.uniform(0.0, 0.3))
        run.signal(sig)
        rc = run.wait()
        text = run.text()
        assert rc == 0, text[-3000:]
        m = re.search(rf"stopped by {sig.name} at step (\d+)", text)
        assert m, text[-3000:]
        stopped = int(m.group(1))
        assert start < stopped < NUM_STEPS
        # the step it stopped at is saved and complete: nothing computed was lost
        assert _committed(wd)[-1] == stopped
        ck.verify_checkpoint(os.path.join(_ckdir(wd), str(stopped)), stopped)
        assert not _tmp_entries(wd)
        stops.append(stopped)
    run = Run(env, wd, env["root"] / "term_final.log")
    assert run.wait() == 0
    assert f"at step {stops[-1]}" in run.text()
    _assert_bitwise_equal(_load_state(wd, NUM_STEPS), reference["state"], "SIGTERM/SIGINT + resume vs uninterrupted")
    _report("sigterm_sigint", {"stopped_at": stops, "exit_codes": [0, 0], "final_equal_bitwise": True})


# ----------------------------------------------------------------------------------------------------
# 2. damaged and foreign checkpoints


def _copy_workdir(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("tb", "metrics.jsonl"))
    return dst


def _data_files(step_dir):
    return sorted(f for f in glob.glob(os.path.join(step_dir, "**"), recursive=True)
                  if os.path.isfile(f) and os.path.basename(f) not in ck.UNCOVERED
                  and os.path.basename(f) != ck.MANIFEST)


@pytest.mark.slow
def test_truncated_or_altered_checkpoint_is_refused_and_the_previous_used(env, reference, tmp_path):
    """Cuts and single flipped bits at random offsets in several files of the newest step: each refused
    with a message naming the step and the file, and the previous step restored instead."""
    wd = _copy_workdir(reference["workdir"], tmp_path / "wd")
    d40 = os.path.join(_ckdir(wd), "40")
    cfg, _ = ck.Checkpointer(_ckdir(wd), max_to_keep=None).read_json(36)
    target = _abstract_state(cfg)
    prev = _load_state(wd, 36)
    rng = np.random.default_rng(7)
    files = _data_files(d40)
    assert len(files) >= 6
    # always the biggest file (the arrays) and the config JSON (a flipped bit there still parses), twice each,
    # plus 5 others drawn at random (drawn from the rest, so every run makes exactly 18 trials: the ocdbt file
    # names are random, so the draw must not depend on where those two sort)
    biggest, config_json = max(files, key=os.path.getsize), os.path.join(d40, "config", "metadata")
    others = [f for f in files if f not in (biggest, config_json)]
    assert len(others) >= 5
    chosen = [others[i] for i in sorted(rng.choice(len(others), size=5, replace=False))] + [biggest, config_json] * 2
    trials = []
    c = ck.Checkpointer(_ckdir(wd), max_to_keep=None)
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
            with pytest.raises(ck.CheckpointError, match=rf"step 40: file {re.escape(rel)} ") as e:
                c.restore(40, target)
            r = c.restore_latest_valid(target)
            assert r.step == 36
            trials.append({"file": rel, "how": how, "offset": off, "size": len(blob), "refused": True,
                           "message": str(e.value)[:160]})
            with open(f, "wb") as fh:
                fh.write(blob)
    # the last restore_latest_valid gave 36 bitwise
    got = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(r.state)[0]}
    _assert_bitwise_equal(got, prev, "fallback restore of step 36")
    # the files orbax rewrites after the manifest hold nothing that is restored: damage there changes nothing
    for name in ck.UNCOVERED:
        f = os.path.join(d40, name)
        with open(f, "rb") as fh:
            blob = fh.read()
        for bad in (blob[: len(blob) // 2], b"\x00" + blob[1:]):
            with open(f, "wb") as fh:
                fh.write(bad)
            r = c.restore(40, target)
            got = {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(r.state)[0]}
            _assert_bitwise_equal(got, reference["state"], f"damaged {name}")
        with open(f, "wb") as fh:
            fh.write(blob)
    c.close()
    assert len(trials) == 18
    _report("damaged_checkpoint", {"trials": len(trials), "refused": len(trials),
                                   "files": sorted({t["file"] for t in trials}), "examples": trials[:3]})


@pytest.mark.slow
def test_restart_on_a_damaged_newest_checkpoint_falls_back_and_finishes_equal(env, reference, tmp_path):
    wd = _copy_workdir(reference["workdir"], tmp_path / "wd")
    big = max(_data_files(os.path.join(_ckdir(wd), "40")), key=os.path.getsize)
    with open(big, "r+b") as fh:
        fh.truncate(os.path.getsize(big) // 3)
    run = Run(env, wd, tmp_path / "restart.log")
    assert run.wait() == 0, run.text()[-3000:]
    text = run.text()
    assert re.search(r"checkpoint step 40: file state/\S+ has \d+ bytes, \d+ were written", text), text[-3000:]
    assert "resumed from" in text and "at step 36" in text
    rejected = glob.glob(os.path.join(_ckdir(wd), ck.REJECTED_DIR, "40-*"))
    assert len(rejected) == 1  # moved aside, not deleted
    assert _committed(wd) == [32, 36, 40]
    _assert_bitwise_equal(_load_state(wd, NUM_STEPS), reference["state"], "restart after damage vs uninterrupted")
    _report("damaged_newest_restart", {"refused_step": 40, "resumed_at": 36, "final_equal_bitwise": True})


@pytest.mark.slow
def test_sampling_skips_an_altered_checkpoint(env, reference, tmp_path, caplog):
    """sample.py's restore (orbax partial restore of the EMA weights) checks the manifest too: one flipped
    bit in the arrays of the newest step, which tensorstore itself does not notice, makes it use step 36."""
    from jaxdiff.inference import Inference

    wd = _copy_workdir(reference["workdir"], tmp_path / "wd")
    big = max(_data_files(os.path.join(_ckdir(wd), "40")), key=os.path.getsize)
    with open(big, "r+b") as fh:
        fh.seek(os.path.getsize(big) // 2)
        b = fh.read(1)
        fh.seek(-1, 1)
        fh.write(bytes([b[0] ^ 0x10]))
    inf = Inference.from_workdir(str(wd))
    assert inf.step == 36
    assert re.search(r"step 40: file state/\S+ was altered", caplog.text)
    want = {k: v for k, v in _load_state(wd, 36).items() if k.startswith("['ema_params']")}
    got = {"['ema_params']" + jax.tree_util.keystr(p): np.asarray(x)
           for p, x in jax.tree_util.tree_flatten_with_path(inf.params)[0]}
    _assert_bitwise_equal(got, want, "EMA weights sampled from")


@pytest.mark.slow
def test_checkpoint_of_another_config_names_step_and_leaf(env, reference, tmp_path):
    wd = _copy_workdir(reference["workdir"], tmp_path / "wd")
    c = ck.Checkpointer(_ckdir(wd), max_to_keep=None)
    cfg, _ = c.read_json(40)
    cfg["model"]["ch"] = 16  # a wider UNet: every kernel has another shape
    with pytest.raises(ck.CheckpointError, match=r"step 40: leaf (ema_)?params/\S+ is stored as float32\(.*8,?\) "
                                                 r"but the config builds float32\(.*16,?\)"):
        c.restore(40, _abstract_state(cfg))
    with pytest.raises(ck.CheckpointError, match=r"no checkpoint in .* restores:(\n[^\n]*step (40|36|32):[^\n]*){3}"):
        c.restore_latest_valid(_abstract_state(cfg), quarantine=True)
    c.close()
    assert _committed(wd) == [32, 36, 40]  # nothing moved when nothing restores


def test_restore_never_unpickles(tmp_path, monkeypatch):
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
    r = c.restore(1, ck.abstract_like(state))
    c.close()
    np.testing.assert_array_equal(np.asarray(r.state["w"]), np.asarray(state["w"]))
    for path in glob.glob(os.path.join(ROOT, "jaxdiff", "**", "*.py"), recursive=True) + [
            TRAIN_PY, os.path.join(ROOT, "sample.py")]:
        with open(path) as fh:
            src = fh.read()
        assert not re.search(r"allow_pickle\s*=\s*True|import (c?pickle|dill|cloudpickle)|pickle\.loads?\(", src), path


# ----------------------------------------------------------------------------------------------------
# 3. numerical faults


@pytest.mark.slow
def test_nan_batches_are_skipped_counted_and_a_streak_stops_the_run(env, tmp_path):
    """Batches 4–7 poisoned (4 in a row, under the limit of 5): skipped and counted, parameters unchanged.
    Batches 16–20 poisoned (5 in a row): the run stops with a message; no checkpoint after the streak."""
    wd = tmp_path / "nan"
    run = Run(env, wd, tmp_path / "nan.log", "--config.train.max_consecutive_nonfinite=5",
              "--config.train.keep_checkpoints=20", extra_env={faults.ENV_NAN_STEPS: "4-7,16-20"})
    rc = run.wait()
    text = run.text()
    assert rc == 3, text[-3000:]  # train.py's documented code for this stop
    m = re.search(r"(\d+) consecutive non-finite losses/gradients[^\n]*max_consecutive_nonfinite=5", text)
    assert m and int(m.group(1)) == 5, text[-3000:]
    assert "Traceback" not in text and "train.py: 5 consecutive" in text  # one message, not a stack
    rows = {r["step"]: r for r in _metrics(wd)}
    assert rows[4]["skipped_total"] == 0 and rows[8]["skipped_in_window"] == 4 and rows[8]["skipped_total"] == 4
    assert rows[12]["skipped_in_window"] == 0 and rows[16]["skipped_total"] == 4
    assert np.isfinite(rows[12]["loss"])
    steps = _committed(wd)
    assert steps == [4, 8, 12, 16, 20], steps  # nothing saved once the streak reached 5
    s4, s8, s16, s20 = (_load_state(wd, s) for s in (4, 8, 16, 20))
    for a, b in ((s4, s8), (s16, s20)):  # every update of a streak was skipped: same weights, EMA, moments
        for k in a:
            if k.startswith(("['params']", "['ema_params']", "['opt_state']")):
                assert a[k].tobytes() == b[k].tobytes(), k
    assert int(s8["['skipped_total']"]) == 4 and int(s20["['skipped_total']"]) == 8
    assert int(s20["['nonfinite_count']"]) == 4
    assert all(np.all(np.isfinite(v)) for v in s20.values() if v.dtype.kind == "f")
    _report("nan", {"poisoned_batches": "4-7,16-20", "limit": 5, "skipped_total_at_20": 8, "stopped": True,
                    "stop_message": m.group(0)[:200], "checkpoints": steps})


@pytest.mark.slow
def test_train_py_bad_config_is_one_line_and_exit_code_2(env, tmp_path):
    run = Run(env, tmp_path / "wd", tmp_path / "bad.log", "--config.train.ema_decay=1.5")
    assert run.wait() == 2
    text = run.text()
    assert "train.py: invalid config: train.ema_decay=1.5 is invalid; allowed: a number in [0, 1)" in text
    assert "Traceback" not in text and not os.path.exists(tmp_path / "wd" / "checkpoints")


def test_fault_injection_spec():
    assert faults.parse_steps("7, 22-24") == {7, 22, 23, 24}
    assert faults.nan_steps_from_env({}) == frozenset()
    with pytest.raises(ValueError, match=faults.ENV_NAN_STEPS):
        faults.parse_steps("3-1")
    b = np.zeros((2, 4, 4, 1), np.float32)
    assert faults.poison_batch(b, 3, frozenset({2})) is b
    assert np.isnan(faults.poison_batch(b, 2, frozenset({2}))).all()


# ----------------------------------------------------------------------------------------------------
# 6. disk


@pytest.mark.slow
def test_write_failure_is_reported_and_training_continues(env, reference, tmp_path):
    """A real write error (EFBIG) inside orbax/tensorstore: RLIMIT_FSIZE of the running process is set to
    16 KiB (the arrays file is larger, the JSON files are not) after step 8 is on disk, and lifted again
    when the failure is reported. Root ignores file permissions and this machine offers no small tmpfs, so
    a per-process file-size limit is the honest way to make the kernel refuse a write."""
    wd = tmp_path / "disk"
    run = Run(env, wd, tmp_path / "disk.log", pipe=True)  # the log file must not be limited
    _wait_for(lambda: 8 in _committed(wd), run, poll=0.001)
    resource.prlimit(run.pid, resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))
    limited = time.monotonic()
    _wait_for(lambda: "could not be written" in run.text(), run, poll=0.01)
    resource.prlimit(run.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    lifted = time.monotonic()
    rc = run.wait()
    text = run.text()
    assert rc == 0, text[-3000:]
    failed = sorted({int(s) for s in re.findall(r"checkpoint step (\d+): could not be written", text)})
    assert failed and all(s > 8 for s in failed), text[-3000:]
    assert "File too large" in text
    for s in _committed(wd):
        ck.verify_checkpoint(os.path.join(_ckdir(wd), str(s)), s)
    assert _committed(wd) == [32, 36, 40] and not _tmp_entries(wd)
    _assert_bitwise_equal(_load_state(wd, NUM_STEPS), reference["state"], "run with failed saves vs reference")
    _report("disk", {"failed_steps": failed, "limited_for_s": round(lifted - limited, 2), "exit_code": rc,
                     "final_equal_bitwise": True})


def test_failed_save_keeps_the_previous_checkpoint_in_process(tmp_path):
    """The same through the Checkpointer API: the failure names the step, the older step stays valid,
    retention does not delete anything for a failed save, and the next save works again."""
    c = ck.Checkpointer(str(tmp_path), max_to_keep=1)
    big = {"w": jnp.arange(64 * 1024, dtype=jnp.float32)}
    c.save(1, big, config={"a": 1}, meta={})
    c.wait()
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    resource.setrlimit(resource.RLIMIT_FSIZE, (16 * 1024, hard))
    try:
        c.save(2, big, config={"a": 2}, meta={})
        with pytest.raises(ck.CheckpointSaveError, match=r"checkpoint step 2: could not be written .*newest: step 1"):
            c.wait()
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
    assert c.all_steps() == [1] and c.failures[0][0] == 2
    assert sorted(os.listdir(tmp_path)) == ["1"]
    ck.verify_checkpoint(str(tmp_path / "1"), 1)
    c.save(3, big, config={"a": 3}, meta={})
    c.wait()
    assert c.all_steps() == [3]
    c.close()


# ----------------------------------------------------------------------------------------------------
# checkpoint mechanics


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
    os.remove(tmp_path / "3" / ck.MANIFEST)
    c = ck.Checkpointer(str(tmp_path), max_to_keep=2)
    assert c.all_steps() == [1, 3]
    with pytest.raises(ck.CheckpointError, match="step 3: no integrity manifest"):
        c.restore(3, ck.abstract_like(state))
    r = c.restore_latest_valid(ck.abstract_like(state), quarantine=True)
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
    with open(tmp_path / "5" / ck.MANIFEST) as fh:
        rec = json.load(fh)
    on_disk = {os.path.relpath(f, tmp_path / "5") for f in glob.glob(str(tmp_path / "5" / "**"), recursive=True)
               if os.path.isfile(f)}
    assert set(rec["files"]) == on_disk - {ck.MANIFEST, *ck.UNCOVERED}
    assert {"config/metadata", "meta/metadata"} <= set(rec["files"])
    assert any(f.startswith("state/") for f in rec["files"]) and rec["step"] == 5


# ----------------------------------------------------------------------------------------------------
# 5. determinism


def test_same_key_gives_identical_samples_and_another_key_does_not():
    from jaxdiff import sampling
    from jaxdiff.forward import GaussianProcess
    from jaxdiff.schedules import make_schedule

    process = GaussianProcess(make_schedule("linear", 10))
    w = jnp.float32(0.3)

    def denoiser(params, x, t):  # a fixed smooth "network" predicting ε
        return jnp.tanh(params * x) + 0.01 * t[:, None, None, None].astype(jnp.float32)

    def draw(seed):
        key = jax.random.PRNGKey(seed)
        x_T = jax.random.normal(jax.random.fold_in(key, 1), (4, 8, 8, 1))
        out, _ = sampling.sample(denoiser, w, key, x_T, process=process, corrector="ddpm",
                                 timesteps=sampling.timesteps(10, 10), prediction="eps", clip=1.0, eta=1.0,
                                 return_every=0)
        return np.asarray(out)

    a, b, c = draw(0), draw(0), draw(1)
    assert a.tobytes() == b.tobytes()
    assert np.max(np.abs(a - c)) > 1e-3


# ----------------------------------------------------------------------------------------------------
# 4. bad input, before any compilation of the model


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
            c.diffusion.kind, c.diffusion.schedule, c.diffusion.degradation = "gaussian", schedule, ""
            c.diffusion.prediction, c.sample.corrector = "eps", "ddim"
        return edit

    return [
        ("unknown degradation", set_("diffusion.degradation", "blurr"), r"diffusion\.degradation='blurr'.*'blur'"),
        ("unknown sampler", set_("sample.corrector", "euler"), r"sample\.corrector='euler'.*allowed"),
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
    _report("bad_input", {"cases": [n for n, _, _ in cases]})


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


def test_sample_py_on_a_workdir_without_checkpoints(tmp_path):
    sys.path.insert(0, ROOT)
    import sample
    from jaxdiff.inference import NoCheckpointError

    with pytest.raises(NoCheckpointError, match=r"no checkpoint in .*checkpoints: train first"):
        sample.run(workdir=str(tmp_path))
