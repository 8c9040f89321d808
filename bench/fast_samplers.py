"""Efficiency of the ODE-solver correctors against their network-call floor, on hot diffusion and on warm diffusion.

efficiency = time(calls × one jitted denoiser forward) / time(the whole jitted sampler), same batch, same run,
where calls = ``jaxdiff.sampling.network_calls(corrector, N)`` (N for ddim, dpmpp_2m, euler; 2N − 1 for heun);
1.0 means the loop, the solver's state and Heun's conditional second call add nothing. Denoiser: the main job's
UNet (configs/default.py's model) on 16×16×1 at batch 16, untrained; linear β, T = 1000, ε-prediction, clip 1;
one CPU device. The efficiency column is the median over rounds of the paired ratio (robust to load drifts).
The process rows "warm": configs/warm_blur.py's (a DCT blur tied to the noise, offset-cosine schedule,
v-prediction), where each step also moves the batch to the DCT basis and back: ddim and ddim_2m.

    python -m bench.fast_samplers [--quick]
"""
from __future__ import annotations

import pathlib
import runpy

from bench import common
from bench.sampler import B_EFF, _setup

ROOT = pathlib.Path(__file__).resolve().parent.parent

CASES = (("ddim", 10), ("dpmpp_2m", 10), ("euler", 10), ("heun", 10), ("ddim", 20), ("dpmpp_2m", 20), ("heun", 5))
#: the degradation process (configs/warm_blur.py): the one step and its second-order multistep
WARM_CASES = (("ddim", 10), ("ddim_2m", 10), ("ddim", 25), ("ddim_2m", 25))


def run(quick: bool = False) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxdiff import sampling
    from jaxdiff.experiment import build_process
    from jaxdiff.processes import GaussianProcess
    from jaxdiff.processes.schedules import make_schedule

    common.setup_threads()
    cfg, denoiser, params, (s, c) = _setup()
    fwd = jax.jit(denoiser)
    x = jax.random.normal(jax.random.PRNGKey(1), (B_EFF, s, s, c))
    tt = jnp.full((B_EFF,), 5, jnp.int32)
    key = jax.random.PRNGKey(3)
    gauss = GaussianProcess(make_schedule("linear", 1000))
    warm_cfg = runpy.run_path(str(ROOT / "configs" / "warm_blur.py"))["get_config"]()
    warm = build_process(warm_cfg)
    cases = [("gaussian", gauss, "eps", corr, n) for corr, n in (CASES[:4] if quick else CASES)]
    cases += [("warm", warm, warm_cfg.diffusion.prediction, corr, n)
              for corr, n in (WARM_CASES[:2] if quick else WARM_CASES)]
    rows, raw = [], {}
    for proc_name, proc, pred, corrector, n in cases:
        calls = sampling.network_calls(corrector, n)
        samp = lambda proc=proc, pred=pred, corrector=corrector, n=n: sampling.sample(  # noqa: E731
            denoiser, params, key, x, process=proc, corrector=corrector, prediction=pred, clip=1.0,
            timesteps=n).x0

        def floor(calls=calls):
            out = None
            for _ in range(calls):
                out = fwd(params, x, tt)
            return out

        r = common.compare({"sampler": samp, "floor": floor}, iters=1, repeats=5 if quick else 9, warmup=1)
        raw[f"{proc_name}_{corrector}_{n}"] = r
        rows.append({
            "process": proc_name, "corrector": corrector, "steps": n, "network calls": calls, "batch": B_EFF,
            "sampler s": r["sampler"]["median_s"], "calls x forward s": r["floor"]["median_s"],
            "efficiency": common.paired_ratio(r, "floor", "sampler"),
        })
    return common.finish("fast_samplers", rows, ["process", "corrector", "steps", "network calls", "batch", "sampler s",
                                                 "calls x forward s", "efficiency"], raw=raw)


if __name__ == "__main__":
    common.main(run)
