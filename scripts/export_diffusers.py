#!/usr/bin/env python
"""A jaxdiff run's EMA weights as a diffusers UNet2DModel directory (+ its DDPM/DDIM scheduler_config.json).

    python scripts/export_diffusers.py --workdir=W --out=DIR [--step=N]
    # then: UNet2DModel.from_pretrained(DIR), DDPMScheduler.from_pretrained(DIR)

Gaussian runs only; a spec diffusers cannot express (a cold or blurring process, a schedule diffusers lacks,
per-layer head counts, …) is refused naming the config field. A non-empty --out is refused; nothing is written.
"""
from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workdir", required=True, help="a trained (or imported) jaxdiff workdir")
    p.add_argument("--out", required=True, help="new (or empty) directory to write")
    p.add_argument("--step", type=int, default=None, help="checkpoint step (default: the newest that loads)")
    a = p.parse_args(argv)
    from jaxdiff.experiment import NoCheckpointError, load_run
    from jaxdiff.interop.diffusers import InteropError, export
    from jaxdiff.checkpoints import CheckpointError

    try:
        run = load_run(a.workdir, a.step)
        paths = export(run.config, run.params, a.out)
    except (InteropError, NoCheckpointError, CheckpointError, ValueError) as e:
        print(f"export_diffusers.py: {e}", file=sys.stderr, flush=True)
        return 2
    print(f"exported step {run.step} of {os.path.abspath(a.workdir)}:")
    for name, path in paths.items():
        print(f"{name}: {path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
