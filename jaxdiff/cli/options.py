"""sample.py's options as one typed value, checked before anything is loaded or compiled.

:class:`SampleOptions` is what the user asked for (flags or keyword arguments); :meth:`SampleOptions.resolve`
fills in the loaded run's defaults (corrector — for generate/blend the process's generation corrector —,
η, steps, image count) and makes the checks that need the run (T, the process, a generation prior), giving
the :class:`ModeSettings` every mode reads. A bad value is one
:class:`UsageError` naming the flag, the value and what is allowed.
"""
from __future__ import annotations

import dataclasses
import logging
import math
import os
from typing import Any, Optional, Sequence, Union

__all__ = ["MODES", "RENAMED_MODES", "SWEEPS", "DEFAULT_NUM", "UsageError", "parse_step_counts", "SampleOptions", "ModeSettings"]

log = logging.getLogger(__name__)

MODES = ("generate", "restore", "evaluate", "blend", "forward", "fill")
#: modes that were renamed so that no mode shares a name with a degradation → today's name
RENAMED_MODES = {"inpaint": "fill", "interpolate": "blend"}
SWEEPS = ("auto", "generation", "restoration")
#: images per mode when --num is 0 (blend: pairs; evaluate: at most this many held-out images)
DEFAULT_NUM = {"generate": 64, "restore": 32, "blend": 4, "forward": 4, "evaluate": 2000, "fill": 16}
#: modes that take a class label (--label / --labels) and classifier-free guidance (--guidance)
LABEL_MODES = ("generate", "fill")
#: samples per class of a --labels grid when --num is 0
DEFAULT_PER_LABEL = 8
#: modes whose generation takes --spacing (timesteps of the reverse loop)
SPACING_MODES = ("generate", "evaluate", "blend")


class UsageError(ValueError):
    """A bad flag value, reported as one line and exit code 2."""


def parse_step_counts(text: Union[str, int, Sequence[int]], T: Optional[int] = None, *,
                      name: str = "--steps") -> tuple[int, ...]:
    """"5,10,20" (or an int, or a list) → (5, 10, 20): integers ≥ 0 (0 = every step), in [0, T] when T is
    given, no repeats. ValueError naming ``name`` and the text otherwise."""
    if isinstance(text, (list, tuple)):
        parts = list(text)
    elif isinstance(text, int) and not isinstance(text, bool):
        parts = [text]
    else:
        parts = [p.strip() for p in str(text).split(",") if p.strip()]
    out = []
    for p in parts:
        try:
            if isinstance(p, (bool, float)):
                raise TypeError
            v = int(p)
        except (TypeError, ValueError):
            raise ValueError(f"{name}={text!r}: expected integers separated by commas, e.g. 5,10,20,50") from None
        if v < 0 or (T is not None and v > T):
            where = f"[0, T={T}] (0: all {T} steps)" if T is not None else ">= 0 (0: every step)"
            raise ValueError(f"{name}={text!r}: every entry must be in {where}, got {v}")
        out.append(v)
    if not out:
        raise ValueError(f"{name}={text!r}: no step count given")
    if len(set(out)) != len(out):
        raise ValueError(f"{name}={text!r}: repeated entries")
    return tuple(out)


