"""``--mode=fill``: inpainting, fill the region a mask leaves unknown (white / 1 = keep) in held-out or ``--input`` images.

The mask is a PNG or an .npz ('mask', 'masks' or its only array; one mask for all images, or one per image),
binarised at 0.5 and broadcast over the channels. A mask with nothing known (all 0: that is generation) or
nothing to fill (all 1) is refused. Rows of the picture: masked input | inpainted | original (held-out images)
or input (``--input``: the image as given, the original when the whole image was given). A class-conditional
run takes ``--label=c`` (and ``--guidance=w``) for every image, through :mod:`jaxdiff.sampling.guidance`.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
import os
import re

import jax
import numpy as np

from jaxdiff.cli.common import corrector_tag, held_out_images, output_stem
from jaxdiff.cli.options import ModeSettings, UsageError
from jaxdiff.files import save_npz

log = logging.getLogger(__name__)

STRIP_WIDTH = 16  # images per row block of the picture
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg")
#: the unknown pixels in the picture's "masked" row, in [−1, 1] RGB: red, unlike the grey padding
HOLE_COLOR = np.array([0.9, -0.7, -0.7], np.float32)


def _mask_array(path: str) -> np.ndarray:
    """The file's mask values in [0, 1] as float64, (h, w), (n, h, w) or (n, h, w, c); UsageError if unreadable."""
    flag = f"--mask={path!r}"
    path = os.path.expanduser(path)
    if not os.path.isfile(path):
        raise UsageError(f"{flag}: no such file")
    if path.lower().endswith(IMAGE_EXTENSIONS):
        from PIL import Image

        try:
            with Image.open(path) as im:
                return np.asarray(im.convert("L"), np.float64) / 255.0
        except Exception as e:  # noqa: BLE001 - any decoder failure means "unreadable"
            raise UsageError(f"{flag}: cannot read it as an image ({type(e).__name__}: {e})") from None
    try:
        loaded = np.load(path, allow_pickle=False)
        if isinstance(loaded, np.ndarray):
            arr = loaded
        else:
            with loaded:
                keys = list(loaded.keys())
                key = next((k for k in ("mask", "masks") if k in keys), keys[0] if len(keys) == 1 else None)
                if key is None:
                    raise UsageError(f"{flag}: expected an array 'mask' (or 'masks', or a single array), found "
                                     f"keys {keys}")
                arr = loaded[key]
    except UsageError:
        raise
    except Exception as e:  # noqa: BLE001
        raise UsageError(f"{flag}: cannot read it as .npz/.npy ({type(e).__name__}: {e})") from None
    if arr.dtype == bool:
        return arr.astype(np.float64)
    if np.issubdtype(arr.dtype, np.integer):
        return arr.astype(np.float64) / (255.0 if arr.size and arr.max() > 1 else 1.0)  # 0/1 or 0‥255
    if not np.issubdtype(arr.dtype, np.floating):
        raise UsageError(f"{flag}: masks of dtype {arr.dtype} are not supported; allowed: bool, 0/1 or 0‥255 "
                         "integers, floats in [0, 1]")
    if not np.all(np.isfinite(arr)):
        raise UsageError(f"{flag}: the mask contains NaN or inf")
    return arr.astype(np.float64)


def read_mask(path: str, image_shape) -> np.ndarray:
    """The mask(s) of ``path`` as float32 {0, 1} of shape (n, H, W, 1) or (n, H, W, C) for images (H, W, C).

    UsageError (one line, naming both shapes) when the mask's size is not the images', and when a mask is all 0
    or all 1.
    """
    H, W, C = (int(v) for v in image_shape)
    flag = f"--mask={path!r}"
    a = _mask_array(path)
    shape = a.shape
    if a.ndim == 3 and a.shape[:2] == (H, W) and a.shape[2] in (1, C) and a.shape[1:] != (H, W):
        a = a[None]  # (H, W, C): one mask
    if a.ndim == 2:
        a = a[None, :, :, None]
    elif a.ndim == 3:
        a = a[..., None]
    if a.ndim != 4 or a.shape[-1] not in (1, C) or a.shape[0] == 0:
        raise UsageError(f"{flag}: masks must have shape (H, W), (N, H, W) or (N, H, W, 1|{C}), got {shape}")
    if a.shape[1:3] != (H, W):
        raise UsageError(f"{flag}: the mask is {a.shape[1]}×{a.shape[2]} but the images are {H}×{W} (the run's "
                         f"data.image_size; --input images are resized to it): give a {H}×{W} mask")
    m = (a >= 0.5).astype(np.float32)
    for i, mi in enumerate(m):
        where = f"mask {i} of {m.shape[0]}" if m.shape[0] > 1 else "the mask"
        if not mi.any():
            raise UsageError(f"{flag}: {where} is all 0 (black): nothing is known, that is plain generation "
                             "(--mode=generate); white / 1 marks the pixels to keep")
        if mi.all():
            raise UsageError(f"{flag}: {where} is all 1 (white): nothing to fill, the result would be the input; "
                             "black / 0 marks the pixels to fill")
    return m


def mask_tag(path: str, mask: np.ndarray) -> str:
    """``mask-<file name>-<hash of the binarised mask>``: a changed mask file writes new files."""
    base = os.path.splitext(os.path.basename(path))[0]
    name = re.sub(r"[^A-Za-z0-9.-]+", "-", base).strip("-") or "x"
    return f"mask-{name}-{hashlib.sha1(np.ascontiguousarray(mask).tobytes() + str(mask.shape).encode()).hexdigest()[:6]}"


