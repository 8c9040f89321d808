"""One check of a whole experiment config, before anything is built or compiled.

``validate_config(config, num_devices=8)`` looks at every field of the layout in ``configs/default.py``
(types and ranges), then at what the fields mean together (a cold process predicts x0, the UNet must
be able to halve the image, the batch must split over the devices, the degradation's builder must
accept its parameters, …). All problems are gathered into ONE :class:`ConfigError` (a ``ValueError``)
whose message names each field by its dotted path, its value and what is allowed::

    invalid config: train.ema_decay=1.5 is invalid; allowed: a number in [0, 1)

Names are checked against the registries the configs use (``jaxdiff.degradations.DEGRADATIONS``,
``jaxdiff.schedules.SCHEDULES``, ``jaxdiff.sampling.CORRECTORS``, …), imported lazily; a registry that
does not exist yet (or lacks a name that is being implemented) falls back to the known names below.
Free-form keyword sections (``diffusion.degradation_params``, ``diffusion.schedule_params``) are judged by
calling their builder once (its error is re-raised naming ``diffusion.degradation_params.<name>``); the
``model`` section is also passed to ``jaxdiff.models.unet.validate_unet_config`` when it exists.

A key that is not in :data:`FIELDS` (nor :data:`OPTIONAL_FIELDS`, nor the UNet's ``MODEL_FIELDS``) is an
error with a did-you-mean, and so is a missing one: a new config field goes into ``configs/default.py``
AND into :data:`FIELDS` (tests/test_config_validation.py checks that the two agree).

Also here: :func:`load_config` (``"configs/x.py:variant"`` → ConfigDict, the way ``--config`` does it),
:func:`config_name_and_variant` / :func:`default_workdir` for workdir names, and :func:`parse_flags`, an
``absl.app.run(main, flags_parser=parse_flags)`` parser that turns a typo'd ``--config.a.b=…`` override
(a traceback in ml_collections) into one clean line with a did-you-mean.
"""
from __future__ import annotations

import difflib
import importlib
import inspect
import math
import numbers
import os
import re
import sys
from collections.abc import Mapping
from typing import Any, Callable, Iterable, NamedTuple, Optional, Sequence

__all__ = [
    "ConfigError",
    "Problem",
    "validate_config",
    "FIELDS",
    "OPTIONAL_FIELDS",
    "FREE_FORM",
    "Source",
    "load_config",
    "config_name_and_variant",
    "default_workdir",
    "parse_flags",
    "describe_unknown_override",
    "parse_source",
]

# --- names known when a registry is missing or still being filled ---------------------------------
KNOWN_KINDS = ("cold", "gaussian")
KNOWN_DEGRADATIONS = ("blur", "inpaint", "fade", "superres", "snow", "decolor", "interpolate")
KNOWN_SCHEDULES = ("linear", "cosine", "offset_cosine", "sigmoid")
KNOWN_SAMPLERS = ("ddpm", "ddim", "cold_naive", "cold_improved")
KNOWN_PREDICTIONS = ("eps", "x0", "v")
KNOWN_LOSSES = ("l1", "l2")
KNOWN_WEIGHTINGS = ("none", "snr", "min_snr", "truncated_snr")
KNOWN_SOURCES = ("digits", "tfds", "folder", "npz")
MODEL_DTYPES = ("float32", "bfloat16")
CHANNELS = (1, 3)
#: samplers that need a Gaussian process (a cold process has no ᾱ to step with)
GAUSSIAN_SAMPLERS = ("ddpm", "ddim")
#: degradations that only make sense on colour images
COLOUR_DEGRADATIONS = ("decolor", "snow")
#: channel counts of the sources whose images are known (others are not checked)
SOURCE_CHANNELS = {
    "digits": 1,
    "tfds:mnist": 1,
    "tfds:fashion_mnist": 1,
    "tfds:kmnist": 1,
    "tfds:emnist": 1,
    "tfds:cifar10": 3,
    "tfds:cifar100": 3,
    "tfds:celeb_a": 3,
    "tfds:svhn_cropped": 3,
    "tfds:oxford_flowers102": 3,
}
SOURCE_NUM_CLASSES = {
    "digits": 10,
    "tfds:mnist": 10,
    "tfds:fashion_mnist": 10,
    "tfds:kmnist": 10,
    "tfds:cifar10": 10,
    "tfds:cifar100": 100,
    "tfds:svhn_cropped": 10,
}
#: sections of free-form keyword arguments, checked by the builder they are passed to
FREE_FORM = ("diffusion.degradation_params", "diffusion.schedule_params")


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
    if _is_section(value):
        value = _as_dict(value)
    r = repr(value)
    return r if len(r) <= 120 else r[:117] + "..."


