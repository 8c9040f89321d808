"""Builders that run against whichever jaxdiff tree the worker started in (its cwd): the same API in every
version since the one process (experiment.build_process/build_model, sampling.sample, train.step), so one bench
can time two revisions side by side. Imported as a top-level module (bench/ab on PYTHONPATH) by bench.before_after.
"""
from __future__ import annotations


def _config(spec: str):
    from bench import contenders as C

    return {"mainjob": C.default_config, "bench32": C.bench32_train_config}[spec]()


def train(spec: str = "mainjob"):
    """One call = one train step of the spec's config (bench.contenders.jax_train), CPU devices split as train.py."""
    from jaxdiff.cpu.devices import split_cpu_devices

    cfg = _config(spec)
    split_cpu_devices(int(cfg.train.batch_size))
    from bench import contenders as C
    from jaxdiff import experiment

    return C.jax_train(cfg, experiment.build_process(cfg))


def sample(spec: str = "mainjob", batch: int = 64, corrector: str = "", steps: int = 0):
    """One call = ``batch`` samples of the spec's model (untrained weights) through the jitted reverse loop:
    the main job restores from x_T with Algorithm 2 over every step; bench32 runs ``corrector`` over ``steps``."""
    from jaxdiff.cpu.devices import split_cpu_devices

    cfg = _config(spec)
    split_cpu_devices(batch)
    import jax
    import jax.numpy as jnp

    from bench import contenders as C
    from jaxdiff import experiment, sampling

    process = experiment.build_process(cfg)
    model = experiment.build_model(cfg)
    s, c = int(cfg.data.image_size), int(cfg.data.channels)
    params = model.init(jax.random.PRNGKey(0), jnp.zeros((1, s, s, c)), jnp.zeros((1,), jnp.int32))["params"]

    def denoiser(p, x, t):
        return model.apply({"params": p}, x, t)

    x_T = C.shard_batch(jnp.tanh(jax.random.normal(jax.random.PRNGKey(1), (batch, s, s, c))))
    corr = corrector or str(cfg.sample.corrector)
    n = steps or None
    pred, clip = str(cfg.diffusion.prediction), float(cfg.sample.clip) or None
    key = jax.random.PRNGKey(2)

    def run():
        return sampling.sample(denoiser, params, key, x_T, process=process, corrector=corr, timesteps=n,
                               prediction=pred, clip=clip).x0

    return run


def train_config(name: str):
    """One call = one train step of configs/<name>.py (the new configs' steps/s beside ddim's)."""
    import os
    import runpy

    from jaxdiff.cpu.devices import split_cpu_devices

    cfg = runpy.run_path(os.path.join(os.getcwd(), "configs", f"{name}.py"))["get_config"]()
    split_cpu_devices(int(cfg.train.batch_size))
    from bench import contenders as C
    from jaxdiff import experiment

    return C.jax_train(cfg, experiment.build_process(cfg))
