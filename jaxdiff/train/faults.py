"""Fault injection for the reliability tests: NaN batches at chosen steps, read once at start-up.

    JAXDIFF_FAULT_NAN_STEPS="7,22-24"   the training batches of steps 7, 22, 23 and 24 become all-NaN

The poisoned batch goes through the real train step, so the non-finite guard inside the jitted step
(loss or gradient not finite → update skipped, counters + 1) is exercised exactly as a real fault
would exercise it. Steps are the 0-based step numbers the batch is consumed at (the state's ``step``
before the update). The variable is read once, when :func:`nan_steps_from_env` is called (at the start
of ``train_and_evaluate``); an unset or empty variable injects nothing. A malformed value is a
ValueError naming the variable (a silently ignored fault would make a test pass for the wrong reason).
"""
from __future__ import annotations

import os
import re
from typing import Mapping, Optional

import numpy as np

__all__ = ["ENV_NAN_STEPS", "parse_steps", "nan_steps_from_env", "poison_batch"]

ENV_NAN_STEPS = "JAXDIFF_FAULT_NAN_STEPS"


def parse_steps(spec: str, *, name: str = ENV_NAN_STEPS) -> frozenset[int]:
    """``"7,22-24"`` → {7, 22, 23, 24}; ``""`` → {} (integers ≥ 0, inclusive ranges)."""
    out: set[int] = set()
    for part in spec.split(","):
        part = part.strip()
        if not part:
            continue
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"{name}={spec!r}: bad part {part!r}; allowed: comma-separated steps and "
                             "ranges such as '7,22-24'")
        lo = int(m.group(1))
        out.update(range(lo, int(m.group(2) or lo) + 1))
    return frozenset(out)


def nan_steps_from_env(environ: Optional[Mapping[str, str]] = None) -> frozenset[int]:
    """The steps whose batch :func:`poison_batch` replaces by NaN, from ``$JAXDIFF_FAULT_NAN_STEPS``."""
    env = os.environ if environ is None else environ
    return parse_steps(env.get(ENV_NAN_STEPS, ""))


def poison_batch(batch, step: int, nan_steps: frozenset[int]):
    """``batch`` (a host array or a pytree of them) unchanged, or all-NaN copies if ``step`` ∈ ``nan_steps``."""
    if step not in nan_steps:
        return batch
    if isinstance(batch, (tuple, list)):
        return type(batch)(poison_batch(b, step, nan_steps) for b in batch)
    b = np.asarray(batch)
    return np.full(b.shape, np.nan, dtype=b.dtype if np.issubdtype(b.dtype, np.floating) else np.float32)
