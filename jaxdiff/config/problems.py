"""The pieces every config check shares: :class:`Problem`, :class:`ConfigError` and the field specs.

A :class:`Spec` says what values a field allows (``Int``, ``Real``, ``Bool``, ``Str``, ``Choice`` of a registry's
names, ``IntSeq``, ``Section``); a failed check is a :class:`Problem` naming the field, the value and what is
allowed, and all of a config's problems end in one :class:`ConfigError`.
"""
from __future__ import annotations

import math
import numbers
from collections.abc import Mapping
from typing import Any, Callable, Iterable, NamedTuple, Optional, Sequence

from jaxdiff.checks import is_int

__all__ = ["MISSING", "Problem", "ConfigError", "Spec", "Int", "Real", "Bool", "Str", "Choice", "IntSeq", "Section"]


# --- errors ---------------------------------------------------------------------------------------
class _Missing:
    def __repr__(self) -> str:
        return "<missing>"


MISSING = _Missing()


class Problem(NamedTuple):
    """One invalid field: its dotted path, its value and a description of the allowed values."""

    field: str
    value: Any
    allowed: str

    def __str__(self) -> str:
        return f"{self.field}={_short_repr(self.value)} is invalid; allowed: {self.allowed}"


class ConfigError(ValueError):
    """Every problem found in a config; ``problems`` lists them, ``field`` is the first one's path."""

    def __init__(self, problems: Sequence[Problem]):
        self.problems = list(problems)
        if len(self.problems) == 1:
            msg = f"invalid config: {self.problems[0]}"
        else:
            msg = f"invalid config ({len(self.problems)} problems):\n" + "\n".join(f"  - {p}" for p in self.problems)
        super().__init__(msg)

    @property
    def field(self) -> str:
        return self.problems[0].field

    @property
    def fields(self) -> list:
        return [p.field for p in self.problems]


def _short_repr(value: Any) -> str:
    r = repr(_as_dict(value) if _is_section(value) else value)
    return r if len(r) <= 120 else r[:117] + "..."


# --- values ---------------------------------------------------------------------------------------
def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _is_section(v) -> bool:
    return isinstance(v, Mapping) or hasattr(v, "to_dict")  # a ConfigDict is not a Mapping


def _as_dict(v) -> dict:
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return {k: (_as_dict(x) if _is_section(x) else x) for k, x in dict(v).items()}


def _one_of(names: Iterable) -> str:
    return "one of " + ", ".join(repr(n) for n in names)


# --- field specs ----------------------------------------------------------------------------------
class Spec(NamedTuple):
    """What one field may hold: ``check(value) -> bool`` and the text of the allowed values (or a function)."""

    check: Callable[[Any], bool]
    text: Callable[[], str] | str

    @property
    def allowed(self) -> str:
        return self.text() if callable(self.text) else self.text


def Int(lo: Optional[int] = None, hi: Optional[int] = None) -> Spec:  # noqa: N802
    text = (("an integer" if lo is None else f"an integer >= {lo}") if hi is None else f"an integer in [{lo}, {hi}]")
    return Spec(lambda v: is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi), text)


def Real(lo: float, hi: Optional[float] = None, *, lo_open: bool = False, hi_open: bool = False) -> Spec:  # noqa: N802
    def check(v):
        if not _is_real(v):
            return False
        v = float(v)
        return (v > lo if lo_open else v >= lo) and (hi is None or (v < hi if hi_open else v <= hi))

    if hi is None:
        text = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return Spec(check, text)


def Bool() -> Spec:  # noqa: N802
    return Spec(lambda v: isinstance(v, bool), "True or False")


def Str(*, nonempty: bool = True) -> Spec:  # noqa: N802
    return Spec(lambda v: isinstance(v, str) and (bool(v.strip()) or not nonempty),
                "a non-empty string" if nonempty else "a string")


def Choice(names: Callable[[], Iterable]) -> Spec:  # noqa: N802
    """One of ``names()``, read when checked (a registry filled at import time, or by a plugin later)."""
    return Spec(lambda v: isinstance(v, str) and v in tuple(names()), lambda: _one_of(names()))


def IntSeq(lo: int = 1, *, nonempty: bool = True) -> Spec:  # noqa: N802
    return Spec(lambda v: isinstance(v, (tuple, list)) and (len(v) > 0 or not nonempty) and all(is_int(x) and x >= lo for x in v),
                f"a {'non-empty ' if nonempty else ''}tuple of integers >= {lo}")


def Section() -> Spec:  # noqa: N802
    return Spec(_is_section, "a ConfigDict of keyword arguments")