def _nonneg_int(name: str, value, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise UsageError(f"--{name}={value!r}: must be an integer >= 0")


def _nonneg_float(name: str, value) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not (math.isfinite(value) and value >= 0):
        raise UsageError(f"--{name}={value!r}: must be a finite number >= 0")


@dataclasses.dataclass(frozen=True)
class SampleOptions:
    """What sample.py was asked to do (None: the run's own default). Checked on construction.

    steps: "5,10,20", an int or a list of network-call counts (several: a sweep, evaluate only).
    force: generate even when the fitted prior does not match F_T(x0) (see ``cli.common.prior_for_mode``).
    """

    workdir: str
    mode: str = "generate"
    corrector: Optional[str] = None
    steps: Any = None
    eta: Optional[float] = None
    num: int = 0
    seed: int = 0
    batch: int = 0
    step: Optional[int] = None
    severity: Optional[int] = None
    input: Optional[str] = None  # noqa: A003 - the flag's name
    prior_noise: Optional[float] = None
    refit_prior: bool = False
    force: bool = False
    sweep: str = "auto"
    frames: int = 10
    out: Optional[str] = None
    mask: Optional[str] = None
    jumps: Optional[str] = None
    label: Optional[int] = None
    labels: Optional[str] = None
    guidance: Optional[float] = None
    spacing: Optional[str] = None
    features: Optional[str] = None

    def __post_init__(self):
        if not self.workdir:
            raise UsageError("--workdir is required")
        if self.mode in RENAMED_MODES:
            raise UsageError(f"--mode={self.mode}: renamed --mode={RENAMED_MODES[self.mode]} (a mode's name is no "
                             f"degradation's: {self.mode!r} is one)")
        if self.mode not in MODES:
            raise UsageError(f"--mode={self.mode!r}: allowed {list(MODES)}")
        for name in ("refit_prior", "force"):
            if not isinstance(getattr(self, name), bool):
                raise UsageError(f"--{name}={getattr(self, name)!r}: must be True or False")
        for name in ("num", "batch", "frames"):
            _nonneg_int(name, getattr(self, name))
        _nonneg_int("step", self.step, optional=True)
        if isinstance(self.seed, bool) or not isinstance(self.seed, int):
            raise UsageError(f"--seed={self.seed!r}: must be an integer")
        _nonneg_float("eta", self.eta)
        _nonneg_float("prior_noise", self.prior_noise)
        counts = self.step_counts
        if counts is not None and len(counts) > 1 and self.mode != "evaluate":
            raise UsageError(f"--steps={self.steps!r}: a list of step counts is a sweep, only for --mode=evaluate")
        if self.severity is not None and (isinstance(self.severity, bool) or not isinstance(self.severity, int)
                                          or self.severity < 1):
            raise UsageError(f"--severity={self.severity!r}: must be an integer >= 1 (at most T)")
        if self.input is not None:
            if self.mode not in ("restore", "fill"):
                raise UsageError(f"--input is for --mode=restore (images that arrive degraded) or --mode=fill "
                                 f"(images with a --mask), not --mode={self.mode}")
            if not (self.input.startswith("folder:") or self.input.startswith("npz:")):
                raise UsageError(f"--input={self.input!r}: expected folder:<path> or npz:<path>")
        if self.sweep not in SWEEPS:
            raise UsageError(f"--sweep={self.sweep!r}: allowed {', '.join(SWEEPS)}")
        self._check_fill_flags()
        self._check_spacing()
        self._check_features()
        self._check_label_flags()

    def _check_features(self) -> None:
        if self.features is None:
            return
        if self.mode != "evaluate":
            raise UsageError(f"--features is for --mode=evaluate, not --mode={self.mode}")
        if self.features not in ("inception", "digits") and not (
                self.features.endswith(".npz") and os.path.isfile(os.path.expanduser(self.features))):
            raise UsageError(f"--features={self.features!r}: allowed inception, digits or an existing "
                             "feature_net.npz file")

    def _check_spacing(self) -> None:
        if self.spacing is None:
            return
        from jaxdiff.sampling.steps import SPACING_NAMES

        if self.spacing not in SPACING_NAMES:
            raise UsageError(f"--spacing={self.spacing!r}: allowed {', '.join(SPACING_NAMES)}")
        if self.mode not in SPACING_MODES:
            raise UsageError(f"--spacing is for --mode={'|'.join(SPACING_MODES)} (generation), not --mode={self.mode}")

    def _check_label_flags(self) -> None:
        for name in ("label", "labels"):
            if getattr(self, name) is not None and self.mode not in LABEL_MODES:
                raise UsageError(f"--{name} is for --mode={'|'.join(LABEL_MODES)} (a class-conditional model), "
                                 f"not --mode={self.mode}")
        if self.label is not None and self.labels is not None:
            raise UsageError(f"--label={self.label!r} and --labels={self.labels!r}: pass one (--labels=0-9 draws "
                             "a grid with one row per class)")
        _nonneg_int("label", self.label, optional=True)
        self.label_classes  # noqa: B018 - parses --labels
        _nonneg_float("guidance", self.guidance)
        if self.guidance is not None and self.label is None and self.labels is None:
            raise UsageError(f"--guidance={self.guidance!r} needs --label or --labels (guidance steers toward a class)")

    @property
    def label_classes(self) -> Optional[tuple[int, ...]]:
        """The classes asked for (--label=3 → (3,), --labels=0-2,7 → (0, 1, 2, 7)), or None."""
        if self.label is not None:
            return (int(self.label),)
        if self.labels is None:
            return None
        from jaxdiff.ranges import parse_int_ranges

        try:
            return parse_int_ranges(self.labels, field="--labels", example="0-9")
        except ValueError as e:
            raise UsageError(str(e)) from None

    def _check_fill_flags(self) -> None:
        for name in ("mask", "jumps"):
            if getattr(self, name) is not None and self.mode != "fill":
                raise UsageError(f"--{name} is for --mode=fill, not --mode={self.mode}")
        if self.mode != "fill":
            return
        if self.labels is not None:
            raise UsageError(f"--labels={self.labels!r} is for --mode=generate (a grid with one row per class); "
                             "--mode=fill takes --label=c, the class of every image")
        if not self.mask:
            raise UsageError("--mode=fill needs --mask=<file.png or file.npz> (white / 1 = keep, black / 0 = fill)")
        if not self.mask.lower().endswith((".png", ".jpg", ".jpeg", ".npz", ".npy")):
            raise UsageError(f"--mask={self.mask!r}: expected a .png/.jpg image or an .npz/.npy array")
        if not os.path.isfile(os.path.expanduser(self.mask)):
            raise UsageError(f"--mask={self.mask!r}: no such file")
        self.jump_pair  # noqa: B018 - parses --jumps

    @property
    def jump_pair(self) -> Optional[tuple[int, int]]:
        """``--jumps=j,r`` parsed (RePaint: jump back j steps, walk each segment r times), or None."""
        if self.jumps is None:
            return None
        parts = [p.strip() for p in str(self.jumps).split(",")]
        if len(parts) != 2 or not all(p.isdigit() and int(p) >= 1 for p in parts):
            raise UsageError(f"--jumps={self.jumps!r}: expected j,r, two integers >= 1 (jump back j steps, walk "
                             "each segment r times), e.g. 10,10")
        return int(parts[0]), int(parts[1])

    @property
    def step_counts(self) -> Optional[tuple[int, ...]]:
        """``steps`` parsed (syntax only; the range needs T), or None."""
        if self.steps is None:
            return None
        try:
            return parse_step_counts(self.steps)
        except ValueError as e:
            raise UsageError(str(e)) from None

    @classmethod
    def from_flags(cls, flag_values) -> "SampleOptions":
        """From sample.py's absl flags; the deprecated ``--sampler`` is read as ``--corrector`` with a warning."""
        names = [f.name for f in dataclasses.fields(cls)]
        kw = {n: getattr(flag_values, n) for n in names}
        old = getattr(flag_values, "sampler", None)
        if old is not None:
            log.warning("--sampler is deprecated: use --corrector=%s (the config key is sample.corrector)", old)
            if kw["corrector"] is not None and kw["corrector"] != old:
                raise UsageError(f"--sampler={old!r} and --corrector={kw['corrector']!r} disagree: "
                                 "pass --corrector only")
            kw["corrector"] = old
        return cls(**kw)

    def resolve(self, run) -> "ModeSettings":
        """The settings of a mode on ``run`` (a :class:`jaxdiff.experiment.Run`). Raises UsageError."""
        from jaxdiff import sampling

        process, config = run.process, run.config
        T = int(process.T)
        if self.mode == "fill":
            from jaxdiff.sampling.loop import known_region_needs

            why = known_region_needs(process)
            if why is not None:
                raise UsageError(f"--mode=fill: {why}")
        generates = self.mode in ("generate", "blend")
        if generates and not process.can_generate:
            try:
                process.generation()
            except ValueError as e:
                raise UsageError(f"--mode={self.mode}: {e}") from None
        # generation's own default (the degradation's GenerationPrior.corrector; noise at T: sample.corrector)
        configured = str(config.sample.corrector)
        default = process.generation_corrector(configured) if generates else configured
        corrector = self.corrector or default
        if corrector not in sampling.CORRECTORS:
            raise UsageError(f"--corrector={corrector!r}: allowed {sorted(sampling.CORRECTORS)}")
        try:
            sampling.check_corrector(corrector, process)
        except ValueError as e:
            raise UsageError(f"--corrector={corrector!r}: {e}") from None
        counts = None
        if self.steps is not None:
            try:
                counts = parse_step_counts(self.steps, T)
            except ValueError as e:
                raise UsageError(str(e)) from None
        if self.severity is not None and self.severity > T:
            raise UsageError(f"--severity={self.severity}: must be in [1, T={T}]")
        cold = process.keeps_image  # x_T holds the image: restoration is what it does first
        sweep = self.sweep if self.sweep != "auto" else ("restoration" if cold else "generation")
        if sweep == "generation" and not process.can_generate:
            raise UsageError("--sweep=generation: this run has no generation prior (use --sweep=restoration)")
        if sweep == "restoration" and not cold:
            raise UsageError("--sweep=restoration needs a cold process; Gaussian runs sweep generation")
        if self.mode == "restore" and not cold and self.severity is None:
            log.info("restore with a Gaussian process from t = T starts from (nearly) pure noise; "
                     "pass --severity=t < T to denoise partially noised images")
        default_steps = int(config.sample.steps)
        spacing = self.spacing or str(config.sample.get("spacing", "linear"))
        if spacing == "karras":
            try:
                sampling.model_sigmas(process)
            except ValueError as e:
                raise UsageError(f"--spacing=karras: {e}") from None
        classes, guidance = self._resolve_labels(config)
        return ModeSettings(
            options=self, corrector=corrector, eta=float(config.sample.eta) if self.eta is None else float(self.eta),
            steps=default_steps if counts is None or len(counts) > 1 else counts[0],
            sweep_steps=counts if counts is not None and len(counts) > 1 else None,
            sweep=sweep, num=self._num(classes), label_classes=classes, guidance=guidance, spacing=spacing,
        )

    def _num(self, classes) -> int:
        if self.labels is None:
            return self.num or DEFAULT_NUM[self.mode]
        per = math.ceil(self.num / len(classes)) if self.num else DEFAULT_PER_LABEL  # one full row per class
        return per * len(classes)

    def _resolve_labels(self, config) -> tuple[Optional[tuple[int, ...]], float]:
        classes = self.label_classes
        if classes is None:
            return None, 0.0
        flag = f"--label={self.label}" if self.label is not None else f"--labels={self.labels}"
        n = int(config.model.get("num_classes", 0))
        if n == 0:
            raise UsageError(f"{flag}: the model of {self.workdir} is unconditional (model.num_classes=0); "
                             "labels need a class-conditional run (e.g. configs/ddim_cond.py)")
        if max(classes) >= n:
            raise UsageError(f"{flag}: label {max(classes)} does not exist; allowed: 0 … {n - 1} "
                             f"(model.num_classes={n})")
        return classes, float(config.sample.get("guidance", 0.0)) if self.guidance is None else float(self.guidance)


@dataclasses.dataclass(frozen=True)
class ModeSettings:
    """Options with the run's defaults filled in: what a mode reads.

    steps: network calls of one run (0: every step); sweep_steps: the counts of a steps sweep (evaluate), or
    None; sweep: what that sweep measures ("generation" or "restoration"); num: images (or pairs).
    """

    options: SampleOptions
    corrector: str
    eta: float
    steps: int
    sweep_steps: Optional[tuple[int, ...]]
    sweep: str
    num: int
    label_classes: Optional[tuple[int, ...]] = None
    guidance: float = 0.0
    spacing: str = "linear"

    @property
    def sample_labels(self):
        """int32 (num,): the class of each sample (--labels: ``num / len(classes)`` per class, class by class, so
        a grid of that many columns has one row per class), or None without --label/--labels."""
        if self.label_classes is None:
            return None
        import numpy as np

        per = self.num // len(self.label_classes)
        return np.repeat(np.asarray(self.label_classes, np.int32), per)

    @property
    def seed(self) -> int:
        return self.options.seed

    @property
    def batch(self) -> int:
        return self.options.batch

    @property
    def mode(self) -> str:
        return self.options.mode
