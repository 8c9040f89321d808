"""MetricWriter (JSON lines + TensorBoard event files), its CRC-32C, and the progress bar.

The event files are read back with TensorBoard's own reader (an independent implementation of the
TFRecord framing, CRC checks and Event protobuf decoding).
"""
import glob
import io
import json
import math
import os
import struct

import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff.train import logging_utils as lu
from jaxdiff.progress import ProgressBar

tb_loader = pytest.importorskip("tensorboard.backend.event_processing.event_file_loader")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.compat.proto import event_pb2  # noqa: E402

# --- CRC-32C -----------------------------------------------------------------------------------------

# RFC 3720 (iSCSI) appendix B.4 test vectors, and the common "123456789" check value.
CRC_VECTORS = [
    (b"123456789", 0xE3069283),
    (bytes(32), 0x8A9136AA),
    (b"\xff" * 32, 0x62A8AB43),
    (bytes(range(32)), 0x46DD794E),
    (bytes(range(31, -1, -1)), 0x113FDB5C),
    (b"", 0x00000000),
]


@pytest.mark.parametrize("data,expected", CRC_VECTORS)
def test_crc32c_known_vectors(data, expected):
    assert lu.crc32c(data) == expected


def test_crc32c_continues_across_chunks():
    data = np.random.default_rng(0).integers(0, 256, 1000, dtype=np.uint8).tobytes()
    for cut in (0, 1, 17, 999, 1000):
        assert lu.crc32c(data[cut:], lu.crc32c(data[:cut])) == lu.crc32c(data)


def test_crc32c_matches_tensorboards_implementation():
    from tensorboard.compat.tensorflow_stub import pywrap_tensorflow as tb

    rng = np.random.default_rng(1)
    for n in (1, 7, 64, 513):
        data = rng.integers(0, 256, n, dtype=np.uint8).tobytes()
        assert lu.crc32c(data) == tb.crc32c(data)
        assert lu.masked_crc32c(data) == tb.masked_crc32c(data)


@pytest.mark.parametrize("module", ["google_crc32c", "crc32c"])
def test_crc32c_matches_installed_library(module):
    lib = pytest.importorskip(module)
    data = np.random.default_rng(2).integers(0, 256, 300, dtype=np.uint8).tobytes()
    value = lib.value(data) if module == "google_crc32c" else lib.crc32c(data)
    assert lu.crc32c(data) == value


def test_masked_crc_formula():
    c = lu.crc32c(b"abc")
    assert lu.masked_crc32c(b"abc") == (((c >> 15) | (c << 17)) + 0xA282EAD8) % 2**32


def test_tfrecord_frame_layout():
    data = b"hello event"
    rec = lu.tfrecord_frame(data)
    (length,) = struct.unpack("<Q", rec[:8])
    assert length == len(data) and len(rec) == 8 + 4 + len(data) + 4
    assert struct.unpack("<I", rec[8:12])[0] == lu.masked_crc32c(rec[:8])
    assert rec[12:-4] == data
    assert struct.unpack("<I", rec[-4:])[0] == lu.masked_crc32c(data)


# --- MetricWriter -------------------------------------------------------------------------------------


def _log(tmp_path):
    """Writes a few steps; returns the writer's paths and what was written."""
    written = [
        (0, {"loss": 1.5, "lr": 2e-5}),
        (10, {"loss": np.float32(0.75), "lr": jnp.asarray(2e-5), "images": 640}),
        (20, {"loss": jnp.asarray([0.25]), "grad_norm": float("nan")}),
        (-1, {"eval/ssim": 0.5}),  # a negative step is encoded as a 10-byte varint
    ]
    with lu.MetricWriter(str(tmp_path)) as w:
        for step, metrics in written:
            w.write(step, metrics)
        event_file = w.event_file
    return event_file, written


def test_jsonl_round_trip(tmp_path):
    _, written = _log(tmp_path)
    lines = (tmp_path / "metrics.jsonl").read_text().splitlines()
    assert len(lines) == len(written)
    rows = [json.loads(ln) for ln in lines]  # strict JSON: no NaN tokens
    for row, (step, metrics) in zip(rows, written):
        assert row["step"] == step
        assert set(row) == {"step", "wall_time", *metrics}
        for k, v in metrics.items():
            expected = float(np.asarray(v).reshape(()))
            if math.isnan(expected):
                assert row[k] is None
            else:
                assert row[k] == pytest.approx(expected, rel=1e-7)
    assert rows[1]["images"] == 640 and isinstance(rows[1]["images"], int)
    times = [r["wall_time"] for r in rows]
    assert times == sorted(times)


