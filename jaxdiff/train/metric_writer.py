"""What a training run logs: ``<workdir>/metrics.jsonl`` and TensorBoard events under ``<workdir>/tb/``.

Each ``write(step, metrics)`` is one JSON line ``{"step", "wall_time", <name>: <value>, …}`` (strict JSON: a
non-finite value is ``null``) and one tensorboardX scalar per metric at the same wall time; sample grids go
to TensorBoard as image summaries. A run resumed at step S first drops what a killed run logged after S:
the rows with step > S are cut from metrics.jsonl (atomically) and the event file starts with
``purge_step=S + 1``, so TensorBoard's reader hides the orphaned later events. Every step then appears once.
"""
from __future__ import annotations

import glob
import json
import math
import numbers
import os
import sys
import time
from typing import Any, Mapping, Optional

import numpy as np

from jaxdiff.files import atomic_write

__all__ = ["MetricWriter", "truncate_jsonl"]

METRICS_FILE = "metrics.jsonl"
TB_DIR = "tb"


def _to_scalar(name: str, value: Any):
    """A Python int/float from a Python, NumPy or JAX scalar (a 0-d or size-1 array)."""
    if isinstance(value, (bool, numbers.Integral)):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        arr = np.asarray(value)
        if arr.size == 1 and (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            item = arr.reshape(()).item()
            return int(item) if isinstance(item, (bool, int)) else float(item)
    raise ValueError(
        f"metric {name!r}={value!r} is not a scalar; allowed: a Python/NumPy/JAX number or a size-1 array"
    )


def truncate_jsonl(path: str, last_step: int) -> int:
    """Keeps the rows of ``path`` with ``step <= last_step`` (and drops a line cut by a kill), atomically.

    Returns how many lines were dropped; the file is rewritten only if one was.
    """
    if not os.path.exists(path):
        return 0
    kept, dropped = [], 0
    with open(path, encoding="utf-8", errors="replace") as fh:
        for line in fh:
            try:
                ok = int(json.loads(line)["step"]) <= last_step
            except (ValueError, KeyError, TypeError):
                ok = False
            if ok:
                kept.append(line if line.endswith("\n") else line + "\n")
            elif line.strip():
                dropped += 1
    if dropped:
        atomic_write(path, lambda f: f.write("".join(kept).encode("utf-8")))
    return dropped


def _summary_writer_class():
    """tensorboardX's SummaryWriter, imported without torch when torch is installed but not yet imported.

    tensorboardX's writer module tries ``import torch`` only to accept torch tensors, which jaxdiff never passes;
    with torch installed (the test and fid extras) that import alone costs about 2 s of every train.py start.
    Hiding torch for that one import is safe: tensorboardX falls back to NumPy (its ``except ImportError``), and
    torch stays importable afterwards. Where torch is already imported, nothing is hidden.
    """
    if "tensorboardX" in sys.modules or "torch" in sys.modules:
        from tensorboardX import SummaryWriter
        return SummaryWriter
    sys.modules["torch"] = None  # makes ``import torch`` raise ImportError
    try:
        from tensorboardX import SummaryWriter
    finally:
        if sys.modules.get("torch", 0) is None:
            del sys.modules["torch"]
    return SummaryWriter


class MetricWriter:
    """Scalars (and images) to metrics.jsonl and TensorBoard; a no-op with ``enabled=False`` (processes ≠ 0).

    ``resume_step``: the step the run starts from (see the module docstring); None appends to what is there.
    tensorboardX writes events in a background thread whose ``flush`` does not wait for it, so :meth:`sync`
    closes the event file (which does) and the next write opens a new one: call it before a checkpoint is
    saved, so that no checkpoint exists whose logged steps are not on disk.
    """

    RESERVED = ("step", "wall_time")

    def __init__(self, workdir: str, *, enabled: bool = True, resume_step: Optional[int] = None):
        self.workdir = workdir
        self.enabled = bool(enabled)
        self.jsonl_path = os.path.join(workdir, METRICS_FILE)
        self.tb_dir = os.path.join(workdir, TB_DIR)
        self._jsonl = None
        self._tb = None
        self._purge_step = None if resume_step is None else int(resume_step) + 1
        self._files: list[str] = []
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        if resume_step is not None:
            truncate_jsonl(self.jsonl_path, int(resume_step))
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")
        self._open_events()

    def _open_events(self):
        SummaryWriter = _summary_writer_class()
        # tensorboardX names files events.out.tfevents.<second>.<host><suffix>: a nanosecond suffix keeps two
        # writers of one second apart and in order (TensorBoard reads the files in name order).
        suffix = f".{time.time_ns():020d}.{os.getpid()}"
        self._tb = SummaryWriter(self.tb_dir, purge_step=self._purge_step, filename_suffix=suffix)
        self._purge_step = None  # only the first file of this run purges
        self._files += glob.glob(os.path.join(self.tb_dir, f"events.out.tfevents.*{suffix}"))

    @property
    def event_file(self) -> Optional[str]:
        """The newest event file this writer created (None when disabled)."""
        return self._files[-1] if self._files else None

    def _events(self):
        if self._jsonl is None:
            raise ValueError("MetricWriter.write after close()")
        if self._tb is None:
            self._open_events()
        return self._tb

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Logs ``metrics`` (name → scalar) at ``step``."""
        if not self.enabled:
            return
        tb = self._events()
        step = int(step)
        clash = [k for k in metrics if k in self.RESERVED]
        if clash:
            raise ValueError(f"metric names {clash} are reserved; allowed: any name but {list(self.RESERVED)}")
        values = {str(k): _to_scalar(str(k), v) for k, v in metrics.items()}
        wall_time = time.time()
        record = {"step": step, "wall_time": wall_time}
        record.update({k: (v if math.isfinite(v) else None) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        for k, v in values.items():
            tb.add_scalar(k, float(v), global_step=step, walltime=wall_time)
        self.flush()

    def write_image(self, step: int, tag: str, image) -> None:
        """An image summary: ``image`` uint8 (H, W), (H, W, 1) or (H, W, 3)."""
        if not self.enabled:
            return
        img = np.asarray(image)
        if img.dtype != np.uint8 or img.ndim not in (2, 3) or (img.ndim == 3 and img.shape[-1] not in (1, 3)):
            raise ValueError(f"image {tag!r}: {img.dtype}{img.shape} is not allowed; allowed: uint8 (H, W[, 1|3])")
        if img.ndim == 3 and img.shape[-1] == 1:
            img = img[..., 0]
        self._events().add_image(tag, img, global_step=int(step), walltime=time.time(),
                                 dataformats="HW" if img.ndim == 2 else "HWC")

    def sync(self) -> None:
        """Everything written so far is in the files (the event file is closed; the next write opens another)."""
        if self._jsonl is not None:
            self._jsonl.flush()
            os.fsync(self._jsonl.fileno())
        if self._tb is not None:
            self._tb.close()
            self._tb = None

    def flush(self) -> None:
        if self._jsonl is not None:
            self._jsonl.flush()
        if self._tb is not None:
            self._tb.flush()

    def close(self) -> None:
        if self._tb is not None:
            self._tb.close()
            self._tb = None
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None

    def __enter__(self) -> "MetricWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
