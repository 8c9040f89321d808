"""diffusers' UNet2DModel and DDPM/DDIM schedulers ↔ a jaxdiff config, UNet params and GaussianProcess.

    conv weight (O, I, kh, kw) ↔ kernel (kh, kw, I, O);  linear weight (O, I) ↔ kernel (I, O)
    1×1 conv_shortcut (O, I, 1, 1) ↔ Dense kernel (I, O);  to_q, to_k, to_v ↔ the fused qkv kernel [q | k | v]
    diffusers' timestep index i = jaxdiff's t − 1 (model.time_offset = −1); jaxdiff's ᾱ_t = alphas_cumprod[t − 1]

One name table (:data:`MODULES`, :data:`SUBMODULES`, :data:`LEAVES`) read both ways: :func:`load` fills every jaxdiff
leaf from its diffusers tensor(s), :func:`export` writes the same leaves back (exact inverses, bitwise). Every config
field is mapped or refused by name (:class:`InteropError`). Tensors are read and written with safetensors (no torch,
no pickle). :func:`write_workdir` stores a loaded model as a checkpoint that sample.py reads like a trained run.
"""
from __future__ import annotations

import dataclasses
import inspect
import json
import math
import os
import re
from typing import Any, Optional

import numpy as np

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

WEIGHTS_NAME = "diffusion_pytorch_model.safetensors"
CONFIG_NAME = "config.json"
SCHEDULER_NAME = "scheduler_config.json"
_PICKLED = (".bin", ".pt", ".pth", ".ckpt", ".pkl")
_SAFE_ROUTE = ("re-save it with safetensors: model.save_pretrained(dir, safe_serialization=True) writes "
               f"{WEIGHTS_NAME} (jaxdiff never loads a pickle)")


class InteropError(ValueError):
    """A file, a config field or a model spec that cannot cross between diffusers and jaxdiff (the message names it)."""


# ---------------------------------------------------------------------------------------------------------
# the name table: jaxdiff module → diffusers prefix; the same table maps both ways


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


def _from_state_dict(abstract: dict, tensors: dict, levels: int) -> dict:
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


def _to_state_dict(params: dict, levels: int) -> dict:
    """The inverse of :func:`_from_state_dict`: diffusers name → C-contiguous float32 NumPy tensor."""
    from flax import traverse_util

    out = {}
    for path, v in traverse_util.flatten_dict(params).items():
        names, kind = _diffusers_names(path, levels)
        v = np.asarray(v, dtype=np.float32)
        parts = np.split(v, len(names), axis=-1) if len(names) > 1 else [v]
        for n, p in zip(names, parts):
            out[n] = np.ascontiguousarray(_to_torch(kind, path[-1], p))
    return out


# ---------------------------------------------------------------------------------------------------------
# config.json (UNet2DModel) ↔ the config's model and data sections