# --- field specs ----------------------------------------------------------------------------------
def _is_int(v) -> bool:
    return isinstance(v, numbers.Integral) and not isinstance(v, bool)


def _is_real(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(float(v))


def _is_section(v) -> bool:
    try:
        import ml_collections  # noqa: PLC0415

        if isinstance(v, ml_collections.ConfigDict):
            return True
    except ImportError:  # pragma: no cover - ml_collections is a dependency
        pass
    return isinstance(v, Mapping)


def _as_dict(v) -> dict:
    if hasattr(v, "to_dict"):
        return v.to_dict()
    return {k: (_as_dict(x) if _is_section(x) else x) for k, x in dict(v).items()}


def _items(section) -> list:
    return list(section.items())


class Spec:
    """What one field may hold: ``check(value) -> bool`` and the text of the allowed values."""

    def __init__(self, check: Callable[[Any], bool], allowed: Callable[[], str] | str):
        self._check = check
        self._allowed = allowed

    def check(self, v) -> bool:
        return bool(self._check(v))

    @property
    def allowed(self) -> str:
        return self._allowed() if callable(self._allowed) else self._allowed


def Int(lo: Optional[int] = None, hi: Optional[int] = None) -> Spec:  # noqa: N802
    if hi is None:
        text = "an integer" if lo is None else f"an integer >= {lo}"
    else:
        text = f"an integer in [{lo}, {hi}]"
    return Spec(lambda v: _is_int(v) and (lo is None or v >= lo) and (hi is None or v <= hi), text)


def Real(lo: float, hi: Optional[float] = None, *, lo_open: bool = False, hi_open: bool = False) -> Spec:  # noqa: N802
    def check(v):
        if not _is_real(v):
            return False
        v = float(v)
        ok_lo = v > lo if lo_open else v >= lo
        ok_hi = hi is None or (v < hi if hi_open else v <= hi)
        return ok_lo and ok_hi

    if hi is None:
        text = f"a finite number {'>' if lo_open else '>='} {lo:g}"
    else:
        text = f"a number in {'(' if lo_open else '['}{lo:g}, {hi:g}{')' if hi_open else ']'}"
    return Spec(check, text)


def Bool() -> Spec:  # noqa: N802
    return Spec(lambda v: isinstance(v, bool), "True or False")


def Str(*, nonempty: bool = True) -> Spec:  # noqa: N802
    return Spec(lambda v: isinstance(v, str) and (bool(v.strip()) or not nonempty), "a non-empty string" if nonempty else "a string")


def Choice(names: Callable[[], Iterable] | Iterable) -> Spec:  # noqa: N802
    get = names if callable(names) else (lambda: tuple(names))
    return Spec(lambda v: isinstance(v, (str, int)) and not isinstance(v, bool) and v in tuple(get()), lambda: _one_of(get()))


def IntSeq(lo: int = 1, *, nonempty: bool = True) -> Spec:  # noqa: N802
    def check(v):
        return (
            isinstance(v, (tuple, list))
            and (len(v) > 0 or not nonempty)
            and all(_is_int(x) and x >= lo for x in v)
        )

    return Spec(check, f"a {'non-empty ' if nonempty else ''}tuple of integers >= {lo}")


def Section() -> Spec:  # noqa: N802
    return Spec(_is_section, "a ConfigDict of keyword arguments")


def _one_of(names: Iterable) -> str:
    names = list(names)
    return "one of " + ", ".join(repr(n) for n in names)


# --- registries (imported lazily; fall back to the known names) -----------------------------------
def _registry(module: str, attrs: Sequence[str]) -> Optional[Mapping]:
    try:
        mod = importlib.import_module(module)
    except ImportError:
        return None
    for a in attrs:
        reg = getattr(mod, a, None)
        if reg is not None:
            return reg
    return None


def _registry_module(module: str):
    try:
        return importlib.import_module(module)
    except ImportError:
        return None


def _names(module: str, attrs: Sequence[str], known: Sequence[str]) -> tuple:
    reg = _registry(module, attrs)
    extra = [] if reg is None else [n for n in reg if n not in known]
    return tuple(known) + tuple(sorted(extra))


def degradation_names() -> tuple:
    return _names("jaxdiff.degradations", ("DEGRADATIONS",), KNOWN_DEGRADATIONS)


def schedule_names() -> tuple:
    return _names("jaxdiff.schedules", ("SCHEDULES",), KNOWN_SCHEDULES)


def sampler_names() -> tuple:
    return _names("jaxdiff.sampling", ("CORRECTORS", "SAMPLERS"), KNOWN_SAMPLERS)


def prediction_names() -> tuple:
    return _names("jaxdiff.parameterization", ("PREDICTIONS",), KNOWN_PREDICTIONS)


def loss_names() -> tuple:
    return _names("jaxdiff.losses", ("LOSSES",), KNOWN_LOSSES)


def weighting_names() -> tuple:
    return _names("jaxdiff.losses", ("LOSS_WEIGHTINGS", "WEIGHTINGS"), KNOWN_WEIGHTINGS)


def source_names() -> tuple:
    return _names("jaxdiff.data", ("SOURCES", "_OPTIONS"), KNOWN_SOURCES)


def dtype_names() -> tuple:
    return _names("jaxdiff.models.unet", ("DTYPES",), MODEL_DTYPES)


# --- the layout of configs/default.py, one spec per field -----------------------------------------
FIELDS: dict = {
    "seed": Int(0, 2**32 - 1),
    # data
    "data.source": Str(),
    "data.eval_split": Str(),
    "data.image_size": Int(2),
    "data.channels": Spec(lambda v: _is_int(v) and v in CHANNELS, "1 (grey) or 3 (RGB)"),
    "data.random_flip": Bool(),
    "data.download": Bool(),
    "data.end_source": Str(nonempty=False),
    # diffusion
    "diffusion.kind": Choice(KNOWN_KINDS),
    "diffusion.T": Int(1),
    "diffusion.degradation": Str(nonempty=False),
    "diffusion.degradation_params": Section(),
    "diffusion.noise_std": Real(0.0),
    "diffusion.schedule": Choice(schedule_names),
    "diffusion.schedule_params": Section(),
    "diffusion.prediction": Choice(prediction_names),
    "diffusion.loss": Choice(loss_names),
    "diffusion.loss_weighting": Choice(weighting_names),
    # model
    "model.ch": Int(1),
    "model.ch_mult": IntSeq(1),
    "model.num_res_blocks": Int(1),
    "model.attn_resolutions": IntSeq(1, nonempty=False),
    "model.dropout": Real(0.0, 1.0, hi_open=True),
    "model.num_groups": Int(1),
    "model.dtype": Choice(dtype_names),
    # train
    "train.batch_size": Int(1),
    "train.num_steps": Int(1),
    "train.learning_rate": Real(0.0, lo_open=True),
    "train.warmup_steps": Int(0),
    "train.weight_decay": Real(0.0),
    "train.grad_clip_norm": Real(0.0),
    "train.ema_decay": Real(0.0, 1.0, hi_open=True),
    "train.ema_every": Int(1),
    "train.ema_start": Int(0),
    "train.ema_warmup": Bool(),
    "train.log_every": Int(1),
    "train.checkpoint_every": Int(1),
    "train.keep_checkpoints": Int(1),
    "train.num_sample_images": Int(0),
    "train.max_consecutive_nonfinite": Int(1),
    "train.distributed": Bool(),
    # sample
    "sample.corrector": Choice(sampler_names),
    "sample.steps": Int(0),
    "sample.eta": Real(0.0, 1.0),
    "sample.clip": Real(0.0),
    "sample.prior_noise": Real(0.0),
}

#: fields that may be absent (their consumer has a default); checked when present
OPTIONAL_FIELDS: dict = {
    "model.num_heads": Int(1),
    "model.mid_attention": Bool(),
    # jaxdiff.train.state.make_optimizer: after the warm-up, "constant" (default) or a cosine decay to
    # min_learning_rate over the remaining steps
    "train.lr_schedule": Choice(("constant", "cosine")),
    "train.min_learning_rate": Real(0.0),
}


def _spec(path: str) -> Optional[Spec]:
    return FIELDS.get(path) or OPTIONAL_FIELDS.get(path)


def _extra_model_fields() -> tuple:
    """Keys the UNet accepts beyond FIELDS (``jaxdiff.models.unet.MODEL_FIELDS``); its builder checks them."""
    reg = _registry("jaxdiff.models.unet", ("MODEL_FIELDS",)) or ()
    return tuple(f"model.{k}" for k in reg if f"model.{k}" not in FIELDS and f"model.{k}" not in OPTIONAL_FIELDS)


def _sections() -> set:
    return {p.rsplit(".", 1)[0] for p in FIELDS if "." in p}


def _flatten(config) -> tuple[dict, list]:
    """{dotted path: value} over the known layout, and the problems of unknown/missing fields."""
    values: dict = {}
    problems: list = []
    sections = _sections()
    extra = set(_extra_model_fields())
    known = set(FIELDS) | set(OPTIONAL_FIELDS) | extra

    def walk(node, prefix: str):
        for key, v in _items(node):
            path = f"{prefix}{key}"
            if path in known:
                values[path] = v
            elif path in sections and _is_section(v):
                walk(v, path + ".")
            else:
                siblings = [p[len(prefix):] for p in known if p.startswith(prefix) and "." not in p[len(prefix):]]
                siblings += [s[len(prefix):] for s in sections if s.startswith(prefix) and "." not in s[len(prefix):]]
                close = difflib.get_close_matches(str(key), siblings, n=1)
                hint = f"did you mean {prefix + close[0]!r}? " if close else ""
                where = prefix[:-1] or "the config"
                problems.append(
                    Problem(
                        path,
                        v,
                        f"no such field ({hint}fields of {where}: {', '.join(sorted(siblings))}); "
                        "a new field must be added to configs/default.py and to "
                        "jaxdiff.config.validation.FIELDS",
                    )
                )

    walk(config, "")
    for path in FIELDS:
        if path not in values:
            problems.append(Problem(path, MISSING, f"{FIELDS[path].allowed} (the field is required; see configs/default.py)"))
    return values, problems


# --- data sources ---------------------------------------------------------------------------------
class Source(NamedTuple):
    scheme: str  # digits | tfds | folder | npz
    name: str  # tfds data set name (maybe ":version") or folder/npz path; "" for digits
    split: str
    options: dict

    @property
    def key(self) -> str:
        """The key of SOURCE_CHANNELS / SOURCE_NUM_CLASSES: ``digits``, ``tfds:<name>`` (no version)."""
        return f"tfds:{self.name.split(':')[0]}" if self.scheme == "tfds" else self.scheme


def parse_source(source: str, field: str = "data.source") -> Source:
    """Splits a source string; raises ValueError naming ``field`` if it is malformed.

    The grammar is jaxdiff.data's (its parser is used when present): ``digits[:split][:k=v…]``,
    ``tfds:<name>[:version][:split][:k=v…]``, ``folder:<path>[:k=v…]``, ``npz:<path>[:k=v…]``.
    """
    try:
        import jaxdiff.data as data  # noqa: PLC0415
    except ImportError:
        data = None
    parse = getattr(data, "parse_source", None) or getattr(data, "_parse", None)
    if parse is not None:
        spec = parse(source, field)
        return Source(spec.kind, spec.target or "", spec.split or "", dict(spec.options))
    scheme, _, rest = source.strip().partition(":")  # fallback: the same grammar, fewer checks
    if scheme not in KNOWN_SOURCES:
        raise ValueError(f"{field}={source!r}: unknown source kind {scheme!r}; allowed: {list(KNOWN_SOURCES)}")
    from jaxdiff.data import _split_tokens  # the data loader's own tokenizer; lazy: jax loads with it

    tokens = _split_tokens(rest) if rest else []
    options = {}
    while tokens and re.match(r"^[A-Za-z_]+=", tokens[-1]):
        k, _, val = tokens.pop().partition("=")
        options[k] = val
    if scheme in ("folder", "npz"):
        return Source(scheme, ":".join(tokens), "", options)
    name = tokens.pop(0) if scheme == "tfds" and tokens else ""
    if scheme == "tfds" and not name:
        raise ValueError(f"{field}={source!r}: expected 'tfds:<name>[:version][:split]'")
    if scheme == "tfds" and tokens and re.match(r"^\d+(\.(\d+|\*))*$", tokens[0]):
        name += ":" + tokens.pop(0)
    if len(tokens) > 1:
        raise ValueError(f"{field}={source!r}: more than one split")
    return Source(scheme, name, tokens[0] if tokens else "", options)


def _parse_classes(spec: str) -> list:
    out = set()
    for part in spec.split(","):
        m = re.fullmatch(r"(\d+)(?:-(\d+))?", part.strip())
        if not m or (m.group(2) is not None and int(m.group(2)) < int(m.group(1))):
            raise ValueError(f"classes={spec!r}: bad part {part!r}")
        out.update(range(int(m.group(1)), int(m.group(2) or m.group(1)) + 1))
    return sorted(out)


_SOURCE_FORMS = (
    "'digits' or 'tfds:<name>' (each optionally ':<split>' and ':classes=<list>', e.g. 'digits:classes=0-4'), "
    "'folder:<path>' or 'npz:<path>'"
)


def _check_source(field: str, source: str, channels_field: str, channels: Optional[int]) -> list:
    try:
        src = parse_source(source, field)
    except ValueError as e:
        return [Problem(field, source, f"{_SOURCE_FORMS} ({e})")]
    out = []
    if "classes" in src.options:
        n = SOURCE_NUM_CLASSES.get(src.key)
        try:
            classes = _parse_classes(src.options["classes"])
            if n is not None and max(classes) >= n:
                raise ValueError
        except ValueError:
            rng = f" in 0..{n - 1}" if n is not None else ""
            out.append(Problem(field, source, f"classes=<list> of labels{rng}, written like '0-4', '3' or '0,2,5-7'"))
    expected = SOURCE_CHANNELS.get(src.key)
    if expected is not None and channels is not None and channels != expected:
        kind = "grey" if expected == 1 else "RGB"
        if channels_field == "data.channels":
            out.append(Problem("data.channels", channels, f"{expected} for data.source={source!r} ({kind} images)"))
        else:
            out.append(Problem(field, source, f"a source of data.channels={channels} images ({source!r} has {expected})"))
    return out


# --- degradation / schedule builders --------------------------------------------------------------
_ENUMS = {
    "routine": ("constant", "incremental", "exponential", "affine"),
    "padding": ("circular", "reflect"),
    "method": ("area", "bicubic"),
}
_MASK_PARAMS = {"kernel_std": Real(0.0, lo_open=True), "initial_mask": Real(0.0), "centered": Bool()}
#: parameter specs used while a degradation is known but not registered yet (None: names not known)
FALLBACK_DEGRADATION_PARAMS: dict = {
    "blur": {
        "kernel_size": Spec(lambda v: _is_int(v) and v >= 1 and v % 2 == 1, "an odd integer >= 1"),
        "std": Real(0.0, lo_open=True),
        "routine": Choice(_ENUMS["routine"]),
        "std_increment": Real(0.0),
        "padding": Choice(_ENUMS["padding"]),
        "to_mean": Bool(),
    },
    "inpaint": _MASK_PARAMS,
    "fade": _MASK_PARAMS,
    "superres": {"method": Choice(_ENUMS["method"])},
    "snow": {
        "seed": Int(0),
        "thr_start": Real(0.0),
        "thr_end": Real(0.0),
        "sigma_start": Real(0.0),
        "sigma_end": Real(0.0),
        "loc": Spec(_is_real, "a finite number"),
        "scale": Real(0.0),
        "zoom": Real(0.0, lo_open=True),
    },
    "decolor": {},
    "interpolate": {},
}


def _builder_problems(name: str, params: dict, *, T: int, image_size: int, channels: int) -> list:
    prefix = "diffusion.degradation_params"
    reg = _registry("jaxdiff.degradations", ("DEGRADATIONS",)) or {}
    if name not in reg:
        specs = FALLBACK_DEGRADATION_PARAMS.get(name)
        out = []
        for k, v in params.items():
            if specs is None:
                continue
            if k not in specs:
                out.append(Problem(f"{prefix}.{k}", v, f"a parameter of {name!r}: {_one_of(sorted(specs))}"))
            elif not specs[k].check(v):
                out.append(Problem(f"{prefix}.{k}", v, specs[k].allowed))
        return out
    builder = reg[name].builder
    try:
        sig = inspect.signature(builder)
        accepts_any = any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values())
        allowed = sorted(k for k in sig.parameters if k not in ("T", "image_size", "channels") and sig.parameters[k].kind is not inspect.Parameter.VAR_KEYWORD)
    except (TypeError, ValueError):
        accepts_any, allowed = True, []
    if not accepts_any:
        unknown = [k for k in params if k not in allowed]
        if unknown:
            return [Problem(f"{prefix}.{k}", params[k], f"a parameter of {name!r}: {_one_of(allowed)}") for k in unknown]
    from jaxdiff.degradations import make_degradation  # noqa: PLC0415

    try:
        make_degradation(name, T=T, image_size=image_size, channels=channels, **params)
    except Exception as e:  # noqa: BLE001  (any failure to build is this config's problem; say which)
        return [_blame(prefix, params, f"what the {name!r} builder accepts: {_describe(e)}", str(e))]
    return []


