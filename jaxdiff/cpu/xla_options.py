"""XLA:CPU compile options for the train step: convolutions by XLA's own kernels rather than YNNPACK's.

XLA:CPU (jax 0.10–0.12) hands convolutions, dots and reductions to YNNPACK ("__ynn_fusion" in the compiled HLO).
For a convolution's *weight gradient* that is a poor fit: XLA rewrites it as a convolution whose "kernel" is the
whole output gradient (a 32×32 window giving a 3×3 result) with the batch as the contracted feature axis, and
YNNPACK runs that 1.4–2.4× slower than XLA's own (Eigen) convolution at 32×32 and 16×16. Leaving convolutions out
of the YNNPACK fusion set (dots and reductions stay: attention and the GroupNorm statistics are fast there;
turning YNNPACK off altogether is slower) makes training steps of all but the smallest models faster.

Measured train steps on the 2-core CPU of BENCHMARKS.md ("What became the default"), same run, interleaved,
speed-up with the option (H·W·ch = values per image at the UNet's first level):

    16×16, ch 16 (the main job)   4,096   0.86–0.91×   ← slower: left at XLA's default
    16×16, ch 32                  8,192   0.99–1.11×
    32×32, ch 16                 16,384   1.12–1.14×
    32×32, ch 32                 32,768   1.15–1.17×
    16×16, ch 64                 16,384   1.32–1.43×
    bench32 (32×32, ch 64)       65,536   1.32–1.46×

Forward-only programs (samplers) gained nothing measurable (bench32 forward 0.97×), so they keep XLA's defaults.

The option is passed through ``jax.jit(..., compiler_options=...)`` — per program, not process-wide — and only when
the program's devices are CPUs, so GPU/TPU programs are compiled exactly as before. It is left out when:

* the model is small (first level below :data:`MIN_LEVEL_SIZE` values per image: the measured loss above);
* ``JAXDIFF_XLA_CPU_OPTIONS=0`` (``1`` or unset: automatic; anything else is an error naming the variable);
* the user's ``XLA_FLAGS`` sets ``xla_cpu_experimental_ynn_fusion_type`` themselves (their choice wins);
* this jaxlib does not know the option (probed once by compiling a one-line program; the option is
  experimental and may be renamed): programs then compile with XLA's defaults.
"""
from __future__ import annotations

import functools
import logging
import os
from typing import Any, Optional

import jax
import numpy as np

OPTION = "xla_cpu_experimental_ynn_fusion_type"
#: XLA:CPU's default YNNPACK fusion set (dot, reduce, individual convolution) without the convolutions.
VALUE = "LIBRARY_FUSION_TYPE_DOT,LIBRARY_FUSION_TYPE_REDUCE"
ENV = "JAXDIFF_XLA_CPU_OPTIONS"
#: Values per image at the UNet's first level (H·W·ch) from which the option is used: measured 0.86–0.91× at 4,096,
#: break-even at 8,192, ≥ 1.12× from 16,384 up (table above).
MIN_LEVEL_SIZE = 16384

_log = logging.getLogger(__name__)


class XlaOptionsError(ValueError):
    """A bad JAXDIFF_XLA_CPU_OPTIONS value (train.py reports it as one line, exit code 2)."""


def enabled() -> bool:
    """Whether the environment allows the option (raises :class:`XlaOptionsError` on a bad value)."""
    env = os.environ.get(ENV, "").strip()
    if env not in ("", "0", "1"):
        raise XlaOptionsError(f"{ENV}={env!r} must be 1 (automatic, the default) or 0 (off: XLA's defaults)")
    if env == "0":
        return False
    return OPTION not in os.environ.get("XLA_FLAGS", "")


@functools.lru_cache(maxsize=None)
def supported() -> bool:
    """Compiles ``x + 1`` for a CPU device with the option; False (and one log line) if this jaxlib rejects it."""
    try:
        x = jax.device_put(np.float32(0), jax.devices("cpu")[0])
        jax.block_until_ready(jax.jit(lambda v: v + 1, compiler_options={OPTION: VALUE})(x))
        return True
    except Exception as e:  # noqa: BLE001  (an unknown option is a JaxRuntimeError; anything else: same answer)
        _log.warning("jaxdiff: XLA:CPU option %s not accepted by this jaxlib (%s); using XLA's defaults", OPTION, e)
        return False


def _platform(devices: Any) -> str:
    if devices is None:
        return jax.default_backend()
    return next(iter(np.asarray(devices, dtype=object).flat)).platform


def train_compiler_options(devices: Any = None, *, level_size: Optional[int] = None) -> Optional[dict]:
    """``{OPTION: VALUE}`` for a train step on ``devices`` (a jax device array/sequence, e.g. ``mesh.devices``;
    None = the default backend's) when they are CPUs, the model's first level holds ``level_size`` ≥
    :data:`MIN_LEVEL_SIZE` values per image (None: not checked), and the option is allowed and supported; else None."""
    if not enabled() or _platform(devices) != "cpu":
        return None
    if level_size is not None and level_size < MIN_LEVEL_SIZE:
        return None
    return {OPTION: VALUE} if supported() else None


def level_size(config) -> int:
    """H·W·ch of a config's UNet first level (``data.image_size`` squared × ``model.ch``)."""
    return int(config.data.image_size) ** 2 * int(config.model.ch)
