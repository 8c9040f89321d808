"""The DDPM UNet (Ho et al. 2020) in flax.linen, NHWC: (B, S, S, C_in), t (B,) → (B, S, S, C_out) float32.

    emb  = Dense(4ch) ∘ SiLU ∘ Dense(4ch) ∘ sinusoid_ch(t) [+ Embed_{num_classes+1}(label)];   h = Conv3×3(ch)(x)
    down: per level i, num_res_blocks × [ResBlock(ch·ch_mult[i]) (+ AttnBlock at attn_resolutions)], then a
          stride-2 conv (not after the last); every output is a skip
    mid:  ResBlock, AttnBlock (if mid_attention), ResBlock
    up:   per level reversed, (num_res_blocks + 1) × [ResBlock(concat(h, skip)) (+ AttnBlock)], nearest ×2 + conv
    out  = Conv3×3(C_out) ∘ SiLU ∘ GroupNorm(h)
    ResBlock(x, emb) = skip(x) + Conv3×3(Dropout(SiLU(GN(Conv3×3(SiLU(GN(x))) + Dense(SiLU(emb))))))
    AttnBlock(x)     = x + Proj(softmax(q kᵀ / √d) v),  q, k, v = Dense(GN(x)) over the S² positions

The layer inventory of diffusers' ``UNet2DModel`` (equal parameter counts). The last conv of every ResBlock and the
output projection of every AttnBlock start at zero (DDPM), so a fresh model ignores t and dropout until its first
update. Compute runs in ``dtype`` (float32/bfloat16); parameters, GroupNorm statistics, the sinusoidal time
features, the attention logits and softmax, and the returned output stay float32. ``num_classes`` > 0 adds a learned
label embedding (row num_classes = the null label, also used when no label is given); 0 (default) adds no parameter.
"""
from __future__ import annotations

import dataclasses
import math
from typing import Any, Mapping, Optional, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from jaxdiff.checks import is_int
from jaxdiff.models.norm import GROUP_NORM_IMPLS, GroupNorm

__all__ = [
    "UNet",
    "ResBlock",
    "AttnBlock",
    "Downsample",
    "Upsample",
    "DTYPES",
    "MODEL_FIELDS",
    "timestep_embedding",
    "validate_unet_config",
    "make_unet",
    "param_count",
]

DTYPES: dict[str, Any] = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}

# Keys of the config's ``model`` section that make_unet understands (anything else is a typo).
MODEL_FIELDS = (
    "ch",
    "ch_mult",
    "num_res_blocks",
    "attn_resolutions",
    "dropout",
    "num_groups",
    "num_heads",
    "mid_attention",
    "dtype",
    "num_classes",
    # layout options of other UNets of this family (diffusers' UNet2DModel); the defaults are jaxdiff's own
    "flip_sin_to_cos",
    "freq_shift",
    "norm_eps",
    "downsample_padding",
    "head_dim",
    "time_offset",
)

_GN_EPS = 1e-5  # PyTorch/diffusers GroupNorm default, so benchmarks compare like with like


# ----------------------------------------------------------------------------------------------------------------
# Validation (pure Python on static config values: runs before anything is traced or compiled)
# ----------------------------------------------------------------------------------------------------------------


def _dtype_name(dtype) -> Optional[str]:
    if isinstance(dtype, str):
        return dtype
    try:
        return np.dtype(dtype).name
    except TypeError:
        return None


def _check_int_tuple(field: str, value, *, allow_empty: bool) -> tuple[int, ...]:
    if isinstance(value, (str, bytes)) or not isinstance(value, Sequence):
        raise ValueError(f"model.{field}={value!r}: must be a tuple of positive ints")
    if not allow_empty and len(value) == 0:
        raise ValueError(f"model.{field}={value!r}: must be a non-empty tuple of positive ints")
    if not all(is_int(v) and v >= 1 for v in value):
        raise ValueError(f"model.{field}={value!r}: every entry must be a positive int")
    return tuple(int(v) for v in value)