def _blame(prefix: str, params: dict, allowed: str, message: str) -> Problem:
    """Names the one parameter the builder's message mentions; else the section (with the mentioned ones)."""
    named = [k for k in params if re.search(rf"(?<![A-Za-z0-9_]){re.escape(k)}(?![A-Za-z0-9_])", message)]
    if len(named) == 1:
        return Problem(f"{prefix}.{named[0]}", params[named[0]], allowed)
    return Problem(prefix, {k: params[k] for k in named} if named else params, allowed)


def _describe(e: Exception) -> str:
    return str(e) if isinstance(e, ValueError) else f"{type(e).__name__}: {e}"


def _schedule_problems(name: str, params: dict, T: int) -> list:
    prefix = "diffusion.schedule_params"
    reg = _registry("jaxdiff.schedules", ("SCHEDULES",)) or {}
    if name not in reg:
        return []
    fn = reg[name]
    try:
        sig = inspect.signature(fn)
        if not any(p.kind is p.VAR_KEYWORD for p in sig.parameters.values()):
            allowed = sorted(k for k, p in sig.parameters.items() if k != "T" and p.kind is p.KEYWORD_ONLY)
            unknown = [k for k in params if k not in allowed]
            if unknown:
                return [Problem(f"{prefix}.{k}", params[k], f"a parameter of schedule {name!r}: {_one_of(allowed)}") for k in unknown]
    except (TypeError, ValueError):
        pass
    try:
        fn(T, **params)
    except Exception as e:  # noqa: BLE001
        return [_blame(prefix, params, f"what schedule {name!r} accepts: {_describe(e)}", str(e))]
    return []


