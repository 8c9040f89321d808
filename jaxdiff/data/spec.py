"""Source strings (``config.data.source``): ``kind[:target][:split][:key=value…]`` → a :class:`SourceSpec`.

The grammar is in :func:`jaxdiff.data.load_source`; every malformed string is one DataError naming the field,
before anything is read.
"""
from __future__ import annotations

import dataclasses
import re
from typing import Optional

from jaxdiff.data.arrays import DataError
from jaxdiff.ranges import parse_int_ranges

__all__ = ["SOURCES", "SourceSpec", "parse_source", "parse_classes", "photo_option"]


_OPTIONS = {"digits": ("classes",), "tfds": ("classes", "data_dir"), "folder": ("classes",),
            "npz": ("classes",), "photos": ("seed", "crops")}
#: the source kinds a source string may start with
SOURCES = tuple(_OPTIONS)
_VERSION = re.compile(r"^\d+(\.(\d+|\*))*$")


def _split_tokens(s: str) -> list[str]:
    """Splits on ':' outside square brackets (tfds slices such as ``train[:90%]`` keep their colon)."""
    tokens, depth, cur = [], 0, []
    for ch in s:
        depth += (ch == "[") - (ch == "]")
        if ch == ":" and depth == 0:
            tokens.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
    tokens.append("".join(cur))
    return tokens


@dataclasses.dataclass(frozen=True)
class SourceSpec:
    """A parsed source string: ``kind`` (one of :data:`SOURCES`), ``target`` (tfds name with version, or a path;
    "" for digits), ``split`` (None when the string names none) and the ``key=value`` ``options``."""

    kind: str
    target: str
    split: Optional[str]
    options: dict


def parse_source(source: str, field: str = "data.source") -> SourceSpec:
    """Splits a source string (grammar in :func:`load_source`); one DataError naming ``field`` if it is malformed."""
    if not isinstance(source, str) or not source.strip():
        raise DataError(f"{field}={source!r}: expected a source string; allowed: 'digits[:split]', "
                        "'photos[:split]', 'tfds:<name>[:split]', 'folder:<path>', 'npz:<path>'")
    kind, _, rest = source.strip().partition(":")
    if kind not in _OPTIONS:
        raise DataError(f"{field}={source!r}: unknown source kind {kind!r}; allowed: {sorted(_OPTIONS)}")
    tokens = _split_tokens(rest) if rest else []
    options = {}
    while tokens and re.match(r"^[A-Za-z_]+=", tokens[-1]):
        key, _, value = tokens.pop().partition("=")
        if key not in _OPTIONS[kind]:
            raise DataError(f"{field}={source!r}: unknown option {key!r} for {kind!r} sources; "
                            f"allowed: {list(_OPTIONS[kind])}")
        options[key] = value
    split = None
    if kind == "digits":
        if len(tokens) > 1:
            raise DataError(f"{field}={source!r}: expected 'digits[:split][:classes=…]'")
        split = tokens[0] if tokens and tokens[0] else None
        target = ""
    elif kind == "tfds":
        if not tokens or not tokens[0]:
            raise DataError(f"{field}={source!r}: expected 'tfds:<name>[:version][:split]', e.g. 'tfds:mnist'")
        target = tokens.pop(0)
        if tokens and _VERSION.match(tokens[0]):
            target += ":" + tokens.pop(0)
        if len(tokens) > 1:
            raise DataError(f"{field}={source!r}: expected 'tfds:<name>[:version][:split]'")
        split = tokens[0] if tokens and tokens[0] else None
    elif kind == "photos":
        split, target = parse_photos(tokens, options, source, field), ""
    else:
        target = ":".join(tokens)
        if not target:
            raise DataError(f"{field}={source!r}: expected '{kind}:<path>'")
    return SourceSpec(kind, target, split, options)


def parse_classes(spec: str) -> tuple[int, ...]:
    """``"0-4"`` → (0, 1, 2, 3, 4); ``"1,3,7"``; ``"0-2,7"``. Sorted, unique; DataError naming ``classes=``."""
    try:
        return parse_int_ranges(spec, field="classes", example="0-2,7")
    except ValueError as e:
        raise DataError(str(e)) from None


def photo_option(spec_options: dict, key: str, default: int, lo: int, source: str, field: str) -> int:
    value = spec_options.get(key)
    if value is None:
        return default
    if not re.fullmatch(r"\d+", value) or int(value) < lo:
        raise DataError(f"{field}={source!r}: {key}={value!r} must be an integer ≥ {lo}")
    return int(value)


def parse_photos(tokens: list, options: dict, source: str, field: str) -> Optional[str]:
    """The split of a ``photos[:split][:seed=…][:crops=…]`` string (options checked here, before any load)."""
    if len(tokens) > 1 or (tokens and tokens[0] not in ("", "train", "test", "all")):
        raise DataError(f"{field}={source!r}: expected 'photos[:split][:seed=N][:crops=N]' with split "
                        "'train', 'test' (the right quarter of each photograph, fixed) or 'all'")
    photo_option(options, "seed", 0, 0, source, field)
    photo_option(options, "crops", 1, 1, source, field)
    return tokens[0] if tokens and tokens[0] else None
