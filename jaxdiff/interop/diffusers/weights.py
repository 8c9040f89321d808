"""The name table between jaxdiff's UNet parameters and diffusers' UNet2DModel state dict, read both ways.

    conv weight (O, I, kh, kw) ↔ kernel (kh, kw, I, O);  linear weight (O, I) ↔ kernel (I, O)
    1×1 conv_shortcut (O, I, 1, 1) ↔ Dense kernel (I, O);  to_q, to_k, to_v ↔ the fused qkv kernel [q | k | v]

:func:`from_state_dict` fills every jaxdiff leaf from its diffusers tensor(s), :func:`to_state_dict` writes the
same leaves back (exact inverses, bitwise); :func:`exported_params` folds jaxdiff's time offset into the time
embedding's first layer so that the exported UNet reads diffusers' timestep index.
"""
from __future__ import annotations

import math
import re

import numpy as np

from jaxdiff.interop.diffusers.layout import InteropError

__all__ = ["MODULES", "SUBMODULES", "LEAVES", "from_state_dict", "to_state_dict", "exported_params"]


#: top-level jaxdiff module (regex) → diffusers prefix; {i}, {j} are the groups, {u} the up-block index L − 1 − i
MODULES = (
    (r"conv_in", "conv_in"),
    (r"time_dense0", "time_embedding.linear_1"),
    (r"time_dense1", "time_embedding.linear_2"),
    (r"down(?P<i>\d+)_res(?P<j>\d+)", "down_blocks.{i}.resnets.{j}"),
    (r"down(?P<i>\d+)_attn(?P<j>\d+)", "down_blocks.{i}.attentions.{j}"),
    (r"down(?P<i>\d+)_downsample", "down_blocks.{i}.downsamplers.0"),
    (r"mid_res(?P<j>\d+)", "mid_block.resnets.{j}"),
    (r"mid_attn", "mid_block.attentions.0"),
    (r"up(?P<i>\d+)_res(?P<j>\d+)", "up_blocks.{u}.resnets.{j}"),
    (r"up(?P<i>\d+)_attn(?P<j>\d+)", "up_blocks.{u}.attentions.{j}"),
    (r"up(?P<i>\d+)_upsample", "up_blocks.{u}.upsamplers.0"),
    (r"norm_out", "conv_norm_out"),
    (r"conv_out", "conv_out"),
)
#: jaxdiff submodule → (diffusers name(s), kind); qkv is one fused Dense for three diffusers Linears
SUBMODULES = {
    "norm1": ("norm1", "norm"), "conv1": ("conv1", "conv"), "emb_proj": ("time_emb_proj", "linear"),
    "norm2": ("norm2", "norm"), "conv2": ("conv2", "conv"), "skip": ("conv_shortcut", "conv1x1"),
    "norm": ("group_norm", "norm"), "qkv": (("to_q", "to_k", "to_v"), "linear"), "proj": ("to_out.0", "linear"),
    "conv": ("conv", "conv"),
}
#: kind of a top-level module's own leaves
_TOP_KINDS = {"conv_in": "conv", "conv_out": "conv", "time_dense0": "linear", "time_dense1": "linear",
              "norm_out": "norm"}
#: jaxdiff leaf → diffusers leaf, per kind
LEAVES = {"conv": {"kernel": "weight", "bias": "bias"}, "linear": {"kernel": "weight", "bias": "bias"},
          "conv1x1": {"kernel": "weight", "bias": "bias"}, "norm": {"scale": "weight", "bias": "bias"}}


def _to_jax(kind: str, leaf: str, w: np.ndarray) -> np.ndarray:
    if leaf == "kernel":
        if kind == "conv":
            return w.transpose(2, 3, 1, 0)
        if kind == "conv1x1":
            return w[:, :, 0, 0].T
        return w.T
    return w


def _to_torch(kind: str, leaf: str, k: np.ndarray) -> np.ndarray:
    if leaf == "kernel":
        if kind == "conv":
            return k.transpose(3, 2, 0, 1)
        if kind == "conv1x1":
            return k.T[:, :, None, None]
        return k.T
    return k


def _diffusers_names(path: tuple, levels: int) -> tuple[tuple[str, ...], str]:
    """A jaxdiff params path (module, [submodule,] leaf) → (the diffusers tensor name(s), kind)."""
    top, leaf = path[0], path[-1]
    for pattern, fmt in MODULES:
        m = re.fullmatch(pattern, top)
        if m:
            g = m.groupdict()
            prefix = fmt.format(u=levels - 1 - int(g["i"]) if "i" in g else None, **g)
            break
    else:
        raise InteropError(f"jaxdiff parameter {'/'.join(path)}: no diffusers UNet2DModel counterpart")
    if len(path) == 2:
        names, kind = ("",), _TOP_KINDS[top]
    else:
        sub, kind = SUBMODULES[path[1]]
        names = sub if isinstance(sub, tuple) else (sub,)
    tleaf = LEAVES[kind][leaf]
    return tuple(".".join(p for p in (prefix, n, tleaf) if p) for n in names), kind


