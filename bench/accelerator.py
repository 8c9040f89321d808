"""The accelerator benchmark: jaxdiff vs diffusers' UNet2DModel on one device, float32 and bfloat16.

Specs (jaxdiff UNet = diffusers UNet2DModel layout, one attention head, GroupNorm 32, dropout 0):
    bench32  32×32×3, ch 64, mult (1, 2, 2), 2 res blocks, attention at 16², batch 32 (bench/bench32.py)
    ddpm64   64×64×3, ch 128, mult (1, 2, 2, 2, 4), 2 res blocks, attention at 16², batch 64: the DDPM UNet of
             DDIM's CelebA 64×64 model (Song et al. 2021; their dropout 0.1 is set to 0 here)
Per spec and dtype: train img/s (forward process, forward, backward, AdamW, EMA) and forward img/s for jaxdiff,
diffusers eager and diffusers under torch.compile (bfloat16 = torch.autocast over float32 parameters, as jaxdiff's
model.dtype); model FLOPs utilisation = FLOPs counted by XLA's cost analysis of the lowered jaxdiff program ÷
time ÷ the chip's dense peak (PEAKS; float32 against the TF32 tensor peak, XLA's and cuDNN's default on NVIDIA
GPUs; unknown chips: no MFU); sampler efficiency = N × forward ÷ the whole DDIM-N sampler (bfloat16).
torch/diffusers are optional (rows skipped with a note). Under 8 minutes on one GPU; --quick: tiny widths, a few
seconds per contender on a CPU.

    python -m bench.accelerator [--quick] [--no-torch] [--no-compile] [--budget-s 420]
"""
from __future__ import annotations

import os
import time
from typing import Optional

os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")  # leave GPU memory for PyTorch in this process

from bench import common  # noqa: E402

#: dense peak TFLOP/s (bfloat16 tensor, TF32 tensor) by device_kind substring, first match wins (lower case)
PEAKS = [
    ("h200", 989.4, 494.7),
    ("h100 pcie", 756.0, 378.0),
    ("h100", 989.4, 494.7),  # SXM
    ("a100", 312.0, 156.0),
    ("l4", 121.0, 60.0),
    ("tpu v6 lite", 918.0, None),  # v6e; TPUs run float32 matmuls as bfloat16 passes: no float32 peak
    ("tpu v5 lite", 197.0, None),  # v5e
    ("tpu v5", 459.0, None),  # v5p
    ("tpu v4", 275.0, None),
]

COLUMNS = ["spec", "dtype", "pass", "contender", "img/s", "ms/batch", "vs torch eager", "vs torch.compile",
           "TFLOP/s", "MFU"]
SAMPLER_COLUMNS = ["spec", "dtype", "sampler", "whole sampler s", "N × forward s", "efficiency"]


def peak_tflops(device_kind: str, dtype: str) -> Optional[float]:
    kind = device_kind.lower()
    for name, bf16, tf32 in PEAKS:
        if name in kind:
            return bf16 if dtype == "bfloat16" else tf32
    return None


def spec_config(name: str, dtype: str, quick: bool):
    """A jaxdiff train config of the spec (bench32's recipe: DDPM linear β, T = 1000, ε, L2, AdamW 1e-4, EMA)."""
    from bench import contenders as C

    c = C.bench32_train_config()
    if name == "ddpm64":
        c.data.image_size = 64
        c.model.update(dict(ch=128, ch_mult=(1, 2, 2, 2, 4), num_res_blocks=2, attn_resolutions=(16,)))
        c.train.batch_size = 64
    c.model.dtype = dtype
    if quick:  # a smoke run of every code path: two levels (attention on the first), one block, 16x16, batch 2
        c.data.image_size = 16
        c.model.update(dict(ch=8, num_groups=4, num_res_blocks=1, ch_mult=tuple(c.model.ch_mult)[:2],
                            attn_resolutions=(16,)))
        c.train.batch_size = 2
    return c


def diffusers_unet(config):
    """diffusers UNet2DModel with the layout of ``config.model`` (one attention head, as jaxdiff's)."""
    from diffusers import UNet2DModel

    m, s = config.model, int(config.data.image_size)
    sizes = [s // 2**i for i in range(len(m.ch_mult))]
    attn = [z in tuple(m.attn_resolutions) for z in sizes]
    return UNet2DModel(
        sample_size=s, in_channels=int(config.data.channels), out_channels=int(config.data.channels),
        block_out_channels=tuple(int(m.ch) * k for k in m.ch_mult), layers_per_block=int(m.num_res_blocks),
        down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attn),
        up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attn)),
        norm_num_groups=int(m.num_groups), attention_head_dim=None,
    )


# ---------------------------------------------------------------------------------------------- PyTorch side


