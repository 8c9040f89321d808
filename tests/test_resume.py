"""Resuming after SIGKILLs: a chain of kills at random moments, each followed by a restart, ends bitwise equal
to an uninterrupted run, and every step is logged once (the subprocess harness: tests/helpers/reliability.py).
"""
import glob
import os
import re
import time

import numpy as np
import pytest

from jaxdiff.train import checkpoints as ck

from helpers.reliability import (  # noqa: F401 - env, reference, child_cpu_time are fixtures
    child_cpu_time, env, reference, NUM_STEPS, EVERY, KILL_TRIALS, Run, report, ckdir, committed, tmp_entries,
    wait_for, load_state, assert_bitwise_equal, read_metrics,
)


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
            seen.update(e[:2] for e in tmp_entries(wd) - stale)
            return len(seen) >= int(mode[-1])

        if not wait_for(nth_write, run, poll=0.001):
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
        stale = tmp_entries(wd)  # left by the previous kill; the next writer removes them
        logs.append(env["root"] / f"{log_prefix}_{len(logs):02d}.log")
        run = Run(env, wd, logs[-1])
        if len(kills) < kills_wanted:
            newest = max(committed(wd), default=0)
            p = max(0.0, ((NUM_STEPS - newest) // EVERY - 1) / (kills_wanted - len(kills) + 1))
            families = ("anytime", "write2") if rng.uniform() < p else ("startup", "write1")
            mode = families[int(rng.integers(2))]
            if _kill_moment(run, wd, mode, rng, reference, stale, newest):
                run.kill()
                # After the kill nothing changes any more: a new tmp directory still there was cut mid-write.
                cut = sorted(e[0] for e in tmp_entries(wd) - stale)
                kills.append({"mode": mode, "at_s": round(run.elapsed(), 3), "tmp_left": cut,
                              "steps_on_disk": committed(wd)})
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
        assert committed(wd) == [32, 36, 40] and not tmp_entries(wd)
        assert not [n for n in os.listdir(ckdir(wd)) if n.startswith(ck.DELETING_PREFIX) or n == ck.REJECTED_DIR]
        assert_bitwise_equal(load_state(wd, NUM_STEPS), reference["state"], f"killed chain {chains} vs uninterrupted")
        kills += got
        resumed_all.append(resumed_at)

    inside_write = sum(bool(k["tmp_left"]) for k in kills)
    assert len(kills) >= 20 and checked >= 5
    assert inside_write >= 3, kills  # enough kills landed while a step was being written
    report("sigkill", {"kills": len(kills), "chains": chains, "inside_checkpoint_write": inside_write,
                        "processes": sum(len(r) for r in resumed_all),
                        "kills_by_mode": {m: sum(k["mode"] == m for k in kills)
                                          for m in ("anytime", "startup", "write1", "write2")},
                        "kills_by_phase": {p: sum(k["phase"] == p for k in kills) for p in (
                            "before restore", "training or between writes", "inside a checkpoint write")},
                        "resumed_at": resumed_all, "resumes_checked": checked, "refused": 0,
                        "final_equal_bitwise": True, "chain_seconds": round(time.monotonic() - t_chain, 1),
                        "kill_times_s": [k["at_s"] for k in kills]})


def _raw_event_steps(workdir):
    """Steps of every scalar event in the event files as they are on disk (no purge applied)."""
    from tensorboard.backend.event_processing import event_file_loader
    from tensorboard.compat.proto import event_pb2

    steps = []
    for path in sorted(glob.glob(os.path.join(str(workdir), "tb", "events.out.tfevents.*"))):
        for rec in event_file_loader.RawEventFileLoader(path).Load():
            ev = event_pb2.Event.FromString(rec)
            if ev.HasField("summary") and any(v.tag == "loss" for v in ev.summary.value):
                steps.append(ev.step)
    return steps


@pytest.mark.slow
def test_after_a_sigkill_and_resume_every_step_is_logged_once(env, reference, tmp_path):
    """Logging every step, the run is killed once it has logged (jsonl and events on disk) at least three steps
    beyond its newest checkpoint; the restart resumes there and runs to the end. TensorBoard's own reader
    (EventAccumulator, which applies the purge) and metrics.jsonl then hold every step 1 … 40 once, in order,
    and the final state is the uninterrupted run's, bitwise."""
    pytest.importorskip("tensorboard")
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    wd = tmp_path / "tb_once"
    run = Run(env, wd, tmp_path / "tb_once_0.log", "--config.train.log_every=1")

    def beyond_checkpoint():
        newest = max(committed(wd), default=0)
        rows = [r["step"] for r in read_metrics(wd)]
        events = _raw_event_steps(wd)
        ok = newest >= EVERY and rows and events and min(max(rows), max(events)) >= newest + 3
        return (newest, max(rows), max(events)) if ok else None

    at_kill = wait_for(beyond_checkpoint, run, poll=0.005)
    run.kill()
    assert at_kill, "the run ended before it had logged 3 steps past a checkpoint"
    newest = max(committed(wd))
    orphans = [s for s in _raw_event_steps(wd) if s > newest]
    assert orphans and max(r["step"] for r in read_metrics(wd)) > newest  # really something to drop
    rerun = Run(env, wd, tmp_path / "tb_once_1.log", "--config.train.log_every=1")
    assert rerun.wait() == 0, rerun.text()[-3000:]
    assert f"at step {newest}" in rerun.text()
    acc = EventAccumulator(str(wd / "tb"))
    acc.Reload()
    want = list(range(1, NUM_STEPS + 1))
    for tag in ("loss", "lr", "skipped_total"):
        assert [e.step for e in acc.Scalars(tag)] == want, tag
    assert [r["step"] for r in read_metrics(wd)] == want
    assert_bitwise_equal(load_state(wd, NUM_STEPS), reference["state"], "killed + resumed (log_every=1) vs uninterrupted")
    report("logged_once_after_sigkill", {"newest_checkpoint_at_kill": newest, "orphaned_events": len(orphans),
                                         "steps_logged": len(want), "final_equal_bitwise": True})
