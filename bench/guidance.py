"""Guided sampling's cost against unguided (classifier-free guidance, jaxdiff.sampling.guidance).

Denoiser: configs/ddim_cond.py's UNet (configs/default.py's model with model.num_classes = 10) on 16×16×1,
untrained (timing does not depend on the weights); DDIM 20 steps, one CPU device (the loop is what is measured).
Contenders, same batch B, timed interleaved in one process:

  unguided     the plain denoiser (null label), B rows per network call
  conditional  a label, w = 0: B rows per call
  guided       a label and w: both branches in ONE forward pass of 2B rows
  two passes   the same guidance as two forward passes of B rows each (what the one pass replaces)

efficiency = N × time(one jitted forward at the contender's rows) / time(whole sampler): 1.0 means the loop
adds nothing to the network calls; "vs unguided" = sampler time / the unguided sampler's.

    python -m bench.guidance [--quick]
"""
from __future__ import annotations

from bench import common

STEPS = 20


def _model():
    import runpy

    from jaxdiff import experiment

    cfg = runpy.run_path(str(common.RESULTS_DIR.parent.parent / "configs" / "ddim_cond.py"))["get_config"]()
    return cfg, experiment.build_model(cfg)


def measure(quick: bool, batches=None):
    import jax
    import jax.numpy as jnp

    from jaxdiff import sampling
    from jaxdiff.processes import GaussianProcess
    from jaxdiff.sampling import guidance
    from jaxdiff.processes.schedules import make_schedule

    cfg, model = _model()
    s, c, K = int(cfg.data.image_size), int(cfg.data.channels), int(cfg.model.num_classes)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, s, s, c)), jnp.zeros((1,), jnp.int32))["params"]
    process = GaussianProcess(make_schedule("linear", 1000))
    key = jax.random.PRNGKey(3)

    def plain(p, x, t):
        return model.apply({"params": p}, x, t)

    def two_passes(p, x, t):
        params_, labels, w = p
        oc = model.apply({"params": params_}, x, t, labels)
        ou = model.apply({"params": params_}, x, t, jnp.full_like(labels, K))
        return guidance.guide(oc, ou, w)

    fwd = {rows: jax.jit(lambda p, x, t, l: model.apply({"params": p}, x, t, l)) for rows in (1, 2)}
    rows_out, raw = [], {}
    for B in batches or ((16,) if quick else (16, 64)):
        x = jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (B, s, s, c)))
        labels = jnp.arange(B, dtype=jnp.int32) % K
        w = jnp.float32(1.0)
        cases = {
            # name: (denoiser, params argument, rows of one forward pass, forward passes per step)
            "unguided": (plain, params, 1, 1),
            "conditional": (guidance.conditional_denoiser(model), (params, labels), 1, 1),
            "guided": (guidance.guided_denoiser(model), (params, labels, w), 2, 1),
            "two passes": (two_passes, (params, labels, w), 1, 2),
        }
        fns = {name: (lambda d=d, p=p: sampling.sample(d, p, key, x, process=process, corrector="ddim",
                                                       timesteps=STEPS, prediction="eps").x0)
               for name, (d, p, _, _) in cases.items()}
        for k in (1, 2):
            xk, tk, lk = jnp.concatenate([x] * k), jnp.full((k * B,), 500, jnp.int32), jnp.concatenate([labels] * k)
            fns[f"forward {k}B"] = (lambda xk=xk, tk=tk, lk=lk, k=k: fwd[k](params, xk, tk, lk))
        r = common.compare(fns, iters=1, repeats=3 if quick else 7, warmup=1)
        raw[B] = r
        base = r["unguided"]["median_s"]
        for name, (_, _, k, passes) in cases.items():
            t = r[name]["median_s"]
            floor = STEPS * passes * r[f"forward {k}B"]["median_s"]
            rows_out.append({
                "sampler": name, "batch": B, "rows per call": f"{passes} x {k * B}",
                "sampler s": t, "N x forward s": floor, "efficiency": floor / t,
                "vs unguided": t / base,
            })
    return rows_out, raw


def run(quick: bool = False) -> dict:
    common.setup_threads()
    rows, raw = measure(quick)
    return common.finish("guidance", rows, ["sampler", "batch", "rows per call", "sampler s", "N x forward s",
                                             "efficiency", "vs unguided"],
                         notes=[f"DDIM {STEPS} steps, configs/ddim_cond.py's UNet (16x16x1, 10 classes), one CPU "
                                "device; N x forward = 20 forward passes at the rows of one call (two passes: 2 x 20 "
                                "passes of B rows)."],
                         raw=raw)


if __name__ == "__main__":
    common.main(run)
