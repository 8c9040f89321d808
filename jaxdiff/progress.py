"""Progress of long work (training steps, sampled images): a tqdm bar with the rate and the ETA."""
from __future__ import annotations

import numbers
import sys
import time
from typing import Any, Optional

__all__ = ["ProgressBar"]


class ProgressBar:
    """A tqdm bar over steps: ``n/total``, steps/s, ETA, plus ``loss=…`` and ``img/s=…`` in the postfix.

    ``update(step, loss=…, **other_metrics)`` moves the bar to the absolute ``step`` (so it can be called
    only every ``log_every`` steps). Images per second = steps per second × ``batch_size``, measured over
    the interval since the previous update and smoothed exponentially.
    """

    def __init__(
        self,
        total: int,
        *,
        initial: int = 0,
        batch_size: Optional[int] = None,
        desc: str = "train",
        unit: str = "step",
        enabled: bool = True,
        file=None,
        mininterval: float = 0.5,
        smoothing: float = 0.3,
    ):
        import tqdm  # noqa: PLC0415  (keeps `import jaxdiff.progress` light)

        self.batch_size = batch_size
        self.smoothing = float(smoothing)
        self.enabled = bool(enabled)
        self._bar = tqdm.tqdm(
            total=total,
            initial=initial,
            desc=desc,
            unit=unit,
            disable=not self.enabled,
            file=sys.stderr if file is None else file,
            mininterval=mininterval,
            smoothing=smoothing,
            dynamic_ncols=True,
        )
        self._step = int(initial)
        self._time = time.perf_counter()
        self.steps_per_sec: Optional[float] = None

    @property
    def images_per_sec(self) -> Optional[float]:
        if self.steps_per_sec is None or not self.batch_size:
            return None
        return self.steps_per_sec * self.batch_size

    def update(self, step: int, *, loss: Optional[float] = None, **metrics: Any) -> None:
        step = int(step)
        now = time.perf_counter()
        delta, dt = step - self._step, now - self._time
        if delta > 0 and dt > 0:
            rate = delta / dt
            s = self.smoothing
            self.steps_per_sec = rate if self.steps_per_sec is None else s * rate + (1 - s) * self.steps_per_sec
        self._step, self._time = step, now
        if not self.enabled:
            return
        postfix = {}
        if loss is not None:
            postfix["loss"] = f"{float(loss):.4g}"
        for k, v in metrics.items():
            postfix[k] = f"{float(v):.4g}" if isinstance(v, numbers.Real) or hasattr(v, "dtype") else str(v)
        if self.images_per_sec is not None:
            postfix["img/s"] = f"{self.images_per_sec:.4g}"
        self._bar.set_postfix(postfix, refresh=False)
        if delta > 0:
            self._bar.update(delta)
        else:
            self._bar.refresh()

    def write(self, message: str) -> None:
        """Prints a line without breaking the bar."""
        if self.enabled:
            self._bar.write(message)

    def close(self) -> None:
        self._bar.close()

    def __enter__(self) -> "ProgressBar":
        return self

    def __exit__(self, *exc) -> None:
        self.close()
