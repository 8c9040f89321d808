"""DDIM with η = 0: the program without a noise draw (what ``sample`` compiles for η = 0) against the program with
η traced (what it compiled before, forming 0 · z every step).

Denoiser: configs/ddim.py's UNet on 16×16×1 digits shapes, untrained (timing does not depend on the weights); its
process, ε-prediction, x̂0 clipped to [−1, 1]; one CPU device. Per contender: compile seconds of the whole loop
(``lower(...).compile()``, process CPU seconds: XLA compiles mostly on one thread) and the sampler's img/s, the
two timed interleaved in one process. Both give the same samples bitwise (tests/test_sampling.py).

    python -m bench.eta_zero [--quick]
"""
from __future__ import annotations

import time

from bench import common


def run(quick: bool = False) -> dict:
    common.setup_threads()
    import runpy

    import jax
    import jax.numpy as jnp

    from jaxdiff import experiment, sampling
    from jaxdiff.sampling.loop import sample_loop_jit

    cfg = runpy.run_path(str(common.RESULTS_DIR.parent.parent / "configs" / "ddim.py"))["get_config"]()
    model = experiment.build_model(cfg)
    process = experiment.build_process(cfg)
    s, c = int(cfg.data.image_size), int(cfg.data.channels)
    rows_out = []
    for batch, steps in ((16, 10),) if quick else ((16, 20), (64, 20)):
        x_T = jax.random.normal(jax.random.PRNGKey(0), (batch, s, s, c))
        params = model.init(jax.random.PRNGKey(1), x_T[:1], jnp.ones((1,), jnp.int32))["params"]
        ts = sampling.timesteps(process.T, steps)

        def den(p, x, t):
            return model.apply({"params": p}, x, t)

        kw = dict(process=process, corrector="ddim", prediction="eps", clip=1.0, aux=None, return_every=0)
        etas = {"η = 0 (no draw)": None, "η traced (0 · z)": jnp.float32(0.0)}
        compiled, compile_s = {}, {}
        for name, eta in etas.items():
            c0 = time.process_time()
            compiled[name] = sample_loop_jit.lower(den, params, jax.random.PRNGKey(2), x_T, ts, eta=eta,
                                                   **kw).compile()
            compile_s[name] = time.process_time() - c0
        fns = {name: (lambda f=compiled[name], e=eta: f(params, jax.random.PRNGKey(2), x_T, ts, eta=e, aux=None).x0)
               for name, eta in etas.items()}
        res = common.compare(fns, iters=1 if quick else 2, repeats=3 if quick else 7, warmup=1)
        ref = "η traced (0 · z)"
        for name in etas:
            rows_out.append({"batch": batch, "steps": steps, "program": name,
                             "compile CPU s": compile_s[name], "img/s": batch / res[name]["median_s"],
                             "speed vs traced η": common.paired_ratio(res, ref, name)})
    notes = ["configs/ddim.py's UNet (untrained), 16×16×1, one CPU device, DDIM with x̂0 clipped; img/s: median over "
             "rounds, the two programs interleaved; speed vs traced η: median of paired time ratios (> 1: faster)."]
    return common.finish("eta_zero", rows_out,
                         ["batch", "steps", "program", "compile CPU s", "img/s", "speed vs traced η"], notes=notes)


if __name__ == "__main__":
    common.main(run)
