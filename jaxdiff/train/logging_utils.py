"""Metric logging without TensorFlow: JSON lines + TensorBoard event files, and a progress bar.

:class:`MetricWriter` writes every ``write(step, metrics)`` twice:

* ``<workdir>/metrics.jsonl``: one JSON object per line, ``{"step": s, "wall_time": t, <name>: <value>, …}``
  (strict JSON: a non-finite value is written as ``null``; the event file keeps the float);
* ``<workdir>/tb/events.out.tfevents.<time>.<host>``: a TensorBoard event file, readable by
  ``tensorboard --logdir <workdir>/tb``, produced by a small hand-written encoder:

  - TFRecord framing of each record: ``uint64 len | uint32 masked_crc32c(len) | data | uint32 masked_crc32c(data)``
    (little-endian), ``masked(c) = ((c >> 15) | (c << 17)) + 0xa282ead8 (mod 2**32)``;
  - ``Event`` protobuf: ``wall_time`` (1, double), ``step`` (2, int64), ``file_version`` (3, string, the first
    record: ``"brain.Event:2"``), ``summary`` (5, Summary); ``Summary.value`` (1, repeated Value);
    ``Value.tag`` (1, string), ``Value.simple_value`` (2, float).

Only process 0 should write: every method is a no-op when ``enabled=False``.

:class:`ProgressBar` is a tqdm bar for training and sampling loops showing steps/s, ETA, images/s and
the latest loss.
"""
from __future__ import annotations

import json
import math
import numbers
import os
import socket
import struct
import sys
import time
from typing import Any, Mapping, Optional

__all__ = [
    "crc32c",
    "masked_crc32c",
    "tfrecord_frame",
    "encode_scalar_event",
    "encode_file_version_event",
    "EventFileWriter",
    "MetricWriter",
    "ProgressBar",
]

# ---------------------------------------------------------------------------------------------
# CRC-32C (Castagnoli), reflected polynomial 0x82F63B78, init and final xor 0xFFFFFFFF.


def _make_crc32c_table() -> tuple:
    poly = 0x82F63B78
    table = []
    for byte in range(256):
        c = byte
        for _ in range(8):
            c = (c >> 1) ^ poly if c & 1 else c >> 1
        table.append(c)
    return tuple(table)


_CRC32C_TABLE = _make_crc32c_table()
_U32 = 0xFFFFFFFF


def crc32c(data: bytes, crc: int = 0) -> int:
    """CRC-32C of ``data``; pass a previous result as ``crc`` to continue it: crc32c(b, crc32c(a)) = crc32c(a + b)."""
    table = _CRC32C_TABLE
    c = crc ^ _U32
    for b in data:
        c = table[(c ^ b) & 0xFF] ^ (c >> 8)
    return c ^ _U32


def masked_crc32c(data: bytes) -> int:
    """The TFRecord checksum: the CRC rotated right by 15 bits plus a constant (so CRCs of CRCs don't collide)."""
    c = crc32c(data)
    return (((c >> 15) | (c << 17)) + 0xA282EAD8) & _U32


def tfrecord_frame(data: bytes) -> bytes:
    """One TFRecord: uint64 length, masked CRC of the length bytes, the data, masked CRC of the data."""
    header = struct.pack("<Q", len(data))
    return header + struct.pack("<I", masked_crc32c(header)) + data + struct.pack("<I", masked_crc32c(data))


# ---------------------------------------------------------------------------------------------
# Protocol-buffer wire format, just the parts an Event with scalar summaries needs.

_VARINT, _FIXED64, _LEN, _FIXED32 = 0, 1, 2, 5


def _varint(n: int) -> bytes:
    # Negative int64 values are encoded as their 64-bit two's complement (10 bytes), as protobuf does.
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        low = n & 0x7F
        n >>= 7
        if n:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _key(field: int, wire_type: int) -> bytes:
    return _varint((field << 3) | wire_type)


def _len_field(field: int, payload: bytes) -> bytes:
    return _key(field, _LEN) + _varint(len(payload)) + payload


def _event_header(wall_time: float, step: int) -> bytes:
    return _key(1, _FIXED64) + struct.pack("<d", wall_time) + _key(2, _VARINT) + _varint(int(step))


def encode_file_version_event(wall_time: float, version: str = "brain.Event:2") -> bytes:
    """Event{wall_time, step=0, file_version}: the record every event file starts with."""
    return _event_header(wall_time, 0) + _len_field(3, version.encode("utf-8"))


