"""bench32: the 32×32×3 UNet (widths 64/128/128, 2 res blocks, attention at 16², GroupNorm 32), batch 32, fp32.

Train img/s (forward process, forward, backward, AdamW, EMA) and forward img/s: jaxdiff vs diffusers
UNet2DModel in eager mode and under torch.compile, interleaved in one process.

    python -m bench.bench32 [--quick] [--no-compile]
"""
from __future__ import annotations

import argparse
import time

from bench import common


def run(quick: bool = False, compile_torch: bool = True) -> dict:
    n = common.setup_threads()
    import torch

    common.torch_threads(n)
    import jax

    from bench import contenders as C
    from jaxdiff.models.unet import param_count

    cfg = C.bench32_train_config()
    B = int(cfg.train.batch_size)
    model = C.diffusers_bench32()
    jt = C.jax_train(cfg)
    counts = {
        "jaxdiff": param_count(jt.state_box["state"].params),
        "diffusers": sum(p.numel() for p in model.parameters()),
    }
    compile_s = {}
    t0 = time.perf_counter()
    jax.block_until_ready(jt())
    compile_s["jax_train_first_call"] = time.perf_counter() - t0

    train = {"jax": jt, "torch_eager": C.torch_train(model, cfg)}
    fwd = {"jax": C.jax_forward(cfg), "torch_eager": C.torch_forward(model, cfg)}
    if compile_torch:
        import copy

        mc = copy.deepcopy(model)
        train["torch_compile"] = C.torch_train(mc, cfg, compiled=True)
        fwd["torch_compile"] = C.torch_forward(model, cfg, compiled=True)
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
                }
            )
    table = common.markdown_table(rows, ["bench", "contender", "img/s", "ms/batch", "vs torch eager"])
    table += f"\n\nParameters: jaxdiff {counts['jaxdiff']:,} · diffusers {counts['diffusers']:,}; threads {n}; batch {B}."
    out = {"rows": rows, "raw": res, "params": counts, "compile_s": compile_s, "threads": n, "table": table}
    common.save("bench32", out)
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--no-compile", action="store_true")
    a = ap.parse_args()
    print(run(a.quick, not a.no_compile)["table"])


if __name__ == "__main__":
    main()
