"""The main job's model (configs/default.py: its UNet, data shape, diffusion and batch size) in jaxdiff and in PyTorch.

  * train img/s and forward img/s: jaxdiff's train step vs a PyTorch train step of the same spec (bench.torch_unet,
    the same forward process as dense per-t operator matrices, L1 on x0, AdamW, clipping, EMA);
  * sampling img/s at batch 1 and 64: jaxdiff's jitted sampler (one lax.scan) vs a PyTorch eager loop with one
    network call per step (cold_improved, x̂0 clipped to [−1, 1], as the config samples).

    python -m bench.mainjob [--quick]
"""
from __future__ import annotations

import sys

from bench import common


def torch_cold_sampler(model, M, T, B, s, c):
    """Algorithm 2 of Bansal et al.: x_{t−1} = x_t − F_t(x̂0) + F_{t−1}(x̂0), one network call per step."""
    import torch

    model = model.eval()
    M = torch.from_numpy(M)
    xT = torch.tanh(torch.randn(B, c, s, s))

    def F(x, t):
        return (x.flatten(2) @ M[t].T).reshape(x.shape)

    def run():
        with torch.inference_mode():
            x = xT
            for t in range(T, 0, -1):
                x0 = model(x, torch.full((B,), t, dtype=torch.long)).clamp(-1, 1)
                x = x - F(x0, t) + F(x0, t - 1)
            return x

    return run


def jax_cold_sampler(config, model, process, B):
    import jax
    import jax.numpy as jnp

    from jaxdiff import sampling

    s, c = int(config.data.image_size), int(config.data.channels)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, s, s, c)), jnp.zeros((1,), jnp.int32))["params"]

    def denoiser(p, x, t):
        return model.apply({"params": p}, x, t)

    from bench.contenders import shard_batch

    xT = shard_batch(jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (B, s, s, c))))
    key = jax.random.PRNGKey(2)
    kw = dict(process=process, corrector=config.sample.corrector, prediction="x0", clip=1.0)
    return lambda: sampling.sample(denoiser, params, key, xT, **kw).x0


def run(quick: bool = False) -> dict:
    from bench import contenders as C
    from bench import remote

    cfg = C.default_config()
    n, n_dev, tpy = common.setup_cpu_run(cfg.train.batch_size)
    import jax

    from jaxdiff import experiment

    torch = lambda kind, **kw: remote.contender("bench.contenders:torch_mainjob", tpy, kind=kind, **kw)  # noqa: E731

    B = int(cfg.train.batch_size)
    s, c, T = int(cfg.data.image_size), int(cfg.data.channels), int(cfg.diffusion.T)
    process = experiment.build_process(cfg)
    model = experiment.build_model(cfg)
    reps = dict(iters=3, repeats=3, warmup=1) if quick else dict(iters=5, repeats=9, warmup=2)
    rows, raw = [], {}

    def add(bench, r, batch, unit="img/s"):
        raw[bench] = r
        for name, v in r.items():
            rows.append(
                {
                    "bench": bench,
                    "contender": name,
                    unit: batch / v["median_s"],
                    "ms/call": 1e3 * v["median_s"],
                    "vs torch eager": r["torch_eager"]["median_s"] / v["median_s"],
                    "paired": common.paired_ratio(r, "torch_eager", name),
                }
            )

    tt = torch("train")
    # "jax_1dev": the same in a worker process with the CPU split turned off, to show what the split gains.
    one = lambda kind: remote.contender("bench.contenders:jax_mainjob", env={"JAXDIFF_CPU_DEVICES": "1"}, kind=kind)  # noqa: E731
    add(
        f"main job train (B={B})",
        common.compare({"jax": C.jax_train(cfg, process, model), "torch_eager": tt, "jax_1dev": one("train")}, **reps),
        B,
    )
    add(
        f"main job forward (B={B})",
        common.compare(
            {"jax": C.jax_forward(cfg, model=model), "torch_eager": torch("forward"), "jax_1dev": one("forward")}, **reps
        ),
        B,
    )
    for b in (1, 64):
        add(
            f"main job sampling {cfg.sample.corrector} T={T} (B={b})",
            common.compare(
                {"jax": jax_cold_sampler(cfg, model, process, b), "torch_eager": torch("sample", batch=b)},
                iters=1 if b == 64 else 3,
                repeats=reps["repeats"],
                warmup=1,
            ),
            b,
        )
    info = tt.info  # bench.remote.contender gives every contender its info, local or not
    note = (f"PyTorch side: {info}; JAX side: Python {sys.version.split()[0]}, jax {jax.__version__}, "
            f"{n_dev} CPU device(s) (jaxdiff.cpu.devices; jax_1dev: the split turned off).")
    return common.finish("mainjob", rows, ["bench", "contender", "img/s", "ms/call", "vs torch eager", "paired"],
                         notes=[note], raw=raw, threads=n, torch_side=info)


if __name__ == "__main__":
    common.main(run)
