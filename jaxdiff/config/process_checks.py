"""The checks of ``config.diffusion`` against its process: the degradation's and the schedule's builders judge their
own parameters, then the process they make (NumPy tables, nothing compiled) says which prediction, corrector,
spacing, loss weighting and t sampling apply."""
from __future__ import annotations

import inspect
import re
from typing import Callable, Optional, Sequence

from jaxdiff.config.names import _correctors, _degradations, _predictions, _schedules, _spacings, _t_samplings
from jaxdiff.config.problems import Problem, _as_dict, _one_of
from jaxdiff.registry import did_you_mean

__all__ = ["check_process_fields"]


# --- builders judge their own parameters ----------------------------------------------------------
def _describe(e: Exception) -> str:
    return str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"


def _mentions(name: str, message: str) -> bool:
    return re.search(rf"(?<![A-Za-z0-9_]){re.escape(name)}(?![A-Za-z0-9_])", message) is not None


def _unknown_params(prefix: str, what: str, params: dict, fn: Callable, skip: Sequence[str]) -> list:
    """Problems of keys ``fn`` does not take (none when it takes ``**kwargs``)."""
    sig = inspect.signature(fn)
    if any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
        return []
    allowed = sorted(k for k in sig.parameters if k not in skip)
    return [Problem(f"{prefix}.{k}", params[k], f"a parameter of {what}: {_one_of(allowed)}")
            for k in params if k not in allowed]


def _blame(prefix: str, params: dict, message: str, allowed: str, T: Optional[Problem] = None) -> Problem:
    """The one parameter the builder's message names; else ``T`` (when given and named); else the section."""
    named = [k for k in params if _mentions(k, message)]
    if len(named) == 1:
        return Problem(f"{prefix}.{named[0]}", params[named[0]], allowed)
    if not named and T is not None and _mentions("T", message):
        return T
    return Problem(prefix, {k: params[k] for k in named} if named else params, allowed)


def _degradation_problems(name: str, params: dict, *, T: int, image_size: int, channels: int,
                          schedule: Optional[Callable] = None) -> list:
    """``schedule(T)``: the config's noise schedule of T steps (None when it is invalid), for a degradation tied
    to the noise (``noise_levels``); such a degradation is not built without it (the schedule's problem is named)."""
    from jaxdiff.degradations import make_degradation  # noqa: PLC0415
    from jaxdiff.degradations.base import PROCESS_ARGS  # noqa: PLC0415

    prefix = "diffusion.degradation_params"
    entry = _degradations()[name]
    unknown = _unknown_params(prefix, repr(name), params, entry.builder, ("T", "image_size", "channels") + PROCESS_ARGS)
    if unknown:
        return unknown
    if entry.needs_noise_levels and schedule is None:
        return []

    def build(steps: int):
        extra = {}
        if entry.needs_noise_levels:
            from jaxdiff.processes import noise_levels  # noqa: PLC0415

            extra["noise_levels"] = noise_levels(schedule(steps))
        make_degradation(name, T=steps, image_size=image_size, channels=channels, **params, **extra)

    try:
        build(T)
    except Exception as e:  # noqa: BLE001  (any failure to build is this config's problem; say which)
        where = f"diffusion.degradation={name!r} with data.image_size={image_size}, data.channels={channels}"
        limit = _largest_accepted(build, T) if _mentions("T", str(e)) else None
        bound = f"<= {limit} for {where}" if limit and f"<= {limit}" not in str(e) else f"what {where} accepts"
        t_problem = Problem("diffusion.T", T, f"{bound} ({_describe(e)})")
        return [_blame(prefix, params, str(e), f"what the {name!r} builder accepts: {_describe(e)}", t_problem)]
    return []


def _largest_accepted(build: Callable[[int], None], T: int) -> Optional[int]:
    """The largest t < T that ``build(t)`` accepts (acceptance falls with t), or None (not even t = 1)."""

    def accepts(t):
        try:
            build(t)
            return True
        except Exception:  # noqa: BLE001
            return False

    if T <= 1 or not accepts(1):
        return None
    lo, hi = 1, T  # build(lo) accepted, build(hi) refused
    while hi - lo > 1:
        mid = (lo + hi) // 2
        lo, hi = (mid, hi) if accepts(mid) else (lo, mid)
    return lo


def _schedule_problems(name: str, params: dict, T: int) -> list:
    prefix = "diffusion.schedule_params"
    fn = _schedules()[name]
    unknown = _unknown_params(prefix, f"schedule {name!r}", params, fn, ("T",))
    if unknown:
        return unknown
    try:
        fn(T, **params)
    except Exception as e:  # noqa: BLE001
        return [_blame(prefix, params, str(e), f"what schedule {name!r} accepts: {_describe(e)}")]
    return []


def _build_process(config, values: dict, ok):
    """The config's process when its degradation and schedule are valid (NumPy tables, nothing compiled), else None."""
    if not ok("diffusion.degradation", "diffusion.degradation_params", "diffusion.schedule",
              "diffusion.schedule_params", "diffusion.T", "data.image_size", "data.channels"):
        return None
    from jaxdiff.processes import build_process  # noqa: PLC0415

    try:
        return build_process(config)
    except Exception:  # noqa: BLE001  (each part was judged on its own above; a mismatch of the two is below)
        return None


