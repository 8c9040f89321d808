"""On a CPU-only host, present the cores as several XLA devices so that data parallelism splits each batch.

Exposing the host as n devices (``jax_num_cpu_devices``) and sharding the batch over a ('data',) mesh of them — the
same code path as several GPUs — runs n smaller programs side by side, with the same numbers; the measured gain
is in BENCHMARKS.md, "What became the default", item 2. :func:`split_cpu_devices` must run before JAX initializes
its backends (``train.py`` and ``sample.py`` call it). It changes nothing when the user chose a CPU device count
(``XLA_FLAGS=--xla_force_host_platform_device_count=…``, ``jax_num_cpu_devices``, or ``JAXDIFF_CPU_DEVICES``:
the count, 1 = off), when ``JAX_PLATFORMS`` excludes ``cpu``, when JAX's backends are already up, or in a
multi-process (``jax.distributed``) run. On GPU/TPU hosts the extra CPU devices are not in ``jax.devices()``.
"""
from __future__ import annotations

import os
from typing import Optional

import jax

#: Upper bound on the automatic count: beyond 8 the per-device batch of typical configs gets too small to
#: amortise a program launch.
MAX_AUTO_DEVICES = 8
ENV = "JAXDIFF_CPU_DEVICES"


class CpuDevicesError(ValueError):
    """A bad JAXDIFF_CPU_DEVICES value (train.py and sample.py report it as one line, exit code 2)."""


def _usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


def _backends_initialized() -> bool:
    try:
        from jax._src import xla_bridge

        return bool(xla_bridge.backends_are_initialized())
    except Exception:  # noqa: BLE001  (private API moved: assume the worst, change nothing)
        return True


def auto_count(batch_size: int, cores: Optional[int] = None) -> int:
    """The largest divisor of ``batch_size`` that is ≤ min(cores, MAX_AUTO_DEVICES) (≥ 1)."""
    cap = max(1, min(int(cores or _usable_cores()), MAX_AUTO_DEVICES))
    return max(d for d in range(1, cap + 1) if batch_size % d == 0)


def split_cpu_devices(batch_size: int, *, distributed: bool = False) -> int:
    """Sets ``jax_num_cpu_devices`` to split ``batch_size`` over the cores; returns the count set (0: untouched)."""
    if distributed or os.environ.get("JAX_COORDINATOR_ADDRESS"):
        return 0
    if "xla_force_host_platform_device_count" in os.environ.get("XLA_FLAGS", ""):
        return 0
    if int(jax.config.jax_num_cpu_devices) > 0:
        return 0
    platforms = os.environ.get("JAX_PLATFORMS", "").strip()
    if platforms and "cpu" not in platforms.split(","):
        return 0
    if not isinstance(batch_size, int) or isinstance(batch_size, bool) or batch_size < 1:
        return 0  # config validation reports it
    env = os.environ.get(ENV, "").strip()
    if env:
        if not env.isdigit() or int(env) < 1:
            raise CpuDevicesError(f"{ENV}={env!r} must be a positive integer (the number of CPU devices; 1 = off)")
        n = int(env)
    else:
        n = auto_count(batch_size)
    if n <= 1 or _backends_initialized():
        return 0
    jax.config.update("jax_num_cpu_devices", n)
    return n
