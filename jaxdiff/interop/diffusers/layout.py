"""diffusers' files: the names save_pretrained writes, reading its JSON and safetensors, and :class:`InteropError`.

Only safetensors are read (no torch, no pickle): a pickled file is refused with the way to re-save it.
"""
from __future__ import annotations

import json
import os
from typing import Optional

import numpy as np

__all__ = ["InteropError", "WEIGHTS_NAME", "CONFIG_NAME", "SCHEDULER_NAME", "read_json", "locate", "read_tensors"]

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"
SCHEDULER_NAME = "scheduler_config.json"
PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
SAFE_ROUTE = ("re-save it with safetensors: model.save_pretrained(dir, safe_serialization=True) writes "
               f"{WEIGHTS_NAME} (jaxdiff never loads a pickle)")


class InteropError(ValueError):
    """A file, a config field or a model spec that cannot cross between diffusers and jaxdiff (the message names it)."""


def read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            out = json.load(fh)
    except (OSError, ValueError) as e:
        raise InteropError(f"{path}: cannot read it as JSON ({e})") from e
    if not isinstance(out, dict):
        raise InteropError(f"{path}: expected a JSON object")
    return out


def locate(path: str) -> tuple[str, Optional[str]]:
    """(the UNet's directory, the scheduler_config.json or None) of a model or pipeline directory."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(path):
        if path.endswith(PICKLED):
            raise InteropError(f"{path}: a pickled PyTorch file; {SAFE_ROUTE}")
        path = os.path.dirname(path)
    if not os.path.isdir(path):
        raise InteropError(f"{path}: no such directory (expected what diffusers' save_pretrained writes)")
    unet_dir = os.path.join(path, "unet") if os.path.isfile(os.path.join(path, "unet", CONFIG_NAME)) else path
    if not os.path.isfile(os.path.join(unet_dir, CONFIG_NAME)):
        raise InteropError(f"{path}: no {CONFIG_NAME} (nor unet/{CONFIG_NAME}); expected a directory written by "
                           "UNet2DModel.save_pretrained or a pipeline's save_pretrained")
    for cand in (os.path.join(path, "scheduler", SCHEDULER_NAME), os.path.join(path, SCHEDULER_NAME),
                 os.path.join(unet_dir, SCHEDULER_NAME)):
        if os.path.isfile(cand):
            return unet_dir, cand
    return unet_dir, None


def read_tensors(unet_dir: str) -> dict:
    from safetensors.numpy import load_file

    names = os.listdir(unet_dir)
    files = [n for n in names if n.endswith(".safetensors")]
    index = os.path.join(unet_dir, WEIGHTS_NAME + ".index.json")
    if WEIGHTS_NAME in files:
        files = [WEIGHTS_NAME]
    elif os.path.isfile(index):
        files = sorted(set(read_json(index).get("weight_map", {}).values()))
    elif len(files) != 1:
        pickled = sorted(n for n in names if n.endswith(PICKLED))
        if pickled and not files:
            raise InteropError(f"{unet_dir}: only pickled weights ({pickled}); {SAFE_ROUTE}")
        raise InteropError(f"{unet_dir}: expected {WEIGHTS_NAME} (found {sorted(files) or 'no .safetensors file'})")
    tensors = {}
    for n in files:
        try:
            part = load_file(os.path.join(unet_dir, n))
        except Exception as e:  # noqa: BLE001 - safetensors raises its own error types (e.g. bfloat16 in NumPy)
            raise InteropError(f"{os.path.join(unet_dir, n)}: cannot read it with safetensors ({e})") from e
        tensors.update(part)
    for k, v in tensors.items():
        if v.dtype not in (np.float32, np.float16):
            raise InteropError(f"tensor {k!r} is {v.dtype}; allowed: float32 or float16 (read as float32)")
    return {k: v.astype(np.float32, copy=False) for k, v in tensors.items()}