def _check(s: ModeSettings, inf):
    """Corrector and jumps against the run (UsageError before anything compiles); returns (timesteps, jumps)."""
    from jaxdiff.sampling import CORRECTORS
    from jaxdiff.sampling import inpainting as ip

    o = s.options
    ts = inf.timesteps(s.steps, s.spacing)
    try:
        jumps = ip.check_jumps(o.jump_pair, len(ts) - 1, field="--jumps")
    except ValueError as e:
        raise UsageError(str(e)) from None
    if jumps is not None and CORRECTORS[s.corrector].stateful:
        field = "--corrector" if o.corrector else "--corrector (the config's sample.corrector)"
        raise UsageError(f"{field}={s.corrector!r} carries a history between steps, which --jumps would break; use a "
                         "one-step corrector (ddim, ddpm, euler, cold_naive) with --jumps")
    return ts, jumps


def run(s: ModeSettings, inf, out_dir: str) -> dict[str, str]:
    """Writes <stem>.png (masked | inpainted | original or input) and <stem>.npz (known, mask, inpainted, …)."""
    from jaxdiff import visualize
    from jaxdiff.cli.restore import input_images
    from jaxdiff.sampling import inpainting as ip
    from jaxdiff.sampling import network_calls
    from jaxdiff.sampling.guidance import guided_params

    o = s.options
    ts, jumps = _check(s, inf)
    mask = read_mask(o.mask, inf.image_shape)
    num = s.num if o.num or mask.shape[0] == 1 else mask.shape[0]
    if o.input is not None:
        images = input_images(o.input, inf.config)[:num]
    else:
        images = held_out_images(inf.config, num)
    n = images.shape[0]
    if mask.shape[0] not in (1, n):
        raise UsageError(f"--mask={o.mask!r} holds {mask.shape[0]} masks for {n} images: give one mask, or one "
                         "per image")
    masks = np.broadcast_to(mask, (n,) + mask.shape[1:]).astype(np.float32)
    inputs = {"x": images, "m": masks}
    cls = None if s.label_classes is None else int(s.label_classes[0])  # --label (resolve checked the model)
    if cls is not None:
        inputs["labels"] = np.full((n,), cls, np.int32)
    pairs = ip.repaint_pairs(ts, jumps)
    calls = network_calls(s.corrector, ip.down_steps(pairs))
    log.info("inpainting %d images: %d network calls each (%d steps%s)", n, calls, len(ts) - 1,
             f", jumps j={jumps[0]} r={jumps[1]}" if jumps else "")
    k_T, k_run = jax.random.split(jax.random.PRNGKey(s.seed))
    B = inf.batch_size(s.batch, n)
    shape = (B,) + tuple(inf.image_shape)

    def one(i, chunk):
        x_T = inf.shard(np.asarray(jax.random.normal(jax.random.fold_in(k_T, i), shape)))
        denoiser, params = inf.denoiser, inf.params
        if "labels" in chunk:  # one guided forward pass of 2B rows (w = 0: conditional only); labels, w traced
            denoiser, params = guided_params(inf.model, inf.params, chunk["labels"], s.guidance)
        res = ip.inpaint(denoiser, params, jax.random.fold_in(k_run, i), x_T, chunk["x"], chunk["m"],
                         process=inf.process, corrector=s.corrector, timesteps=ts, jumps=jumps,
                         prediction=inf.prediction, clip=inf.clip, eta=s.eta)
        return {"x0": res.x0}

    outs = inf.map_batches(one, inputs, n, B, desc="fill")
    result = np.concatenate([r["x0"] for r in outs])
    keep = np.broadcast_to(masks, images.shape) > 0.5
    masked = np.where(keep, images, 0.0).astype(np.float32)
    color = lambda x: np.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x  # noqa: E731  (grey shown as RGB)
    shown = np.where(color(keep), color(images), HOLE_COLOR).astype(np.float32)
    last = ("original", color(images)) if o.input is None else ("input", color(images))
    rows, labels = [], []
    for start in range(0, n, STRIP_WIDTH):
        for label, arr in (("masked", shown), ("inpainted", color(result)), last):
            rows.append(arr[start:start + STRIP_WIDTH])
            labels.append(label)
    steps = len(ts) - 1
    s = dataclasses.replace(s, num=n)  # the name counts the images inpainted (one per mask of an npz)
    jtag = f"_jumps{jumps[0]}-{jumps[1]}" if jumps else ""
    stem = output_stem(s, out_dir, inf.step, f"{mask_tag(o.mask, mask)}_{corrector_tag(s, inf)}{jtag}")
    title = (f"inpainting, {s.corrector} {steps} steps" + (f", RePaint jumps j={jumps[0]} r={jumps[1]}" if jumps
                                                            else "")
             + ("" if cls is None else f", label {cls}, guidance w={s.guidance:g}") + f" ({calls} network calls)")
    arrays = dict(known=images if o.input is not None else None, original=images if o.input is None else None)
    return {"strip": visualize.save_strip(stem + ".png", rows, labels, title=title),
            "npz": save_npz(stem + ".npz", masked=masked, mask=masks, inpainted=result, network_calls=calls,
                            labels=inputs.get("labels"), **arrays)}
