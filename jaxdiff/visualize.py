"""Picture output: image grids, labelled strips, reverse-trajectory strips and GIFs (NumPy + Pillow only).

Inputs are NHWC batches ``(N, H, W, C)`` (or ``(N, H, W)`` for grey) of floats in ``in_range``
(default [−1, 1], the model's range) or ``uint8`` (used as they are); C is 1 (saved as an "L" PNG) or 3
("RGB"). JAX arrays are accepted (converted with ``np.asarray``; this module never imports JAX).

Layout of a grid (as torchvision's ``make_grid``): tiles of H×W with ``padding`` pixels of ``pad_value``
around and between them; tile i sits at row i // nrow, column i % nrow, its top-left corner at
(padding + row·(H + padding), padding + col·(W + padding)).

Every file is written atomically (a temporary file in the same directory, fsync, then ``os.replace``) so
an interrupted run never leaves a half-written picture under the final name.
"""
from __future__ import annotations

import math
import os
from typing import Callable, Optional, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from jaxdiff.files import atomic_write

__all__ = [
    "to_uint8",
    "make_grid",
    "save_grid",
    "save_strip",
    "save_trajectory",
]

_MIN_TILE_PX = 64  # automatic upscaling makes tiles at least this large (16×16 digits → 4×)
_MAX_AUTO_UPSCALE = 8


# --------------------------------------------------------------------------------------------
# arrays
# --------------------------------------------------------------------------------------------


def _as_nhwc(images, name: str = "images") -> np.ndarray:
    x = np.asarray(images)
    if x.ndim == 3:
        x = x[..., None]
    if x.ndim != 4:
        raise ValueError(f"{name} must be (N, H, W, C) or (N, H, W), got shape {x.shape}")
    if x.shape[-1] not in (1, 3):
        raise ValueError(f"{name} must have 1 (grey) or 3 (RGB) channels, got {x.shape[-1]} (shape {x.shape})")
    if x.shape[0] == 0 or x.shape[1] == 0 or x.shape[2] == 0:
        raise ValueError(f"{name} is empty, shape {x.shape}")
    return x


def to_uint8(images, *, in_range: Sequence[float] = (-1.0, 1.0)) -> np.ndarray:
    """Float images in ``in_range`` → uint8 in [0, 255]: round(255·(x − lo)/(hi − lo)), clipped; NaN → 0.

    uint8 input is returned unchanged. Any shape.
    """
    x = np.asarray(images)
    if x.dtype == np.uint8:
        return x
    lo, hi = (float(v) for v in in_range)
    if not lo < hi:
        raise ValueError(f"to_uint8: in_range must satisfy lo < hi, got {in_range!r}")
    y = (np.nan_to_num(x.astype(np.float64), nan=lo) - lo) * (255.0 / (hi - lo))
    return np.clip(np.rint(y), 0, 255).astype(np.uint8)


def _check_pad(padding, pad_value):
    if isinstance(padding, bool) or not isinstance(padding, (int, np.integer)) or padding < 0:
        raise ValueError(f"padding must be an integer >= 0, got {padding!r}")
    if isinstance(pad_value, bool) or not isinstance(pad_value, (int, np.integer)) or not 0 <= pad_value <= 255:
        raise ValueError(f"pad_value must be an integer grey level in [0, 255], got {pad_value!r}")


def _layout(rows: list[list[np.ndarray]], h: int, w: int, c: int, padding: int, pad_value: int) -> np.ndarray:
    """uint8 tiles (h, w, c) placed on a grid of len(rows) × max(len(row)) cells; empty cells stay pad_value."""
    ncol = max(len(r) for r in rows)
    out = np.full((len(rows) * (h + padding) + padding, ncol * (w + padding) + padding, c), pad_value, np.uint8)
    for i, row in enumerate(rows):
        for j, tile in enumerate(row):
            y, x = padding + i * (h + padding), padding + j * (w + padding)
            out[y : y + h, x : x + w] = tile
    return out