def torch_contenders(config, *, compiled: bool, device: str):
    """(train, forward) zero-argument callables for diffusers' UNet2DModel: the bench32 recipe per train step
    (t ~ U{1..T}, x_t = √ᾱ x0 + √(1−ᾱ) ε, MSE on ε, AdamW, EMA lerp); bfloat16 = autocast, float32 parameters."""
    import torch

    torch.manual_seed(0)
    bf16 = config.model.dtype == "bfloat16"
    model = diffusers_unet(config).to(device)
    n_params = sum(p.numel() for p in model.parameters())
    B, s, c = int(config.train.batch_size), int(config.data.image_size), int(config.data.channels)
    T = int(config.diffusion.T)
    x0 = torch.tanh(torch.randn(B, c, s, s, device=device))
    betas = torch.linspace(1e-4, 2e-2, T, dtype=torch.float64)
    ab = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)]).float().to(device)
    net = torch.compile(model) if compiled else model
    opt = torch.optim.AdamW(model.parameters(), lr=float(config.train.learning_rate), weight_decay=0.0)
    params = list(model.parameters())
    ema = [p.detach().clone() for p in params]
    decay = float(config.train.ema_decay)
    cast = (lambda: torch.autocast(device_type=device.split(":")[0], dtype=torch.bfloat16)) if bf16 else None

    def call(x, t):
        if cast is None:
            return net(x, t).sample
        with cast():
            return net(x, t).sample.float()

    def train():
        t = torch.randint(1, T + 1, (B,), device=device)
        eps = torch.randn_like(x0)
        a = ab[t][:, None, None, None]
        loss = torch.nn.functional.mse_loss(call(a.sqrt() * x0 + (1 - a).sqrt() * eps, t), eps)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        return loss

    t_fwd = torch.full((B,), 10, dtype=torch.long, device=device)

    def forward():
        with torch.inference_mode():
            return call(x0, t_fwd)

    return train, forward, n_params


def _torch_device() -> Optional[str]:
    try:
        import torch
    except ImportError:
        return None
    return "cuda" if torch.cuda.is_available() else "cpu"


# ---------------------------------------------------------------------------------------------- JAX side


def _flops(jitted, *args) -> Optional[float]:
    """FLOPs of one call, from XLA's cost analysis of the lowered program (no second compilation)."""
    try:
        ca = jitted.trace(*args).lower().cost_analysis()
        ca = ca[0] if isinstance(ca, (list, tuple)) else ca
        return float(ca["flops"]) if ca and ca.get("flops") else None
    except Exception:  # noqa: BLE001
        return None


def jax_contenders(config):
    """(train, forward, sampler(N), flops_train, flops_forward, n_params) for the jaxdiff UNet of ``config``."""
    import jax
    import jax.numpy as jnp

    from bench import contenders as C
    from jaxdiff import experiment, sampling
    from jaxdiff.models.unet import param_count

    process, model = experiment.build_process(config), experiment.build_model(config)
    train = C.jax_train(config, process, model)
    ft = _flops(train.step_fn, train.state_box["state"], train.batch, 0)
    x = C.shard_batch(C.jax_batch(config))
    t = C.shard_batch(jnp.full((x.shape[0],), 10, jnp.int32))
    params = jax.tree.map(jnp.copy, train.state_box["state"].ema_params)  # the train step donates its state
    fwd_jit = jax.jit(lambda p, x, t: model.apply({"params": p}, x, t))
    ff = _flops(fwd_jit, params, x, t)

    def sampler(n):
        den = lambda p, x, t: model.apply({"params": p}, x, t)  # noqa: E731
        key = jax.random.PRNGKey(0)
        return lambda: sampling.sample(den, params, key, x, process=process, corrector="ddim", timesteps=n,
                                       prediction="eps").x0

    return train, (lambda: fwd_jit(params, x, t)), sampler, ft, ff, param_count(params)


# ---------------------------------------------------------------------------------------------- the run


SPECS = ("bench32", "ddpm64")