_DOWN = {"DownBlock2D": False, "AttnDownBlock2D": True}
_UP = {"UpBlock2D": False, "AttnUpBlock2D": True}
#: fields that do not change the function
_UNET_INERT = ("_class_name", "_diffusers_version", "_name_or_path", "_use_default_values", "num_train_timesteps")
#: field → the only value jaxdiff's UNet expresses (diffusers' default where it has one)
_UNET_FIXED = {
    "center_input_sample": False, "time_embedding_type": "positional", "mid_block_type": "UNetMidBlock2D",
    "mid_block_scale_factor": 1, "downsample_type": "conv", "upsample_type": "conv",
    "resnet_time_scale_shift": "default", "class_embed_type": None, "num_class_embeds": None,
}
#: field → diffusers' default, for the fields mapped to jaxdiff fields (read when config.json lacks them)
_UNET_DEFAULTS = {
    "sample_size": None, "in_channels": 3, "out_channels": 3, "freq_shift": 0, "flip_sin_to_cos": True,
    "down_block_types": ("DownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D", "AttnDownBlock2D"),
    "up_block_types": ("AttnUpBlock2D", "AttnUpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
    "block_out_channels": (224, 448, 672, 896), "layers_per_block": 2, "downsample_padding": 1, "dropout": 0.0,
    "act_fn": "silu", "attention_head_dim": 8, "norm_num_groups": 32, "attn_norm_num_groups": None,
    "norm_eps": 1e-5, "add_attention": True, "time_embedding_dim": None,
}


def _refuse(field: str, value, allowed: str, where: str = CONFIG_NAME):
    raise InteropError(f"{where}: {field}={value!r} is not expressible in jaxdiff's UNet; allowed: {allowed}")


def _model_from_unet_config(cfg: dict) -> tuple[dict, int, int]:
    """(the config's model section, image_size, channels) from a UNet2DModel config.json."""
    unknown = sorted(set(cfg) - set(_UNET_INERT) - set(_UNET_FIXED) - set(_UNET_DEFAULTS))
    if unknown:
        raise InteropError(f"{CONFIG_NAME}: field(s) {unknown} unknown to jaxdiff's importer (UNet2DModel as of "
                           "diffusers 0.42); refusing rather than guessing what they change")
    for field, want in _UNET_FIXED.items():
        if cfg.get(field, want) != want:
            _refuse(field, cfg[field], repr(want))
    c = {k: cfg.get(k, d) for k, d in _UNET_DEFAULTS.items()}
    size = c["sample_size"]
    if isinstance(size, (list, tuple)):
        if len(size) != 2 or size[0] != size[1]:
            _refuse("sample_size", size, "an int or a square [s, s] (jaxdiff's images are square)")
        size = size[0]
    if not isinstance(size, int) or size < 1:
        _refuse("sample_size", size, "a positive int (jaxdiff's UNet is built for one image size)")
    if c["in_channels"] != c["out_channels"] or c["in_channels"] not in (1, 3):
        raise InteropError(f"{CONFIG_NAME}: in_channels={c['in_channels']!r}, out_channels={c['out_channels']!r}: "
                           "jaxdiff's UNet predicts an image of its input's channels; allowed: both 1 or both 3")
    boc = list(c["block_out_channels"])
    if not boc or any(not isinstance(w, int) or w % boc[0] for w in boc):
        _refuse("block_out_channels", boc, "positive multiples of block_out_channels[0] (jaxdiff's ch × ch_mult)")
    down, up = list(c["down_block_types"]), list(c["up_block_types"])
    for field, types, table in (("down_block_types", down, _DOWN), ("up_block_types", up, _UP)):
        bad = [b for b in types if b not in table]
        if bad:
            _refuse(field, types, f"a list of {sorted(table)} ({bad} not supported)")
        if len(types) != len(boc):
            _refuse(field, types, f"one block per entry of block_out_channels ({len(boc)})")
    attn = [_DOWN[b] for b in down]
    if [_UP[b] for b in up] != attn[::-1]:
        _refuse("up_block_types", up, f"attention at the same levels as down_block_types {down}, mirrored "
                f"({[('AttnUpBlock2D' if a else 'UpBlock2D') for a in attn[::-1]]}): jaxdiff's attn_resolutions "
                "holds for both paths")
    if c["act_fn"] not in ("silu", "swish"):
        _refuse("act_fn", c["act_fn"], "'silu' (or 'swish', the same function)")
    if c["time_embedding_dim"] not in (None, 4 * boc[0]):
        _refuse("time_embedding_dim", c["time_embedding_dim"], f"None or 4 × block_out_channels[0] = {4 * boc[0]}")
    groups = c["norm_num_groups"]
    if c["attn_norm_num_groups"] not in (None, groups):
        _refuse("attn_norm_num_groups", c["attn_norm_num_groups"], f"None or norm_num_groups={groups!r}")
    if not isinstance(groups, int):
        _refuse("norm_num_groups", groups, "an int (the GroupNorm groups of every layer)")
    if c["downsample_padding"] not in (0, 1):
        _refuse("downsample_padding", c["downsample_padding"], "0 or 1")
    head = c["attention_head_dim"]
    widths = {w for w, a in zip(boc, attn) if a} | ({boc[-1]} if c["add_attention"] else set())
    if head is not None and (not isinstance(head, int) or head < 1 or any(w % head for w in widths)):
        _refuse("attention_head_dim", head, f"None or a divisor of every attention layer's width {sorted(widths)}")
    model = dict(ch=boc[0], ch_mult=tuple(w // boc[0] for w in boc), num_res_blocks=c["layers_per_block"],
                 attn_resolutions=tuple(size // 2**i for i, a in enumerate(attn) if a),
                 dropout=float(c["dropout"]), num_groups=groups, num_heads=1, mid_attention=bool(c["add_attention"]),
                 dtype="float32", flip_sin_to_cos=bool(c["flip_sin_to_cos"]), freq_shift=c["freq_shift"],
                 norm_eps=float(c["norm_eps"]), downsample_padding=int(c["downsample_padding"]),
                 head_dim=0 if head is None else int(head), time_offset=-1)
    return model, size, int(c["in_channels"])


def unet_config_from(config) -> dict:
    """The UNet2DModel config.json of a jaxdiff config (InteropError naming the field diffusers cannot express)."""
    from jaxdiff.models.unet import UNet

    d, m = config.data, dict(config.model)
    defaults = {f.name: f.default for f in dataclasses.fields(UNet)}
    get = lambda k: m.get(k, defaults[k])  # noqa: E731
    ch, mult, size = int(get("ch")), tuple(int(x) for x in get("ch_mult")), int(d.image_size)
    if mult[0] != 1:
        raise InteropError(f"model.ch_mult={mult}: diffusers' first level has conv_in's width "
                           "(block_out_channels[0]); allowed: ch_mult[0] = 1")
    if get("num_classes"):
        raise InteropError(f"model.num_classes={get('num_classes')}: class conditioning is not mapped to "
                           "diffusers' class_embedding yet; allowed: 0")
    sizes = [size // 2**i for i in range(len(mult))]
    attn = [s in tuple(get("attn_resolutions")) for s in sizes]
    widths = {ch * k for k, a in zip(mult, attn) if a} | ({ch * mult[-1]} if get("mid_attention") else set())
    heads, head_dim = int(get("num_heads")), int(get("head_dim"))
    if head_dim:
        attention_head_dim = head_dim
    elif heads == 1:
        attention_head_dim = None
    else:
        dims = sorted({w // heads for w in widths})
        if len(dims) > 1:
            raise InteropError(f"model.num_heads={heads}: heads of widths {dims} (attention widths {sorted(widths)}); "
                               "diffusers' attention_head_dim is one width for every layer; allowed: num_heads = 1, "
                               "head_dim > 0, or equal widths at every attention layer")
        attention_head_dim = dims[0] if dims else None
    return {
        "_class_name": "UNet2DModel", "sample_size": size, "in_channels": int(d.channels),
        "out_channels": int(d.channels), "center_input_sample": False, "time_embedding_type": "positional",
        "freq_shift": get("freq_shift"), "flip_sin_to_cos": bool(get("flip_sin_to_cos")),
        "down_block_types": ["AttnDownBlock2D" if a else "DownBlock2D" for a in attn],
        "up_block_types": ["AttnUpBlock2D" if a else "UpBlock2D" for a in attn[::-1]],
        "block_out_channels": [ch * k for k in mult], "layers_per_block": int(get("num_res_blocks")),
        "mid_block_scale_factor": 1, "downsample_padding": int(get("downsample_padding")),
        "downsample_type": "conv", "upsample_type": "conv", "dropout": float(get("dropout")), "act_fn": "silu",
        "attention_head_dim": attention_head_dim, "norm_num_groups": int(get("num_groups")),
        "attn_norm_num_groups": None, "norm_eps": float(get("norm_eps")), "resnet_time_scale_shift": "default",
        "add_attention": bool(get("mid_attention")), "class_embed_type": None, "num_class_embeds": None,
    }


# ---------------------------------------------------------------------------------------------------------
# scheduler_config.json (DDPMScheduler / DDIMScheduler) ↔ the config's diffusion and sample sections

_SCHEDULERS = {"DDPMScheduler": "ddpm", "DDIMScheduler": "ddim"}
#: diffusers beta_schedule → jaxdiff schedule (its parameters from beta_start/beta_end, or fixed)
_BETA_SCHEDULES = {"linear": "linear", "scaled_linear": "scaled_linear", "squaredcos_cap_v2": "cosine"}
_COSINE_PARAMS = {"s": 0.008, "max_beta": 0.999}  # diffusers' betas_for_alpha_bar("cosine")
_PREDICTIONS = {"epsilon": "eps", "sample": "x0", "v_prediction": "v"}
_SCHED_DEFAULTS = {"num_train_timesteps": 1000, "beta_start": 1e-4, "beta_end": 0.02, "beta_schedule": "linear",
                   "prediction_type": "epsilon", "clip_sample": True, "clip_sample_range": 1.0}
#: field → the values jaxdiff's process and correctors express
_SCHED_FIXED = {"trained_betas": (None,), "variance_type": ("fixed_small", "fixed_small_log"),
                "thresholding": (False,), "rescale_betas_zero_snr": (False,), "set_alpha_to_one": (True,)}
#: fields that only choose diffusers' inference steps (jaxdiff's sample.steps picks its own) or are unread
_SCHED_INERT = ("_class_name", "_diffusers_version", "_use_default_values", "timestep_spacing", "steps_offset",
                "dynamic_thresholding_ratio", "sample_max_value")
#: diffusers' timestep_spacing → sample.spacing (leading and trailing as diffusers; linspace ≈ linear); only the
#: choice of sampling steps, as steps_offset (not kept: jaxdiff's leading starts at index 0)
_SPACINGS = {"leading": "leading", "trailing": "trailing", "linspace": "linear"}


def _process_from_scheduler_config(cfg: dict, where: str) -> tuple[dict, dict]:
    """(the config's diffusion section, its sample section) from a scheduler_config.json."""
    name = cfg.get("_class_name", "DDPMScheduler")
    if name not in _SCHEDULERS:
        raise InteropError(f"{where}: _class_name={name!r} is not mapped; allowed: {sorted(_SCHEDULERS)}")
    unknown = sorted(set(cfg) - set(_SCHED_DEFAULTS) - set(_SCHED_FIXED) - set(_SCHED_INERT))
    if unknown:
        raise InteropError(f"{where}: field(s) {unknown} unknown to jaxdiff's importer; refusing rather than "
                           "guessing what they change")
    for field, allowed in _SCHED_FIXED.items():
        if field in cfg and cfg[field] not in allowed:
            raise InteropError(f"{where}: {field}={cfg[field]!r} is not expressible in jaxdiff's Gaussian process "
                               f"and correctors; allowed: {' or '.join(repr(a) for a in allowed)}")
    c = {k: cfg.get(k, d) for k, d in _SCHED_DEFAULTS.items()}
    sched = _BETA_SCHEDULES.get(c["beta_schedule"])
    if sched is None:
        raise InteropError(f"{where}: beta_schedule={c['beta_schedule']!r} has no jaxdiff schedule; allowed: "
                           f"{sorted(_BETA_SCHEDULES)}")
    params = (dict(_COSINE_PARAMS) if sched == "cosine"
              else {"beta_start": float(c["beta_start"]), "beta_end": float(c["beta_end"])})
    if c["prediction_type"] not in _PREDICTIONS:
        raise InteropError(f"{where}: prediction_type={c['prediction_type']!r}; allowed: {sorted(_PREDICTIONS)}")
    T = c["num_train_timesteps"]
    if isinstance(T, bool) or not isinstance(T, int) or T < 1:
        raise InteropError(f"{where}: num_train_timesteps={T!r}; allowed: an int >= 1")
    spacing = cfg.get("timestep_spacing", "leading")
    if spacing not in _SPACINGS:
        raise InteropError(f"{where}: timestep_spacing={spacing!r}; allowed: {sorted(_SPACINGS)}")
    clip = float(c["clip_sample_range"]) if c["clip_sample"] else 0.0
    if c["clip_sample"] and not clip > 0:
        raise InteropError(f"{where}: clip_sample_range={c['clip_sample_range']!r}; allowed: > 0")
    corrector = _SCHEDULERS[name]
    diffusion = dict(kind="gaussian", T=T, schedule=sched, schedule_params=params,
                     prediction=_PREDICTIONS[c["prediction_type"]], loss="l2", loss_weighting="none", noise_std=0.0)
    sample = dict(corrector=corrector, steps=50 if corrector == "ddim" and T > 50 else 0,
                  eta=0.0 if corrector == "ddim" else 1.0, clip=clip, spacing=_SPACINGS[spacing])
    return diffusion, sample


def scheduler_config_from(config) -> dict:
    """The scheduler_config.json of a jaxdiff config (InteropError naming the field diffusers cannot express)."""
    f, s = config.diffusion, config.sample
    if f.kind != "gaussian":
        raise InteropError(f"diffusion.kind={f.kind!r}: diffusers' DDPM/DDIM schedulers are Gaussian diffusion; "
                           "allowed: 'gaussian'")
    params = dict(f.schedule_params)
    inverse = {v: k for k, v in _BETA_SCHEDULES.items()}
    if f.schedule not in inverse:
        raise InteropError(f"diffusion.schedule={f.schedule!r} has no diffusers beta_schedule; allowed: "
                           f"{sorted(inverse)}")
    out = {"_class_name": "DDIMScheduler" if s.corrector == "ddim" else "DDPMScheduler",
           "num_train_timesteps": int(f.T), "beta_schedule": inverse[f.schedule], "trained_betas": None,
           "prediction_type": {v: k for k, v in _PREDICTIONS.items()}[str(f.prediction)],
           "clip_sample": float(s.clip) > 0, "clip_sample_range": float(s.clip) if float(s.clip) > 0 else 1.0,
           "thresholding": False, "rescale_betas_zero_snr": False,
           "timestep_spacing": {v: k for k, v in _SPACINGS.items()}.get(str(s.get("spacing", "linear")), "leading")}
    from jaxdiff.schedules import SCHEDULES

    given = {**{k: p.default for k, p in inspect.signature(SCHEDULES[f.schedule]).parameters.items()
                if p.kind == p.KEYWORD_ONLY}, **params}
    if f.schedule == "cosine":
        if any(float(given[k]) != v for k, v in _COSINE_PARAMS.items()):
            raise InteropError(f"diffusion.schedule_params={params}: diffusers' squaredcos_cap_v2 has s=0.008, "
                               "max_beta=0.999; allowed: those values")
        out.update(beta_start=1e-4, beta_end=0.02)  # unread by squaredcos_cap_v2
    else:
        out.update(beta_start=float(given["beta_start"]), beta_end=float(given["beta_end"]))
    if out["_class_name"] == "DDPMScheduler":
        out["variance_type"] = "fixed_small"
    else:
        out["set_alpha_to_one"] = True
    return out


def config_from_diffusers(unet_cfg: dict, scheduler_cfg: Optional[dict], *, where: str = SCHEDULER_NAME):
    """A locked jaxdiff ConfigDict (validated) from a UNet2DModel config.json and a scheduler_config.json
    (None: DDPMScheduler's defaults, with the UNet config's num_train_timesteps if it has one)."""
    import ml_collections

    from jaxdiff.config.files import default_config
    from jaxdiff.config.validate import validate_config

    model, size, channels = _model_from_unet_config(unet_cfg)
    if scheduler_cfg is None:
        scheduler_cfg = {"num_train_timesteps": unet_cfg.get("num_train_timesteps") or 1000}
    diffusion, sample = _process_from_scheduler_config(scheduler_cfg, where)
    c = default_config()
    c.data.image_size, c.data.channels = size, channels
    c.data.source = "photos" if channels == 3 else "digits"  # held-out images for restore/evaluate only
    for k, v in diffusion.items():
        if k == "schedule_params":
            c.diffusion.schedule_params = ml_collections.ConfigDict(v)
        else:
            setattr(c.diffusion, k, v)
    for k, v in sample.items():
        setattr(c.sample, k, v)
    c.model = ml_collections.ConfigDict({**c.model.to_dict(), **model})  # default.py's other fields kept
    c.train.ema_decay = 0.9999
    c.lock()
    try:
        validate_config(c, num_devices=1)
    except ValueError as e:
        raise InteropError(f"the converted config does not validate: {e}") from e
    return c


# ---------------------------------------------------------------------------------------------------------
# directories


def _read_json(path: str) -> dict:
    try:
        with open(path, encoding="utf-8") as fh:
            out = json.load(fh)
    except (OSError, ValueError) as e:
        raise InteropError(f"{path}: cannot read it as JSON ({e})") from e
    if not isinstance(out, dict):
        raise InteropError(f"{path}: expected a JSON object")
    return out


def _locate(path: str) -> tuple[str, Optional[str]]:
    """(the UNet's directory, the scheduler_config.json or None) of a model or pipeline directory."""
    path = os.path.abspath(os.fspath(path))
    if os.path.isfile(path):
        if path.endswith(_PICKLED):
            raise InteropError(f"{path}: a pickled PyTorch file; {_SAFE_ROUTE}")
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


def _read_tensors(unet_dir: str) -> dict:
    from safetensors.numpy import load_file

    names = os.listdir(unet_dir)
    files = [n for n in names if n.endswith(".safetensors")]
    index = os.path.join(unet_dir, WEIGHTS_NAME + ".index.json")
    if WEIGHTS_NAME in files:
        files = [WEIGHTS_NAME]
    elif os.path.isfile(index):
        files = sorted(set(_read_json(index).get("weight_map", {}).values()))
    elif len(files) != 1:
        pickled = sorted(n for n in names if n.endswith(_PICKLED))
        if pickled and not files:
            raise InteropError(f"{unet_dir}: only pickled weights ({pickled}); {_SAFE_ROUTE}")
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


@dataclasses.dataclass(frozen=True, eq=False)
class Converted:
    """A diffusers UNet2DModel (+ scheduler) in jaxdiff's terms.

    ``denoiser(params, x_t, t)``: x_t (B, H, W, C) NHWC, t (B,) int in 1 … T (diffusers' index + 1) → the network
    output (ε, x0 or v as ``config.diffusion.prediction`` says). ``params``: the UNet's ``params`` collection
    (``model.apply({"params": params}, x, t)``), as ``Run.params``. ``process``: the scheduler's GaussianProcess.
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

    unet_dir, sched_path = _locate(path)
    unet_cfg = _read_json(os.path.join(unet_dir, CONFIG_NAME))
    if unet_cfg.get("_class_name", "UNet2DModel") != "UNet2DModel":
        raise InteropError(f"{os.path.join(unet_dir, CONFIG_NAME)}: _class_name={unet_cfg['_class_name']!r}; "
                           "allowed: 'UNet2DModel'")
    sched_cfg = None if sched_path is None else _read_json(sched_path)
    config = config_from_diffusers(unet_cfg, sched_cfg, where=sched_path or SCHEDULER_NAME)
    tensors = _read_tensors(unet_dir)
    model = build_model(config)
    s, c = int(config.data.image_size), int(config.data.channels)
    abstract = jax.eval_shape(lambda: model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, s, s, c)),
                                                 jnp.ones((1,), jnp.int32))["params"])
    params = _from_state_dict(abstract, tensors, len(config.model.ch_mult))
    return Converted(config=config, model=model, params=jax.tree.map(jnp.asarray, params),
                     process=build_process(config), unet_config=unet_cfg, scheduler_config=sched_cfg,
                     source=os.path.abspath(os.fspath(path)))


# ---------------------------------------------------------------------------------------------------------
# out


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


def _exported_params(config, params) -> dict:
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
    tensors = _to_state_dict(_exported_params(config, params), len(unet_cfg["block_out_channels"]))
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


# ---------------------------------------------------------------------------------------------------------
# a workdir


def write_workdir(converted: Converted, workdir) -> str:
    """Stores ``converted`` as step 0 of ``workdir`` (params = EMA params), in train/checkpoints' format, so that
    sample.py and :func:`jaxdiff.experiment.load_run` read it like a trained run. Refuses (InteropError) a busy
    or non-empty workdir, writing nothing. Returns the step directory."""
    import jax
    import jax.numpy as jnp

    from jaxdiff.checkpoints import make_meta
    from jaxdiff.train.checkpoints import Checkpointer
    from jaxdiff.train.lock import LOCK_FILE, WorkdirBusyError, WorkdirLock

    workdir = os.path.abspath(os.fspath(workdir))
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise InteropError(f"--workdir={workdir} is a file; choose a new directory (nothing was written)")

    def refuse_nonempty():
        entries = sorted(n for n in os.listdir(workdir) if n != LOCK_FILE) if os.path.isdir(workdir) else []
        if entries:
            raise InteropError(f"--workdir={workdir} is not empty ({entries[:5]}); import into a new directory "
                               "(nothing was written)")

    if not os.path.exists(os.path.join(workdir, LOCK_FILE)):
        refuse_nonempty()  # before the lock file is created
    lock = WorkdirLock(workdir)
    try:
        lock.acquire()
    except WorkdirBusyError as e:
        raise InteropError(f"--workdir: {e} (nothing was written)") from None
    try:
        refuse_nonempty()
        params = jax.tree.map(jnp.asarray, converted.params)
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "ema_params": params}
        meta = make_meta(converted.config, imported_from=converted.source, imported_by="jaxdiff.interop.diffusers")
        ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=None, async_save=False)
        try:
            if not ckpt.save(0, state, config=converted.config, meta=meta):
                raise InteropError(f"could not write the checkpoint in {workdir}: {ckpt.failures}")
        finally:
            ckpt.close()
        return ckpt.step_dir(0)
    finally:
        lock.release()

