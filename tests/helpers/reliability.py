"""The subprocess harness of the reliability tests (test_resume, test_signals, test_checkpoint_integrity, …).

The end-to-end tests run the real ``train.py`` in subprocesses on a tiny problem (8×8 digits from an npz file,
T = 5, a one-level UNet of width 8, batch 8, 40 steps, a checkpoint every 4 steps, the last 3 kept) with one
persistent compilation cache, so restarts load the compiled programs instead of compiling them. Every run's
final state is compared leaf by leaf, bitwise, with one uninterrupted run of the same config and seed (the
``reference``, made once per test session and shared by the modules). The numbers these tests measure are
written up in docs/RELIABILITY.md; set JAXDIFF_RELIABILITY_REPORT=<path> to get them as JSON.
"""
import glob
import json
import os
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

from jaxdiff import checkpoints as fmt
from jaxdiff.train import checkpoints as ck

HELPERS = os.path.dirname(os.path.abspath(__file__))

ROOT = os.path.dirname(os.path.dirname(HELPERS))
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

NAN_SCRIPT = os.path.join(HELPERS, "train_with_nan_steps.py")
ENV_NAN_STEPS = "JAXDIFF_FAULT_NAN_STEPS"


REPORT: dict = {}
_SHARED: dict = {}


def report(key, value):
    REPORT[key] = value
    path = os.environ.get("JAXDIFF_RELIABILITY_REPORT")
    if path:
        with open(path, "w") as fh:
            json.dump(REPORT, fh, indent=1, sort_keys=True)


