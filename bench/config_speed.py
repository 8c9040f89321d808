"""Training speed of the generating configs side by side: one train step of each, interleaved, same batch size.

    python -m bench.config_speed [--quick] [--configs ddim,flow,edm,...]

Each contender is ``configs/<name>.py``'s default config (digits 16×16, its own process, prediction, loss
weighting and t sampling; default.py's UNet, batch 64) run through the jaxdiff train step (forward process,
forward, backward, AdamW, EMA) on a fixed batch. Reported: ms/step, steps/s and the ratio to ``ddim`` (steps/s
of the config ÷ ddim's; paired: the median of per-round ratios). Issue 20's target: every new generating config
within 10 % of ddim (ratio ≥ 0.9).
"""
from __future__ import annotations

from bench import common

#: the configs timed by default (ddim first: the reference); configs/<name>.py files that exist
DEFAULT_CONFIGS = ("ddim", "ddpm", "flow", "edm", "blurring_diffusion", "heat", "cold_blur_gen", "warm_blur",
                   "warm_heat", "soft_blur")
B = 64


def _configs(spec: str):
    from bench.contenders import ROOT

    names = [n for n in (spec.split(",") if spec else DEFAULT_CONFIGS) if n]
    return [n for n in names if (ROOT / "configs" / f"{n}.py").exists()]


def run(quick: bool = False, configs: str = "") -> dict:
    from bench import contenders as C

    n, n_dev, _ = common.setup_cpu_run(B)
    import jax

    from jaxdiff import experiment
    from jaxdiff.config import files

    names = _configs(configs)
    if "ddim" not in names:
        names = ["ddim"] + names
    fns = {}
    for name in names:
        cfg = files.load_config_file(str(C.ROOT / "configs" / f"{name}.py"))
        cfg.train.batch_size = B
        fns[name] = C.jax_train(cfg, experiment.build_process(cfg), experiment.build_model(cfg),
                                experiment.make_mesh())
    reps = dict(iters=2, repeats=3, warmup=1) if quick else dict(iters=5, repeats=9, warmup=2)
    r = common.compare(fns, **reps)
    ref = r["ddim"]["median_s"]
    rows = [{"config": name, "ms / step": 1e3 * v["median_s"], "steps/s": 1.0 / v["median_s"],
             "vs ddim": ref / v["median_s"], "paired": common.paired_ratio(r, "ddim", name)}
            for name, v in r.items()]
    notes = [f"digits 16×16×1, default.py's UNet, batch {B}; {n_dev} CPU device(s), {n} threads, jax "
             f"{jax.__version__}; 'vs ddim' = steps/s ÷ ddim's (≥ 0.9: within 10 %)."]
    return common.finish("config_speed", rows, ["config", "ms / step", "steps/s", "vs ddim", "paired"],
                         notes=notes, raw=r, batch=B)


if __name__ == "__main__":
    common.main(run, ("--configs", dict(default="", help="comma-separated config names (default: "
                                          + ",".join(DEFAULT_CONFIGS) + ", those that exist)")))
