"""sample.py's one library call: check the options, load the run once, dispatch to the mode, list the files."""
from __future__ import annotations

import importlib
import logging
import os
import sys
from typing import Optional

from jaxdiff.cli.options import SampleOptions, UsageError

__all__ = ["run", "main"]

log = logging.getLogger(__name__)

#: mode → module of jaxdiff.cli with ``run(settings, inference, out_dir) -> {name: path}``
MODE_MODULES = {"generate": "generate", "restore": "restore", "evaluate": "evaluate",
                "blend": "blend", "forward": "forward", "fill": "fill"}

_LOADED: dict = {}


def _inference(workdir: str, step: Optional[int]):
    """The run loaded into an Inference, reused while the workdir's checkpoints are unchanged: repeated
    run() calls in one process (a notebook, the tests) keep one denoiser, so jax.jit's caches hit."""
    from jaxdiff.checkpoints import list_checkpoint_steps
    from jaxdiff.experiment import load_run
    from jaxdiff.inference import Inference

    steps = list_checkpoint_steps(workdir)
    if step is not None and steps and step not in steps:
        raise UsageError(f"--step={step}: no such checkpoint in {os.path.abspath(workdir)}; saved steps: {steps}")
    key = (os.path.abspath(workdir), step, tuple(steps))
    if key not in _LOADED:
        _LOADED.clear()  # one loaded model at a time
        _LOADED[key] = Inference(load_run(workdir, step))
    return _LOADED[key]


def run(options: Optional[SampleOptions] = None, **kwargs) -> dict[str, str]:
    """Runs one mode (``options``, or SampleOptions(**kwargs)); prints and returns {name: path} of its files.

    Raises UsageError (bad option), NoCheckpointError, CheckpointError, PluginError, DataError.
    """
    o = options if options is not None else SampleOptions(**kwargs)
    inf = _inference(o.workdir, o.step)
    log.info("loaded step %d of %s (%d devices)", inf.step, o.workdir, inf.num_devices)
    settings = o.resolve(inf.run)
    out_dir = o.out or os.path.join(os.path.abspath(o.workdir), "samples")
    mode = importlib.import_module(f"jaxdiff.cli.{MODE_MODULES[o.mode]}")
    import jax

    if jax.process_index() != 0:
        # Several processes (jax.distributed): all compute, process 0 alone writes; the others' files go to a
        # scratch directory that is removed. Returns process 0's paths.
        import tempfile

        with tempfile.TemporaryDirectory(prefix="jaxdiff_sample_") as scratch:
            files = mode.run(settings, inf, scratch)
        return {name: os.path.join(out_dir, os.path.relpath(path, scratch)) for name, path in files.items()}
    os.makedirs(out_dir, exist_ok=True)
    files = mode.run(settings, inf, out_dir)
    for name, path in files.items():
        print(f"{name}: {path}", flush=True)
    return files


def main(flag_values) -> int:
    """sample.py's body: options from the flags, :func:`run`; expected failures → one line, exit code 2."""
    from jaxdiff.cpu.devices import CpuDevicesError, split_cpu_devices
    from jaxdiff.data import DataError
    from jaxdiff.experiment import NoCheckpointError, maybe_initialize_distributed
    from jaxdiff.plugins import PluginError
    from jaxdiff.checkpoints import CheckpointError

    from jaxdiff import console

    console.configure()  # progress, results, jaxdiff's messages; library logs only with --verbosity=1 or more
    try:
        options = SampleOptions.from_flags(flag_values)
        maybe_initialize_distributed()  # several hosts: each samples its devices' share of every batch
        # CPU only: split each sampling batch over the cores (batches are rounded up to a multiple of the count).
        split_cpu_devices(options.batch if options.batch > 0 else 64)
        run(options)
    except (NoCheckpointError, CheckpointError, PluginError, UsageError, DataError, CpuDevicesError) as e:
        print(f"sample.py: {e}", file=sys.stderr, flush=True)
        return 2
    return 0
