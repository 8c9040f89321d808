"""sample.py's modes as a library: typed options, one loaded run, one module per mode.

    from jaxdiff.cli import run
    run(workdir="workdirs/cold_blur", mode="restore", severity=10)    # → {"strip": …, "npz": …}

:mod:`jaxdiff.cli.options` checks the options, :mod:`jaxdiff.cli.app` loads the run once and dispatches to
the mode (``jaxdiff.cli.<mode>.run(settings, inference, out_dir)`` for generate, restore, evaluate,
interpolate, forward), :mod:`jaxdiff.cli.keys` names the random streams.
"""
from jaxdiff.cli.app import main, run
from jaxdiff.cli.options import MODES, ModeSettings, SampleOptions, UsageError, parse_step_counts

__all__ = ["MODES", "ModeSettings", "SampleOptions", "UsageError", "parse_step_counts", "run", "main"]
