"""A PyTorch mirror of jaxdiff.models.unet.UNet (same layers, same widths, same parameter count), NCHW.

Only for benchmarks: it lets the main job's model be timed in PyTorch on the same spec. It is written the
way a PyTorch user would write it (nn.Conv2d/GroupNorm/Linear, F.scaled_dot_product_attention).
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import nn


def timestep_embedding(t: torch.Tensor, dim: int, max_period: float = 10000.0) -> torch.Tensor:
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, dtype=torch.float32, device=t.device) / half)
    args = t.float()[:, None] * freqs[None]
    emb = torch.cat([torch.cos(args), torch.sin(args)], dim=-1)
    if dim % 2:
        emb = F.pad(emb, (0, 1))
    return emb


class ResBlock(nn.Module):
    def __init__(self, cin, cout, emb_dim, groups):
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin, eps=1e-5)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb_proj = nn.Linear(emb_dim, cout)
        self.norm2 = nn.GroupNorm(groups, cout, eps=1e-5)
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1)
        nn.init.zeros_(self.conv2.weight)
        nn.init.zeros_(self.conv2.bias)
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else None

    def forward(self, x, emb_act):
        h = self.conv1(F.silu(self.norm1(x)))
        h = h + self.emb_proj(emb_act)[:, :, None, None]
        h = self.conv2(F.silu(self.norm2(h)))
        return (x if self.skip is None else self.skip(x)) + h


class AttnBlock(nn.Module):
    def __init__(self, c, groups, heads=1):
        super().__init__()
        self.norm = nn.GroupNorm(groups, c, eps=1e-5)
        self.qkv = nn.Linear(c, 3 * c)
        self.proj = nn.Linear(c, c)
        nn.init.zeros_(self.proj.weight)
        nn.init.zeros_(self.proj.bias)
        self.heads = heads

    def forward(self, x):
        B, C, H, W = x.shape
        h = self.norm(x).flatten(2).transpose(1, 2)  # (B, HW, C)
        q, k, v = self.qkv(h).reshape(B, H * W, 3, self.heads, C // self.heads).permute(2, 0, 3, 1, 4)
        o = F.scaled_dot_product_attention(q, k, v)  # (B, n, HW, d)
        o = o.transpose(1, 2).reshape(B, H * W, C)
        return x + self.proj(o).transpose(1, 2).reshape(B, C, H, W)


class TorchUNet(nn.Module):
    """Same constructor fields as the Flax UNet (``model`` config section + image size and channels)."""

    def __init__(
        self,
        *,
        in_channels,
        out_channels,
        image_size,
        ch=32,
        ch_mult=(1, 2, 2),
        num_res_blocks=1,
        attn_resolutions=(),
        num_groups=8,
        num_heads=1,
        mid_attention=True,
        **_,
    ):
        super().__init__()
        self.ch = ch
        E = 4 * ch
        self.time_dense0 = nn.Linear(ch, E)
        self.time_dense1 = nn.Linear(E, E)
        self.conv_in = nn.Conv2d(in_channels, ch, 3, padding=1)
        self.down = nn.ModuleList()
        self.plan_down = []
        size, skip_ch, w = image_size, [ch], ch
        for i, m in enumerate(ch_mult):
            for j in range(num_res_blocks):
                self.down.append(ResBlock(w, ch * m, E, num_groups))
                w = ch * m
                attn = size in attn_resolutions
                if attn:
                    self.down.append(AttnBlock(w, num_groups, num_heads))
                self.plan_down.append(("res_attn" if attn else "res"))
                skip_ch.append(w)
            if i != len(ch_mult) - 1:
                self.down.append(nn.Conv2d(w, w, 3, stride=2, padding=1))
                self.plan_down.append("down")
                skip_ch.append(w)
                size //= 2
        self.mid1 = ResBlock(w, w, E, num_groups)
        self.mid_attn = AttnBlock(w, num_groups, num_heads) if mid_attention else None
        self.mid2 = ResBlock(w, w, E, num_groups)
        self.up = nn.ModuleList()
        self.plan_up = []
        for i in reversed(range(len(ch_mult))):
            for j in range(num_res_blocks + 1):
                self.up.append(ResBlock(w + skip_ch.pop(), ch * ch_mult[i], E, num_groups))
                w = ch * ch_mult[i]
                attn = size in attn_resolutions
                if attn:
                    self.up.append(AttnBlock(w, num_groups, num_heads))
                self.plan_up.append("res_attn" if attn else "res")
            if i != 0:
                self.up.append(nn.Conv2d(w, w, 3, padding=1))
                self.plan_up.append("up")
                size *= 2
        self.norm_out = nn.GroupNorm(num_groups, w, eps=1e-5)
        self.conv_out = nn.Conv2d(w, out_channels, 3, padding=1)

    def forward(self, x, t):
        emb = timestep_embedding(t, self.ch)
        emb_act = F.silu(self.time_dense1(F.silu(self.time_dense0(emb))))
        h = self.conv_in(x)
        skips = [h]
        it = iter(self.down)
        for kind in self.plan_down:
            if kind == "down":
                h = next(it)(h)
            else:
                h = next(it)(h, emb_act)
                if kind == "res_attn":
                    h = next(it)(h)
            skips.append(h)
        h = self.mid2(self.mid_attn(self.mid1(h, emb_act)) if self.mid_attn is not None else self.mid1(h, emb_act), emb_act)
        it = iter(self.up)
        for kind in self.plan_up:
            if kind == "up":
                h = next(it)(F.interpolate(h, scale_factor=2, mode="nearest"))
            else:
                h = next(it)(torch.cat([h, skips.pop()], dim=1), emb_act)
                if kind == "res_attn":
                    h = next(it)(h)
        return self.conv_out(F.silu(self.norm_out(h)))


def param_count(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
