"""What a forward process does, before any training: strips of x0 → x_t at evenly spaced t.

    rows, labels, ts = forward_rows(process, x0, key=key, num_columns=8)
    save_forward_strip("forward.png", process, x0, key=key)
    forward_strip_for_config(config, "docs/images/forward_cold_blur.png")

Row r shows one image at t = ts[0] = 0 (x0 itself), …, ts[-1] = T. Where σ_t > 0 (Gaussian diffusion,
noisy cold processes) each image gets ``draws`` rows with independent noise, so the randomness is visible;
per-example randomness fixed across t (a mask centre, a fade color, an end image) is drawn once per image
and shared by its rows and columns, as in training.
"""
from __future__ import annotations

from typing import Any, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.processes import Process

__all__ = ["column_timesteps", "forward_rows", "save_forward_strip", "forward_strip_for_config"]

#: the end images of a strip are a subset drawn with NumPy seed ``seed + END_IMAGES_SEED_OFFSET``
END_IMAGES_SEED_OFFSET = 1


def column_timesteps(T: int, num_columns: int) -> np.ndarray:
    """``num_columns`` evenly spaced integers from 0 to T inclusive (fewer if T + 1 < num_columns), int32."""
    if isinstance(num_columns, bool) or not isinstance(num_columns, (int, np.integer)) or num_columns < 2:
        raise ValueError(f"num_columns must be an integer >= 2 (t = 0 and t = T at least), got {num_columns!r}")
    return np.unique(np.rint(np.linspace(0, int(T), min(int(num_columns), int(T) + 1))).astype(np.int32))


def _repeat_aux(aux, reps: int):
    return jax.tree.map(lambda a: jnp.repeat(jnp.asarray(a), reps, axis=0), aux)


def forward_rows(
    process: Process,
    x0,
    *,
    key: jax.Array,
    num_columns: int = 8,
    draws: Optional[int] = None,
    aux: Any = None,
) -> tuple[list[np.ndarray], list[str], np.ndarray]:
    """x_t of each image of x0 (N, H, W, C) at :func:`column_timesteps`: (rows, row labels, ts).

    rows: N·draws arrays (K, H, W, C), K = len(ts); ``draws`` defaults to 1 for noise-free processes, else 3.
    ``aux`` (leading dim N) is the per-example randomness; None draws it with ``process.sample_aux``.
    Computed in one jitted call of ``process.sample`` over the N·draws·K examples.
    """
    x0 = jnp.asarray(x0, jnp.float32)
    if x0.ndim != 4:
        raise ValueError(f"x0 must be (N, H, W, C), got shape {x0.shape}")
    ts = column_timesteps(process.T, num_columns)
    if draws is None:
        draws = 1 if process.noise_free else 3
    if isinstance(draws, bool) or not isinstance(draws, (int, np.integer)) or draws < 1:
        raise ValueError(f"draws must be an integer >= 1, got {draws!r}")
    n, k = x0.shape[0], len(ts)
    k_aux, k_noise = jax.random.split(key)
    if aux is None:
        aux = process.sample_aux(k_aux, x0)
    reps = draws * k
    big = jnp.repeat(x0, reps, axis=0)  # image i occupies rows [i·reps, (i+1)·reps)
    t = jnp.tile(jnp.asarray(ts), n * draws)
    big_aux = None if aux is None else _repeat_aux(aux, reps)
    xt = np.asarray(jax.jit(process.sample)(big, t, k_noise, big_aux))
    rows = [xt[r * k:(r + 1) * k] for r in range(n * draws)]
    labels = [f"#{i}" if draws == 1 else f"#{i} draw {d + 1}" for i in range(n) for d in range(draws)]
    return rows, labels, ts


def save_forward_strip(
    path,
    process: Process,
    x0,
    *,
    key: jax.Array,
    num_columns: int = 8,
    draws: Optional[int] = None,
    aux: Any = None,
    title: Optional[str] = None,
) -> str:
    """Writes :func:`forward_rows` as a labelled PNG (columns "t=…"). Returns the path."""
    from jaxdiff import visualize

    rows, labels, ts = forward_rows(process, x0, key=key, num_columns=num_columns, draws=draws, aux=aux)
    # Gaussian x_t leaves [−1, 1]; the picture clips it (as every sampler's picture does).
    return visualize.save_strip(path, rows, labels, column_labels=[f"t={int(t)}" for t in ts], title=title)


def forward_strip_for_config(
    config,
    path,
    *,
    process: Optional[Process] = None,
    num_images: int = 3,
    num_columns: int = 8,
    draws: Optional[int] = None,
    seed: int = 0,
    images: Optional[np.ndarray] = None,
    end_images: Optional[np.ndarray] = None,
    split: Optional[str] = None,
    title: Optional[str] = None,
) -> str:
    """The forward strip of ``config``'s process (or ``process``, built from it) on ``num_images`` images of
    its eval split (a seeded subset; or ``images``).

    Degradations that need an end data set take their end images from ``data.end_source`` (or ``end_images``).
    """
    from jaxdiff.data import load_images
    from jaxdiff.experiment import build_process, describe_process
    from jaxdiff.data.end_images import end_images_for

    process = build_process(config) if process is None else process
    split = split or str(config.data.eval_split)
    if images is None:
        images = load_images(config, split=split, num=num_images, seed=seed)
    images = np.asarray(images, np.float32)[:num_images]
    n = images.shape[0]
    key = jax.random.PRNGKey(seed)
    aux = None
    if process.needs_end_source:
        if end_images is None:
            end_images = end_images_for(config, process, n, split=split, seed=seed + END_IMAGES_SEED_OFFSET)
        if end_images is not None:
            end_images = np.asarray(end_images, np.float32)[np.arange(n) % len(end_images)]
        # the same key forward_rows would draw the aux from
        aux = process.restoration_aux(jnp.asarray(images), jax.random.split(key)[0], end_images=end_images)
    return save_forward_strip(path, process, images, key=key, num_columns=num_columns, draws=draws, aux=aux,
                              title=title if title is not None else describe_process(process))
