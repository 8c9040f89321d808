"""The picture a training run draws at every checkpoint, from its EMA weights.

Gaussian: samples from x_T ~ N(0, I). Cold: restoration of fixed held-out images from two levels, x_T = F_T(x0)
(+ σ noise) through the configured corrector, and x_{t_r} (t_r = :func:`restore_level`) through every step
t_r … 0; the grid shows blocks of rows x_{t_r} | restored | x_T | restored | original.
"""
from __future__ import annotations

import os
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np


__all__ = ["restore_level", "make_sample_fn", "eval_images", "eval_end_images", "save_sample_grid", "grid_path",
           "EVAL_SEED_OFFSET", "SAMPLE_SEED_OFFSET"]

#: config.seed + this seeds the choice of the held-out images of the grid
EVAL_SEED_OFFSET = 1
#: PRNGKey(config.seed + this) is the key of every grid (the same noise at every checkpoint)
SAMPLE_SEED_OFFSET = 7


def restore_level(T: int) -> int:
    """The intermediate level t_r = max(1, T // 2) the cold sample grids also restore from (next to
    t = T): it shows the progression, and still shows restoration when an operator erases the image
    well before t = T."""
    return max(1, T // 2)


def make_sample_fn(config, model, process) -> Callable:
    """``fn(params, key, x0, aux) -> dict of (N, H, W, C) arrays``, jitted (one device).

    Gaussian: ``{"x0_hat"}`` generated from x_T ~ N(0, I) (x0 only gives the shape). Cold: keys
    ``x_T, from_T, x_tr, from_tr`` (see the module docstring); ``sample.steps`` steps from T, spaced by
    ``sample.spacing``.
    """
    from jaxdiff import sampling

    s = config.sample
    T = int(process.T)
    ts = sampling.timesteps_for(process, int(s.steps) if s.steps else None, str(s.get("spacing", "linear")))
    t_r = restore_level(T)
    ts_r = np.arange(t_r, -1, -1, dtype=np.int32)
    clip = float(s.clip) if s.clip else None
    gaussian = process.noise_dominates  # x_T from the process's own N(0, prior_std² I)

    def denoiser(params, x, t):
        return model.apply({"params": params}, x, t, train=False)

    def run(params, key, x_start, aux, seq):
        return sampling.sample(
            denoiser, params, key, x_start,
            process=process, corrector=s.corrector, timesteps=seq, prediction=config.diffusion.prediction,
            clip=clip, eta=float(s.eta), aux=aux, return_every=0,
        ).x0

    def fn(params, key, x0, aux):
        k_prior, k_aux, k_s1, k_r, k_s2 = jax.random.split(key, 5)
        if gaussian:
            x_T = process.prior(k_prior, x0.shape, x0=x0)
            return {"x0_hat": run(params, k_s1, x_T, None, ts)}
        if aux is None:
            aux = process.sample_aux(k_aux, x0)
        x_T = process.prior(k_prior, x0.shape, x0=x0, aux=aux)
        x_tr = process.sample(x0, jnp.full((x0.shape[0],), t_r, jnp.int32), k_r, aux)
        return {"x_T": x_T, "from_T": run(params, k_s1, x_T, aux, ts),
                "x_tr": x_tr, "from_tr": run(params, k_s2, x_tr, aux, ts_r)}

    return jax.jit(fn)


def eval_images(config, n: int) -> np.ndarray:
    """n fixed held-out images (float32 in [−1, 1]) for the sample grids (all of them if fewer)."""
    from jaxdiff import data as data_lib

    return data_lib.load_images(config, split=config.data.eval_split, num=n,
                                seed=int(config.seed) + EVAL_SEED_OFFSET)


def eval_end_images(config, n: int) -> Optional[np.ndarray]:
    """n images of ``data.end_source`` to interpolate toward (None without an end source)."""
    from jaxdiff import data as data_lib

    if not config.data.get("end_source", ""):
        return None
    return data_lib.load_images(config, split=config.data.eval_split, field="data.end_source", num=n,
                                seed=int(config.seed) + EVAL_SEED_OFFSET)


def save_sample_grid(path: str, step: int, process, x0, out: dict) -> str:
    """Writes the grid of ``out`` (what :func:`make_sample_fn` returned) as a PNG; returns the path."""
    from jaxdiff import visualize

    out = {k: np.asarray(v) for k, v in out.items()}
    if "x0_hat" in out:
        x = out["x0_hat"]
        return visualize.save_grid(path, x, nrow=int(np.ceil(np.sqrt(x.shape[0]))),
                                   title=f"step {step}: samples from N(0, I)")
    x0 = np.asarray(x0)
    n = x0.shape[0]
    cols = n if n < 8 else (16 if n >= 64 else 8)
    rows = []
    for i in range(0, max(n - n % cols, cols) if n >= cols else n, cols):
        sl = slice(i, i + cols)
        rows += [out["x_tr"][sl], out["from_tr"][sl], out["x_T"][sl], out["from_T"][sl], x0[sl]]
    T = int(process.T)
    title = f"step {step}: rows x_t (t={restore_level(T)}) | restored | x_T (t={T}) | restored | original"
    return visualize.save_grid(path, np.concatenate(rows, axis=0), nrow=cols, title=title)


def grid_path(samples_dir: str, step: int) -> str:
    return os.path.join(samples_dir, f"step_{step:06d}.png")
