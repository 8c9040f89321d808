"""GroupNorm + SiLU alone: jaxdiff's two-stage statistics (the CPU default) vs the textbook grouped reduction (what
flax's nn.GroupNorm does) vs PyTorch's group_norm, forward and forward+backward, at the UNet's shapes.

    python -m bench.group_norm [--quick]
"""
from __future__ import annotations

from bench import common

SHAPES = [  # (B, H, C, groups): the main job's levels at batch 64 (8 groups), then bench32's at batch 32 (32 groups)
    (64, 16, 16, 8),
    (64, 16, 48, 8),
    (64, 8, 32, 8),
    (32, 32, 64, 32),
    (32, 32, 192, 32),
    (32, 16, 128, 32),
]


def run(quick: bool = False) -> dict:
    n = common.setup_threads()
    import jax
    import jax.numpy as jnp
    import numpy as np

    from jaxdiff.models.norm import group_norm

    try:
        import torch

        common.torch_threads(n)
    except ImportError:
        torch = None
    rows = []
    for B, H, C, G in SHAPES[:3] if quick else SHAPES:
        rng = np.random.default_rng(0)
        xn = (rng.standard_normal((B, H, H, C)) * 2 + 1).astype(np.float32)
        x, dy = jnp.asarray(xn), jnp.asarray(rng.standard_normal((B, H, H, C)).astype(np.float32))
        s, b = jnp.asarray(rng.standard_normal(C).astype(np.float32)), jnp.asarray(rng.standard_normal(C).astype(np.float32))
        fns, ref = {}, None
        for impl in ("grouped", "two_stage"):
            f = lambda x, s, b, impl=impl: jax.nn.silu(group_norm(x, s, b, num_groups=G, impl=impl))  # noqa: E731
            fwd = jax.jit(f)
            fb = jax.jit(lambda x, s, b, dy, f=f: jax.vjp(f, x, s, b)[1](dy))
            fns[f"{impl} fwd"] = lambda fwd=fwd: fwd(x, s, b)
            fns[f"{impl} fwd+bwd"] = lambda fb=fb: fb(x, s, b, dy)
            out = np.asarray(fwd(x, s, b))
            ref = out if ref is None else ref
            err = float(np.max(np.abs(out - ref)))
        if torch is not None:
            xt = torch.from_numpy(xn).permute(0, 3, 1, 2).contiguous().requires_grad_(True)
            st, bt = torch.from_numpy(np.asarray(s)).requires_grad_(True), torch.from_numpy(np.asarray(b)).requires_grad_(True)
            dyt = torch.from_numpy(np.asarray(dy)).permute(0, 3, 1, 2).contiguous()

            def t_fwd():
                with torch.no_grad():
                    return torch.nn.functional.silu(torch.nn.functional.group_norm(xt, G, st, bt))

            def t_fb():
                y = torch.nn.functional.silu(torch.nn.functional.group_norm(xt, G, st, bt))
                return torch.autograd.grad(y, (xt, st, bt), dyt)

            fns["torch fwd"], fns["torch fwd+bwd"] = t_fwd, t_fb
        r = common.compare(fns, iters=5, repeats=3 if quick else 7, warmup=2)
        for what in ("fwd", "fwd+bwd"):
            g, t2 = r[f"grouped {what}"]["median_s"], r[f"two_stage {what}"]["median_s"]
            row = {"shape B,H,C,G": f"{B},{H},{C},{G}", "pass": what, "grouped ms": 1e3 * g, "two-stage ms": 1e3 * t2,
                   "two-stage vs grouped": g / t2, "max |diff|": err}
            if torch is not None:
                tt = r[f"torch {what}"]["median_s"]
                row.update({"torch ms": 1e3 * tt, "two-stage vs torch": tt / t2})
            rows.append(row)
    cols = ["shape B,H,C,G", "pass", "grouped ms", "two-stage ms", "two-stage vs grouped", "max |diff|"]
    if torch is not None:
        cols += ["torch ms", "two-stage vs torch"]
    return common.finish("group_norm", rows, cols)


if __name__ == "__main__":
    common.main(run)
