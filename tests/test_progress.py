"""jaxdiff.progress.ProgressBar: rates, smoothing, the postfix, and a disabled bar."""
import io

import pytest

from jaxdiff import progress
from jaxdiff.progress import ProgressBar


class _Clock:
    def __init__(self):
        self.t = 100.0

    def __call__(self):
        return self.t


def test_progress_bar_rates_and_postfix(monkeypatch):
    clock = _Clock()
    monkeypatch.setattr(progress.time, "perf_counter", clock)
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
    monkeypatch.setattr(progress.time, "perf_counter", clock)
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
