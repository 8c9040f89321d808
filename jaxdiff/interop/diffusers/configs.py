"""diffusers' config.json (UNet2DModel) and scheduler_config.json (DDPM/DDIMScheduler) ↔ a jaxdiff config.

Every field is mapped, known not to change the function, or refused by name (:class:`InteropError`).
diffusers' timestep index i = jaxdiff's t − 1 (model.time_offset = −1); jaxdiff's ᾱ_t = alphas_cumprod[t − 1].
"""
from __future__ import annotations

import dataclasses
import inspect
from typing import Optional

from jaxdiff.interop.diffusers.layout import CONFIG_NAME, SCHEDULER_NAME, InteropError

__all__ = ["config_from_diffusers", "unet_config_from", "scheduler_config_from"]


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
    diffusion = dict(T=T, degradation="identity", degradation_params={}, schedule=sched, schedule_params=params,
                     prediction=_PREDICTIONS[c["prediction_type"]], loss="l2", loss_weighting="none")
    sample = dict(corrector=corrector, steps=50 if corrector == "ddim" and T > 50 else 0,
                  eta=0.0 if corrector == "ddim" else 1.0, clip=clip, spacing=_SPACINGS[spacing])
    return diffusion, sample


def scheduler_config_from(config) -> dict:
    """The scheduler_config.json of a jaxdiff config (InteropError naming the field diffusers cannot express)."""
    f, s = config.diffusion, config.sample
    from jaxdiff.processes import build_process

    process = build_process(config)
    if not process.has_diffusers_scheduler:
        raise InteropError(f"diffusion.degradation={f.degradation!r}, diffusion.schedule={f.schedule!r}: diffusers' "
                           f"DDPM/DDIM schedulers are Gaussian diffusion (degradation 'identity' and a "
                           f"variance-preserving schedule); {process.describe()} has none")
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
    from jaxdiff.processes.schedules import SCHEDULES

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