def make_grid(
    images,
    nrow: Optional[int] = None,
    padding: int = 2,
    pad_value: int = 128,
    *,
    in_range: Sequence[float] = (-1.0, 1.0),
) -> np.ndarray:
    """(N, H, W, C) → one uint8 picture (H', W', C) with ``nrow`` tiles per row (default ⌈√N⌉).

    H' = rows·(H + padding) + padding, W' = nrow·(W + padding) + padding, rows = ⌈N / nrow⌉. Grey stays
    one channel. ``pad_value`` is a grey level 0…255 (the mid grey default separates both black- and
    white-background tiles).
    """
    x = to_uint8(_as_nhwc(images), in_range=in_range)
    _check_pad(padding, pad_value)
    n, h, w, c = x.shape
    if nrow is None:
        nrow = math.ceil(math.sqrt(n))
    if isinstance(nrow, bool) or not isinstance(nrow, (int, np.integer)) or nrow < 1:
        raise ValueError(f"make_grid: nrow must be a positive integer, got {nrow!r}")
    rows = [list(x[i : i + nrow]) for i in range(0, n, nrow)]
    grid = _layout(rows, h, w, c, padding, pad_value)
    # A short last row must not shrink the width: every row has nrow cells.
    want_w = nrow * (w + padding) + padding
    if grid.shape[1] < want_w:
        grid = np.concatenate([grid, np.full((grid.shape[0], want_w - grid.shape[1], c), pad_value, np.uint8)], axis=1)
    return grid


# --------------------------------------------------------------------------------------------
# PIL helpers
# --------------------------------------------------------------------------------------------


def _auto_upscale(h: int, w: int, upscale: Optional[int]) -> int:
    if upscale is None:
        return int(min(_MAX_AUTO_UPSCALE, max(1, math.ceil(_MIN_TILE_PX / max(h, w)))))
    if isinstance(upscale, bool) or not isinstance(upscale, (int, np.integer)) or upscale < 1:
        raise ValueError(f"upscale must be None (automatic) or an integer >= 1, got {upscale!r}")
    return int(upscale)


def _upscale(arr: np.ndarray, k: int) -> np.ndarray:
    """Nearest-neighbour ×k of an (H, W, C) array (pixels stay sharp)."""
    return arr if k == 1 else np.repeat(np.repeat(arr, k, axis=0), k, axis=1)


def _to_pil(arr: np.ndarray) -> Image.Image:
    return Image.fromarray(arr[..., 0], mode="L") if arr.shape[-1] == 1 else Image.fromarray(arr, mode="RGB")


def _font():
    return ImageFont.load_default()


def _text_size(draw: ImageDraw.ImageDraw, text: str, font) -> tuple[int, int]:
    l, t, r, b = draw.textbbox((0, 0), text, font=font)
    return r - l, b - t


def _fill(mode: str, v: int):
    return v if mode == "L" else (v, v, v)


def _ink(img: Image.Image, pad_value: int):
    """Text color that contrasts with the pad background."""
    return _fill(img.mode, 0 if pad_value >= 128 else 255)


def _annotate(
    arr: np.ndarray,
    pad_value: int,
    *,
    row_labels: Optional[Sequence[str]] = None,
    row_centres: Sequence[float] = (),
    col_labels: Optional[Sequence[str]] = None,
    col_centres: Sequence[float] = (),
    title: Optional[str] = None,
) -> Image.Image:
    """Adds a left label column, a header row of column labels and/or a title line around ``arr`` (H, W, C)."""
    img = _to_pil(arr)
    if not row_labels and not col_labels and not title:
        return img
    font, margin = _font(), 4
    probe = ImageDraw.Draw(img)
    rl = [str(s) for s in (row_labels or [])]
    cl = [str(s) for s in (col_labels or [])]
    text_h = max([_text_size(probe, s, font)[1] for s in rl + cl + ([title] if title else []) if s] + [8])
    left = (max(_text_size(probe, s, font)[0] for s in rl) + 2 * margin) if rl else 0
    title_h = (text_h + 2 * margin) if title else 0
    head = (text_h + 2 * margin) if cl else 0
    W = img.width + left
    if title:
        W = max(W, _text_size(probe, title, font)[0] + 2 * margin)
    canvas = Image.new(img.mode, (W, img.height + title_h + head), _fill(img.mode, pad_value))
    canvas.paste(img, (left, title_h + head))
    draw = ImageDraw.Draw(canvas)
    ink = _ink(canvas, pad_value)
    if title:
        draw.text((margin, margin), title, fill=ink, font=font)
    for s, cx in zip(cl, col_centres):
        tw, _ = _text_size(draw, s, font)
        draw.text((left + cx - tw / 2, title_h + margin), s, fill=ink, font=font)
    for s, cy in zip(rl, row_centres):
        draw.text((margin, title_h + head + cy - text_h / 2), s, fill=ink, font=font)
    return canvas


