"""MetricWriter: JSON lines + TensorBoard events through tensorboardX, exactly once per step after a resume.

The event files are read back with TensorBoard's own reader (``EventAccumulator``, which applies purges, and
the raw record loader, which checks the TFRecord CRCs).
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
from PIL import Image

from jaxdiff.train.metric_writer import MetricWriter, truncate_jsonl

tb_loader = pytest.importorskip("tensorboard.backend.event_processing.event_file_loader")
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator  # noqa: E402
from tensorboard.compat.proto import event_pb2  # noqa: E402


# --- MetricWriter -------------------------------------------------------------------------------------


def _log(tmp_path):
    """Writes a few steps; returns the writer's paths and what was written."""
    written = [
        (0, {"loss": 1.5, "lr": 2e-5}),
        (10, {"loss": np.float32(0.75), "lr": jnp.asarray(2e-5), "images": 640}),
        (20, {"loss": jnp.asarray([0.25]), "grad_norm": float("nan")}),
        (-1, {"eval/ssim": 0.5}),  # a negative step (a 10-byte varint in the Event)
    ]
    with MetricWriter(str(tmp_path)) as w:
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
    with MetricWriter(str(tmp_path)) as w:
        w.write(1, {"a": 1.0})
    with MetricWriter(str(tmp_path)) as w:
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

    # The raw records, decoded by the protobuf library: the first is the file version, then one event per
    # metric (tensorboardX writes one scalar per event), at the step and wall time of its JSON row.
    events = [event_pb2.Event.FromString(r) for r in tb_loader.RawEventFileLoader(event_file).Load()]
    assert events[0].file_version == "brain.Event:2"
    assert len(events) == 1 + sum(len(m) for _, m in written)
    rows = [json.loads(x) for x in (tmp_path / "metrics.jsonl").read_text().splitlines()]
    per_metric = [(row, k) for row, (_, m) in zip(rows, written) for k in m]
    for ev, (row, tag) in zip(events[1:], per_metric):
        assert ev.step == row["step"] and [v.tag for v in ev.summary.value] == [tag]
        assert ev.wall_time == pytest.approx(row["wall_time"], abs=1e-6)  # the same time in both files


def test_tensorboard_reader_checks_the_crcs(tmp_path):
    """A flipped byte makes TensorBoard's reader stop: so a clean read above really validated the CRCs."""
    event_file, written = _log(tmp_path)
    n_events = 1 + sum(len(m) for _, m in written)
    n_clean = len(list(tb_loader.RawEventFileLoader(event_file).Load()))
    raw = bytearray(open(event_file, "rb").read())
    first_len = struct.unpack("<Q", raw[:8])[0]
    second = 8 + 4 + first_len + 4
    raw[second + 12 + 3] ^= 0x01  # a byte inside the second record's data
    bad = tmp_path / "corrupt.tfevents"
    bad.write_bytes(bytes(raw))
    n_bad = len(list(tb_loader.RawEventFileLoader(str(bad)).Load()))
    assert n_clean == n_events and n_bad == 1


def test_unicode_tags_and_many_values(tmp_path):
    metrics = {f"group/σ_{i}": float(i) / 7 for i in range(40)}
    with MetricWriter(str(tmp_path)) as w:
        w.write(3, metrics)
        path = w.event_file
    events = [event_pb2.Event.FromString(r) for r in tb_loader.RawEventFileLoader(path).Load()][1:]
    assert {ev.step for ev in events} == {3}
    got = {v.tag: v.simple_value for ev in events for v in ev.summary.value}
    assert got == {k: pytest.approx(np.float32(v)) for k, v in metrics.items()}


def test_disabled_writer_writes_nothing(tmp_path):
    d = tmp_path / "w"
    w = MetricWriter(str(d), enabled=False)
    w.write(1, {"loss": 1.0})
    w.flush()
    w.close()
    assert not d.exists() and w.event_file is None


@pytest.mark.parametrize(
    "metrics,needle",
    [({"step": 1.0}, "reserved"), ({"wall_time": 1.0}, "reserved"), ({"img": np.zeros((2, 2))}, "'img'"), ({"s": "x"}, "'s'")],
)
def test_bad_metrics_are_rejected(tmp_path, metrics, needle):
    with MetricWriter(str(tmp_path)) as w:
        with pytest.raises(ValueError, match=needle):
            w.write(0, metrics)


# --- resume: every step once ---------------------------------------------------------------------------


def _steps_read_back(workdir, tag="loss"):
    acc = EventAccumulator(os.path.join(str(workdir), "tb"))
    acc.Reload()
    events = [e.step for e in acc.Scalars(tag)]
    rows = [json.loads(x)["step"] for x in open(os.path.join(str(workdir), "metrics.jsonl"))]
    return events, rows


def test_resume_truncates_the_jsonl_and_purges_later_events(tmp_path):
    """A run logged steps 1 … 10, was killed, and resumes from its checkpoint at step 6: steps 7 … 10 are
    logged again with other values; each step must then appear once, with the new values."""
    with MetricWriter(str(tmp_path)) as w:
        for s in range(1, 11):
            w.write(s, {"loss": float(s)})
    with MetricWriter(str(tmp_path), resume_step=6) as w:
        for s in range(7, 13):
            w.write(s, {"loss": 100.0 + s})
    events, rows = _steps_read_back(tmp_path)
    assert events == list(range(1, 13)) and rows == list(range(1, 13))
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    values = {e.step: e.value for e in acc.Scalars("loss")}
    assert values[6] == 6.0 and values[7] == 107.0 and values[12] == 112.0
    losses = {json.loads(x)["step"]: json.loads(x)["loss"] for x in open(tmp_path / "metrics.jsonl")}
    assert losses[6] == 6.0 and losses[7] == 107.0


