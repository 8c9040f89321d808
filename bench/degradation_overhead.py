"""Degradation overhead: what the forward process adds to a bench32 train step, for every registered degradation.

Measured two ways in one run (interleaved):
  * isolated: the jitted forward-process part of the train step alone (t ~ U{1..T}, ε, aux = sample_aux, x_t =
    F_t(x0; aux) + σ_t ε) at bench32's batch (32×32×3, B = 32), divided by the bench32 train step with the identity
    degradation (F_t = x0). This is precise: the difference of two ~1 s train steps is below the noise here.
  * whole step (full runs only, blur and the costliest isolated one): the train step with the degradation ÷ the
    same step with the identity degradation − 1.

Settings: the published CIFAR-10-like ones where the builder has them (blur T = 50 affine σ, inpaint T = 50, …).

    python -m bench.degradation_overhead [--quick]
"""
from __future__ import annotations

from bench import common

SETTINGS = {  # name -> (T, params)
    "blur": (50, dict(kernel_size=11, std=0.35, std_increment=0.01, routine="affine", padding="reflect")),
    "inpaint": (50, dict(kernel_std=0.1, initial_mask=11.0)),
    "fade": (50, dict()),
    "superres": (3, dict()),
    "snow": (200, dict()),
    "decolor": (20, dict()),
    "interpolate": (200, dict()),
}


def run(quick: bool = False) -> dict:
    common.setup_threads()
    import jax
    import jax.numpy as jnp

    from bench import contenders as C
    from jaxdiff import experiment
    from jaxdiff.degradations import DEGRADATIONS, Degradation, make_degradation
    from jaxdiff.processes import ColdProcess

    cfg = C.bench32_train_config()
    cfg.diffusion.prediction, cfg.diffusion.loss = "x0", "l1"  # the processes below are built here, cold
    B, s, c = 32, 32, 3
    x0 = C.jax_batch(cfg)
    model = experiment.build_model(cfg)
    names = sorted(DEGRADATIONS)
    procs = {}
    for name in names:
        T, params = SETTINGS.get(name, (20, {}))
        procs[name] = ColdProcess(make_degradation(name, T=T, image_size=s, channels=c, **params))
    ident = ColdProcess(Degradation(name="identity", T=50, apply=lambda x0, t, aux=None: x0))

    def fp(process):
        def f(key, x0):
            k_t, k_e, k_a = jax.random.split(key, 3)
            t = jax.random.randint(k_t, (x0.shape[0],), 1, process.T + 1, dtype=jnp.int32)
            eps = jax.random.normal(k_e, x0.shape, x0.dtype)
            return process.perturb(x0, t, eps, process.sample_aux(k_a, x0))

        f = jax.jit(f)
        box = {"i": 0}

        def run():
            box["i"] += 1
            return f(jax.random.PRNGKey(box["i"]), x0)

        return run

    step_ident = C.jax_train(cfg, ident, model)
    fns = {"train step (identity)": step_ident}
    fns.update({name: fp(p) for name, p in procs.items()})
    r = common.compare(fns, iters=1, repeats=3 if quick else 7, warmup=1)
    base = r["train step (identity)"]["median_s"]
    rows = [
        {
            "degradation": name,
            "T": procs[name].T,
            "forward process ms (B=32)": 1e3 * r[name]["median_s"],
            "% of bench32 train step": 100 * r[name]["median_s"] / base,
        }
        for name in names
    ]
    whole = []
    if not quick:
        worst = max(names, key=lambda n: r[n]["median_s"])
        pair = {"identity": step_ident}
        for name in dict.fromkeys(["blur", worst]):
            pair[name] = C.jax_train(cfg, procs[name], model)
        rw = common.compare(pair, iters=1, repeats=7, warmup=1)
        for name in pair:
            if name != "identity":
                whole.append(
                    {
                        "degradation": name,
                        "step s": rw[name]["median_s"],
                        "identity step s": rw["identity"]["median_s"],
                        "overhead %": 100 * (rw[name]["median_s"] / rw["identity"]["median_s"] - 1),
                    }
                )
    notes = [f"bench32 train step with the identity degradation: {1e3 * base:.0f} ms."]
    if whole:
        notes.append(common.markdown_table(whole, ["degradation", "step s", "identity step s", "overhead %"]))
    return common.finish("degradation_overhead", rows, ["degradation", "T", "forward process ms (B=32)",
                                                        "% of bench32 train step"], notes=notes, whole_step=whole, raw=r)


if __name__ == "__main__":
    common.main(run)
