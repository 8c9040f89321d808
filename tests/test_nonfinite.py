"""NaN batches (injected by tests/helpers/train_with_nan_steps.py through ``batch_hook``): skipped and counted;
a streak of ``train.max_consecutive_nonfinite`` stops the run with exit code 3 and nothing saved after it.
"""
import re

import numpy as np
import pytest

from helpers import train_with_nan_steps as nan
from helpers.reliability import (  # noqa: F401 - env, reference, child_cpu_time are fixtures
    child_cpu_time, env, ENV_NAN_STEPS, NAN_SCRIPT, Run, report, committed, load_state, read_metrics,
)


@pytest.mark.slow
def test_nan_batches_are_skipped_counted_and_a_streak_stops_the_run(env, tmp_path):
    """Batches 4–7 poisoned (4 in a row, under the limit of 5): skipped and counted, parameters unchanged.
    Batches 16–20 poisoned (5 in a row): the run stops with a message; no checkpoint after the streak."""
    wd = tmp_path / "nan"
    run = Run(env, wd, tmp_path / "nan.log", "--config.train.max_consecutive_nonfinite=5",
              "--config.train.keep_checkpoints=20", extra_env={ENV_NAN_STEPS: "4-7,16-20"}, script=NAN_SCRIPT)
    rc = run.wait()
    text = run.text()
    assert rc == 3, text[-3000:]  # train.py's documented code for this stop
    m = re.search(r"(\d+) consecutive non-finite losses/gradients[^\n]*max_consecutive_nonfinite=5", text)
    assert m and int(m.group(1)) == 5, text[-3000:]
    assert "Traceback" not in text and "train.py: 5 consecutive" in text  # one message, not a stack
    rows = {r["step"]: r for r in read_metrics(wd)}
    assert rows[4]["skipped_total"] == 0 and rows[8]["skipped_in_window"] == 4 and rows[8]["skipped_total"] == 4
    assert rows[12]["skipped_in_window"] == 0 and rows[16]["skipped_total"] == 4
    assert np.isfinite(rows[12]["loss"])
    steps = committed(wd)
    assert steps == [4, 8, 12, 16, 20], steps  # nothing saved once the streak reached 5
    s4, s8, s16, s20 = (load_state(wd, s) for s in (4, 8, 16, 20))
    for a, b in ((s4, s8), (s16, s20)):  # every update of a streak was skipped: same weights, EMA, moments
        for k in a:
            if k.startswith(("['params']", "['ema_params']", "['opt_state']")):
                assert a[k].tobytes() == b[k].tobytes(), k
    assert int(s8["['skipped_total']"]) == 4 and int(s20["['skipped_total']"]) == 8
    assert int(s20["['nonfinite_count']"]) == 4
    assert all(np.all(np.isfinite(v)) for v in s20.values() if v.dtype.kind == "f")
    report("nan", {"poisoned_batches": "4-7,16-20", "limit": 5, "skipped_total_at_20": 8, "stopped": True,
                    "stop_message": m.group(0)[:200], "checkpoints": steps})



def test_fault_injection_spec():
    assert nan.nan_steps_from_env({ENV_NAN_STEPS: "7, 22-24"}) == {7, 22, 23, 24}
    assert nan.nan_steps_from_env({}) == frozenset()
    with pytest.raises(ValueError, match=ENV_NAN_STEPS):
        nan.nan_steps_from_env({ENV_NAN_STEPS: "3-1"})
    b = np.zeros((2, 4, 4, 1), np.float32)
    assert nan.poison_batch(b, 3, frozenset({2})) is b
    assert np.isnan(nan.poison_batch(b, 2, frozenset({2}))).all()
    hook = nan.nan_hook(frozenset({2}))
    assert hook(3, b) is b and np.isnan(hook(2, b)).all()


def test_batch_hook_sees_every_step_and_its_batch_is_trained_on(tmp_path):
    """train_and_evaluate calls ``batch_hook(step, local_batch)`` once per step, in order, and trains on what
    it returns: an all-NaN batch from the hook is a skipped update (counted in the state)."""
    from test_training import tiny_config

    from jaxdiff.train import loop

    seen = []

    def hook(step, batch):
        seen.append((step, batch.shape))
        return np.full_like(batch, np.nan) if step == 1 else batch

    cfg = tiny_config(num_steps=3, checkpoint_every=3, log_every=1, num_sample_images=0)
    state = loop.train_and_evaluate(cfg, str(tmp_path / "wd"), batch_hook=hook)
    assert [s for s, _ in seen] == [0, 1, 2]
    assert all(shape == (16, 8, 8, 1) for _, shape in seen)
    assert int(state.skipped_total) == 1 and int(state.nonfinite_count) == 0 and int(state.step) == 3
