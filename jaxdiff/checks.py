"""The one test of "is this an integer" and the one integer-argument check, for every module that takes one.

``check_int(value, field="n_iter", lo=1, owner="prior 'superres'")`` returns ``int(value)`` or raises one
ValueError: ``prior 'superres': n_iter must be an integer >= 1, got 0`` (without an owner:
``data.image_size=0: must be an integer >= 1``). Booleans are not integers here.
"""
from __future__ import annotations

import numbers
from typing import Any, Optional

__all__ = ["is_int", "check_int"]


def is_int(v: Any) -> bool:
    """True for Python and NumPy integers, False for booleans (``True`` is not a count)."""
    return isinstance(v, numbers.Integral) and not isinstance(v, bool) and type(v).__name__ != "bool_"


def check_int(value: Any, *, field: str, lo: Optional[int] = None, owner: str = "") -> int:
    """``int(value)`` when it is an integer ≥ ``lo`` (no bound when None), else one ValueError naming it."""
    if not is_int(value) or (lo is not None and value < lo):
        bound = f" >= {lo}" if lo is not None else ""
        if owner:
            raise ValueError(f"{owner}: {field} must be an integer{bound}, got {value!r}")
        raise ValueError(f"{field}={value!r}: must be an integer{bound}")
    return int(value)
