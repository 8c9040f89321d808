"""Integer lists as people type them: ``"7,22-24"`` → (7, 22, 23, 24) (digits classes, step lists)."""
from __future__ import annotations

import re

__all__ = ["parse_int_ranges"]

_PART = re.compile(r"(\d+)(?:-(\d+))?")


def parse_int_ranges(spec: str, *, field: str, example: str = "7,22-24", allow_empty: bool = False) -> tuple[int, ...]:
    """Comma-separated integers ≥ 0 and inclusive ranges ``a-b`` (a ≤ b) → sorted unique tuple.

    Raises one ValueError naming ``field``, the value, the bad part and an example of what is allowed.
    """
    out: set[int] = set()
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        m = _PART.fullmatch(part)
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"{field}={spec!r}: bad part {part!r}; allowed: comma-separated integers and "
                             f"ranges such as {example!r}")
        lo = int(m.group(1))
        out.update(range(lo, int(m.group(2) or lo) + 1))
    if not out and not allow_empty:
        raise ValueError(f"{field}={spec!r}: no integer given; allowed: e.g. {example!r}")
    return tuple(sorted(out))
