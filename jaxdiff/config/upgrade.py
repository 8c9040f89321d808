"""Configs read back from older checkpoints, brought to today's layout.

``upgrade_stored_config(stored)`` renames moved keys (``sample.sampler`` → ``sample.corrector``), drops
removed ones (``data.shuffle_buffer``, ``sample.prior``), turns JSON lists back into tuples where the layout
has tuples, and fills every field ``configs/default.py`` has that the stored config lacks with its default,
so that old runs keep loading. ``diffusion.degradation_params`` is completed with the stored degradation's
declared defaults (not default.py's blur parameters); ``diffusion.schedule_params`` is kept as stored.
"""
from __future__ import annotations

import copy
from collections.abc import Mapping

import ml_collections

from jaxdiff.config.files import default_config, degradation_params

__all__ = ["upgrade_stored_config", "RENAMED", "REMOVED"]

#: old dotted key → today's
RENAMED = {"sample.sampler": "sample.corrector"}
#: keys that no longer exist → why
REMOVED = {
    "data.shuffle_buffer": "every epoch shuffles the whole source",
    "sample.prior": "the prior comes from the degradation",
}
_FREE_FORM = ("diffusion.degradation_params", "diffusion.schedule_params")


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


def upgrade_stored_config(cfg) -> ml_collections.ConfigDict:
    """A stored config (a ConfigDict or the nested dicts of its JSON) in today's layout, locked."""
    raw = _plain(cfg)
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
