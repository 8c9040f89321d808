"""jaxdiff.cpu.devices: when the host's cores become XLA devices, and when nothing is touched.

Each case runs in a fresh interpreter (the choice must be made before JAX starts a backend; this test process
already has 8 simulated devices from conftest.py, which is itself the "already initialized" case).
"""
import json
import os
import subprocess
import sys

import jax
import pytest

from jaxdiff.cpu import devices as cpu_devices

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

_PROBE = """
import json, sys
from jaxdiff.cpu import devices as cpu_devices
n = cpu_devices.split_cpu_devices(int(sys.argv[1]), distributed=sys.argv[2] == "1")
import jax
print(json.dumps({"set": n, "devices": jax.device_count(), "platform": jax.default_backend()}))
"""


def _probe(batch=64, distributed=False, **env_changes):
    env = {k: v for k, v in os.environ.items() if k not in ("XLA_FLAGS", "JAX_PLATFORMS", cpu_devices.ENV,
                                                               "JAX_COORDINATOR_ADDRESS")}
    env.update({k: v for k, v in env_changes.items() if v is not None})
    r = subprocess.run([sys.executable, "-c", _PROBE, str(batch), "1" if distributed else "0"], cwd=ROOT, env=env,
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr[-2000:]
    return json.loads(r.stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("batch,cores,expected", [(64, 2, 2), (64, 16, 8), (6, 4, 3), (7, 4, 1), (1, 8, 1), (12, 5, 4)])
def test_auto_count_is_the_largest_divisor_of_the_batch_within_the_cores(batch, cores, expected):
    n = cpu_devices.auto_count(batch, cores)
    assert n == expected
    assert batch % n == 0 and n <= min(cores, cpu_devices.MAX_AUTO_DEVICES)


def test_a_fresh_cpu_process_is_split_over_its_cores():
    want = cpu_devices.auto_count(64)
    got = _probe(64)
    assert got["platform"] == "cpu"
    assert got["devices"] == max(want, 1)
    assert got["set"] == (want if want > 1 else 0)


@pytest.mark.parametrize(
    "changes,distributed",
    [
        (dict(XLA_FLAGS="--xla_force_host_platform_device_count=3"), False),  # the user's own count wins
        ({cpu_devices.ENV: "1"}, False),  # explicitly off
        (dict(JAX_COORDINATOR_ADDRESS="127.0.0.1:1"), False),  # multi-process: left to the user
        ({}, True),  # config.train.distributed
    ],
)
def test_left_alone_when_the_user_or_the_run_decides(changes, distributed):
    got = _probe(64, distributed=distributed, **changes)
    assert got["set"] == 0
    assert got["devices"] == (3 if "XLA_FLAGS" in changes else 1)


def test_explicit_count_from_the_environment():
    got = _probe(64, **{cpu_devices.ENV: "4"})
    assert got == {"set": 4, "devices": 4, "platform": "cpu"}


def test_bad_environment_value_names_the_variable():
    env = dict(os.environ, **{cpu_devices.ENV: "two"})
    env.pop("XLA_FLAGS", None)
    r = subprocess.run([sys.executable, "-c", _PROBE, "64", "0"], cwd=ROOT, env=env, capture_output=True, text=True,
                       timeout=120)
    assert r.returncode != 0
    assert "JAXDIFF_CPU_DEVICES='two' must be a positive integer" in r.stderr


def test_accelerator_only_platforms_and_initialized_backends_are_left_alone(monkeypatch):
    # This process: backends are up (8 devices from conftest) -> nothing may change.
    assert jax.device_count() == 8
    monkeypatch.delenv("XLA_FLAGS", raising=False)
    assert cpu_devices.split_cpu_devices(64) == 0
    assert jax.device_count() == 8
    # JAX_PLATFORMS without cpu: decided before looking at the backend.
    monkeypatch.setenv("JAX_PLATFORMS", "cuda")
    monkeypatch.setattr(cpu_devices, "_backends_initialized", lambda: False)
    monkeypatch.setattr(jax.config, "update", lambda *a: pytest.fail("must not touch the config"))
    assert cpu_devices.split_cpu_devices(64) == 0


@pytest.mark.parametrize("script,args", [("train.py", ["--config=configs/cold_blur.py"]),
                                         ("sample.py", ["--workdir=/nonexistent_jaxdiff_workdir"])])
def test_clis_report_a_bad_count_in_one_line(script, args, tmp_path):
    env = dict(os.environ, **{cpu_devices.ENV: "0"})
    env.pop("XLA_FLAGS", None)
    if script == "train.py":
        args = args + [f"--workdir={tmp_path / 'w'}"]
    r = subprocess.run([sys.executable, script, *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert r.returncode == 2, r.stderr[-2000:]
    assert "JAXDIFF_CPU_DEVICES='0' must be a positive integer" in r.stderr
    assert "Traceback" not in r.stderr
    assert not (tmp_path / "w").exists()
