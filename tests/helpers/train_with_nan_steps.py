"""train.py with NaN batches at chosen steps, for the reliability tests (the library holds no fault hooks).

    JAXDIFF_FAULT_NAN_STEPS="4-7,16-20" python tests/helpers/train_with_nan_steps.py --config=… --workdir=…

Runs train.py itself (its flags, messages and exit codes) with ``train_and_evaluate`` given a ``batch_hook``
that replaces the host batches of those steps (the 0-based step a batch is consumed at) by NaN, so they go
through the real train step and its non-finite guard. A malformed value is one error naming the variable.
"""
import functools
import logging
import os
import runpy
import sys
from typing import Mapping, Optional

import numpy as np

if __name__ == "__main__":  # this tree's jaxdiff, not whichever one is installed
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

from jaxdiff.ranges import parse_int_ranges  # noqa: E402

ENV_NAN_STEPS = "JAXDIFF_FAULT_NAN_STEPS"
TRAIN_PY = os.path.join(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))), "train.py")


def nan_steps_from_env(environ: Optional[Mapping[str, str]] = None) -> frozenset:
    """The steps of ``$JAXDIFF_FAULT_NAN_STEPS`` ("7,22-24" → {7, 22, 23, 24}; unset or empty: none)."""
    env = os.environ if environ is None else environ
    return frozenset(parse_int_ranges(env.get(ENV_NAN_STEPS, ""), field=ENV_NAN_STEPS, allow_empty=True))


def poison_batch(batch, step: int, nan_steps: frozenset):
    """``batch`` unchanged, or an all-NaN copy of it if ``step`` ∈ ``nan_steps``."""
    if step not in nan_steps:
        return batch
    b = np.asarray(batch)
    return np.full(b.shape, np.nan, dtype=b.dtype if np.issubdtype(b.dtype, np.floating) else np.float32)


def nan_hook(nan_steps: frozenset):
    """The ``batch_hook(step, local_batch)`` of :func:`jaxdiff.train.loop.train_and_evaluate`."""
    return lambda step, batch: poison_batch(batch, step, nan_steps)


def main() -> None:
    nan_steps = nan_steps_from_env()
    from jaxdiff.train import loop

    logging.getLogger(__name__).warning("fault injection: the batches of steps %s become NaN", sorted(nan_steps))
    loop.train_and_evaluate = functools.partial(loop.train_and_evaluate, batch_hook=nan_hook(nan_steps))
    sys.argv[0] = TRAIN_PY
    runpy.run_path(TRAIN_PY, run_name="__main__")


if __name__ == "__main__":
    main()