# --- the check ------------------------------------------------------------------------------------
def validate_config(config, *, num_devices: Optional[int] = None, process_count: int = 1) -> None:
    """Raises one :class:`ConfigError` listing every invalid field of ``config``; returns None if it is valid.

    ``config``: a ConfigDict (or nested mappings, e.g. a config restored from JSON) with the layout of
    ``configs/default.py``. ``num_devices``: the global device count the batch is split over (default
    ``jax.device_count()``); ``process_count``: the number of hosts, each loading its share of the batch.
    Builds the degradation / schedule once to let its builder judge the parameters (cheap NumPy work, no
    compilation of the model or the train step).
    """
    if num_devices is None:
        import jax  # noqa: PLC0415

        num_devices = jax.device_count()
    for arg, val in (("num_devices", num_devices), ("process_count", process_count)):
        if not _is_int(val) or val < 1:
            raise ValueError(f"validate_config: {arg}={val!r} is invalid; allowed: an integer >= 1")
    if not _is_section(config):
        raise ConfigError([Problem("config", config, "a ConfigDict with the layout of configs/default.py")])

    values, problems = _flatten(config)
    bad = {p.field for p in problems}
    for path, v in values.items():
        spec = _spec(path)
        if spec is not None and not spec.check(v):
            problems.append(Problem(path, v, spec.allowed))
            bad.add(path)

    def ok(*paths):
        return all(p in values and p not in bad for p in paths)

    def add(field, value, allowed):
        problems.append(Problem(field, value, allowed))
        bad.add(field)

    v = values.get
    kind = v("diffusion.kind")

    # --- data sources and channels
    if ok("data.source"):
        for p in _check_source("data.source", v("data.source"), "data.channels", v("data.channels") if ok("data.channels") else None):
            add(*p)
    if ok("data.end_source") and v("data.end_source"):
        for p in _check_source("data.end_source", v("data.end_source"), "data.end_source", v("data.channels") if ok("data.channels") else None):
            add(*p)

    # --- the diffusion
    if ok("diffusion.kind") and kind == "cold":
        if ok("diffusion.degradation"):
            name = v("diffusion.degradation")
            if name not in degradation_names():
                add("diffusion.degradation", name, f"{_one_of(degradation_names())} (diffusion.kind='cold')")
        if ok("diffusion.prediction") and v("diffusion.prediction") != "x0":
            add("diffusion.prediction", v("diffusion.prediction"),
                "'x0' for diffusion.kind='cold' (eps and v need diffusion.kind='gaussian')")
        if ok("diffusion.loss_weighting") and v("diffusion.loss_weighting") != "none":
            add("diffusion.loss_weighting", v("diffusion.loss_weighting"),
                "'none' for diffusion.kind='cold' (SNR weightings need a Gaussian schedule)")
        if ok("sample.corrector") and v("sample.corrector") in GAUSSIAN_SAMPLERS:
            cold = [s for s in sampler_names() if s not in GAUSSIAN_SAMPLERS]
            add("sample.corrector", v("sample.corrector"),
                f"{_one_of(cold)} for diffusion.kind='cold' (ddpm/ddim need diffusion.kind='gaussian')")
        if ok("diffusion.degradation", "data.channels"):
            name = v("diffusion.degradation")
            if name in COLOUR_DEGRADATIONS and v("data.channels") != 3:
                add("data.channels", v("data.channels"),
                    f"3 for diffusion.degradation={name!r}, which needs colour images (data.source="
                    f"{v('data.source')!r}); use a colour variant of the config (e.g. ':cifar10') or an RGB "
                    "source: --config.data.source=<rgb source> --config.data.channels=3")
        if ok("diffusion.degradation", "diffusion.T", "data.image_size") and v("diffusion.degradation") == "superres":
            T, n = v("diffusion.T"), v("data.image_size")
            if n % (2**T) != 0:
                limit = 0
                while n % (2 ** (limit + 1)) == 0:
                    limit += 1
                add("diffusion.T", T,
                    f"<= {limit} for diffusion.degradation='superres' with data.image_size={n}: each step halves "
                    f"the resolution, so data.image_size must be divisible by 2**T (T <= log2(image_size))")
        if ok("diffusion.degradation", "data.end_source"):
            if v("diffusion.degradation") == "interpolate" and not v("data.end_source"):
                add("data.end_source", v("data.end_source"),
                    "the data source the interpolation moves toward (e.g. 'digits:classes=5-9'); "
                    "required by diffusion.degradation='interpolate'")
            elif v("diffusion.degradation") != "interpolate" and v("data.end_source"):
                add("data.end_source", v("data.end_source"),
                    "'' unless diffusion.degradation='interpolate' (only interpolation uses a second data source)")
        if ok("diffusion.degradation", "diffusion.degradation_params", "diffusion.T", "data.image_size", "data.channels") and (
            v("diffusion.degradation") in degradation_names()
        ):
            for p in _builder_problems(
                v("diffusion.degradation"),
                _as_dict(v("diffusion.degradation_params")),
                T=int(v("diffusion.T")),
                image_size=int(v("data.image_size")),
                channels=int(v("data.channels")),
            ):
                add(*p)
    elif ok("diffusion.kind") and kind == "gaussian":
        if ok("data.end_source") and v("data.end_source"):
            add("data.end_source", v("data.end_source"),
                "'' for diffusion.kind='gaussian' (only cold interpolation uses a second data source)")
        if ok("diffusion.schedule", "diffusion.schedule_params", "diffusion.T"):
            for p in _schedule_problems(v("diffusion.schedule"), _as_dict(v("diffusion.schedule_params")), int(v("diffusion.T"))):
                add(*p)

    if ok("sample.steps", "diffusion.T") and v("sample.steps") > v("diffusion.T"):
        add("sample.steps", v("sample.steps"),
            f"an integer in [0, diffusion.T={v('diffusion.T')}] (0: every timestep)")

    # --- the UNet
    if ok("data.image_size", "model.ch_mult"):
        n, levels = v("data.image_size"), len(v("model.ch_mult"))
        factor = 2 ** (levels - 1)
        if n % factor != 0:
            add("data.image_size", n,
                f"a multiple of 2**(len(model.ch_mult)-1) = {factor}: the UNet halves the image {levels - 1} "
                f"times (model.ch_mult={tuple(v('model.ch_mult'))}); or use a shorter model.ch_mult")
    if ok("model.num_groups", "model.ch", "model.ch_mult"):
        widths = sorted({v("model.ch")} | {v("model.ch") * m for m in v("model.ch_mult")})
        if any(w % v("model.num_groups") for w in widths):
            add("model.num_groups", v("model.num_groups"),
                f"a divisor of every UNet width {widths} (model.ch x model.ch_mult) for GroupNorm")
    if ok("model.attn_resolutions", "data.image_size", "model.ch_mult"):
        res = [v("data.image_size") // 2**i for i in range(len(v("model.ch_mult")))]
        if any(r not in res for r in v("model.attn_resolutions")):
            add("model.attn_resolutions", tuple(v("model.attn_resolutions")),
                f"a subset of the UNet's resolutions {tuple(res)} (data.image_size / 2**i, i < len(model.ch_mult))")

    # --- whatever else the UNet's own check rejects (fields beyond FIELDS, num_heads, …)
    model_paths = [p for p in values if p.startswith("model.")]
    required_model = [p for p in FIELDS if p.startswith("model.")]
    if ok(*required_model, *model_paths, "data.image_size", "data.channels"):
        check = getattr(_registry_module("jaxdiff.models.unet"), "validate_unet_config", None)
        if check is not None:
            kwargs = {p.split(".", 1)[1]: v(p) for p in model_paths}
            try:
                params = inspect.signature(check).parameters
                extra = {k: val for k, val in (("image_size", v("data.image_size")), ("in_channels", v("data.channels")),
                                               ("out_channels", v("data.channels"))) if k in params}
                check(**kwargs, **extra)
            except Exception as e:  # noqa: BLE001  (its message names the field)
                m = re.search(r"(model\.[A-Za-z_]+)", str(e))
                field = m.group(1) if m and m.group(1) in values else "model"
                add(field, v(field) if field in values else _as_dict(config["model"]), f"what the UNet accepts: {_describe(e)}")

    # --- the batch over devices and hosts
    if ok("train.batch_size"):
        b = v("train.batch_size")
        if b % num_devices:
            add("train.batch_size", b, f"a multiple of the number of devices ({num_devices}): the global batch is split over them")
        elif b % process_count:
            add("train.batch_size", b, f"a multiple of the number of processes ({process_count}): each loads an equal share")

    if problems:
        raise ConfigError(problems)


# --- config files, names and command-line flags ---------------------------------------------------
def load_config(path_with_variant: str):
    """``"configs/x.py[:variant]"`` → ``get_config(variant)`` (or ``get_config()``), as ``--config`` loads it."""
    import runpy  # noqa: PLC0415

    path, sep, variant = path_with_variant.partition(":")
    if not path:
        raise ValueError(f"config path {path_with_variant!r} is invalid; allowed: 'path/to/config.py[:variant]'")
    module = runpy.run_path(path)
    if "get_config" not in module:
        raise ValueError(f"config file {path!r} has no get_config()")
    return module["get_config"](variant) if sep else module["get_config"]()


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
        if body.startswith(f"no{flag_name}."):  # --noconfig.flag=… sets a boolean field to False
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
    """Why ``config.<dotted>`` does not exist (with a did-you-mean), or None if it does."""
    node, walked = config, []
    for seg in dotted.split("."):
        if not _is_section(node):
            return f"config field {'.'.join(walked)!r} is a {type(node).__name__}, not a section: it has no field {seg!r}"
        keys = [k for k, _ in _items(node)]
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


def parse_flags(argv: Sequence[str], *, flag_name: str = "config", flag_values=None) -> list:
    """An ``absl.app.run`` flags parser: ``app.run(main, flags_parser=parse_flags)``.

    Parses like absl (``FLAGS(argv)``), but a ``--config.<path>=…`` override naming a field that does not
    exist (a KeyError/AttributeError traceback in ml_collections) and an exception inside the config file's
    ``get_config`` (a traceback inside absl's message) become one ``FATAL Flags parsing error:`` line, then
    exit with status 1. Define the flag without a default (``DEFINE_config_file("config", None)``): with a
    default path ml_collections applies the overrides at definition time, before any parser runs.
    """
    from absl import flags  # noqa: PLC0415

    fv = flags.FLAGS if flag_values is None else flag_values
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
    except (KeyError, AttributeError) as e:
        msg = None
        path, overrides = _argv_config(argv, flag_name)
        if path:
            try:
                cfg = load_config(path)
            except Exception:  # noqa: BLE001  (the message below still names the override)
                cfg = None
            if cfg is not None:
                for key, raw in overrides:
                    why = describe_unknown_override(cfg, key)
                    if why:
                        msg = f"{raw}: {why}"
                        break
        if msg is None:
            detail = str(e).strip("'\"").replace("\\n", " ")
            msg = f"a --{flag_name}.<field> override names no field of the config: {detail}"
    sys.stderr.write(f"FATAL Flags parsing error: {msg}\nPass --helpshort or --helpfull to see help on flags.\n")
    raise SystemExit(1)
