"""Command-line config flags: ``--config=configs/x.py[:variant]`` and ``--config.<field>=…`` overrides.

``parse_flags`` is an ``absl.app.run(main, flags_parser=parse_flags)`` parser. It parses like absl, but a
config that cannot be loaded or overridden — a missing file, an exception in ``get_config``, an override
naming a field that does not exist (with a did-you-mean; a renamed field names its new key), a value of the
wrong type — becomes ONE ``FATAL Flags parsing error:`` line and exit status 2 (bad config), not a traceback.
"""
from __future__ import annotations

import difflib
import os
import sys
from typing import Optional, Sequence

from jaxdiff.config.files import load_config_file
from jaxdiff.config.upgrade import REMOVED, RENAMED

__all__ = ["parse_flags", "describe_unknown_override", "EXIT_BAD_CONFIG"]

#: train.py's exit status for a bad config (docs/RELIABILITY.md)
EXIT_BAD_CONFIG = 2


def _argv_config(argv: Sequence[str], flag_name: str) -> tuple[Optional[str], list]:
    """The ``--config`` value and the ``(dotted path, raw arg)`` of each ``--config.<path>`` override."""
    path, overrides = None, []
    args = list(argv[1:])
    i = 0
    while i < len(args):
        a = args[i]
        i += 1
        if a == "--":
            break
        if not a.startswith("-"):
            continue
        body = a.lstrip("-")
        if body.startswith(f"no{flag_name}."):  # --noconfig.flag sets a boolean field to False
            body = body[2:]
        if body == flag_name and i < len(args):
            path = args[i]
            i += 1
        elif body.startswith(f"{flag_name}="):
            path = body.split("=", 1)[1]
        elif body.startswith(f"{flag_name}."):
            overrides.append((body[len(flag_name) + 1:].split("=", 1)[0], a))
    return path, overrides


def describe_unknown_override(config, dotted: str) -> Optional[str]:
    """Why ``config.<dotted>`` does not exist (with a did-you-mean or its new name), or None if it does."""
    if dotted in RENAMED:
        return f"config field {dotted!r} was renamed to {RENAMED[dotted]!r}: use --config.{RENAMED[dotted]}=…"
    if dotted in REMOVED:
        return f"config field {dotted!r} was removed ({REMOVED[dotted]})"
    node, walked = config, []
    for seg in dotted.split("."):
        if not hasattr(node, "keys"):
            return f"config field {'.'.join(walked)!r} is a {type(node).__name__}, not a section: it has no field {seg!r}"
        keys = list(node.keys())
        if seg not in keys:
            where = ".".join(walked) or "the config"
            close = difflib.get_close_matches(seg, keys, n=1)
            mean = f"; did you mean {'.'.join(walked + [close[0]])!r}?" if close else ""
            return f"unknown config field {'.'.join(walked + [seg])!r}{mean} (fields of {where}: {', '.join(sorted(keys))})"
        node = node[seg]
        walked.append(seg)
    return None


def _missing_file_hint(path_with_variant: Optional[str]) -> str:
    path = (path_with_variant or "").partition(":")[0]
    if os.path.isfile(path):
        return "the file exists but could not be loaded"
    folder = os.path.dirname(path) or "."
    try:
        names = sorted(f for f in os.listdir(folder) if f.endswith(".py") and not f.startswith("_"))
    except OSError:
        return f"no such file (and no directory {folder!r})"
    close = difflib.get_close_matches(os.path.basename(path), names, n=1)
    mean = f"did you mean {os.path.join(folder, close[0])!r}? " if close else ""
    return f"no such file; {mean}configs in {folder!r}: {', '.join(names)}"


def _unknown_override_message(argv: Sequence[str], flag_name: str, error: Exception) -> str:
    path, overrides = _argv_config(argv, flag_name)
    if path:
        try:
            config = load_config_file(path)
        except Exception:  # noqa: BLE001  (the message below still names the override)
            config = None
        for key, raw in overrides if config is not None else ():
            why = describe_unknown_override(config, key)
            if why:
                return f"{raw}: {why}"
    detail = str(error).strip("'\"").replace("\\n", " ")
    return f"a --{flag_name}.<field> override names no field of the config: {detail}"


def parse_flags(argv: Sequence[str], *, flag_name: str = "config", flag_values=None) -> list:
    """An ``absl.app.run`` flags parser: ``app.run(main, flags_parser=parse_flags)``.

    Define the flag without a default (``DEFINE_config_file("config", None)``): with a default path
    ml_collections applies the overrides at definition time, before any parser runs. Returns the
    remaining arguments; a bad config exits with status 2 after one line, other flag errors with 1.
    """
    from absl import flags  # noqa: PLC0415

    fv = flags.FLAGS if flag_values is None else flag_values
    code = EXIT_BAD_CONFIG
    try:
        rest = fv(list(argv))
        # ml_collections defers a missing config file to the first attribute access (a traceback in main)
        value = fv[flag_name].value if flag_name in fv else None
        if value is None or type(value).__name__ != "_ErrorConfig":
            return rest
        path, _ = _argv_config(argv, flag_name)
        msg = f"--{flag_name}: cannot load {path!r}: {_missing_file_hint(path)}"
    except flags.Error as e:
        msg = str(e)
        if "Error whilst parsing config file" in msg:
            # ml_collections folds the config file's traceback into the message: keep its last line.
            lines = [ln.strip() for ln in msg.splitlines() if ln.strip()]
            msg = f"--{flag_name}: {lines[-1]}" if lines else msg
        elif f"--{flag_name}" not in msg:
            code = 1  # not about the config: absl's usage error status
    except (KeyError, AttributeError) as e:
        msg = _unknown_override_message(argv, flag_name, e)
    sys.stderr.write(f"FATAL Flags parsing error: {msg}\n")
    raise SystemExit(code)