def validate_unet_config(
    *,
    ch,
    ch_mult,
    num_res_blocks,
    attn_resolutions,
    dropout,
    num_groups,
    dtype,
    num_heads=1,
    mid_attention=True,
    image_size=None,
    in_channels=None,
    out_channels=None,
    num_classes=0,
    flip_sin_to_cos=True,
    freq_shift=0,
    norm_eps=_GN_EPS,
    downsample_padding=1,
    head_dim=0,
    time_offset=0,
) -> None:
    """Raises one ValueError naming the field, its value and what is allowed; returns None if the config is valid.

    ``image_size`` / ``in_channels`` / ``out_channels`` may be None (not known yet): the checks that need them are
    skipped (UNet repeats the image-size checks at trace time against the actual input).
    """
    if not is_int(ch) or ch < 1:
        raise ValueError(f"model.ch={ch!r}: must be a positive int (the base width)")
    ch_mult = _check_int_tuple("ch_mult", ch_mult, allow_empty=False)
    if not is_int(num_res_blocks) or num_res_blocks < 1:
        raise ValueError(f"model.num_res_blocks={num_res_blocks!r}: must be an int >= 1")
    attn_resolutions = _check_int_tuple("attn_resolutions", attn_resolutions, allow_empty=True)
    if isinstance(dropout, bool) or not isinstance(dropout, (int, float, np.floating, np.integer)) or not (
        0.0 <= float(dropout) < 1.0
    ):
        raise ValueError(f"model.dropout={dropout!r}: must be a float in [0, 1)")
    widths = sorted({ch} | {ch * m for m in ch_mult})
    if not is_int(num_groups) or num_groups < 1:
        raise ValueError(f"model.num_groups={num_groups!r}: must be a positive int dividing every width {widths}")
    bad = [w for w in widths if w % num_groups]
    if bad:
        allowed = [g for g in range(1, widths[0] + 1) if all(w % g == 0 for w in widths)]
        raise ValueError(
            f"model.num_groups={num_groups}: GroupNorm groups must divide every channel width "
            f"(ch={ch} × ch_mult={ch_mult} → widths {widths}; {bad} not divisible); allowed: {allowed}"
        )
    if not is_int(num_heads) or num_heads < 1:
        raise ValueError(f"model.num_heads={num_heads!r}: must be a positive int")
    if not isinstance(mid_attention, (bool, np.bool_)):
        raise ValueError(f"model.mid_attention={mid_attention!r}: must be True or False")
    if not is_int(num_classes) or num_classes < 0:
        raise ValueError(f"model.num_classes={num_classes!r}: must be an int >= 0 (0: unconditional)")
    if not isinstance(flip_sin_to_cos, (bool, np.bool_)):
        raise ValueError(f"model.flip_sin_to_cos={flip_sin_to_cos!r}: must be True ([cos, sin]) or False ([sin, cos])")
    if (isinstance(freq_shift, bool) or not isinstance(freq_shift, (int, float, np.integer, np.floating))
            or not is_int(ch) or not float(freq_shift) < ch // 2):
        raise ValueError(f"model.freq_shift={freq_shift!r}: must be a number below ch // 2 "
                         "(frequencies max_period^(−k / (ch // 2 − freq_shift)))")
    if isinstance(norm_eps, bool) or not isinstance(norm_eps, (int, float, np.floating)) or not float(norm_eps) > 0:
        raise ValueError(f"model.norm_eps={norm_eps!r}: must be a float > 0 (the GroupNorm epsilon)")
    if downsample_padding not in (0, 1) or isinstance(downsample_padding, bool):
        raise ValueError(f"model.downsample_padding={downsample_padding!r}: must be 1 (one pixel on every side) or 0 "
                         "(one pixel right and bottom only)")
    if not is_int(head_dim) or head_dim < 0:
        raise ValueError(f"model.head_dim={head_dim!r}: must be an int >= 0 (0: model.num_heads heads everywhere)")
    if head_dim and num_heads != 1:
        raise ValueError(f"model.head_dim={head_dim} and model.num_heads={num_heads}: set one of them (head_dim > 0 "
                         "gives every attention layer width // head_dim heads; leave num_heads at 1)")
    if not is_int(time_offset):
        raise ValueError(f"model.time_offset={time_offset!r}: must be an int (the network embeds t + time_offset)")
    name = _dtype_name(dtype)
    if name not in DTYPES:
        raise ValueError(f"model.dtype={dtype!r}: compute dtype must be one of {sorted(DTYPES)}")
    for field, v in (("in_channels", in_channels), ("out_channels", out_channels)):
        if v is not None and (not is_int(v) or v < 1):
            raise ValueError(f"{field}={v!r}: must be a positive int (number of image channels)")

    levels = len(ch_mult)
    factor = 2 ** (levels - 1)
    if image_size is not None:
        if not is_int(image_size) or image_size < 1:
            raise ValueError(f"image_size={image_size!r}: must be a positive int (square images)")
        if image_size % factor:
            max_levels = 1 + ((image_size & -image_size).bit_length() - 1)  # 1 + number of times it halves cleanly
            raise ValueError(
                f"image_size={image_size} cannot be halved {levels - 1} times by model.ch_mult={ch_mult} "
                f"({levels} levels): image_size must be a multiple of 2**(len(ch_mult)-1) = {factor}, "
                f"or ch_mult must have at most {max_levels} entries for this image_size"
            )
        sizes = [image_size // 2**i for i in range(levels)]
        missing = [r for r in attn_resolutions if r not in sizes]
        if missing:
            raise ValueError(
                f"model.attn_resolutions={attn_resolutions}: {missing} never occur; with image_size={image_size} and "
                f"ch_mult={ch_mult} the levels have spatial sizes {sizes} (use a subset of those)"
            )
        attn_widths = {ch * m for m, s in zip(ch_mult, sizes) if s in attn_resolutions}
    else:
        attn_widths = {ch * m for m in ch_mult} if attn_resolutions else set()
    if mid_attention:
        attn_widths.add(ch * ch_mult[-1])
    if head_dim:
        bad = sorted(w for w in attn_widths if w % head_dim)
        if bad:
            raise ValueError(f"model.head_dim={head_dim}: must divide the width of every attention layer "
                             f"{sorted(attn_widths)} ({bad} not divisible)")
    bad = sorted(w for w in attn_widths if w % num_heads)
    if bad:
        raise ValueError(
            f"model.num_heads={num_heads}: must divide the width of every attention layer {sorted(attn_widths)} "
            f"({bad} not divisible)"
        )


# ----------------------------------------------------------------------------------------------------------------
# Layers
# ----------------------------------------------------------------------------------------------------------------


def timestep_embedding(t: jnp.ndarray, dim: int, max_period: float = 10000.0, *, flip_sin_to_cos: bool = True,
                       freq_shift: float = 0) -> jnp.ndarray:
    """Sinusoidal embedding of integer timesteps or continuous noise levels, float32.

        f_k = max_period^(−k / half),  k = 0 … half − 1,  half = ⌊dim / 2⌋
        emb(t) = [cos(t f_0), …, cos(t f_{half−1}), sin(t f_0), …, sin(t f_{half−1})]  (+ a zero column if dim is odd)

    t: shape (B,) (any shape works: (...) → (..., dim)), int or float. A continuous level in [0, 1] should be scaled
    (e.g. by 1000) by the caller, otherwise only the lowest frequencies vary. ``freq_shift`` s ≠ 0 divides by
    half − s instead of half; ``flip_sin_to_cos=False`` puts the sines first (diffusers' two options).
    """
    if not is_int(dim) or dim < 2:
        raise ValueError(f"timestep_embedding: dim={dim!r} must be an int >= 2")
    half = dim // 2
    denom = half - freq_shift if freq_shift else half
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / denom)
    args = jnp.asarray(t, jnp.float32)[..., None] * freqs
    parts = [jnp.cos(args), jnp.sin(args)]
    emb = jnp.concatenate(parts if flip_sin_to_cos else parts[::-1], axis=-1)
    if dim % 2:
        emb = jnp.concatenate([emb, jnp.zeros_like(emb[..., :1])], axis=-1)
    return emb


class ResBlock(nn.Module):
    """x (B,H,W,Cin), emb_act = SiLU(time MLP output) (B,E) → (B,H,W,out_ch); 1×1 projection of x when Cin ≠ out_ch."""

    out_ch: int
    num_groups: int
    dropout: float = 0.0
    dtype: Any = jnp.float32
    group_norm: str = "auto"
    eps: float = _GN_EPS

    @nn.compact
    def __call__(self, x, emb_act, train: bool):
        gn = lambda name: GroupNorm(self.num_groups, self.eps, self.dtype, self.group_norm, name=name)  # noqa: E731
        h = nn.silu(gn("norm1")(x))
        h = nn.Conv(self.out_ch, (3, 3), dtype=self.dtype, name="conv1")(h)
        h = h + nn.Dense(self.out_ch, dtype=self.dtype, name="emb_proj")(emb_act)[:, None, None, :]
        h = nn.silu(gn("norm2")(h))
        if self.dropout > 0:
            h = nn.Dropout(self.dropout, deterministic=not train)(h)
        h = nn.Conv(self.out_ch, (3, 3), dtype=self.dtype, kernel_init=nn.initializers.zeros, name="conv2")(h)
        if x.shape[-1] != self.out_ch:
            # A Dense on the channel axis is the 1×1 conv (same parameters) and maps to a plain GEMM on XLA:CPU.
            x = nn.Dense(self.out_ch, dtype=self.dtype, name="skip")(x)
        return x + h


class AttnBlock(nn.Module):
    """Self-attention over the H·W positions, residual. x (B,H,W,C) → (B,H,W,C); num_heads must divide C."""

    num_groups: int
    num_heads: int = 1
    dtype: Any = jnp.float32
    group_norm: str = "auto"
    eps: float = _GN_EPS

    @nn.compact
    def __call__(self, x):
        B, H, W, C = x.shape
        n, d = self.num_heads, C // self.num_heads
        h = GroupNorm(self.num_groups, self.eps, self.dtype, self.group_norm, name="norm")(x)
        # One fused GEMM for q, k, v (the same parameter count as three C×C projections).
        qkv = nn.Dense(3 * C, dtype=self.dtype, name="qkv")(h).reshape(B, H * W, 3, n, d)
        q, k, v = qkv[:, :, 0], qkv[:, :, 1], qkv[:, :, 2]
        q = q * jnp.asarray(1.0 / math.sqrt(d), q.dtype)  # scale the (HW·C) queries, not the (HW)² logits
        logits = jnp.einsum("bqnd,bknd->bnqk", q, k, preferred_element_type=jnp.float32)
        w = jax.nn.softmax(logits, axis=-1).astype(v.dtype)
        o = jnp.einsum("bnqk,bknd->bqnd", w, v).reshape(B, H, W, C)
        o = nn.Dense(C, dtype=self.dtype, kernel_init=nn.initializers.zeros, name="proj")(o)
        return x + o


class Downsample(nn.Module):
    """Stride-2 3×3 conv with 1-pixel zero padding (as PyTorch/diffusers): (B,H,W,C) → (B,H/2,W/2,C).

    padding=0: one zero pixel on the right and bottom only (diffusers' ``downsample_padding=0``)."""

    dtype: Any = jnp.float32
    padding: int = 1

    @nn.compact
    def __call__(self, x):
        pad = ((1, 1), (1, 1)) if self.padding else ((0, 1), (0, 1))
        return nn.Conv(x.shape[-1], (3, 3), strides=(2, 2), padding=pad, dtype=self.dtype, name="conv")(x)


class Upsample(nn.Module):
    """Nearest-neighbour ×2 then a 3×3 conv: (B,H,W,C) → (B,2H,2W,C)."""

    dtype: Any = jnp.float32

    @nn.compact
    def __call__(self, x):
        B, H, W, C = x.shape
        x = jnp.broadcast_to(x[:, :, None, :, None, :], (B, H, 2, W, 2, C)).reshape(B, 2 * H, 2 * W, C)
        return nn.Conv(C, (3, 3), dtype=self.dtype, name="conv")(x)


# ----------------------------------------------------------------------------------------------------------------
# The UNet
# ----------------------------------------------------------------------------------------------------------------


class UNet(nn.Module):
    """DDPM UNet. ``apply(variables, x, t, train=False, rngs={'dropout': key})``.

    x: (B, H, W, in_channels) float, t: (B,) or scalar, int timesteps or float noise levels, labels: None
    or int (B,) in [0, num_classes] (num_classes = the null label; None: all null) → (B, H, W, out_channels) float32.

    image_size / in_channels: what the model is built for; when set, inputs of another H, W or C are rejected at
    trace time (before XLA compiles). When None, H = W is required and the level/attention checks run on it.
    All static fields are validated at construction (``__post_init__``).
    """

    out_channels: int
    ch: int = 32
    ch_mult: tuple[int, ...] = (1, 2, 2)
    num_res_blocks: int = 1
    attn_resolutions: tuple[int, ...] = ()
    dropout: float = 0.0
    num_groups: int = 8
    num_heads: int = 1
    mid_attention: bool = True
    dtype: str = "float32"
    num_classes: int = 0  # 0: unconditional (no label embedding); else labels 0 … num_classes − 1, null = num_classes
    # Options for the layouts of diffusers' UNet2DModel (jaxdiff.interop.diffusers); the defaults are jaxdiff's.
    flip_sin_to_cos: bool = True  # time embedding [cos, sin] (False: [sin, cos])
    freq_shift: float = 0  # frequencies max_period^(−k / (ch // 2 − freq_shift))
    norm_eps: float = _GN_EPS  # every GroupNorm's ε
    downsample_padding: int = 1  # 1: one pixel each side; 0: right/bottom only
    head_dim: int = 0  # > 0: every attention layer has width // head_dim heads (then num_heads = 1)
    time_offset: int = 0  # the network embeds t + time_offset (diffusers' index t − 1: −1)
    image_size: Optional[int] = None
    in_channels: Optional[int] = None
    # How GroupNorm reduces (jaxdiff.models.norm): "auto" = the faster two-stage reduction on CPU, the textbook
    # one elsewhere. Same parameters and function either way; not a config field, an implementation choice.
    group_norm: str = "auto"
    # A per-t scale of the input x (T + 1 floats): the process's preconditioning c_in (EDM's prediction, see
    # jaxdiff.parameterization.edm_input_scale). None: x as given. Not a config field: the process sets it.
    input_scale: Optional[tuple[float, ...]] = None

    def __post_init__(self):
        self._validate(self.image_size)
        if self.group_norm not in GROUP_NORM_IMPLS:
            raise ValueError(f"UNet: group_norm={self.group_norm!r} must be one of {GROUP_NORM_IMPLS}")
        # Canonical forms keep the module hashable and comparable (lists from configs, dtype objects).
        object.__setattr__(self, "ch_mult", tuple(int(m) for m in self.ch_mult))
        object.__setattr__(self, "attn_resolutions", tuple(int(r) for r in self.attn_resolutions))
        object.__setattr__(self, "dtype", _dtype_name(self.dtype))
        super().__post_init__()

    def _validate(self, image_size):
        validate_unet_config(
            ch=self.ch,
            ch_mult=self.ch_mult,
            num_res_blocks=self.num_res_blocks,
            attn_resolutions=self.attn_resolutions,
            dropout=self.dropout,
            num_groups=self.num_groups,
            dtype=self.dtype,
            num_heads=self.num_heads,
            mid_attention=self.mid_attention,
            image_size=image_size,
            in_channels=self.in_channels,
            out_channels=self.out_channels,
            num_classes=self.num_classes,
            flip_sin_to_cos=self.flip_sin_to_cos,
            freq_shift=self.freq_shift,
            norm_eps=self.norm_eps,
            downsample_padding=self.downsample_padding,
            head_dim=self.head_dim,
            time_offset=self.time_offset,
        )

    def _check_inputs(self, x, t):
        if x.ndim != 4:
            raise ValueError(f"UNet input x: shape {x.shape} must be (B, H, W, C) (NHWC)")
        if not jnp.issubdtype(x.dtype, jnp.floating):
            raise ValueError(f"UNet input x: dtype {x.dtype} must be floating (images in [-1, 1])")
        B, H, W, C = x.shape
        if self.image_size is not None:
            if (H, W) != (self.image_size, self.image_size):
                raise ValueError(
                    f"UNet input x: spatial size {H}×{W} (shape {x.shape}) differs from "
                    f"image_size={self.image_size} the model was built for"
                )
        else:
            if H != W:
                raise ValueError(f"UNet input x: shape {x.shape}: H={H} and W={W} must be equal (square images)")
            self._validate(H)
        if self.in_channels is not None and C != self.in_channels:
            raise ValueError(
                f"UNet input x: {C} channels (shape {x.shape}) differ from in_channels={self.in_channels} "
                f"the model was built for"
            )
        t = jnp.asarray(t)
        if t.ndim == 0:
            t = jnp.broadcast_to(t, (B,))
        if t.shape != (B,):
            raise ValueError(f"UNet input t: shape {t.shape} must be () or (B,) = ({B},)")
        return t

    def _check_labels(self, labels, B):
        if labels is None:
            return jnp.full((B,), self.num_classes, jnp.int32) if self.num_classes else None
        if not self.num_classes:
            raise ValueError("UNet input labels: this model is unconditional (model.num_classes=0); pass no labels")
        labels = jnp.asarray(labels)
        if not jnp.issubdtype(labels.dtype, jnp.integer):
            raise ValueError(f"UNet input labels: dtype {labels.dtype} must be integer (class indices)")
        if labels.ndim == 0:
            labels = jnp.broadcast_to(labels, (B,))
        if labels.shape != (B,):
            raise ValueError(f"UNet input labels: shape {labels.shape} must be () or (B,) = ({B},)")
        return labels.astype(jnp.int32)

    @nn.compact
    def __call__(self, x, t, labels=None, *, train: bool = False):
        t = self._check_inputs(x, t)
        labels = self._check_labels(labels, x.shape[0])
        if self.input_scale is not None:
            scale = jnp.asarray(np.asarray(self.input_scale, np.float32))[jnp.asarray(t, jnp.int32)]
            x = x * scale[:, None, None, None].astype(x.dtype)
        dt = DTYPES[self.dtype]
        gn = lambda name: GroupNorm(self.num_groups, self.norm_eps, dt, self.group_norm, name=name)  # noqa: E731

        emb = timestep_embedding(t + self.time_offset if self.time_offset else t, self.ch,
                                 flip_sin_to_cos=self.flip_sin_to_cos, freq_shift=self.freq_shift)
        emb = nn.Dense(4 * self.ch, dtype=dt, name="time_dense0")(emb)
        emb = nn.Dense(4 * self.ch, dtype=dt, name="time_dense1")(nn.silu(emb))
        if labels is not None:  # class conditioning: one learned row per class and one for the null label
            emb = emb + nn.Embed(self.num_classes + 1, 4 * self.ch, name="label_embed")(labels).astype(emb.dtype)
        emb_act = nn.silu(emb)  # every ResBlock projects SiLU(emb): compute it once

        def res(h, width, name):
            return ResBlock(width, self.num_groups, self.dropout, dt, self.group_norm, eps=self.norm_eps,
                            name=name)(h, emb_act, train)

        def attn(h, name):
            heads = h.shape[-1] // self.head_dim if self.head_dim else self.num_heads
            return AttnBlock(self.num_groups, heads, dt, self.group_norm, eps=self.norm_eps, name=name)(h)

        levels = len(self.ch_mult)
        size = x.shape[1]
        h = nn.Conv(self.ch, (3, 3), dtype=dt, name="conv_in")(x.astype(dt))
        skips = [h]
        for i, mult in enumerate(self.ch_mult):
            for j in range(self.num_res_blocks):
                h = res(h, self.ch * mult, f"down{i}_res{j}")
                if size in self.attn_resolutions:
                    h = attn(h, f"down{i}_attn{j}")
                skips.append(h)
            if i != levels - 1:
                h = Downsample(dt, self.downsample_padding, name=f"down{i}_downsample")(h)
                size //= 2
                skips.append(h)

        width = self.ch * self.ch_mult[-1]
        h = res(h, width, "mid_res0")
        if self.mid_attention:
            h = attn(h, "mid_attn")
        h = res(h, width, "mid_res1")

        for i in reversed(range(levels)):
            for j in range(self.num_res_blocks + 1):
                h = res(jnp.concatenate([h, skips.pop()], axis=-1), self.ch * self.ch_mult[i], f"up{i}_res{j}")
                if size in self.attn_resolutions:
                    h = attn(h, f"up{i}_attn{j}")
            if i != 0:
                h = Upsample(dt, name=f"up{i}_upsample")(h)
                size *= 2

        h = nn.silu(gn("norm_out")(h))
        h = nn.Conv(self.out_channels, (3, 3), dtype=dt, name="conv_out")(h)
        return h.astype(jnp.float32)


# ----------------------------------------------------------------------------------------------------------------
# Builders and helpers
# ----------------------------------------------------------------------------------------------------------------


def _as_dict(model_cfg) -> dict:
    if isinstance(model_cfg, ml_collections.FrozenConfigDict):
        return dict(model_cfg.as_configdict().to_dict())
    if isinstance(model_cfg, ml_collections.ConfigDict):
        return dict(model_cfg.to_dict())
    if isinstance(model_cfg, Mapping):
        return dict(model_cfg)
    raise ValueError(f"model config: {type(model_cfg).__name__} is not a ConfigDict or mapping")


def make_unet(model_cfg, *, image_size: int, in_channels: int, out_channels: int, input_scale=None) -> UNet:
    """Builds the UNet from the config's ``model`` section (keys: MODEL_FIELDS; missing keys take UNet's defaults).

    Validates everything (unknown keys, widths, groups, heads, levels vs image_size, attention sizes, dtype) before
    any tracing or compilation.
    """
    cfg = _as_dict(model_cfg)
    unknown = sorted(set(cfg) - set(MODEL_FIELDS))
    if unknown:
        raise ValueError(f"model config: unknown keys {unknown}; allowed keys: {list(MODEL_FIELDS)}")
    for key in ("ch_mult", "attn_resolutions"):
        if isinstance(cfg.get(key), list):
            cfg[key] = tuple(cfg[key])
    defaults = {f.name: f.default for f in dataclasses.fields(UNet) if f.name in MODEL_FIELDS}
    kwargs = {**defaults, **cfg}
    validate_unet_config(**kwargs, image_size=image_size, in_channels=in_channels, out_channels=out_channels)
    scale = None if input_scale is None else tuple(float(v) for v in np.asarray(input_scale).reshape(-1))
    return UNet(out_channels=out_channels, image_size=image_size, in_channels=in_channels, input_scale=scale, **kwargs)


def param_count(params) -> int:
    """Total number of scalars in a pytree of arrays (params, variables or jax.eval_shape output)."""
    return int(sum(int(np.prod(np.shape(leaf))) for leaf in jax.tree_util.tree_leaves(params)))
