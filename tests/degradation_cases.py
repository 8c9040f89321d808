"""The one table of degradation test cases, shared by test_degradations.py and test_sampling.py.

One or more rows per built-in degradation, with small test parameters: a new degradation adds a row here
and gets every property check (F_0 = identity, severity non-decreasing, per-example t, vmap, the single
step, oracle recovery by the samplers). :func:`check_table` fails when a built-in has no row or a row
names a parameter its builder does not declare.
"""
import inspect
from typing import Any, NamedTuple

from jaxdiff import degradations as D

N = 16  # image size of every case


class Case(NamedTuple):
    id: str
    name: str  # the registry name
    T: int
    params: dict[str, Any]


CASES = [
    Case("decolor", "decolor", 4, {}),
    Case("blur_reflect", "blur", 5, dict(kernel_size=5, std=1.0, routine="incremental", padding="reflect")),
    Case("blur_circular_mean", "blur", 4, dict(kernel_size=5, std=0.8, routine="constant", to_mean=True)),
    Case("heat", "heat", 6, dict(sigma_min=0.5, sigma_max=16.0)),
    Case("inpaint_random", "inpaint", 5, dict(kernel_std=0.5, initial_mask=1.0)),
    Case("inpaint_centered", "inpaint", 4, dict(kernel_std=0.5, initial_mask=1.0, centered=True)),
    Case("fade_random", "fade", 5, dict(kernel_std=0.5, initial_mask=1.0, centered=False)),
    Case("fade_centered", "fade", 4, dict(kernel_std=1.0, initial_mask=2.0)),
    Case("superres_area", "superres", 3, {}),
    Case("superres_bicubic", "superres", 3, dict(method="bicubic")),
    Case("snow", "snow", 6, dict(thr_end=0.6, sigma_end=4.0)),
    Case("interpolate", "interpolate", 6, {}),
    Case("dct_blur", "dct_blur", 5, dict(sigma_max=6.0, d_min=0.01)),
    Case("identity", "identity", 3, {}),
]
CASE_IDS = [c.id for c in CASES]
_BUILT: dict = {}


def builtin_names() -> set[str]:
    """The registered degradations whose builder lives in the library (not one a test registered)."""
    return {k for k, e in D.DEGRADATIONS.items() if e.builder.__module__.startswith(D.__name__ + ".")}


def rows_for(name: str) -> list[Case]:
    rows = [c for c in CASES if c.name == name]
    assert rows, f"degradation {name!r} has no row in tests/degradation_cases.py CASES"
    return rows


def check_table() -> None:
    """AssertionError when a built-in degradation has no row or a row names an undeclared parameter."""
    missing = sorted(builtin_names() - {c.name for c in CASES})
    assert not missing, f"built-in degradations without a row in tests/degradation_cases.py: {missing}"
    for c in CASES:
        assert c.name in D.DEGRADATIONS, f"case {c.id!r}: {c.name!r} is not a registered degradation"
        declared = D.DEGRADATIONS[c.name].declared_params()
        unknown = sorted(set(c.params) - set(declared))
        assert not unknown, f"case {c.id!r}: {c.name!r} declares no parameter(s) {unknown}; it has {sorted(declared)}"
        required = [k for k, v in declared.items() if v is inspect.Parameter.empty and k not in c.params]
        assert not required, f"case {c.id!r}: required parameter(s) {required} missing"


def build(case_id: str, *, channels: int = 3) -> D.Degradation:
    """The degradation of row ``case_id`` at image size N (built once per channel count)."""
    if (case_id, channels) not in _BUILT:
        c = next(c for c in CASES if c.id == case_id)
        _BUILT[case_id, channels] = D.make_degradation(c.name, T=c.T, image_size=N, channels=channels, **c.params)
    return _BUILT[case_id, channels]
