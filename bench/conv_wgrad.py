"""Micro-benchmark: ways to compute a 3×3 'SAME' convolution's weight gradient on XLA:CPU vs PyTorch (oneDNN).

    dW[i, j, c, o] = Σ_{b,h,w} x_pad[b, h+i, w+j, c] · dy[b, h, w, o]        x (B,H,W,C), dy (B,H,W,O), dW (3,3,C,O)

Contenders (all jitted, same run, interleaved):
  lax      jax.vjp of lax.conv_general_dilated w.r.t. the kernel (what Flax does), XLA's defaults (YNNPACK)
  lax_xla  the same compiled with jaxdiff.cpu.xla_options' option (XLA's own Eigen convolution), as the train step is
  im2col   one GEMM: patches (B·H·W, 9C)ᵀ · dy (B·H·W, O)
  rows3    width-only patches (B, H+2, W, 3C), then 3 GEMMs over the row shift i
  shift9   9 GEMMs of shifted views x_pad[:, i:i+H, j:j+W]ᵀ · dy
  patchesT one GEMM with the patch matrix channel-major (9C, B·H·W): reduction dim minor
  lax_nchw XLA's own, traced in NCHW/OIHW
  split2   XLA's own over two batch halves, summed
  dyT_rows 3 GEMMs dyᵀ (O, B·H·W) · width patches (B·H·W, 3C): the dot layout XLA:CPU runs fastest
  torch    torch.nn.grad.conv2d_weight (oneDNN), NCHW

    python -m bench.conv_wgrad [--quick]
"""
from __future__ import annotations

from bench import common

SHAPES = [  # (B, H, C, O): bench32 levels at batch 32, then the main job's (ch 16) at batch 64
    (32, 32, 64, 64),
    (32, 16, 128, 128),
    (32, 8, 128, 128),
    (64, 16, 16, 16),
    (64, 16, 32, 16),
    (64, 8, 32, 32),
    (64, 4, 32, 32),
]


def run(quick: bool = False) -> dict:
    n = common.setup_threads()
    import jax
    import jax.numpy as jnp
    import numpy as np
    import torch

    common.torch_threads(n)
    from bench import wgrad_formulations as fastconv

    def lax_wgrad(x, w, dy):
        f = lambda w: jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return jax.vjp(f, w)[1](dy)[0]

    from jaxdiff.cpu import xla_options

    methods = {
        "lax": jax.jit(lax_wgrad),
        "lax_xla": jax.jit(lax_wgrad, compiler_options={xla_options.OPTION: xla_options.VALUE}),
        "im2col": jax.jit(lambda x, w, dy: fastconv.wgrad_im2col(x, dy, w.shape)),
        "rows3": jax.jit(lambda x, w, dy: fastconv.wgrad_rows(x, dy, w.shape)),
        "shift9": jax.jit(lambda x, w, dy: fastconv.wgrad_shift(x, dy, w.shape)),
        "patchesT": jax.jit(lambda x, w, dy: fastconv.wgrad_patches_t(x, dy, w.shape)),
        "lax_nchw": jax.jit(lambda x, w, dy: fastconv.wgrad_lax_layout(x, dy, w.shape)),
        "split2": jax.jit(lambda x, w, dy: fastconv.wgrad_split(x, dy, w.shape)),
        "dyT_rows": jax.jit(lambda x, w, dy: fastconv.wgrad_dyt_rows(x, dy, w.shape)),
    }
    rows = []
    for B, H, C, O in SHAPES[:3] if quick else SHAPES:
        rng = np.random.default_rng(0)
        x = jnp.asarray(rng.standard_normal((B, H, H, C), np.float32))
        dy = jnp.asarray(rng.standard_normal((B, H, H, O), np.float32))
        w = jnp.zeros((3, 3, C, O), jnp.float32)
        ref = np.asarray(methods["lax"](x, w, dy))
        fns = {k: (lambda f=f: f(x, w, dy)) for k, f in methods.items()}
        err = {k: float(np.max(np.abs(np.asarray(f()) - ref)) / np.max(np.abs(ref))) for k, f in fns.items()}
        xt = torch.from_numpy(np.array(x)).permute(0, 3, 1, 2).contiguous()
        dyt = torch.from_numpy(np.array(dy)).permute(0, 3, 1, 2).contiguous()
        fns["torch"] = lambda: torch.nn.grad.conv2d_weight(xt, (O, C, 3, 3), dyt, padding=1)
        r = common.compare(fns, iters=3, repeats=3 if quick else 7, warmup=1)
        for k, v in r.items():
            rows.append(
                {
                    "shape B,H,C,O": f"{B},{H},{C},{O}",
                    "method": k,
                    "ms": 1e3 * v["median_s"],
                    "vs lax": r["lax"]["median_s"] / v["median_s"],
                    "vs torch": r["torch"]["median_s"] / v["median_s"],
                    "rel err": err.get(k, ""),
                }
            )
    return common.finish("conv_wgrad", rows, ["shape B,H,C,O", "method", "ms", "vs lax", "vs torch", "rel err"])


if __name__ == "__main__":
    common.main(run)