def encode_scalar_event(wall_time: float, step: int, scalars: Mapping[str, float]) -> bytes:
    """Event{wall_time, step, summary{value: [{tag, simple_value (float32)}, …]}}."""
    values = b"".join(
        _len_field(1, _len_field(1, tag.encode("utf-8")) + _key(2, _FIXED32) + struct.pack("<f", value))
        for tag, value in scalars.items()
    )
    return _event_header(wall_time, step) + _len_field(5, values)


class EventFileWriter:
    """Appends scalar summaries to one TensorBoard event file (no TensorFlow needed)."""

    def __init__(self, logdir: str, *, filename_suffix: str = ""):
        os.makedirs(logdir, exist_ok=True)
        base = f"events.out.tfevents.{int(time.time()):010d}.{socket.gethostname()}{filename_suffix}"
        path = os.path.join(logdir, base)
        k = 0
        while os.path.exists(path):  # two writers in the same second: never append to another's file
            k += 1
            path = os.path.join(logdir, f"{base}.{os.getpid()}.{k}")
        self.path = path
        self._f = open(path, "wb")
        self._f.write(tfrecord_frame(encode_file_version_event(time.time())))
        self._f.flush()

    def add_scalars(self, step: int, scalars: Mapping[str, float], *, wall_time: Optional[float] = None) -> None:
        if not scalars:
            return
        t = time.time() if wall_time is None else wall_time
        self._f.write(tfrecord_frame(encode_scalar_event(t, step, scalars)))

    def flush(self) -> None:
        if not self._f.closed:
            self._f.flush()

    def close(self) -> None:
        if not self._f.closed:
            self._f.flush()
            self._f.close()


# ---------------------------------------------------------------------------------------------


def _to_scalar(name: str, value: Any):
    """A Python int/float from a Python, NumPy or JAX scalar (a 0-d or size-1 array)."""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, numbers.Integral):
        return int(value)
    if isinstance(value, numbers.Real):
        return float(value)
    if hasattr(value, "shape") and hasattr(value, "dtype"):
        import numpy as np  # noqa: PLC0415  (only for array-valued metrics)

        arr = np.asarray(value)
        if arr.size == 1 and (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
            item = arr.reshape(()).item()
            return int(item) if isinstance(item, (bool, int)) else float(item)
    raise ValueError(
        f"metric {name!r}={value!r} is not a scalar; allowed: a Python/NumPy/JAX number or a size-1 array"
    )


class MetricWriter:
    """Writes scalar metrics to ``<workdir>/metrics.jsonl`` and ``<workdir>/tb/`` (a TensorBoard event file).

    ``write(step, {"loss": 0.1, …})`` appends one JSON line ``{"step", "wall_time", …}`` and one Event
    holding one scalar per metric. Files are flushed after every write so that a crash loses nothing.
    With ``enabled=False`` (every process but 0) nothing is created and every method does nothing.
    Usable as a context manager.
    """

    RESERVED = ("step", "wall_time")

    def __init__(self, workdir: str, *, enabled: bool = True):
        self.workdir = workdir
        self.enabled = bool(enabled)
        self._jsonl = None
        self._events: Optional[EventFileWriter] = None
        if not self.enabled:
            return
        os.makedirs(workdir, exist_ok=True)
        self.jsonl_path = os.path.join(workdir, "metrics.jsonl")
        self._jsonl = open(self.jsonl_path, "a", encoding="utf-8")  # append: a resumed run continues the log
        self._events = EventFileWriter(os.path.join(workdir, "tb"))

    @property
    def event_file(self) -> Optional[str]:
        return None if self._events is None else self._events.path

    def write(self, step: int, metrics: Mapping[str, Any]) -> None:
        """Logs ``metrics`` (name → scalar) at ``step``."""
        if not self.enabled:
            return
        if self._jsonl is None:
            raise ValueError("MetricWriter.write after close()")
        step = int(step)
        clash = [k for k in metrics if k in self.RESERVED]
        if clash:
            raise ValueError(f"metric names {clash} are reserved; allowed: any name but {list(self.RESERVED)}")
        values = {str(k): _to_scalar(str(k), v) for k, v in metrics.items()}
        wall_time = time.time()
        record = {"step": step, "wall_time": wall_time}
        # Strict JSON has no NaN/Infinity: write null; the event file keeps the float.
        record.update({k: (v if math.isfinite(v) else None) for k, v in values.items()})
        self._jsonl.write(json.dumps(record) + "\n")
        self._events.add_scalars(step, {k: float(v) for k, v in values.items()}, wall_time=wall_time)
        self.flush()

    def flush(self) -> None:
        if self._jsonl is not None:
            self._jsonl.flush()
        if self._events is not None:
            self._events.flush()

    def close(self) -> None:
        if self._jsonl is not None:
            self._jsonl.close()
            self._jsonl = None
        if self._events is not None:
            self._events.close()

    def __enter__(self) -> "MetricWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
