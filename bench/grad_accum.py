"""Gradient accumulation: the in-step lax.scan over micro-batches vs optax.MultiSteps, one global batch each.

    scan        one jitted call per global batch B: k micro-batch gradients summed in a lax.scan, one AdamW
                update, EMA (what train.grad_accum_steps = k runs, jaxdiff.train.step)
    multisteps  k jitted calls per global batch, each on B/k images: gradient, optax.MultiSteps(AdamW, k)
                (it applies the update on every k-th call), EMA when it did
    scan_unrolled  the same scan with unroll=True (no XLA while loop)
    no_accum    the plain train step on the whole batch (grad_accum_steps = 1), for scale

Main-job model (configs/default.py), global batch 64, k = 4 (micro-batch 16), interleaved.

    python -m bench.grad_accum [--quick]
"""
from __future__ import annotations

from bench import common

B, K = 64, 4


def multisteps_contender(config, model, process, mesh, batch, k):
    """One call = k micro-steps of optax.MultiSteps on the k slices of ``batch`` (B/k each)."""
    import jax
    import jax.numpy as jnp
    import optax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxdiff import losses as losses_lib
    from jaxdiff import parameterization
    from jaxdiff.experiment import DATA_AXIS
    from jaxdiff.train import state as state_lib
    from jaxdiff.train import step as step_lib

    tc, f = config.train, config.diffusion
    tx = optax.MultiSteps(state_lib.make_optimizer(tc), every_k_schedule=k)
    params = step_lib.init_train_state(config, model, mesh=mesh).params
    carry = {"params": params, "ema": jax.tree.map(jnp.copy, params), "opt": jax.jit(tx.init)(params),
             "n": jnp.zeros((), jnp.int32)}
    base = jax.random.PRNGKey(int(config.seed))
    T = int(process.T)

    def micro(c, x0, i):
        k_t, k_eps, k_aux = jax.random.split(jax.random.fold_in(base, i), 3)
        t = jax.random.randint(k_t, (x0.shape[0],), 1, T + 1, dtype=jnp.int32)
        eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        x_t = process.perturb(x0, t, eps, process.sample_aux(k_aux, x0))
        y = parameterization.target(process, f.prediction, x0, eps, t)

        def loss_fn(p):
            return losses_lib.diffusion_loss(model.apply({"params": p}, x_t, t, train=True), y, kind=f.loss)

        loss, g = jax.value_and_grad(loss_fn)(c["params"])
        updates, opt = tx.update(g, c["opt"], c["params"])
        new = optax.apply_updates(c["params"], updates)
        updated = tx.has_updated(opt)
        n = c["n"] + updated.astype(jnp.int32)
        ema = jax.lax.cond(updated, lambda: state_lib.ema_update(c["ema"], new, n, decay=float(tc.ema_decay)),
                           lambda: c["ema"])
        return {"params": new, "ema": ema, "opt": opt, "n": n}, loss

    repl, data = NamedSharding(mesh, P()), NamedSharding(mesh, P(DATA_AXIS))
    fn = jax.jit(micro, in_shardings=(repl, data, repl), out_shardings=(repl, repl), donate_argnums=(0,))
    b = batch.shape[0] // k
    slices = [jax.device_put(batch[j * b:(j + 1) * b], data) for j in range(k)]
    box = {"c": carry, "i": 0}

    def run():
        loss = None
        for s in slices:
            box["c"], loss = fn(box["c"], s, box["i"])
            box["i"] += 1
        return loss

    return run


def run(quick: bool = False) -> dict:
    from bench import contenders as C

    n, n_dev, _ = common.setup_cpu_run(B // K)
    import jax

    from jaxdiff import experiment

    cfg = C.default_config()
    cfg.train.batch_size = B
    model, process = experiment.build_model(cfg), experiment.build_process(cfg)
    mesh = experiment.make_mesh()
    acc = cfg.copy_and_resolve_references()
    acc.train.grad_accum_steps = K
    import time

    scan = C.jax_train(acc, process, model, mesh)
    t0 = time.perf_counter()
    jax.block_until_ready(scan())
    first_call_s = {"scan (unrolled)": time.perf_counter() - t0}
    # The same scan rolled (an XLA while loop: unroll=1), which is what the step uses off the CPU.
    from jaxdiff.train import step as step_lib

    real = step_lib.accumulated_value_and_grad
    step_lib.accumulated_value_and_grad = lambda *a, **kw: real(*a, **{**kw, "unroll": 1})
    try:
        rolled = C.jax_train(acc, process, model, mesh)
        t0 = time.perf_counter()
        jax.block_until_ready(rolled())  # traced and compiled now, while the wrapper is in place
        first_call_s["scan rolled"] = time.perf_counter() - t0
    finally:
        step_lib.accumulated_value_and_grad = real
    fns = {
        "scan (unrolled: the CPU default)": scan,
        "scan rolled (while loop)": rolled,
        "multisteps": multisteps_contender(cfg, model, process, mesh, scan.batch, K),
        "no_accum": C.jax_train(cfg, process, model, mesh),
    }
    reps = dict(iters=2, repeats=3, warmup=1) if quick else dict(iters=3, repeats=9, warmup=2)
    r = common.compare(fns, **reps)
    rows = [{"contender": name, "ms / global batch": 1e3 * v["median_s"], "img/s": B / v["median_s"],
             "vs multisteps": r["multisteps"]["median_s"] / v["median_s"],
             "paired": common.paired_ratio(r, "multisteps", name)} for name, v in r.items()]
    notes = [f"Main-job UNet (16×16×1), global batch {B}, grad_accum_steps {K} (micro-batch {B // K}); "
             f"{n_dev} CPU device(s), {n} threads, jax {jax.__version__}. 'vs multisteps' > 1: faster than MultiSteps.",
             "First call (trace + compile + one step): "
             + ", ".join(f"{k} {v:.1f} s" for k, v in first_call_s.items()) + "."]
    return common.finish("grad_accum", rows, ["contender", "ms / global batch", "img/s", "vs multisteps", "paired"],
                         notes=notes, raw=r, batch=B, k=K, first_call_s=first_call_s)


if __name__ == "__main__":
    common.main(run)
