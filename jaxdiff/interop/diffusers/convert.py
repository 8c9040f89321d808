"""A diffusers UNet2DModel (+ scheduler) in and out: :func:`load` a save_pretrained directory as a jaxdiff config,
UNet params and its Gaussian process (:class:`Converted`); :func:`export` a config and params as diffusers reads them.
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any, Optional

from jaxdiff.interop.diffusers.configs import config_from_diffusers, scheduler_config_from, unet_config_from
from jaxdiff.interop.diffusers.layout import (CONFIG_NAME, SCHEDULER_NAME, WEIGHTS_NAME, InteropError, locate,
                                             read_json, read_tensors)
from jaxdiff.interop.diffusers.weights import exported_params, from_state_dict, to_state_dict

__all__ = ["Converted", "load", "export"]


@dataclasses.dataclass(frozen=True, eq=False)
class Converted:
    """A diffusers UNet2DModel (+ scheduler) in jaxdiff's terms.

    ``denoiser(params, x_t, t)``: x_t (B, H, W, C) NHWC, t (B,) int in 1 … T (diffusers' index + 1) → the network
    output (ε, x0 or v as ``config.diffusion.prediction`` says). ``params``: the UNet's ``params`` collection
    (``model.apply({"params": params}, x, t)``), as ``Run.params``. ``process``: the scheduler's Gaussian process.
    """

    config: Any
    model: Any
    params: Any
    process: Any
    unet_config: dict
    scheduler_config: Optional[dict]
    source: str

    def denoiser(self, params, x_t, t):
        return self.model.apply({"params": params}, x_t, t)


def load(path) -> Converted:
    """A directory written by diffusers' save_pretrained (a UNet2DModel, or a pipeline with unet/ and scheduler/)."""
    import jax
    import jax.numpy as jnp

    from jaxdiff.experiment import build_model, build_process

    unet_dir, sched_path = locate(path)
    unet_cfg = read_json(os.path.join(unet_dir, CONFIG_NAME))
    if unet_cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise InteropError(f"{os.path.join(unet_dir, CONFIG_NAME)}: _class_name={unet_cfg['_class_name']!r}; "
                           "allowed: 'UNet2DModel'")
    sched_cfg = None if sched_path is None else read_json(sched_path)
    config = config_from_diffusers(unet_cfg, sched_cfg, where=sched_path or SCHEDULER_NAME)
    tensors = read_tensors(unet_dir)
    model = build_model(config)
    s, c = int(config.data.image_size), int(config.data.channels)
    abstract = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, s, s, c)),
                                                 jnp.ones((1,), jnp.int32))["params"])
    params = from_state_dict(abstract, tensors, len(config.model.ch_mult))
    return Converted(config=config, model=model, params=jax.tree.map(jnp.asarray, params),
                     process=build_process(config), unet_config=unet_cfg, scheduler_config=sched_cfg,
                     source=os.path.abspath(os.fspath(path)))


def export(config, params, out_dir) -> dict[str, str]:
    """Writes ``out_dir``/{config.json, diffusion_pytorch_model.safetensors, scheduler_config.json} as
    UNet2DModel.from_pretrained and DDPM/DDIMScheduler.from_pretrained read them; returns {name: path}.

    ``params``: the UNet's params collection (a run's EMA params). InteropError names the first field diffusers
    cannot express; nothing is written then, nor into a non-empty ``out_dir``.
    """
    from safetensors.numpy import save

    from jaxdiff.files import atomic_write

    unet_cfg = unet_config_from(config)
    sched_cfg = scheduler_config_from(config)
    tensors = to_state_dict(exported_params(config, params), len(unet_cfg["block_out_channels"]))
    out_dir = os.path.abspath(os.fspath(out_dir))
    if os.path.isdir(out_dir) and os.listdir(out_dir):
        raise InteropError(f"--out={out_dir} is not empty ({sorted(os.listdir(out_dir))[:5]}); choose a new "
                           "directory (nothing was written)")
    os.makedirs(out_dir, exist_ok=True)
    paths = {"config": os.path.join(out_dir, CONFIG_NAME), "weights": os.path.join(out_dir, WEIGHTS_NAME),
             "scheduler": os.path.join(out_dir, SCHEDULER_NAME)}
    blobs = {"weights": save(tensors, metadata={"format": "pt"}),
             "config": (json.dumps(unet_cfg, indent=2, sort_keys=True) + "\n").encode(),
             "scheduler": (json.dumps(sched_cfg, indent=2, sort_keys=True) + "\n").encode()}
    for name, blob in blobs.items():
        atomic_write(paths[name], lambda fh, b=blob: fh.write(b))
    return paths
