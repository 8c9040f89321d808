"""The workdir lock: a second trainer is refused at once (exit code 2, the workdir and the holder's pid named),
the first finishes untouched, and a lock left by a killed process never blocks a restart."""
import os
import signal
import subprocess
import sys

import pytest

from helpers.reliability import (  # noqa: F401 - env, reference, child_cpu_time are fixtures
    child_cpu_time, env, reference, NUM_STEPS, Run, report, committed, wait_for, load_state, assert_bitwise_equal,
)
from jaxdiff.train.lock import LOCK_FILE, WorkdirBusyError, WorkdirLock

_HOLD = r"""
import sys, time
from jaxdiff.train.lock import WorkdirLock
WorkdirLock(sys.argv[1]).acquire()
print("locked", flush=True)
time.sleep(600)
"""


def test_a_held_lock_refuses_a_second_holder_naming_the_workdir_and_pid(tmp_path):
    wd = tmp_path / "wd"
    with WorkdirLock(str(wd)) as first:
        assert first.held and (wd / LOCK_FILE).read_text().strip() == str(os.getpid())
        with pytest.raises(WorkdirBusyError) as e:
            WorkdirLock(str(wd)).acquire()  # another open file description: flock refuses it even in one process
        assert f"workdir {wd} is in use by another training process (pid {os.getpid()}" in str(e.value)
        assert isinstance(e.value, ValueError) and "\n" not in str(e.value)
    assert not first.held
    with WorkdirLock(str(wd)):  # released: free again
        pass


def test_the_lock_of_a_killed_process_does_not_block_a_restart(tmp_path):
    wd = tmp_path / "wd"
    holder = subprocess.Popen([sys.executable, "-c", _HOLD, str(wd)], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(WorkdirBusyError, match=rf"\(pid {holder.pid},"):
            WorkdirLock(str(wd)).acquire()
    finally:
        os.kill(holder.pid, signal.SIGKILL)
        holder.wait()
    assert (wd / LOCK_FILE).read_text().strip() == str(holder.pid)  # the stale file is still there …
    with WorkdirLock(str(wd)):  # … and does not matter
        assert (wd / LOCK_FILE).read_text().strip() == str(os.getpid())


def test_train_and_evaluate_refuses_a_workdir_in_use_before_building_anything(tmp_path, monkeypatch):
    from test_training import tiny_config

    from jaxdiff.train import loop

    def must_not_run(*a, **k):
        raise AssertionError("the busy workdir was not refused before the model was built")

    monkeypatch.setattr(loop, "init_train_state", must_not_run)
    monkeypatch.setattr(loop, "build_model", must_not_run)
    wd = tmp_path / "wd"
    with WorkdirLock(str(wd)):
        with pytest.raises(WorkdirBusyError, match=rf"workdir {wd} is in use .*pid {os.getpid()}"):
            loop.train_and_evaluate(tiny_config(), str(wd))
    assert sorted(os.listdir(wd)) == [LOCK_FILE]  # no checkpoints, metrics or events of the refused run


@pytest.mark.slow
def test_a_second_train_py_on_a_busy_workdir_exits_2_and_the_first_ends_bitwise_equal(env, reference, tmp_path):
    """Two train.py on one workdir: the second is refused with one line naming the workdir and the first's pid
    (exit code 2, nothing written), and the first finishes as an uninterrupted run, bitwise."""
    wd = tmp_path / "busy"
    first = Run(env, wd, tmp_path / "first.log")
    lock = wd / LOCK_FILE
    wait_for(lambda: lock.exists() and lock.read_text().strip() == str(first.pid), first, poll=0.01)
    second = Run(env, wd, tmp_path / "second.log")
    rc2 = second.wait()
    text = second.text()
    assert rc2 == 2, text[-3000:]
    assert f"train.py: workdir {wd} is in use by another training process (pid {first.pid}," in text, text[-3000:]
    assert "Traceback" not in text and "resumed from" not in text
    tb = wd / "tb"  # the refused process wrote no event file (their names end with the writer's pid)
    assert not (tb.exists() and [n for n in os.listdir(tb) if n.endswith(f".{second.pid}")])
    rc1 = first.wait()
    assert rc1 == 0, first.text()[-3000:]
    assert committed(wd) == [32, 36, 40]
    assert_bitwise_equal(load_state(wd, NUM_STEPS), reference["state"], "first trainer vs uninterrupted")
    report("workdir_lock", {"second_exit_code": rc2, "first_exit_code": rc1, "final_equal_bitwise": True,
                            "message": [ln for ln in text.splitlines() if ln.startswith("train.py:")][:1]})
