"""Config files: ``"configs/x.py[:variant]"`` → a locked ConfigDict, the default layout, workdir names.

A config file defines ``get_config(variant="")``; ``configs/default.py`` holds the layout every experiment
starts from (:func:`default_config`). :func:`degradation_params` is what a config file puts under
``diffusion.degradation_params``: every parameter the degradation declares, with its default, so that any
of them can be overridden on the command line.
"""
from __future__ import annotations

import inspect
import os
import pathlib
import re
import runpy

import ml_collections

__all__ = ["load_config_file", "default_config", "config_name_and_variant", "default_workdir",
           "degradation_params", "DEFAULT_CONFIG_FILE"]

#: the layout of every experiment config (the repository's configs/default.py)
DEFAULT_CONFIG_FILE = pathlib.Path(__file__).resolve().parents[2] / "configs" / "default.py"


def load_config_file(path_with_variant: str) -> ml_collections.ConfigDict:
    """``"configs/x.py[:variant]"`` → ``get_config(variant)`` (or ``get_config()``), locked, as ``--config`` loads it."""
    path, sep, variant = str(path_with_variant).partition(":")
    if not path:
        raise ValueError(f"config path {path_with_variant!r} is invalid; allowed: 'path/to/config.py[:variant]'")
    module = runpy.run_path(path)
    if "get_config" not in module:
        raise ValueError(f"config file {path!r} has no get_config()")
    config = module["get_config"](variant) if sep else module["get_config"]()
    config.lock()
    return config


def default_config() -> ml_collections.ConfigDict:
    """``configs/default.py``'s ``get_config()``: the layout and the default of every field."""
    if not DEFAULT_CONFIG_FILE.is_file():
        raise FileNotFoundError(f"the default config layout {str(DEFAULT_CONFIG_FILE)!r} is missing "
                                "(jaxdiff runs from a checkout of its repository)")
    return load_config_file(str(DEFAULT_CONFIG_FILE))


def config_name_and_variant(path_with_variant: str) -> tuple[str, str]:
    """``"configs/cold_blur.py:mnist"`` → ``("cold_blur", "mnist")``; no variant → ``(name, "")``.

    Splits at the first colon after the file name, as ml_collections' ``--config`` does.
    """
    path, _, variant = path_with_variant.partition(":")
    name = os.path.splitext(os.path.basename(path.rstrip("/\\")))[0]
    if not name:
        raise ValueError(f"config path {path_with_variant!r} is invalid; allowed: 'path/to/config.py[:variant]'")
    return name, variant


def default_workdir(path_with_variant: str, root: str = "workdirs") -> str:
    """``workdirs/<config name>[_<variant>]`` for a ``--config`` value."""
    name, variant = config_name_and_variant(path_with_variant)
    tag = f"{name}_{variant}" if variant else name
    return os.path.join(root, re.sub(r"[^A-Za-z0-9_.=-]+", "_", tag))


def degradation_params(name: str, given=None) -> ml_collections.ConfigDict:
    """Every parameter degradation ``name`` declares, at its default, updated with ``given``.

    An integer given for a parameter whose default is a float is stored as a float (so that a later
    override with a fraction type-checks). Unknown names in ``given`` are kept: the validator reports them.
    An unregistered degradation gets ``given`` alone (the validator reports the name).
    """
    from jaxdiff.degradations import DEGRADATIONS  # noqa: PLC0415  (jax loads with it)

    given = dict(given or {})
    entry = DEGRADATIONS.get(name)
    declared = {} if entry is None else {k: v for k, v in entry.declared_params().items()
                                         if v is not inspect.Parameter.empty}
    out = dict(declared)
    for k, v in given.items():
        d = declared.get(k)
        if isinstance(d, float) and isinstance(v, int) and not isinstance(v, bool):
            v = float(v)
        out[k] = v
    return ml_collections.ConfigDict(out)
