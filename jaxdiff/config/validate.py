"""One check of a whole experiment config, before anything is built or compiled.

``validate_config(config, num_devices=8)`` checks the range of every field of ``configs/default.py``'s layout
(:data:`FIELDS`), then the rules between fields. Names come from the registries (degradations, schedules,
correctors, predictions, losses, weightings; data sources through ``jaxdiff.data.parse_source``); a
degradation's facts (color-only, needs an end data set) from its registered entry; which predictions,
correctors, spacings, loss weightings and t samplings apply from the process they make (built once from NumPy
tables, nothing compiled), so their builders judge their parameters (and the sizes only they know); the ``model`` section goes to
``jaxdiff.models.unet.validate_unet_config``. All problems end in ONE :class:`ConfigError` (a ValueError)::

    invalid config: train.ema_decay=1.5 is invalid; allowed: a number in [0, 1)

A locked ConfigDict refuses unknown and mistyped keys where they are set; a config read from JSON or an
unlocked one gets that check here (unknown and missing fields, with a did-you-mean).
"""
from __future__ import annotations

import difflib
import re
from typing import Optional

from jaxdiff.checks import is_int
from jaxdiff.config.names import (
    _correctors, _dtypes, _loss_kinds, _model_fields, _predictions, _schedules, _spacings, _t_samplings, _weightings
)
from jaxdiff.config.problems import (
    MISSING, Bool, Choice, ConfigError, Int, IntSeq, Problem, Real, Section, Spec, Str, _as_dict, _is_real, _is_section
)
from jaxdiff.config.process_checks import check_process_fields
from jaxdiff.config.upgrade import REMOVED, RENAMED

__all__ = ["ConfigError", "Problem", "validate_config", "FIELDS", "OPTIONAL_FIELDS", "FREE_FORM"]

#: sections of keyword arguments, judged by the builder they are passed to
FREE_FORM = ("diffusion.degradation_params", "diffusion.schedule_params", "diffusion.t_sampling_params")
_SOURCE_FORMS = (
    "'digits' or 'tfds:<name>' (each optionally ':<split>' and ':classes=<list>', e.g. 'digits:classes=0-4'), "
    "'photos[:<split>][:seed=N][:crops=N]', 'folder:<path>' or 'npz:<path>'"
)


# --- the layout of configs/default.py, one spec per field -----------------------------------------
FIELDS: dict = {
    "seed": Int(0, 2**32 - 1),
    # data
    "data.source": Str(),
    "data.eval_split": Str(),
    "data.image_size": Int(2),
    "data.channels": Spec(lambda v: is_int(v) and v in (1, 3), "1 (grey) or 3 (RGB)"),
    "data.random_flip": Bool(),
    "data.download": Bool(),
    "data.end_source": Str(nonempty=False),
    # diffusion
    "diffusion.T": Int(1),
    "diffusion.degradation": Str(),
    "diffusion.degradation_params": Section(),
    "diffusion.schedule": Choice(lambda: tuple(_schedules())),
    "diffusion.schedule_params": Section(),
    "diffusion.prediction": Choice(_predictions),
    "diffusion.loss": Choice(_loss_kinds),
    "diffusion.loss_weighting": Choice(_weightings),
    "diffusion.t_sampling": Choice(lambda: tuple(_t_samplings())),
    "diffusion.t_sampling_params": Section(),
    # model
    "model.ch": Int(1),
    "model.ch_mult": IntSeq(1),
    "model.num_res_blocks": Int(1),
    "model.attn_resolutions": IntSeq(1, nonempty=False),
    "model.dropout": Real(0.0, 1.0, hi_open=True),
    "model.num_groups": Int(1),
    "model.dtype": Choice(lambda: tuple(_dtypes())),
    "model.num_classes": Int(0),
    # train
    "train.batch_size": Int(1),
    "train.grad_accum_steps": Int(1),
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
    "train.eval_every": Int(0),
    "train.eval_samples": Int(8),
    "train.eval_features": Spec(
        lambda v: isinstance(v, str) and (v in ("", "inception", "digits") or v.endswith(".npz")),
        "'', 'inception', 'digits' or a path to a feature_net.npz"),
    "train.max_consecutive_nonfinite": Int(1),
    "train.distributed": Bool(),
    "train.label_dropout": Real(0.0, 1.0, hi_open=True),
    # sample
    "sample.corrector": Choice(lambda: tuple(_correctors())),
    "sample.steps": Int(0),
    "sample.spacing": Choice(lambda: tuple(_spacings())),
    "sample.eta": Real(0.0, 1.0),
    "sample.clip": Real(0.0),
    "sample.prior_noise": Real(0.0),
    "sample.guidance": Real(0.0),
}

