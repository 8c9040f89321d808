"""Sampler benchmarks.

efficiency = time(whole jitted sampler over N steps) / (N × time(one jitted denoiser forward)), same batch, same run;
  1.0 means the loop adds nothing to the network calls. Samplers: DDPM 1000 steps, DDIM 50 steps (linear β, ε-pred),
  cold blur T = 300 (cold_improved). Denoiser: the main job's UNet (configs/default.py's model) on 16×16×1 at
  batch 16, untrained (timing does not depend on the weights); one CPU device (the loop is what is measured).

cold vs sequential: the same cold_improved blur sampler (same denoiser) with F_t computed as ours (one pair of
  N×N matmuls per call, O(1) in t) or the published way (t per-step depthwise convolutions with the config's kernel
  re-applied on every call, O(T²) per sample), at T = 20, 100, 300; once with the UNet as denoiser and once with a
  single 3×3 convolution, which leaves the cost of F_t itself.

    python -m bench.sampler [--quick]
"""
from __future__ import annotations

import numpy as np

from bench import common

B_EFF = 16


def _setup(tiny: bool = False):
    """The main job's UNet, or (tiny) one 3×3 convolution: isolates what the loop and F_t cost."""
    import jax
    import jax.numpy as jnp

    from bench import contenders as C
    from jaxdiff import experiment

    cfg = C.default_config()
    s, c = int(cfg.data.image_size), int(cfg.data.channels)
    if tiny:
        params = 0.1 * jax.random.normal(jax.random.PRNGKey(0), (3, 3, c, c))

        def denoiser(p, x, t):
            return x + jax.lax.conv_general_dilated(x, p, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))

        return cfg, denoiser, params, (s, c)
    model = experiment.build_model(cfg)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, s, s, c)), jnp.zeros((1,), jnp.int32))["params"]

    def denoiser(p, x, t):
        return model.apply({"params": p}, x, t)

    return cfg, denoiser, params, (s, c)


def sequential_blur_degradation(T, image_size, kernel_size=11, std=7.0, routine="constant", padding="circular"):
    """The published F_t: t per-step depthwise convolutions re-applied on every call (a fori_loop of t steps).

    All examples of a batch must share t (true inside a sampler). Matches tests/references.py blur_sequential.
    """
    import jax
    import jax.numpy as jnp

    from jaxdiff.degradations import Degradation, blur_sigmas
    from jaxdiff.degradations.blur import _gauss1d

    sig = blur_sigmas(T, std=std, routine=routine)
    kern = jnp.asarray(np.stack([np.outer(_gauss1d(s, kernel_size), _gauss1d(s, kernel_size)) for s in sig]), jnp.float32)
    r = kernel_size // 2
    mode = "wrap" if padding == "circular" else "reflect"

    def apply(x0, t, aux=None):
        c = x0.shape[-1]
        n_steps = jnp.asarray(t).reshape(-1)[0]

        def body(i, x):
            k = jnp.broadcast_to(kern[i][:, :, None, None], (kernel_size, kernel_size, 1, c))
            xp = jnp.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode=mode)
            return jax.lax.conv_general_dilated(
                xp, k, (1, 1), "VALID", dimension_numbers=("NHWC", "HWIO", "NHWC"), feature_group_count=c
            )

        return jax.lax.fori_loop(0, n_steps, body, x0)

    return Degradation(name="blur_sequential", T=T, apply=apply)


def efficiency(quick):
    import jax
    import jax.numpy as jnp

    from jaxdiff import sampling
    from jaxdiff.degradations import make_degradation
    from jaxdiff.processes import ColdProcess, GaussianProcess
    from jaxdiff.processes.schedules import make_schedule

    cfg, denoiser, params, (s, c) = _setup()
    fwd = jax.jit(denoiser)
    x = jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (B_EFF, s, s, c)))
    tt = jnp.full((B_EFF,), 5, jnp.int32)
    key = jax.random.PRNGKey(3)
    gauss = GaussianProcess(make_schedule("linear", 1000))
    blur_params = dict(cfg.diffusion.degradation_params)
    cold = ColdProcess(make_degradation("blur", T=300, image_size=s, channels=c, **blur_params))
    cases = [
        ("DDPM 1000 steps", dict(process=gauss, corrector="ddpm", prediction="eps", timesteps=None), 1000),
        ("DDIM 50 steps", dict(process=gauss, corrector="ddim", prediction="eps", timesteps=50), 50),
        ("cold blur T=300", dict(process=cold, corrector="cold_improved", prediction="x0", clip=1.0), 300),
    ]
    rows, raw = [], {}
    for name, kw, N in cases:
        samp = lambda kw=kw: sampling.sample(denoiser, params, key, x, **kw).x0

        def n_forwards(N=N):
            out = None
            for _ in range(N):
                out = fwd(params, x, tt)
            return out

        r = common.compare({"sampler": samp, "N x forward": n_forwards}, iters=1, repeats=3 if quick else 7, warmup=1)
        raw[name] = r
        rows.append(
            {
                "sampler": name,
                "batch": B_EFF,
                "sampler s": r["sampler"]["median_s"],
                "N x forward s": r["N x forward"]["median_s"],
                "efficiency": r["N x forward"]["median_s"] / r["sampler"]["median_s"],
            }
        )
    return rows, raw


