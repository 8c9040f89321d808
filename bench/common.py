"""The timing harness every benchmark shares (benchmarks, not tests: nothing here asserts a time).

Rules it enforces, because the machine is 2 shared cores and single timings are noise:
  * every contender is warmed up (compiled / first-call allocations) before anything is timed;
  * contenders of one comparison are timed in the same process, interleaved A B A B … (``compare``),
    so a load spike from another process hits all of them alike;
  * a figure is the median over repeats; ratios are ratios of medians from the same run;
  * a short pause between contenders lets OpenMP/Eigen worker threads of the previous one stop spinning.

Threads: PyTorch gets ``torch.set_num_threads(n)`` and XLA:CPU's Eigen pool is sized by XLA to the
number of cores it sees (``os.cpu_count()``); ``setup_threads`` sets both to the same n (default:
all cores) and pins OpenMP's wait policy to passive so torch's idle workers do not steal cycles from XLA.
"""
from __future__ import annotations

import argparse
import json
import os
import pathlib
import platform
import statistics
import subprocess
import sys
import time
from typing import Callable, Dict, Optional, Sequence

RESULTS_DIR = pathlib.Path(__file__).resolve().parent / "results"
PAUSE_S = 0.05


def setup_threads(n: Optional[int] = None) -> int:
    """Call before importing torch/jax. Returns the thread count both frameworks use."""
    n = int(n or os.cpu_count() or 1)
    # Passive OpenMP waiting: a spinning torch worker would otherwise eat a core while XLA runs next.
    os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
    os.environ.setdefault("OMP_NUM_THREADS", str(n))
    os.environ.setdefault("MKL_NUM_THREADS", str(n))
    # XLA:CPU sizes its intra-op Eigen pool to the visible cores; on this 2-core box that is n = 2.
    return n


def setup_cpu_run(batch_size: int) -> tuple[int, int, Optional[str]]:
    """Threads, then the CPU split as train.py does it (before JAX starts its backend), then torch's threads when
    PyTorch runs in this process. Returns (threads, CPU devices, the PyTorch interpreter or None: in-process)."""
    n = setup_threads()
    from bench import remote
    from jaxdiff.cpu.devices import split_cpu_devices

    n_dev = split_cpu_devices(int(batch_size)) or 1
    tpy = remote.torch_python()
    if tpy is None:
        torch_threads(n)
    return n, n_dev, tpy


def torch_threads(n: int) -> None:
    import torch

    torch.set_num_threads(n)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def block(x):
    """Waits for a JAX result (any pytree) or a torch result (CUDA: synchronize; torch CPU is synchronous)."""
    if getattr(x, "is_cuda", False):
        import torch

        torch.cuda.synchronize()
        return x
    try:
        import jax

        jax.block_until_ready(x)
    except Exception:  # noqa: BLE001  (not a jax value)
        pass
    return x


def time_once(fn: Callable[[], object], iters: int) -> float:
    """Seconds per call of ``fn`` over ``iters`` back-to-back calls (result of the last one waited for)."""
    t0 = time.perf_counter()
    out = None
    for _ in range(iters):
        out = fn()
    block(out)
    return (time.perf_counter() - t0) / iters


def compare(
    contenders: Dict[str, Callable[[], object]],
    *,
    iters: int = 3,
    repeats: int = 7,
    warmup: int = 2,
) -> Dict[str, dict]:
    """Times every contender interleaved (A B C A B C …) and returns {name: {median_s, runs_s}}.

    Each ``fn()`` must do one full unit of work (it may carry state in a closure, e.g. a train step).
    """
    for name, fn in contenders.items():
        for _ in range(warmup):
            block(fn())
    runs = {k: [] for k in contenders}
    for _ in range(repeats):
        for name, fn in contenders.items():
            time.sleep(PAUSE_S)
            runs[name].append(time_once(fn, iters))
    return {k: {"median_s": statistics.median(v), "runs_s": v} for k, v in runs.items()}


def paired_ratio(result: Dict[str, dict], ref: str, name: str) -> float:
    """Median over rounds of t_ref / t_name, each pair timed back to back (robust to slow load drifts)."""
    return statistics.median(a / b for a, b in zip(result[ref]["runs_s"], result[name]["runs_s"]))


def machine_info() -> dict:
    info = {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "cpu": _cpu_name(),
        "load_avg_at_start": os.getloadavg(),
    }
    for mod in ("jax", "jaxlib", "flax", "torch", "diffusers"):
        try:
            info[mod] = __import__(mod).__version__
        except Exception:  # noqa: BLE001
            pass
    return info


def _cpu_name() -> str:
    try:
        for line in open("/proc/cpuinfo"):
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


def save(name: str, result: dict) -> pathlib.Path:
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    result = {"name": name, "machine": machine_info(), "time": time.strftime("%Y-%m-%d %H:%M:%S"), **result}
    path = RESULTS_DIR / f"{name}.json"
    path.write_text(json.dumps(result, indent=2, default=float))
    return path


def finish(name: str, rows, columns, *, notes: Sequence[str] = (), **extra) -> dict:
    """What every bench returns: ``rows`` as a Markdown ``table`` over ``columns`` (then each of ``notes`` as a
    paragraph), with ``extra`` fields, saved as bench/results/<name>.json."""
    table = markdown_table(rows, columns) + "".join(f"\n\n{n}" for n in notes if n)
    out = {"rows": rows, **extra, "table": table}
    save(name, out)
    return out


def main(run: Callable[..., dict], *options: tuple[str, dict]) -> None:
    """The command line of every bench: ``--quick`` plus ``options`` ((flag, argparse kwargs) pairs), then prints the
    table of ``run(quick=…, **the options)``."""
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes (a smoke run)")
    for flag, kwargs in options:
        ap.add_argument(flag, **kwargs)
    print(run(**vars(ap.parse_args()))["table"])


def markdown_table(rows, headers) -> str:
    def fmt(v):
        if isinstance(v, float):
            if v == 0 or 0.01 <= abs(v) < 1e5:
                return f"{v:.3g}" if abs(v) < 10 else f"{v:,.1f}"
            return f"{v:.3g}"
        return str(v)

    out = ["| " + " | ".join(headers) + " |", "|" + "|".join("---" for _ in headers) + "|"]
    for r in rows:
        out.append("| " + " | ".join(fmt(r.get(h, "")) for h in headers) + " |")
    return "\n".join(out)


def run_subprocess(args, env_extra=None, timeout=1800) -> subprocess.CompletedProcess:
    env = dict(os.environ)
    env.update(env_extra or {})
    root = pathlib.Path(__file__).resolve().parent.parent
    return subprocess.run(
        [sys.executable, *args], cwd=root, env=env, capture_output=True, text=True, timeout=timeout
    )