@pytest.fixture(scope="module", autouse=True)
def child_cpu_time(request):
    """Reports the CPU seconds of every train.py process of a module (on a machine of its own, the wall
    time of the module is about that, as the children run one at a time)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    t0 = time.monotonic()
    yield
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    report(f"module_time/{request.module.__name__}", {
        "wall_s": round(time.monotonic() - t0, 1),
        "children_cpu_s": round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1),
        "load_average_at_end": [round(x, 1) for x in os.getloadavg()]})


def shared_env(tmp_path_factory):
    """Data (npz of the 8×8 digits), the tiny config file, a shared compilation cache, the child
    environment; made once per session."""
    if "env" in _SHARED:
        return _SHARED["env"]
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
    child.pop(ENV_NAN_STEPS, None)
    _SHARED["env"] = {"root": root, "config": str(cfg), "env": child}
    return _SHARED["env"]


class Run:
    """One ``train.py`` process (or ``script``, a wrapper of it); output goes to a log file. ``pipe=True``
    routes it through a pipe copied by a thread of this process (for a child whose own file writes are limited)."""

    def __init__(self, env, workdir, log, *overrides, extra_env=None, pipe=False, script=TRAIN_PY):
        self.log = str(log)
        e = dict(env["env"], **(extra_env or {}))
        self._fh = open(self.log, "w")
        self.t0 = time.monotonic()
        self.proc = subprocess.Popen(
            [sys.executable, script, f"--config={env['config']}", f"--workdir={workdir}", *overrides],
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


def ckdir(workdir):
    return os.path.join(str(workdir), "checkpoints")


def committed(workdir):
    """Steps whose directory is complete (renamed by orbax and holding the manifest)."""
    d = ckdir(workdir)
    if not os.path.isdir(d):
        return []
    return sorted(int(n) for n in os.listdir(d)
                  if n.isdigit() and os.path.isfile(os.path.join(d, n, fmt.MANIFEST)))


def tmp_entries(workdir):
    """{(name, inode, ctime)} of orbax's temporary step directories (inode and ctime tell a new one from a
    stale one of the same name: a freed inode number is soon reused)."""
    d = ckdir(workdir)
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


def wait_for(cond, run, timeout=RUN_TIMEOUT, poll=0.002):
    t = time.monotonic()
    while time.monotonic() - t < timeout:
        v = cond()
        if v:
            return v
        if run.poll() is not None:
            return cond()
        time.sleep(poll)
    pytest.fail("timed out waiting")


def abstract_state(config_dict):
    """The abstract TrainState tree of a config, on one device, traced only (nothing compiled)."""
    import ml_collections

    from jaxdiff.experiment import build_model
    from jaxdiff.train.state import create_train_state, make_optimizer

    cfg = ml_collections.ConfigDict(config_dict)
    model = build_model(cfg)
    tx = make_optimizer(cfg.train)
    s, c = int(cfg.data.image_size), int(cfg.data.channels)

    def init():
        v = model.init({"params": jax.random.PRNGKey(0), "dropout": jax.random.PRNGKey(1)},
                       jnp.zeros((1, s, s, c)), jnp.zeros((1,), jnp.int32), train=False)
        return create_train_state(params=v["params"], apply_fn=model.apply, tx=tx).to_pytree()

    dev = jax.sharding.SingleDeviceSharding(jax.devices()[0])
    return ck.abstract_like(jax.eval_shape(init), dev)


def load_state(workdir, step, config_dict=None):
    """{leaf path: np.ndarray} of checkpoint ``step`` (manifest and shapes checked)."""
    c = ck.Checkpointer(ckdir(workdir), max_to_keep=None)
    try:
        cfg, _ = c.read_json(step) if config_dict is None else (config_dict, None)
        r = c.load(step, abstract_state(cfg))
    finally:
        c.close()
    return {jax.tree_util.keystr(p): np.asarray(x) for p, x in jax.tree_util.tree_flatten_with_path(r.state)[0]}


def assert_bitwise_equal(a, b, what):
    assert a.keys() == b.keys(), what
    bad = [k for k in a if a[k].dtype != b[k].dtype or a[k].shape != b[k].shape
           or a[k].tobytes() != b[k].tobytes()]
    assert not bad, f"{what}: {len(bad)} of {len(a)} leaves differ, e.g. {bad[:3]}"


def read_metrics(workdir):
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


def shared_reference(env):
    """Two uninterrupted runs of the same config and seed, made once per session. The first fills the
    compilation cache; the second, timed, must end bitwise equal to it (determinism on one machine). Returns
    the workdir, the final state, the wall time of a cached run and its time until the first checkpoint
    write starts."""
    if "reference" in _SHARED:
        return _SHARED["reference"]
    times = []
    for name in ("reference_cold", "reference"):
        wd = env["root"] / name
        run = Run(env, wd, env["root"] / f"{name}.log")
        wait_for(lambda: committed(wd) or tmp_entries(wd), run, poll=0.005)
        first_save = run.elapsed()
        rc = run.wait()
        assert rc == 0, run.text()[-3000:]
        assert committed(wd) == [32, 36, 40]
        times.append((run.elapsed(), first_save))
    state = load_state(wd, NUM_STEPS)
    assert_bitwise_equal(load_state(env["root"] / "reference_cold", NUM_STEPS), state, "two uninterrupted runs")
    report("reference_run", {"seconds_compiling": round(times[0][0], 2), "seconds_cached": round(times[1][0], 2),
                             "first_save_s_cached": round(times[1][1], 2), "two_runs_equal_bitwise": True})
    _SHARED["reference"] = {"workdir": wd, "state": state, "seconds": times[1][0], "first_save": times[1][1]}
    return _SHARED["reference"]


def copy_workdir(src, dst):
    shutil.copytree(src, dst, ignore=shutil.ignore_patterns("tb", "metrics.jsonl"))
    return dst


def data_files(step_dir):
    return sorted(f for f in glob.glob(os.path.join(step_dir, "**"), recursive=True)
                  if os.path.isfile(f) and os.path.basename(f) not in fmt.UNCOVERED
                  and os.path.basename(f) != fmt.MANIFEST)



@pytest.fixture(scope="module")
def env(tmp_path_factory):
    return shared_env(tmp_path_factory)


@pytest.fixture(scope="module")
def reference(env):  # noqa: F811 - the fixture above
    return shared_reference(env)
