"""How pytest-xdist's workers share the suite (used by tests/conftest.py under ``--dist=loadgroup``).

A worker takes whole groups: a group is one test module, so that its module-scoped fixtures (a trained tiny
run) are built once, except that every module importing tests/helpers/reliability.py is one group,
"reliability" (they share that harness's session fixtures: one reference run). Groups go out longest first
and a worker that finishes takes the longest group left (greedy longest-processing-time), the length of a
module being the seconds it took when tests/durations.json was last written (``JAXDIFF_WRITE_DURATIONS=1
python -m pytest``); a module it does not list counts as the median of those it does.

xdist's own ``loadgroup`` reads ``xdist_group`` marks through the test ids, which pytest 9.2 no longer lets
it change (pytest-xdist issue 1386); this scheduler needs no marks: a test's group follows from its file.
"""
from __future__ import annotations

import functools
import json
import os
import re
import statistics
from pathlib import Path
from typing import Optional

TESTS = Path(__file__).resolve().parent.parent
DURATIONS = TESTS / "durations.json"
_USES_HARNESS = re.compile(r"^\s*(from\s+helpers\.reliability\s+import|from\s+helpers\s+import\s+[^\n]*\breliability\b|"
                           r"import\s+helpers\.reliability)", re.M)


@functools.lru_cache(maxsize=None)
def group_of(path: str) -> str:
    """The group of the test file at ``path`` (relative to the repository root, or absolute)."""
    p = Path(path) if os.path.isabs(path) else TESTS.parent / path
    try:
        text = p.read_text()
    except OSError:
        text = ""
    return "reliability" if _USES_HARNESS.search(text) else p.relative_to(TESTS.parent).as_posix()


@functools.lru_cache(maxsize=1)
def _file_seconds() -> dict:
    try:
        return {k: float(v) for k, v in json.loads(DURATIONS.read_text()).items()}
    except (OSError, ValueError):
        return {}


def file_seconds(path: str) -> float:
    known = _file_seconds()
    return known.get(path, statistics.median(known.values()) if known else 1.0)


def order_items(items: list, root: Path) -> None:
    """Sorts ``items`` in place: groups by decreasing expected seconds, each group's tests in their order."""
    group = {id(it): group_of(Path(str(it.path)).resolve().relative_to(root).as_posix()) for it in items}
    weight: dict = {}
    for f in dict.fromkeys(Path(str(it.path)).resolve().relative_to(root).as_posix() for it in items):
        weight[group_of(f)] = weight.get(group_of(f), 0.0) + file_seconds(f)
    first: dict = {}
    for i, it in enumerate(items):
        first.setdefault(group[id(it)], i)
    items.sort(key=lambda it: (-weight[group[id(it)]], first[group[id(it)]]))


def make_scheduler(config, log):
    """xdist's scope scheduler with :func:`group_of` as the scope, in the workers' (already sorted) order."""
    from xdist.scheduler import LoadScopeScheduling

    class GroupScheduling(LoadScopeScheduling):
        def __init__(self, config, log=None):
            super().__init__(config, log)
            config.option.loadscopereorder = False  # keep the longest-first order the workers collected

        def _split_scope(self, nodeid: str) -> str:
            return group_of(nodeid.split("::", 1)[0])

    return GroupScheduling(config, log)


def write_durations(seconds: dict, path: Optional[Path] = None) -> None:
    """Merges ``{file: seconds}`` of a run into tests/durations.json (files not run keep their old value)."""
    path = path or DURATIONS
    old = {}
    if path.exists():
        old = json.loads(path.read_text())
    old.update({k: round(v, 1) for k, v in seconds.items()})
    path.write_text(json.dumps(dict(sorted(old.items())), indent=1) + "\n")