def cold_vs_sequential(quick, Ts=None, tiny=False, repeats=None):
    import jax
    import jax.numpy as jnp

    from jaxdiff import sampling
    from jaxdiff.degradations import make_degradation
    from tests.references import blur_sequential
    from jaxdiff.processes import ColdProcess

    cfg, denoiser, params, (s, c) = _setup(tiny)
    blur_params = dict(cfg.diffusion.degradation_params)
    B = 16
    x = jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (B, s, s, c)))
    key = jax.random.PRNGKey(3)
    rows, raw = [], {}
    for T in Ts or ((20, 100) if quick else (20, 100, 300)):
        ours = ColdProcess(make_degradation("blur", T=T, image_size=s, channels=c, **blur_params))
        seq = ColdProcess(sequential_blur_degradation(T, s, **blur_params))
        # the sequential operator is the published one: check it against the library's reference
        tchk = min(T, 7)
        err = float(
            jnp.max(jnp.abs(seq.mean(x, jnp.full((B,), tchk)) - blur_sequential(x, tchk, **blur_params)))
        )
        kw = dict(corrector="cold_improved", prediction="x0", clip=1.0)
        fns = {
            "ours O(T)": lambda p=ours: sampling.sample(denoiser, params, key, x, process=p, **kw).x0,
            "sequential O(T^2)": lambda p=seq: sampling.sample(denoiser, params, key, x, process=p, **kw).x0,
        }
        same = float(jnp.max(jnp.abs(fns["ours O(T)"]() - fns["sequential O(T^2)"]())))
        r = common.compare(fns, iters=1, repeats=repeats or (3 if quick else 5), warmup=1)
        raw[T] = r
        rows.append(
            {
                "denoiser": "1 conv" if tiny else "main-job UNet",
                "T": T,
                "batch": B,
                "ours s": r["ours O(T)"]["median_s"],
                "sequential s": r["sequential O(T^2)"]["median_s"],
                "speed-up": r["sequential O(T^2)"]["median_s"] / r["ours O(T)"]["median_s"],
                "ours ms/step": 1e3 * r["ours O(T)"]["median_s"] / T,
                "max |diff| samples": same,
                "F_t check vs blur_sequential": err,
            }
        )
    return rows, raw


def run(quick: bool = False, only_seq: bool = False, Ts=None, repeats=None) -> dict:
    common.setup_threads()
    rows_e, raw_e = ([], {}) if only_seq else efficiency(quick)
    rows_c, raw_c = cold_vs_sequential(quick, Ts, repeats=repeats)
    rows_t, raw_t = cold_vs_sequential(quick, Ts, tiny=True, repeats=repeats)
    rows_c, raw_c = rows_c + rows_t, {"unet": raw_c, "tiny": raw_t}
    table = (
        common.markdown_table(rows_e, ["sampler", "batch", "sampler s", "N x forward s", "efficiency"])
        + "\n\n"
        + common.markdown_table(
            rows_c,
            ["denoiser", "T", "batch", "ours s", "sequential s", "speed-up", "ours ms/step", "max |diff| samples",
             "F_t check vs blur_sequential"],
        )
    )
    out = {"efficiency": rows_e, "cold_vs_sequential": rows_c, "raw": {"eff": raw_e, "seq": raw_c}, "table": table}
    common.save("sampler_seq" if only_seq else "sampler", out)
    return out


if __name__ == "__main__":
    common.main(
        run,
        ("--only-seq", dict(action="store_true", help="only cold vs sequential (results: sampler_seq.json)")),
        ("--T", dict(dest="Ts", type=lambda v: tuple(int(t) for t in v.split(",") if t) or None, default=None,
                     help="comma-separated T values for cold vs sequential")),
        ("--repeats", dict(type=int, default=None)),
    )