def test_resume_at_a_step_that_was_never_logged_past_keeps_everything(tmp_path):
    with MetricWriter(str(tmp_path)) as w:
        for s in (2, 4):
            w.write(s, {"loss": 1.0})
    before = (tmp_path / "metrics.jsonl").stat().st_ino
    with MetricWriter(str(tmp_path), resume_step=4) as w:
        w.write(6, {"loss": 2.0})
    assert (tmp_path / "metrics.jsonl").stat().st_ino == before  # nothing to drop: not rewritten
    assert _steps_read_back(tmp_path) == ([2, 4, 6], [2, 4, 6])


def test_truncate_jsonl_drops_later_rows_and_a_cut_line_atomically(tmp_path):
    p = tmp_path / "metrics.jsonl"
    p.write_text("".join(json.dumps({"step": s, "loss": s}) + "\n" for s in (1, 2, 3, 4)) + '{"step": 5, "lo')
    assert truncate_jsonl(str(p), 2) == 3  # rows 3, 4 and the cut line
    assert [json.loads(x)["step"] for x in p.read_text().splitlines()] == [1, 2]
    assert sorted(os.listdir(tmp_path)) == ["metrics.jsonl"]  # no temporary file left
    assert truncate_jsonl(str(tmp_path / "missing.jsonl"), 2) == 0


def test_sync_puts_every_event_on_disk_and_the_next_write_opens_a_new_file(tmp_path):
    """tensorboardX writes from a background thread; after sync() the records are in the file already
    (read while the writer is still open), and later writes go to a new file that sorts after it."""
    w = MetricWriter(str(tmp_path))
    for s in range(1, 6):
        w.write(s, {"loss": float(s), "lr": 1e-3})
    first = w.event_file
    w.sync()
    records = list(tb_loader.RawEventFileLoader(first).Load())
    assert len(records) == 1 + 5 * 2
    w.write(6, {"loss": 6.0})
    second = w.event_file
    assert second != first and sorted([second, first]) == [first, second]
    w.close()
    assert _steps_read_back(tmp_path) == (list(range(1, 7)), list(range(1, 7)))


def test_event_files_of_one_second_sort_in_creation_order(tmp_path):
    names = []
    for _ in range(3):
        with MetricWriter(str(tmp_path)) as w:
            names.append(os.path.basename(w.event_file))
    assert len(set(names)) == 3 and sorted(names) == names


@pytest.mark.parametrize("shape", [(6, 10), (6, 10, 1), (6, 10, 3)])
def test_image_summary_round_trip(tmp_path, shape):
    img = np.random.default_rng(0).integers(0, 256, shape, dtype=np.uint8)
    with MetricWriter(str(tmp_path)) as w:
        w.write_image(8, "samples", img)
    acc = EventAccumulator(str(tmp_path / "tb"))
    acc.Reload()
    (ev,) = acc.Images("samples")
    assert ev.step == 8 and (ev.width, ev.height) == (10, 6)
    got = np.asarray(Image.open(io.BytesIO(ev.encoded_image_string)).convert("RGB"))
    want = np.broadcast_to(img.reshape(6, 10, -1), (6, 10, 3))  # grey: the same value in R, G and B
    np.testing.assert_array_equal(got, want)


@pytest.mark.parametrize("image", [np.zeros((4, 4), np.float32), np.zeros((4, 4, 2), np.uint8), np.zeros(4, np.uint8)])
def test_bad_image_is_rejected(tmp_path, image):
    with MetricWriter(str(tmp_path)) as w:
        with pytest.raises(ValueError, match=r"image 'x': .* allowed: uint8"):
            w.write_image(0, "x", image)


_NO_TORCH_PROBE = """
import sys
import numpy as np
from jaxdiff.train.metric_writer import MetricWriter
with MetricWriter(sys.argv[1]) as w:
    w.write(0, {"loss": 1.0})
    w.write_image(0, "samples", np.zeros((8, 8, 3), np.uint8))
print("torch imported by the writer:", "torch" in sys.modules)
import torch  # still importable: the writer hid it only while tensorboardX was imported
print("torch afterwards:", torch.zeros(1).shape == (1,))
"""


def test_the_writer_does_not_import_torch_and_leaves_it_importable(tmp_path):
    import subprocess
    import sys

    pytest.importorskip("torch")
    out = subprocess.run([sys.executable, "-c", _NO_TORCH_PROBE, str(tmp_path)], capture_output=True, text=True,
                         timeout=120, env=dict(os.environ, JAX_PLATFORMS="cpu"))
    assert out.returncode == 0, out.stderr[-2000:]
    assert "torch imported by the writer: False" in out.stdout
    assert "torch afterwards: True" in out.stdout
    assert len(glob.glob(os.path.join(str(tmp_path), "tb", "events.out.tfevents.*"))) == 1
