"""A checkpoint write that fails (EFBIG from the kernel): reported with the step, older steps kept, training goes on.
"""
import os
import re
import resource
import time

import pytest

import jax.numpy as jnp

from jaxdiff import checkpoints as fmt
from jaxdiff.train import checkpoints as ck

from helpers.reliability import (  # noqa: F401 - env, reference, child_cpu_time are fixtures
    child_cpu_time, env, reference, NUM_STEPS, Run, report, ckdir, committed, tmp_entries, wait_for,
    load_state, assert_bitwise_equal,
)


@pytest.mark.slow
def test_write_failure_is_reported_and_training_continues(env, reference, tmp_path):
    """A real write error (EFBIG) inside orbax/tensorstore: RLIMIT_FSIZE of the running process is set to
    16 KiB (the arrays file is larger, the JSON files are not) after step 8 is on disk, and lifted again
    when the failure is reported. Root ignores file permissions and this machine offers no small tmpfs, so
    a per-process file-size limit is the honest way to make the kernel refuse a write."""
    wd = tmp_path / "disk"
    run = Run(env, wd, tmp_path / "disk.log", pipe=True)  # the log file must not be limited
    wait_for(lambda: 8 in committed(wd), run, poll=0.001)
    resource.prlimit(run.pid, resource.RLIMIT_FSIZE, (16 * 1024, resource.RLIM_INFINITY))
    limited = time.monotonic()
    wait_for(lambda: "could not be written" in run.text(), run, poll=0.01)
    resource.prlimit(run.pid, resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    lifted = time.monotonic()
    rc = run.wait()
    text = run.text()
    assert rc == 0, text[-3000:]
    failed = sorted({int(s) for s in re.findall(r"checkpoint step (\d+): could not be written", text)})
    assert failed and all(s > 8 for s in failed), text[-3000:]
    assert "File too large" in text
    for s in committed(wd):
        fmt.verify_checkpoint(os.path.join(ckdir(wd), str(s)), s)
    assert committed(wd) == [32, 36, 40] and not tmp_entries(wd)
    assert_bitwise_equal(load_state(wd, NUM_STEPS), reference["state"], "run with failed saves vs reference")
    report("disk", {"failed_steps": failed, "limited_for_s": round(lifted - limited, 2), "exit_code": rc,
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
    fmt.verify_checkpoint(str(tmp_path / "1"), 1)
    c.save(3, big, config={"a": 3}, meta={})
    c.wait()
    assert c.all_steps() == [3]
    c.close()
