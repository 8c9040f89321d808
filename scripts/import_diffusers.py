#!/usr/bin/env python
"""A diffusers UNet2DModel (+ DDPM/DDIM scheduler) as a jaxdiff workdir that sample.py reads like a trained run.

    python scripts/import_diffusers.py PATH --workdir=W      # PATH: what save_pretrained wrote (model or pipeline)
    python sample.py --workdir=W --mode=generate

PATH holds config.json and diffusion_pytorch_model.safetensors (or unet/ and scheduler/). The weights become the
EMA params of checkpoint step 0. A busy or non-empty workdir is refused and nothing is written.
"""
from __future__ import annotations

import argparse
import os
import sys

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("path", help="directory written by diffusers' save_pretrained (UNet2DModel or a pipeline)")
    p.add_argument("--workdir", required=True, help="new (or empty) jaxdiff workdir to write")
    a = p.parse_args(argv)
    from jaxdiff.experiment import describe_process
    from jaxdiff.interop.diffusers import InteropError, load, write_workdir
    from jaxdiff.models.unet import param_count

    try:
        converted = load(a.path)
        step_dir = write_workdir(converted, a.workdir)
    except InteropError as e:
        print(f"import_diffusers.py: {e}", file=sys.stderr, flush=True)
        return 2
    c = converted.config
    print(f"imported {param_count(converted.params):,} parameters ({describe_process(converted.process)}, "
          f"prediction {c.diffusion.prediction}, corrector {c.sample.corrector}) into {step_dir}")
    print(f"next: python sample.py --workdir={os.path.abspath(a.workdir)} --mode=generate")
    return 0


if __name__ == "__main__":
    sys.exit(main())