#: fields that may be absent (their consumer has a default); checked when present
OPTIONAL_FIELDS: dict = {
    "model.num_heads": Int(1),
    "model.mid_attention": Bool(),
    # the UNet's options for diffusers' layouts (jaxdiff.interop.diffusers sets them; defaults: jaxdiff's own)
    "model.flip_sin_to_cos": Bool(),
    "model.freq_shift": Spec(_is_real, "a finite number (below model.ch // 2)"),
    "model.norm_eps": Real(0.0, lo_open=True),
    "model.downsample_padding": Int(0, 1),
    "model.head_dim": Int(0),
    "model.time_offset": Int(),
    # jaxdiff.train.state.make_optimizer: after the warm-up, "constant" (default) or a cosine decay to
    # min_learning_rate over the remaining steps
    "train.lr_schedule": Choice(lambda: ("constant", "cosine")),
    "train.min_learning_rate": Real(0.0),
}


def _unknown_field(path: str) -> Optional[str]:
    """What to say about a key that moved or went away; None for any other key."""
    if path in RENAMED:
        return f"renamed to {RENAMED[path]!r}"
    if path in REMOVED:
        return f"removed ({REMOVED[path]})"
    return None


def _flatten(config) -> tuple[dict, list]:
    """{dotted path: value} over the known layout, and the problems of unknown and missing fields."""
    known = set(FIELDS) | set(OPTIONAL_FIELDS) | set(_model_fields())
    sections = {p.rsplit(".", 1)[0] for p in FIELDS if "." in p}
    values: dict = {}
    problems: list = []

    def walk(node, prefix: str):
        for key, v in list(node.items()):
            path = f"{prefix}{key}"
            if path in known:
                values[path] = v
            elif path in sections and _is_section(v):
                walk(v, path + ".")
            else:
                why = _unknown_field(path)
                if why is None:
                    siblings = sorted({p[len(prefix):].split(".")[0] for p in known | sections if p.startswith(prefix)})
                    close = difflib.get_close_matches(str(key), siblings, n=1)
                    hint = f"did you mean {prefix + close[0]!r}? " if close else ""
                    why = (f"no such field ({hint}fields of {prefix[:-1] or 'the config'}: {', '.join(siblings)}); "
                           "a new field must be added to configs/default.py and to jaxdiff.config.validate.FIELDS")
                problems.append(Problem(path, v, why))

    walk(config, "")
    for path in FIELDS:
        if path not in values:
            problems.append(Problem(path, MISSING, f"{FIELDS[path].allowed} (the field is required; see configs/default.py)"))
    return values, problems


# --- data sources ---------------------------------------------------------------------------------
def _check_source(field: str, source: str, channels: Optional[int]) -> list:
    from jaxdiff.data import KNOWN_CHANNELS, KNOWN_NUM_CLASSES, parse_classes, parse_source  # noqa: PLC0415

    try:
        spec = parse_source(source, field)
    except ValueError as e:
        return [Problem(field, source, f"{_SOURCE_FORMS} ({e})")]
    key = f"tfds:{spec.target.split(':')[0]}" if spec.kind == "tfds" else spec.kind
    out = []
    if "classes" in spec.options:
        n = KNOWN_NUM_CLASSES.get(key)
        try:
            classes = parse_classes(spec.options["classes"])
            if n is not None and max(classes) >= n:
                raise ValueError
        except ValueError:
            rng = f" in 0..{n - 1}" if n is not None else ""
            out.append(Problem(field, source, f"classes=<list> of labels{rng}, written like '0-4', '3' or '0,2,5-7'"))
    expected = KNOWN_CHANNELS.get(key)
    if expected is not None and channels is not None and channels != expected:
        if field == "data.source":
            kind = "grey" if expected == 1 else "RGB"
            out.append(Problem("data.channels", channels, f"{expected} for data.source={source!r} ({kind} images)"))
        else:
            out.append(Problem(field, source, f"a source of data.channels={channels} images ({source!r} has {expected})"))
    return out


def _check_labels(source: str, num_classes: int) -> list:
    """A conditional model (model.num_classes > 0) needs a source with labels in [0, num_classes)."""
    from jaxdiff.data import KNOWN_NUM_CLASSES, label_free_kinds, parse_classes, parse_source  # noqa: PLC0415

    try:
        spec = parse_source(source, "data.source")
    except ValueError:
        return []  # reported by _check_source
    if spec.kind in label_free_kinds():
        return [Problem("model.num_classes", num_classes, f"0 for data.source={source!r}, which has no labels "
                        "(a conditional model needs digits, a labelled tfds set, npz 'labels' or folder class dirs)")]
    key = f"tfds:{spec.target.split(':')[0]}" if spec.kind == "tfds" else spec.kind
    try:
        top = max(parse_classes(spec.options["classes"])) if "classes" in spec.options else None
    except ValueError:
        return []  # reported by _check_source
    known = KNOWN_NUM_CLASSES.get(key)
    top = top if top is not None else (known - 1 if known is not None else None)
    if top is not None and top >= num_classes:
        return [Problem("model.num_classes", num_classes, f"an integer > {top}: data.source={source!r} has label "
                        f"{top} (labels must lie in 0 … model.num_classes − 1)")]
    return []