def run(quick: bool = False, torch_side: bool = True, compile_torch: bool = True, budget_s: float = 420.0,
        specs: str = ",".join(SPECS)) -> dict:
    t_start = time.perf_counter()
    common.setup_threads()
    import jax

    dev = jax.devices()[0]
    kind = dev.device_kind
    tdev = _torch_device() if torch_side else None
    notes = [f"Device: {jax.device_count()} × {kind} ({dev.platform}); jax {jax.__version__}"
             + (f"; PyTorch on {tdev}" if tdev else "")]
    if torch_side and tdev is None:
        notes.append("torch/diffusers not installed: the PyTorch columns are skipped (pip install -e .[bench]).")
    if quick and compile_torch:
        compile_torch = False
        notes.append("--quick: torch.compile skipped (minutes of inductor compilation on a CPU).")
    if tdev and tdev != ("cuda" if dev.platform == "gpu" else "cpu"):
        notes.append(f"PyTorch runs on {tdev}, JAX on {dev.platform}: not the same device, ratios are not like for like.")
    reps = dict(iters=2, repeats=3, warmup=1) if quick else dict(iters=5, repeats=7, warmup=2)
    n_sampler = 5 if quick else 50
    rows, sampler_rows, params = [], [], {}
    compile_skipped = []
    chosen = [x.strip() for x in specs.split(",") if x.strip()]
    if not chosen or any(x not in SPECS for x in chosen):
        raise SystemExit(f"--specs: {specs!r}; allowed: a comma-separated subset of {', '.join(SPECS)}")
    for spec in chosen:
        for dtype in ("float32", "bfloat16"):
            cfg = spec_config(spec, dtype, quick)
            B = int(cfg.train.batch_size)
            jt, jf, js, ft, ff, n_jax = jax_contenders(cfg)
            params[spec] = {"jaxdiff": n_jax}
            train, fwd = {"jaxdiff": jt}, {"jaxdiff": jf}
            if tdev:
                try:
                    tt, tf, n_torch = torch_contenders(cfg, compiled=False, device=tdev)
                    train["torch eager"], fwd["torch eager"] = tt, tf
                    params[spec]["diffusers"] = n_torch
                    # torch.compile only where the targets are (bfloat16), and while the time budget allows
                    if compile_torch and dtype == "bfloat16" and time.perf_counter() - t_start < 0.6 * budget_s:
                        ct, cf, _ = torch_contenders(cfg, compiled=True, device=tdev)
                        train["torch.compile"], fwd["torch.compile"] = ct, cf
                    elif compile_torch and dtype == "bfloat16":
                        compile_skipped.append(spec)
                except Exception as e:  # noqa: BLE001  (a missing feature of this torch/diffusers build)
                    notes.append(f"{spec} {dtype}: PyTorch contenders failed ({type(e).__name__}: {e}); skipped.")
            peak = peak_tflops(kind, dtype)
            for what, fns, flops in (("train", train, ft), ("forward", fwd, ff)):
                r = common.compare(fns, **reps)
                for name, v in r.items():
                    sec = v["median_s"]
                    row = {"spec": spec, "dtype": dtype, "pass": what, "contender": name, "img/s": B / sec,
                           "ms/batch": 1e3 * sec}
                    for ref, col in (("torch eager", "vs torch eager"), ("torch.compile", "vs torch.compile")):
                        if ref in r:
                            row[col] = r[ref]["median_s"] / sec
                    if flops:
                        row["TFLOP/s"] = flops / sec / 1e12
                        if peak:
                            row["MFU"] = flops / sec / (peak * 1e12)
                    rows.append(row)
            if dtype == "bfloat16":
                one = common.compare({"forward": jf, "sampler": js(n_sampler)}, **reps)
                whole, single = one["sampler"]["median_s"], one["forward"]["median_s"]
                sampler_rows.append({"spec": spec, "dtype": dtype, "sampler": f"DDIM {n_sampler}",
                                     "whole sampler s": whole, "N × forward s": n_sampler * single,
                                     "efficiency": n_sampler * single / whole})
    if compile_skipped:
        notes.append(f"torch.compile skipped for {compile_skipped}: past 60 % of --budget-s={budget_s:g}.")
    if peak_tflops(kind, "bfloat16") is None:
        notes.append(f"MFU omitted: no peak FLOP/s known for device kind {kind!r} (bench.accelerator.PEAKS).")
    elif peak_tflops(kind, "float32") is None:
        notes.append(f"float32 MFU omitted on {kind!r}: no float32 peak (float32 matmuls run as bfloat16 passes).")
    notes.append("TFLOP/s and MFU of every contender use jaxdiff's counted FLOPs of the same network "
                 "(train: the whole step; forward: one call). Parameters: "
                 + "; ".join(f"{k} {', '.join(f'{n} {c:,}' for n, c in v.items())}" for k, v in params.items()))
    if quick:
        notes.append("--quick: 16x16, two levels of width 8 (GroupNorm 4), one block, batch 2, DDIM 5, 3 repeats: "
                     "a smoke run of every code path, not a figure.")
    sampler_table = common.markdown_table(sampler_rows, SAMPLER_COLUMNS)
    out = common.finish("accelerator", rows, COLUMNS, notes=[sampler_table, *notes], sampler=sampler_rows,
                        params=params, device_kind=kind, quick=quick, seconds=time.perf_counter() - t_start)
    md = common.RESULTS_DIR / "accelerator.md"
    md.write_text(f"# bench.accelerator ({time.strftime('%Y-%m-%d %H:%M')}, {kind})\n\n{out['table']}\n")
    return out


if __name__ == "__main__":
    common.main(run, ("--no-torch", dict(action="store_false", dest="torch_side", help="jaxdiff only")),
                ("--no-compile", dict(action="store_false", dest="compile_torch", help="skip torch.compile")),
                ("--budget-s", dict(type=float, default=420.0, dest="budget_s",
                                    help="seconds after which torch.compile contenders are skipped (60 %%)")),
                ("--specs", dict(default=",".join(SPECS), help="comma-separated specs (default: all)")))
