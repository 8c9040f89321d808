"""Configs read back from older checkpoints, brought to today's layout.

``upgrade_stored_config(stored)`` renames moved keys (``sample.sampler`` → ``sample.corrector``), maps the
process of a config from before the one process (``diffusion.kind``, see :func:`upgrade_process`), drops
removed keys (``data.shuffle_buffer``, ``sample.prior``), turns JSON lists back into tuples where the layout
has tuples, and fills every field ``configs/default.py`` has that the stored config lacks with its default,
so that old runs keep loading. ``diffusion.degradation_params`` is completed with the stored degradation's
declared defaults (not default.py's blur parameters); ``diffusion.schedule_params`` is kept as stored.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import ml_collections

from jaxdiff.config.files import default_config, degradation_params

__all__ = ["upgrade_stored_config", "upgrade_process", "RENAMED", "REMOVED"]

#: old dotted key → today's
RENAMED = {"sample.sampler": "sample.corrector"}
#: keys that no longer exist → why
REMOVED = {
    "data.shuffle_buffer": "every epoch shuffles the whole source",
    "sample.prior": "the prior comes from the degradation",
    "diffusion.kind": "a process is its degradation and its noise schedule: set diffusion.degradation "
                      "('identity' for Gaussian diffusion) and diffusion.schedule ('constant' for cold diffusion)",
    "diffusion.noise_std": "cold diffusion's noise is diffusion.schedule='constant' with schedule_params.std",
    "diffusion.blur_sigma_max": "blurring diffusion's blur is diffusion.degradation='dct_blur' with "
                                "degradation_params.sigma_max",
    "diffusion.blur_d_min": "blurring diffusion's blur is diffusion.degradation='dct_blur' with "
                            "degradation_params.d_min",
}
_FREE_FORM = ("diffusion.degradation_params", "diffusion.schedule_params", "diffusion.t_sampling_params")


def _plain(node) -> dict:
    if isinstance(node, ml_collections.ConfigDict):
        return node.to_dict()
    if isinstance(node, Mapping):
        return {k: _plain(v) if isinstance(v, Mapping) else copy.deepcopy(v) for k, v in node.items()}
    raise TypeError(f"a stored config must be a mapping or a ConfigDict, got {type(node).__name__}")


def _section(raw: dict, dotted: str) -> tuple[dict | None, str]:
    *head, last = dotted.split(".")
    node = raw
    for h in head:
        node = node.get(h)
        if not isinstance(node, dict):
            return None, last
    return node, last


def _fill(stored: dict, default: dict, prefix: str) -> None:
    for key, dv in default.items():
        path = f"{prefix}{key}"
        if key not in stored:
            stored[key] = copy.deepcopy(dv)
        elif path in _FREE_FORM:
            continue
        elif isinstance(dv, dict) and isinstance(stored[key], dict):
            _fill(stored[key], dv, path + ".")
        elif isinstance(dv, tuple) and isinstance(stored[key], list):
            stored[key] = tuple(stored[key])


def upgrade_process(f: dict) -> None:
    """Maps a stored ``diffusion`` section with ``kind`` (before the one process) to degradation + schedule, in place.

    gaussian → degradation "identity" (the schedule as stored); cold → schedule "constant" with std = noise_std
    (the degradation as stored); blurring → degradation "dct_blur" with sigma_max = blur_sigma_max and d_min =
    blur_d_min (the schedule as stored). Sections without ``kind`` are left alone.
    """
    kind = f.pop("kind", None)
    noise_std = f.pop("noise_std", 0.0)
    sigma_max = f.pop("blur_sigma_max", 10.0)
    d_min = f.pop("blur_d_min", 0.001)
    if kind is None:
        return
    if kind == "gaussian":
        f["degradation"], f["degradation_params"] = "identity", {}
    elif kind == "cold":
        f["schedule"], f["schedule_params"] = "constant", {"std": float(noise_std)}
    elif kind == "blurring":
        f["degradation"] = "dct_blur"
        f["degradation_params"] = {"sigma_max": float(sigma_max), "d_min": float(d_min)}
    else:
        raise ValueError(f"stored config: diffusion.kind={kind!r} is not one jaxdiff ever wrote "
                         "('gaussian', 'cold' or 'blurring')")


def upgrade_stored_config(cfg) -> ml_collections.ConfigDict:
    """A stored config (a ConfigDict or the nested dicts of its JSON) in today's layout, locked."""
    raw = _plain(cfg)
    if isinstance(raw.get("diffusion"), dict):
        upgrade_process(raw["diffusion"])
    for old, new in RENAMED.items():
        node, last = _section(raw, old)
        if node is not None and last in node:
            value = node.pop(last)
            new_node, new_last = _section(raw, new)
            if new_node is not None:
                new_node.setdefault(new_last, value)
    for gone in REMOVED:
        node, last = _section(raw, gone)
        if node is not None:
            node.pop(last, None)
    _fill(raw, default_config().to_dict(), "")
    f = raw["diffusion"]
    if isinstance(f, dict) and isinstance(f.get("degradation_params"), dict):
        f["degradation_params"] = degradation_params(f.get("degradation"), f["degradation_params"]).to_dict()
    out = ml_collections.ConfigDict(raw)
    out.lock()
    return out