#: the attention names of diffusers' deprecated AttentionBlock (older checkpoints) → today's
_DEPRECATED_ATTENTION = {"query": "to_q", "key": "to_k", "value": "to_v", "proj_attn": "to_out.0"}


def _renamed(name: str) -> str:
    m = re.fullmatch(r"(.*\.attentions\.\d+)\.(query|key|value|proj_attn)\.(weight|bias)", name)
    return f"{m.group(1)}.{_DEPRECATED_ATTENTION[m.group(2)]}.{m.group(3)}" if m else name


def from_state_dict(abstract: dict, tensors: dict, levels: int) -> dict:
    """jaxdiff params (nested dicts of NumPy float32) from a diffusers state dict; every tensor used once."""
    from flax import traverse_util

    renamed = {_renamed(k): v for k, v in tensors.items()}
    if len(renamed) != len(tensors):
        raise InteropError("the state dict holds an attention layer under both its old and its new names")
    tensors = renamed
    flat, used = {}, set()
    for path, a in traverse_util.flatten_dict(abstract).items():
        names, kind = _diffusers_names(path, levels)
        missing = [n for n in names if n not in tensors]
        if missing:
            raise InteropError(f"the state dict has no tensor {missing[0]!r} (jaxdiff's {'/'.join(path)}); the "
                               "weights do not belong to the UNet2DModel its config.json describes")
        parts = [_to_jax(kind, path[-1], np.asarray(tensors[n])) for n in names]
        value = parts[0] if len(parts) == 1 else np.concatenate(parts, axis=-1)
        if value.shape != tuple(a.shape):
            raise InteropError(f"tensor {names[0]!r} has shape {tuple(np.shape(tensors[names[0]]))}, but the "
                               f"config.json's model needs {tuple(a.shape)} for jaxdiff's {'/'.join(path)}")
        flat[path] = np.ascontiguousarray(value, dtype=np.float32)
        used.update(names)
    extra = sorted(set(tensors) - used)
    if extra:
        raise InteropError(f"the state dict has {len(extra)} tensor(s) the config.json's model does not use, e.g. "
                           f"{extra[:3]}: the weights and config.json do not match")
    return traverse_util.unflatten_dict(flat)


def to_state_dict(params: dict, levels: int) -> dict:
    """The inverse of :func:`from_state_dict`: diffusers name → C-contiguous float32 NumPy tensor."""
    from flax import traverse_util

    out = {}
    for path, v in traverse_util.flatten_dict(params).items():
        names, kind = _diffusers_names(path, levels)
        v = np.asarray(v, dtype=np.float32)
        parts = np.split(v, len(names), axis=-1) if len(names) > 1 else [v]
        for n, p in zip(names, parts):
            out[n] = np.ascontiguousarray(_to_torch(kind, path[-1], p))
    return out


def _time_shift_matrix(dim: int, shift: int, *, flip_sin_to_cos: bool, freq_shift: float) -> np.ndarray:
    """A (dim, dim), float64, with emb(i + shift) = emb(i) @ A for the sinusoid of :func:`timestep_embedding`:
    per frequency f, (cos, sin)((i + shift) f) is (cos, sin)(i f) rotated by shift·f."""
    half = dim // 2
    denom = half - freq_shift if freq_shift else half
    f = np.exp(-math.log(10000.0) * np.arange(half, dtype=np.float32) / np.float32(denom)).astype(np.float64)
    c, s = np.cos(shift * f), np.sin(shift * f)
    A = np.eye(dim)
    lo, hi = np.arange(half), half + np.arange(half)
    ic, is_ = (lo, hi) if flip_sin_to_cos else (hi, lo)
    A[ic, ic], A[is_, ic], A[is_, is_], A[ic, is_] = c, -s, c, s
    return A


def exported_params(config, params) -> dict:
    """params with the time embedding's first layer folded to diffusers' index i = t − 1 where the model
    embeds another t + time_offset (a rotation of the sinusoid; exact up to float32 rounding)."""
    import jax

    params = jax.tree.map(lambda a: np.asarray(a, np.float32), params)
    offset = int(dict(config.model).get("time_offset", 0))
    if offset == -1:
        return params
    m = dict(config.model)
    A = _time_shift_matrix(int(m["ch"]), offset + 1, flip_sin_to_cos=bool(m.get("flip_sin_to_cos", True)),
                           freq_shift=m.get("freq_shift", 0))
    td = dict(params["time_dense0"])
    td["kernel"] = (A @ td["kernel"].astype(np.float64)).astype(np.float32)
    return {**params, "time_dense0": td}
