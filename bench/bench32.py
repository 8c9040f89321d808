"""bench32: the 32×32×3 UNet (widths 64/128/128, 2 res blocks, attention at 16², GroupNorm 32), batch 32, fp32.

Train img/s (forward process, forward, backward, AdamW, EMA) and forward img/s: jaxdiff vs diffusers
UNet2DModel in eager mode and under torch.compile, interleaved in one process.

    python -m bench.bench32 [--quick] [--no-compile]
"""
from __future__ import annotations

import sys
import time

from bench import common


def run(quick: bool = False, compile_torch: bool = True) -> dict:
    from bench import contenders as C
    from bench import remote

    cfg = C.bench32_train_config()
    n, n_dev, tpy = common.setup_cpu_run(cfg.train.batch_size)
    import jax

    from jaxdiff.models.unet import param_count

    def torch(kind, compiled=False):
        return remote.contender("bench.contenders:torch_bench32", tpy, kind=kind, compiled=compiled)

    B = int(cfg.train.batch_size)
    jt = C.jax_train(cfg)
    tt = torch("train")
    counts = {"jaxdiff": param_count(jt.state_box["state"].params), "diffusers": tt.info["params"]}
    compile_s = {}
    t0 = time.perf_counter()
    jax.block_until_ready(jt())
    compile_s["jax_train_first_call"] = time.perf_counter() - t0

    # The same in a worker process with one of jaxdiff's CPU defaults turned off, to show what it gains:
    # "jax_1dev" the CPU split, "jax_ynn_convs" XLA's own convolutions in the train step (jaxdiff.cpu.xla_options).
    worker = lambda kind, **env: remote.contender(  # noqa: E731
        "bench.contenders:jax_mainjob", env=env, kind=kind, spec="bench32"
    )
    train = {
        "jax": jt,
        "torch_eager": tt,
        "jax_1dev": worker("train", JAXDIFF_CPU_DEVICES="1"),
        "jax_ynn_convs": worker("train", JAXDIFF_XLA_CPU_OPTIONS="0"),
    }
    fwd = {
        "jax": C.jax_forward(cfg),
        "torch_eager": torch("forward"),
        "jax_1dev": worker("forward", JAXDIFF_CPU_DEVICES="1"),
    }
    if compile_torch:
        train["torch_compile"] = torch("train", compiled=True)
        fwd["torch_compile"] = torch("forward", compiled=True)
        for name, fns in (("train", train), ("forward", fwd)):
            t0 = time.perf_counter()
            fns["torch_compile"]()
            fns["torch_compile"]()
            compile_s[f"torch_compile_{name}_first_calls"] = time.perf_counter() - t0

    reps = dict(iters=2, repeats=3, warmup=1) if quick else dict(iters=3, repeats=9, warmup=2)
    rows = []
    res = {}
    for what, fns in (("train", train), ("forward", fwd)):
        r = common.compare(fns, **reps)
        res[what] = r
        for name, v in r.items():
            rows.append(
                {
                    "bench": f"bench32 {what}",
                    "contender": name,
                    "img/s": B / v["median_s"],
                    "ms/batch": 1e3 * v["median_s"],
                    "vs torch eager": r["torch_eager"]["median_s"] / v["median_s"],
                    "paired": common.paired_ratio(r, "torch_eager", name),
                }
            )
    notes = [f"Parameters: jaxdiff {counts['jaxdiff']:,} · diffusers {counts['diffusers']:,}; threads {n}; batch {B}.",
             f"PyTorch side: {tt.info}; JAX side: Python {sys.version.split()[0]}, jax {jax.__version__}, "
             f"{n_dev} CPU device(s)."]
    return common.finish("bench32", rows, ["bench", "contender", "img/s", "ms/batch", "vs torch eager", "paired"],
                         notes=notes, raw=res, params=counts, compile_s=compile_s, threads=n, torch_side=tt.info)


if __name__ == "__main__":
    common.main(run, ("--no-compile", dict(action="store_false", dest="compile_torch", help="skip torch.compile")))