def _centres(n: int, size: int, padding: int, k: int) -> list[float]:
    """Pixel centres (after ×k upscaling) of n cells of ``size`` laid out with ``padding``."""
    return [(padding + i * (size + padding) + size / 2) * k for i in range(n)]


# --------------------------------------------------------------------------------------------
# atomic files
# --------------------------------------------------------------------------------------------


def _save_png(path, img: Image.Image) -> str:
    return atomic_write(path, lambda f: img.save(f, format="PNG"))


# --------------------------------------------------------------------------------------------
# public savers
# --------------------------------------------------------------------------------------------


def save_grid(
    path,
    images,
    nrow: Optional[int] = None,
    *,
    upscale: Optional[int] = None,
    padding: int = 2,
    pad_value: int = 128,
    title: Optional[str] = None,
    in_range: Sequence[float] = (-1.0, 1.0),
) -> str:
    """Writes :func:`make_grid` of ``images`` (N, H, W, C) as a PNG ("L" for grey, "RGB" for color).

    ``upscale``: nearest-neighbour factor applied to the whole grid (None: enough for ≥ 64-pixel tiles, at
    most ×8). ``title``: an optional line of text above the grid. Returns the path.
    """
    x = _as_nhwc(images)
    grid = make_grid(x, nrow, padding, pad_value, in_range=in_range)
    k = _auto_upscale(x.shape[1], x.shape[2], upscale)
    return _save_png(path, _annotate(_upscale(grid, k), pad_value, title=title))


def save_strip(
    path,
    rows: Sequence,
    labels: Optional[Sequence[str]] = None,
    *,
    column_labels: Optional[Sequence[str]] = None,
    upscale: Optional[int] = None,
    padding: int = 2,
    pad_value: int = 128,
    title: Optional[str] = None,
    in_range: Sequence[float] = (-1.0, 1.0),
) -> str:
    """Writes rows of images, one batch (N_i, H, W, C) per row, as a labelled PNG.

    E.g. ``rows=[degraded, direct, sampled, original]`` with ``labels=["degraded", "direct", "sampled",
    "original"]`` (N test images across), or a forward strip ``rows=[x_t for a few examples]`` with
    ``column_labels=[f"t={t}" …]``. Rows may differ in length (short rows end in pad_value); all images
    share H, W, C. ``labels`` go in a column on the left, ``column_labels`` in a header row.
    """
    if not isinstance(rows, (list, tuple)) or len(rows) == 0:
        raise ValueError(f"save_strip: rows must be a non-empty list of (N_i, H, W, C) batches, got {type(rows).__name__}")
    xs = [to_uint8(_as_nhwc(r, f"rows[{i}]"), in_range=in_range) for i, r in enumerate(rows)]
    if len({x.shape[1:] for x in xs}) != 1:
        raise ValueError(f"save_strip: every row must have the same (H, W, C), got {[x.shape[1:] for x in xs]}")
    if labels is not None and len(labels) != len(xs):
        raise ValueError(f"save_strip: labels has {len(labels)} entries for {len(xs)} rows")
    _check_pad(padding, pad_value)
    _, h, w, c = xs[0].shape
    ncol = max(x.shape[0] for x in xs)
    if column_labels is not None and len(column_labels) > ncol:
        raise ValueError(f"save_strip: column_labels has {len(column_labels)} entries for {ncol} columns")
    k = _auto_upscale(h, w, upscale)
    arr = _upscale(_layout([list(x) for x in xs], h, w, c, padding, pad_value), k)
    img = _annotate(
        arr,
        pad_value,
        row_labels=labels,
        row_centres=_centres(len(xs), h, padding, k),
        col_labels=column_labels,
        col_centres=_centres(ncol, w, padding, k),
        title=title,
    )
    return _save_png(path, img)