def test_jsonl_appends_on_resume(tmp_path):
    with lu.MetricWriter(str(tmp_path)) as w:
        w.write(1, {"a": 1.0})
    with lu.MetricWriter(str(tmp_path)) as w:
        w.write(2, {"a": 2.0})
    steps = [json.loads(x)["step"] for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    assert steps == [1, 2]
    assert len(glob.glob(str(tmp_path / "tb" / "events.out.tfevents.*"))) == 2  # one file per writer


def test_event_file_read_by_tensorboard(tmp_path):
    event_file, written = _log(tmp_path)
    name = os.path.basename(event_file)
    assert name.startswith("events.out.tfevents.") and os.path.dirname(event_file) == str(tmp_path / "tb")

    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    expected = {}
    for step, metrics in written:
        for k, v in metrics.items():
            expected.setdefault(k, []).append((step, np.float32(np.asarray(v).reshape(()))))
    assert set(acc.Tags()["scalars"]) == set(expected)
    for tag, pairs in expected.items():
        got = [(e.step, np.float32(e.value)) for e in acc.Scalars(tag)]
        assert [s for s, _ in got] == [s for s, _ in pairs]
        for (_, a), (_, b) in zip(got, pairs):
            assert (np.isnan(a) and np.isnan(b)) or a == b  # float32 simple_value, bit-exact

    # The raw records, decoded by the protobuf library: the first is the file version.
    events = [event_pb2.Event.FromString(r) for r in tb_loader.RawEventFileLoader(event_file).Load()]
    assert events[0].file_version == "brain.Event:2"
    assert len(events) == 1 + len(written)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    for ev, row in zip(events[1:], rows):
        assert ev.step == row["step"]
        assert ev.wall_time == pytest.approx(row["wall_time"], abs=1e-6)  # the same time in both files


def test_tensorboard_reader_checks_our_crcs(tmp_path):
    """A flipped byte makes TensorBoard's reader stop: so a clean read above really validated the CRCs."""
    event_file, written = _log(tmp_path)
    n_clean = len(list(tb_loader.RawEventFileLoader(event_file).Load()))
    raw = bytearray(open(event_file, "rb").read())
    first_len = struct.unpack("<Q", raw[:8])[0]
    second = 8 + 4 + first_len + 4
    raw[second + 12 + 3] ^= 0x01  # a byte inside the second record's data
    bad = tmp_path / "corrupt.tfevents"
    bad.write_bytes(bytes(raw))
    n_bad = len(list(tb_loader.RawEventFileLoader(str(bad)).Load()))
    assert n_clean == 1 + len(written) and n_bad == 1


def test_unicode_tags_and_many_values(tmp_path):
    metrics = {f"group/σ_{i}": float(i) / 7 for i in range(40)}
    with lu.MetricWriter(str(tmp_path)) as w:
        w.write(3, metrics)
        path = w.event_file
    ev = [event_pb2.Event.FromString(r) for r in tb_loader.RawEventFileLoader(path).Load()][1]
    got = {v.tag: v.simple_value for v in ev.summary.value}
    assert got == {k: pytest.approx(np.float32(v)) for k, v in metrics.items()}


def test_disabled_writer_writes_nothing(tmp_path):
    d = tmp_path / "w"
    w = lu.MetricWriter(str(d), enabled=False)
    w.write(1, {"loss": 1.0})
    w.flush()
    w.close()
    assert not d.exists() and w.event_file is None


@pytest.mark.parametrize(
    "metrics,needle",
    [({"step": 1.0}, "reserved"), ({"wall_time": 1.0}, "reserved"), ({"img": np.zeros((2, 2))}, "'img'"), ({"s": "x"}, "'s'")],
)
def test_bad_metrics_are_rejected(tmp_path, metrics, needle):
    with lu.MetricWriter(str(tmp_path)) as w:
        with pytest.raises(ValueError, match=needle):
            w.write(0, metrics)


# --- ProgressBar ---------------------------------------------------------------------------------------


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_bar_rates_and_postfix(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(lu.time, "perf_counter", clock)
    out = io.StringIO()
    bar = ProgressBar(1000, batch_size=64, file=out, mininterval=0.0, smoothing=1.0)
    clock.t += 2.0
    bar.update(100, loss=0.123456)  # 100 steps in 2 s
    assert bar.steps_per_sec == pytest.approx(50.0)
    assert bar.images_per_sec == pytest.approx(50.0 * 64)
    clock.t += 1.0
    bar.update(200, loss=0.1)  # 100 steps in 1 s (smoothing=1: the last interval only)
    assert bar.steps_per_sec == pytest.approx(100.0)
    bar.close()
    text = out.getvalue()
    assert "loss=0.1235" in text and "img/s=3200" in text and "img/s=6400" in text
    assert "200/1000" in text


def test_progress_bar_smooths_and_can_be_disabled(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(lu.time, "perf_counter", clock)
    out = io.StringIO()
    bar = ProgressBar(10, initial=0, batch_size=None, file=out, enabled=False, smoothing=0.5)
    clock.t += 1.0
    bar.update(4)  # 4 steps/s
    clock.t += 1.0
    bar.update(6)  # 2 steps/s → 0.5·2 + 0.5·4
    assert bar.steps_per_sec == pytest.approx(3.0)
    assert bar.images_per_sec is None
    bar.close()
    assert out.getvalue() == ""