def _check_process(process, values: dict, ok, add) -> None:
    """What the process allows: the prediction, the corrector, the spacing, the loss weighting, the t sampling."""
    v = values.get
    what = process.describe()
    if ok("diffusion.prediction"):
        pred = v("diffusion.prediction")
        why = _predictions()[pred].requirement(process)
        if why is not None:
            add("diffusion.prediction", pred, f"{_one_of(process.predictions)} for {what} ({pred!r} {why})")
    if ok("sample.corrector"):
        name = v("sample.corrector")
        why = _correctors()[name].applies(process)
        if why is not None:
            fits = [n for n, c in _correctors().items() if c.applies(process) is None]
            add("sample.corrector", name, f"{_one_of(fits)} for {what} ({name!r} {why})")
    if ok("sample.spacing") and v("sample.spacing") == "karras":
        from jaxdiff.sampling import model_sigmas  # noqa: PLC0415

        try:
            model_sigmas(process)
        except ValueError as e:
            add("sample.spacing", "karras", f"{_one_of(n for n in _spacings() if n != 'karras')} for {what} ({e})")
    if ok("diffusion.loss_weighting"):
        from jaxdiff.losses import check_weighting  # noqa: PLC0415

        try:
            check_weighting(process, v("diffusion.loss_weighting"))
        except ValueError as e:
            add("diffusion.loss_weighting", v("diffusion.loss_weighting"), f"'none' or 'soft' here: {e}")
    if ok("diffusion.t_sampling", "diffusion.t_sampling_params"):
        from jaxdiff.processes.tsampling import t_logits  # noqa: PLC0415

        params = _as_dict(v("diffusion.t_sampling_params"))
        name = v("diffusion.t_sampling")
        unknown = _unknown_params("diffusion.t_sampling_params", f"t sampling {name!r}", params,
                                  _t_samplings()[name], ("process",))
        if unknown:
            for p in unknown:
                add(*p)
        else:
            try:
                t_logits(process, name, **params)
            except ValueError as e:
                add(*_blame("diffusion.t_sampling_params", params, str(e), f"what t sampling {name!r} accepts: {e}"))


def _check_degradation(values: dict, ok, add) -> None:
    """The degradation: its name, its registered facts, then its builder."""
    v = values.get
    if not ok("diffusion.degradation"):
        return
    name = v("diffusion.degradation")
    registry = _degradations()
    if name not in registry:
        add("diffusion.degradation", name, f"{_one_of(registry)} ('identity' for Gaussian diffusion)"
            f"{did_you_mean(name, registry)}")
        return
    entry = registry[name]
    if entry.color_only and ok("data.channels") and v("data.channels") != 3:
        add("data.channels", v("data.channels"),
            f"3 for diffusion.degradation={name!r}, which needs color images (data.source={v('data.source')!r}); "
            "use a color variant of the config (e.g. ':cifar10') or an RGB source: "
            "--config.data.source=<rgb source> --config.data.channels=3")
    if ok("data.end_source"):
        end = v("data.end_source")
        if entry.needs_end_source and not end:
            add("data.end_source", end, f"the data source the degradation moves toward (e.g. 'digits:classes=5-9'); "
                f"required by diffusion.degradation={name!r}")
        elif end and not entry.needs_end_source:
            users = " or ".join(repr(n) for n, e in registry.items() if e.needs_end_source) or "a degradation that needs one"
            add("data.end_source", end, f"'' unless diffusion.degradation={users} (only those use a second data source)")
    if ok("diffusion.degradation_params", "diffusion.T", "data.image_size", "data.channels"):
        for p in _degradation_problems(name, _as_dict(v("diffusion.degradation_params")), T=int(v("diffusion.T")),
                                       image_size=int(v("data.image_size")), channels=int(v("data.channels")),
                                       schedule=_schedule_builder(values, ok)):
            add(*p)


def _schedule_builder(values: dict, ok) -> Optional[Callable]:
    """``T -> the config's noise schedule of T steps`` when it builds at diffusion.T, else None."""
    if not ok("diffusion.schedule", "diffusion.schedule_params", "diffusion.T"):
        return None
    name, params = values.get("diffusion.schedule"), _as_dict(values.get("diffusion.schedule_params"))
    fn = _schedules().get(name)
    if fn is None:
        return None
    try:
        fn(int(values.get("diffusion.T")), **params)
    except Exception:  # noqa: BLE001  (the schedule's own check names the problem)
        return None
    return lambda steps: fn(steps, **params)


def check_process_fields(config, values: dict, ok, add) -> None:
    """Every problem of the process's fields: the degradation, the schedule, then what their process allows."""
    v = values.get
    _check_degradation(values, ok, add)
    if ok("diffusion.schedule", "diffusion.schedule_params", "diffusion.T"):
        for p in _schedule_problems(v("diffusion.schedule"), _as_dict(v("diffusion.schedule_params")),
                                    int(v("diffusion.T"))):
            add(*p)
    process = _build_process(config, values, ok)
    if process is not None:
        _check_process(process, values, ok, add)
