"""diffusers' UNet2DModel and DDPM/DDIM schedulers ↔ a jaxdiff config, UNet params and its Gaussian process.

    conv weight (O, I, kh, kw) ↔ kernel (kh, kw, I, O);  linear weight (O, I) ↔ kernel (I, O)
    1×1 conv_shortcut (O, I, 1, 1) ↔ Dense kernel (I, O);  to_q, to_k, to_v ↔ the fused qkv kernel [q | k | v]
    diffusers' timestep index i = jaxdiff's t − 1 (model.time_offset = −1); jaxdiff's ᾱ_t = alphas_cumprod[t − 1]

One name table read both ways: :func:`load` fills every jaxdiff leaf from its diffusers tensor(s), :func:`export`
writes the same leaves back (exact inverses, bitwise). Every config field is mapped or refused by name
(:class:`InteropError`). Tensors are read and written with safetensors (no torch, no pickle). :func:`write_workdir`
stores a loaded model as a checkpoint that sample.py reads like a trained run.

Modules: ``layout`` (file names, reading JSON and safetensors, InteropError), ``weights`` (the name table),
``configs`` (config.json and scheduler_config.json ↔ a config), ``convert`` (load, export), ``workdir``.
"""
from jaxdiff.interop.diffusers.configs import config_from_diffusers, scheduler_config_from, unet_config_from
from jaxdiff.interop.diffusers.convert import Converted, export, load
from jaxdiff.interop.diffusers.layout import WEIGHTS_NAME, InteropError
from jaxdiff.interop.diffusers.workdir import write_workdir

__all__ = [
    "InteropError",
    "Converted",
    "load",
    "export",
    "write_workdir",
    "config_from_diffusers",
    "unet_config_from",
    "scheduler_config_from",
    "WEIGHTS_NAME",
]
