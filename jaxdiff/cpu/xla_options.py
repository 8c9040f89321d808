"""XLA:CPU compile options for the train step: convolutions by XLA's own kernels rather than YNNPACK's.

XLA:CPU (jax 0.10–0.12) hands convolutions, dots and reductions to YNNPACK; a convolution's weight gradient
becomes a convolution whose "kernel" is the whole output gradient, which YNNPACK runs slower than XLA's own
(Eigen) convolution. :func:`train_compiler_options` returns ``{OPTION: VALUE}`` (the default YNNPACK fusion set
without convolutions) for a train step on CPU devices whose UNet's first level holds at least
:data:`MIN_LEVEL_SIZE` values per image, passed per program through ``jax.jit(..., compiler_options=...)``.
Forward-only programs and GPU/TPU programs keep XLA's defaults. It is left out with ``JAXDIFF_XLA_CPU_OPTIONS=0``,
when the user's ``XLA_FLAGS`` sets the option, or when this jaxlib rejects it (probed once).
The measured speed-ups and the break-even size are in BENCHMARKS.md, "What became the default", item 3.
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
#: Values per image at the UNet's first level (H·W·ch) from which the option is used (the measured break-even:
#: BENCHMARKS.md, "What became the default", item 3).
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
