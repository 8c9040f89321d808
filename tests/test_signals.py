"""SIGTERM and SIGINT: the current step finishes, is saved, exit code 0; the resumed run ends bitwise equal.
"""
import os
import re
import signal
import time

import numpy as np
import pytest

from jaxdiff import checkpoints as fmt

from helpers.reliability import (  # noqa: F401 - env, reference, child_cpu_time are fixtures
    child_cpu_time, env, reference, NUM_STEPS, Run, report, ckdir, committed, tmp_entries, wait_for,
    load_state, assert_bitwise_equal, read_metrics,
)


@pytest.mark.slow
def test_sigterm_and_sigint_save_and_exit_cleanly(env, reference):
    wd = env["root"] / "term"
    rng = np.random.default_rng(11)
    stops = []
    for sig in (signal.SIGTERM, signal.SIGINT):
        run = Run(env, wd, env["root"] / f"term_{sig.name}.log")
        start = max(committed(wd), default=0)
        # interrupt once training is under way (the process has logged a step beyond where it started),
        # 0-0.3 s later, so that the stop may fall between two checkpoint steps
        wait_for(lambda: any(r["step"] > start for r in read_metrics(wd)), run, poll=0.005)
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
        assert committed(wd)[-1] == stopped
        fmt.verify_checkpoint(os.path.join(ckdir(wd), str(stopped)), stopped)
        assert not tmp_entries(wd)
        stops.append(stopped)
    run = Run(env, wd, env["root"] / "term_final.log")
    assert run.wait() == 0
    assert f"at step {stops[-1]}" in run.text()
    assert_bitwise_equal(load_state(wd, NUM_STEPS), reference["state"], "SIGTERM/SIGINT + resume vs uninterrupted")
    report("sigterm_sigint", {"stopped_at": stops, "exit_codes": [0, 0], "final_equal_bitwise": True})