# --- the check ------------------------------------------------------------------------------------
def validate_config(config, *, num_devices: Optional[int] = None, process_count: int = 1) -> None:
    """Raises one :class:`ConfigError` listing every invalid field of ``config``; returns None if it is valid.

    ``config``: a ConfigDict (or nested mappings, e.g. a config read from JSON) with the layout of
    ``configs/default.py``. ``num_devices``: the global device count the batch is split over (default
    ``jax.device_count()``); ``process_count``: the number of hosts, each loading its share of the batch.
    Builds the degradation / schedule once (cheap NumPy work, no compilation).
    """
    if num_devices is None:
        import jax  # noqa: PLC0415

        num_devices = jax.device_count()
    for arg, val in (("num_devices", num_devices), ("process_count", process_count)):
        if not is_int(val) or val < 1:
            raise ValueError(f"validate_config: {arg}={val!r} is invalid; allowed: an integer >= 1")
    if not _is_section(config):
        raise ConfigError([Problem("config", config, "a ConfigDict with the layout of configs/default.py")])

    values, problems = _flatten(config)
    bad = {p.field for p in problems}
    for path, val in values.items():
        spec = FIELDS.get(path) or OPTIONAL_FIELDS.get(path)
        if spec is not None and not spec.check(val):
            problems.append(Problem(path, val, spec.allowed))
            bad.add(path)

    def ok(*paths):
        return all(p in values and p not in bad for p in paths)

    def add(field, value, allowed):
        problems.append(Problem(field, value, allowed))
        bad.add(field)

    v = values.get
    channels = v("data.channels") if ok("data.channels") else None

    # --- data sources and channels
    if ok("data.source"):
        for p in _check_source("data.source", v("data.source"), channels):
            add(*p)
    if ok("data.end_source") and v("data.end_source"):
        for p in _check_source("data.end_source", v("data.end_source"), channels):
            add(*p)

    if ok("model.num_classes", "data.source") and v("model.num_classes"):
        for p in _check_labels(v("data.source"), v("model.num_classes")):
            add(*p)

    # --- the process: its degradation and noise schedule, then what it allows
    check_process_fields(config, values, ok, add)

    if ok("sample.steps", "diffusion.T") and v("sample.steps") > v("diffusion.T"):
        add("sample.steps", v("sample.steps"), f"an integer in [0, diffusion.T={v('diffusion.T')}] (0: every timestep)")

    _check_model(config, values, ok, add)

    # --- the batch over devices and hosts
    if ok("train.batch_size"):
        b = v("train.batch_size")
        k = v("train.grad_accum_steps") if ok("train.grad_accum_steps") else 1
        if k > 1 and b % (k * num_devices):
            add("train.batch_size", b, f"a multiple of train.grad_accum_steps × the number of devices ({k} × "
                f"{num_devices} = {k * num_devices}): the batch is split into train.grad_accum_steps={k} "
                "micro-batches, each split over the devices")
        elif b % num_devices:
            add("train.batch_size", b, f"a multiple of the number of devices ({num_devices}): the global batch is split over them")
        elif b % process_count:
            add("train.batch_size", b, f"a multiple of the number of processes ({process_count}): each loads an equal share")

    if problems:
        raise ConfigError(problems)


def _check_model(config, values: dict, ok, add) -> None:
    """The UNet: what the image size and widths must satisfy together, then the UNet's own check."""
    v = values.get
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

    model_paths = [p for p in values if p.startswith("model.")]
    required = [p for p in FIELDS if p.startswith("model.")]
    if ok(*required, *model_paths, "data.image_size", "data.channels"):
        from jaxdiff.models.unet import validate_unet_config  # noqa: PLC0415

        try:
            validate_unet_config(**{p.split(".", 1)[1]: v(p) for p in model_paths}, image_size=v("data.image_size"),
                                 in_channels=v("data.channels"), out_channels=v("data.channels"))
        except ValueError as e:  # its message names the field
            m = re.search(r"(model\.[A-Za-z_]+)", str(e))
            field = m.group(1) if m and m.group(1) in values else "model"
            add(field, v(field) if field in values else _as_dict(config["model"]), f"what the UNet accepts: {e}")
