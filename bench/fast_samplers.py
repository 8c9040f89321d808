"""Efficiency of the ODE-solver correctors against their network-call floor.

efficiency = time(calls × one jitted denoiser forward) / time(the whole jitted sampler), same batch, same run,
where calls = ``jaxdiff.sampling.network_calls(corrector, N)`` (N for ddim, dpmpp_2m, euler; 2N − 1 for heun);
1.0 means the loop, the solver's state and Heun's conditional second call add nothing. Denoiser: the main job's
UNet (configs/default.py's model) on 16×16×1 at batch 16, untrained; linear β, T = 1000, ε-prediction, clip 1;
one CPU device. The efficiency column is the median over rounds of the paired ratio (robust to load drifts).

    python -m bench.fast_samplers [--quick]
"""
from __future__ import annotations

from bench import common
from bench.sampler import B_EFF, _setup

CASES = (("ddim", 10), ("dpmpp_2m", 10), ("euler", 10), ("heun", 10), ("ddim", 20), ("dpmpp_2m", 20), ("heun", 5))


def run(quick: bool = False) -> dict:
    import jax
    import jax.numpy as jnp

    from jaxdiff import sampling
    from jaxdiff.processes import GaussianProcess
    from jaxdiff.processes.schedules import make_schedule

    common.setup_threads()
    cfg, denoiser, params, (s, c) = _setup()
    fwd = jax.jit(denoiser)
    x = jax.random.normal(jax.random.PRNGKey(1), (B_EFF, s, s, c))
    tt = jnp.full((B_EFF,), 5, jnp.int32)
    key = jax.random.PRNGKey(3)
    gauss = GaussianProcess(make_schedule("linear", 1000))
    rows, raw = [], {}
    for corrector, n in CASES[:4] if quick else CASES:
        calls = sampling.network_calls(corrector, n)
        samp = lambda corrector=corrector, n=n: sampling.sample(  # noqa: E731
            denoiser, params, key, x, process=gauss, corrector=corrector, prediction="eps", clip=1.0,
            timesteps=n).x0

        def floor(calls=calls):
            out = None
            for _ in range(calls):
                out = fwd(params, x, tt)
            return out

        r = common.compare({"sampler": samp, "floor": floor}, iters=1, repeats=5 if quick else 9, warmup=1)
        raw[f"{corrector}_{n}"] = r
        rows.append({
            "corrector": corrector, "steps": n, "network calls": calls, "batch": B_EFF,
            "sampler s": r["sampler"]["median_s"], "calls x forward s": r["floor"]["median_s"],
            "efficiency": common.paired_ratio(r, "floor", "sampler"),
        })
    return common.finish("fast_samplers", rows, ["corrector", "steps", "network calls", "batch", "sampler s",
                                                 "calls x forward s", "efficiency"], raw=raw)


if __name__ == "__main__":
    common.main(run)
