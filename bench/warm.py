"""Training speed of the warm (blur + noise) configs against configs/ddim.py, interleaved in one process.

One call = one jaxdiff train step (forward process, UNet forward and backward, AdamW, EMA) on a fixed batch, with
each config's own process, prediction, loss and weighting and configs/default.py's UNet (every config here uses
it on digits, 16×16×1, batch 64). "vs ddim" is the median over rounds of the paired ratio t_ddim / t_config
(1.0: as fast; the target is ≥ 0.9). The warm configs add per step: two 16×16 DCTs of the batch for D_t(x0), the
v target, and (soft diffusion) D_t of the error.

    python -m bench.warm [--quick]
"""
from __future__ import annotations

import pathlib
import runpy

from bench import common

ROOT = pathlib.Path(__file__).resolve().parent.parent

#: name → (config file, overrides)
CONTENDERS = {
    "ddim": ("ddim", {}),
    "warm_blur": ("warm_blur", {}),
    "soft_diffusion": ("soft_diffusion", {}),
    "warm_blur (flow, velocity)": ("warm_blur", {"diffusion.schedule": "flow", "diffusion.schedule_params": {"shift": 1.0},
                                                 "diffusion.prediction": "velocity", "diffusion.loss": "l2"}),
}


def load(name: str, overrides: dict):
    c = runpy.run_path(str(ROOT / "configs" / f"{name}.py"))["get_config"]()
    with c.unlocked():
        for key, value in overrides.items():
            sec, leaf = key.split(".")
            c[sec][leaf] = value
    return c


def run(quick: bool = False) -> dict:
    from bench import contenders as C

    common.setup_threads()
    import jax

    from jaxdiff import experiment

    mesh = experiment.make_mesh()
    fns = {}
    for name, (cfg_name, overrides) in CONTENDERS.items():
        cfg = load(cfg_name, overrides)
        fns[name] = C.jax_train(cfg, experiment.build_process(cfg), experiment.build_model(cfg), mesh)
    reps = dict(iters=3, repeats=3, warmup=1) if quick else dict(iters=5, repeats=11, warmup=2)
    r = common.compare(fns, **reps)
    batch = int(load("ddim", {}).train.batch_size)
    rows = [{"config": name, "ms / step": 1e3 * v["median_s"], "steps/s": 1.0 / v["median_s"],
             "vs ddim": common.paired_ratio(r, "ddim", name)} for name, v in r.items()]
    notes = [f"configs/default.py's UNet on 16×16×1 digits, batch {batch}, {mesh.devices.size} CPU device(s), "
             f"jax {jax.__version__}; medians of {reps['repeats']} rounds of {reps['iters']} steps, interleaved."]
    return common.finish("warm", rows, ["config", "ms / step", "steps/s", "vs ddim"], notes=notes, raw=r)


if __name__ == "__main__":
    common.main(run)
