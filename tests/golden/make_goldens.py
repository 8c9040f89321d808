"""Writes the golden arrays of issue 18 (run once, on main before the process package; kept for the record).

    python tests/golden/make_goldens.py            # configs.npz and the stored tiny workdirs + their samples

* ``configs.npz``: tests/golden_cases.py's quantities for every config in configs/, keys "<config>/<quantity>".
* ``workdirs/<config>/``: a run of that config with the tiny UNet, 2 training steps, trained by today's
  train.py code (checkpoints and prior.npz only: what sample.py reads), and ``workdir_samples.npz``: what
  sample.py's modes wrote from them (keys "<config>/<mode>/<array>").
"""
from __future__ import annotations

import os
import pathlib
import shutil
import sys
import tempfile

os.environ.setdefault("XLA_FLAGS", "--xla_force_host_platform_device_count=8")
os.environ.setdefault("JAX_PLATFORMS", "cpu")
HERE = pathlib.Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))
sys.path.insert(0, str(HERE.parent.parent))

import numpy as np  # noqa: E402

import golden_cases  # noqa: E402

#: stored runs and the sample.py modes read back from each
WORKDIRS = {
    "ddim": ("generate",),
    "blurring_diffusion": ("generate",),
    "heat": ("generate", "restore"),
    "cold_fade": ("generate",),
    "cold_blur": ("restore",),
}
SAMPLE_NUM = 8


def configs_npz():
    from jaxdiff.experiment import build_model, build_process, make_mesh
    from jaxdiff.sampling import sample
    from jaxdiff.train.step import init_train_state, make_train_step

    out = {}
    for name in golden_cases.CONFIGS:
        res = golden_cases.compute(name, build_process=build_process, make_model=build_model,
                                   init_train_state=init_train_state, make_train_step=make_train_step, sample=sample,
                                   make_mesh=make_mesh)
        out.update({f"{name}/{k}": v for k, v in res.items()})
        print(name, "losses", res["losses"], flush=True)
    np.savez(HERE / "configs.npz", **out)


def sample_workdir(workdir, mode, out_dir):
    """sample.py's ``mode`` on ``workdir`` (seed 0, SAMPLE_NUM images, no trajectory) → {array name: array}."""
    from jaxdiff.cli.app import run

    files = run(workdir=str(workdir), mode=mode, num=SAMPLE_NUM, seed=0, out=str(out_dir), frames=0, batch=8)
    with np.load(files["npz"]) as z:
        return {k: z[k] for k in z.files}


def workdirs():
    from jaxdiff.train.loop import train_and_evaluate

    root = HERE / "workdirs"
    shutil.rmtree(root, ignore_errors=True)
    out = {}
    for name, modes in WORKDIRS.items():
        config = golden_cases.load_config(name)
        config.train.num_steps = 2
        config.train.checkpoint_every = 2
        config.train.log_every = 1
        config.train.num_sample_images = 8
        wd = root / name
        train_and_evaluate(config, str(wd))
        for junk in ("samples", "tb", "metrics.jsonl"):
            p = wd / junk
            shutil.rmtree(p, ignore_errors=True) if p.is_dir() else p.unlink(missing_ok=True)
        with tempfile.TemporaryDirectory() as tmp:
            for mode in modes:
                for k, v in sample_workdir(wd, mode, tmp).items():
                    out[f"{name}/{mode}/{k}"] = v
    np.savez(HERE / "workdir_samples.npz", **out)


if __name__ == "__main__":
    what = sys.argv[1:] or ["configs", "workdirs"]
    if "configs" in what:
        configs_npz()
    if "workdirs" in what:
        workdirs()