def save_trajectory(
    path_png,
    path_gif,
    traj_x_t,
    traj_x0_hat,
    ts: Sequence[int],
    *,
    max_examples: int = 8,
    nrow: Optional[int] = None,
    upscale: Optional[int] = None,
    padding: int = 2,
    pad_value: int = 128,
    frame_ms: int = 200,
    last_frame_ms: int = 1500,
    in_range: Sequence[float] = (-1.0, 1.0),
) -> tuple[Optional[str], Optional[str]]:
    """Pictures of a reverse run: x_t and x̂0 at M recorded steps for B examples.

    traj_x_t, traj_x0_hat: (M, B, H, W, C) (or (M, B, H, W)); ts: the M timesteps.

    * PNG (``path_png``): two rows per example (the first ``max_examples``) — x_t, then x̂0 — with the M
      steps across and "t=…" over the columns.
    * GIF (``path_gif``): M frames; frame m shows the grid of all B x_t (left) and of all B x̂0 (right) at
      step m, titled with the step number and t. Each frame is held ``frame_ms``, the last one
      ``last_frame_ms``. The step counter in the title keeps frames distinct (Pillow merges identical
      consecutive GIF frames), so the GIF always has exactly M frames.

    Either path may be None to skip that file. Returns (path_png, path_gif).
    """
    xt = np.asarray(traj_x_t)
    xh = np.asarray(traj_x0_hat)
    if xt.ndim == 4:
        xt = xt[..., None]
    if xh.ndim == 4:
        xh = xh[..., None]
    if xt.ndim != 5:
        raise ValueError(f"save_trajectory: traj_x_t must be (M, B, H, W, C), got shape {np.shape(traj_x_t)}")
    if xh.shape != xt.shape:
        raise ValueError(
            f"save_trajectory: traj_x0_hat shape {np.shape(traj_x0_hat)} differs from traj_x_t {np.shape(traj_x_t)}"
        )
    M, B, h, w, c = xt.shape
    ts = [int(t) for t in np.asarray(ts).reshape(-1)]
    if len(ts) != M:
        raise ValueError(f"save_trajectory: ts has {len(ts)} entries for M = {M} recorded steps")
    if isinstance(max_examples, bool) or not isinstance(max_examples, (int, np.integer)) or max_examples < 1:
        raise ValueError(f"save_trajectory: max_examples must be a positive integer, got {max_examples!r}")
    if isinstance(frame_ms, bool) or not isinstance(frame_ms, (int, np.integer)) or frame_ms < 1:
        raise ValueError(f"save_trajectory: frame_ms must be a positive integer, got {frame_ms!r}")
    _check_pad(padding, pad_value)
    xt = to_uint8(_as_nhwc(xt.reshape(M * B, h, w, c), "traj_x_t"), in_range=in_range).reshape(xt.shape)
    xh = to_uint8(_as_nhwc(xh.reshape(M * B, h, w, c), "traj_x0_hat"), in_range=in_range).reshape(xh.shape)
    k = _auto_upscale(h, w, upscale)

    if path_png is not None:
        nb = min(B, int(max_examples))
        rows, labels = [], []
        for b in range(nb):
            rows += [list(xt[:, b]), list(xh[:, b])]
            labels += [f"x_t #{b}", f"x0_hat #{b}"]
        arr = _upscale(_layout(rows, h, w, c, padding, pad_value), k)
        img = _annotate(
            arr, pad_value,
            row_labels=labels, row_centres=_centres(len(rows), h, padding, k),
            col_labels=[f"t={t}" for t in ts], col_centres=_centres(M, w, padding, k),
        )
        _save_png(path_png, img)

    if path_gif is not None:
        frames = []
        for m in range(M):
            left = make_grid(xt[m], nrow, padding, pad_value)
            right = make_grid(xh[m], nrow, padding, pad_value)
            # A one-pixel line in the text color, set off by padding, separates the two grids.
            gap = np.full((left.shape[0], 2 * padding + 1, c), pad_value, np.uint8)
            gap[:, padding] = 0 if pad_value >= 128 else 255
            arr = _upscale(np.concatenate([left, gap, right], axis=1), k)
            frames.append(_annotate(arr, pad_value, title=f"step {m + 1}/{M}  t={ts[m]}  x_t | x0_hat"))
        # Titles differ in width; a GIF needs one canvas size.
        fw, fh = max(f.width for f in frames), max(f.height for f in frames)
        for i, fr in enumerate(frames):
            if fr.size != (fw, fh):
                canvas = Image.new(fr.mode, (fw, fh), _fill(fr.mode, pad_value))
                canvas.paste(fr, (0, 0))
                frames[i] = canvas
        durations = [int(frame_ms)] * (M - 1) + [int(max(frame_ms, last_frame_ms))]

        def write(f):
            frames[0].save(
                f, format="GIF", save_all=True, append_images=frames[1:], duration=durations, loop=0,
                optimize=False, disposal=1,
            )

        atomic_write(path_gif, write)
    return path_png, path_gif
