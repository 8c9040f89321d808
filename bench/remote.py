"""Contenders that run in another Python (another venv), timed by this process's harness as if they were local.

Why: jax 0.12 needs Python ≥ 3.12, while the PyTorch reference the benchmarks compare against is the CPU build of
torch 2.13.0 that lies on this machine's disk for Python 3.11 only (pip takes a CUDA build for 3.12). So the JAX
side may run in one interpreter and the PyTorch side in another, still interleaved A B A B in one run.

A contender is named by a builder ``"module:function"`` plus JSON keyword arguments; the builder returns a
zero-argument callable doing one unit of work. :func:`contender` builds it here, or — when ``python`` names another
interpreter — starts ``python -m bench.remote`` (a worker that builds the same callable) and returns a proxy whose
call asks the worker to run it once and waits for the answer. The worker blocks on its pipe between calls (no
spinning), so the two processes never compute at the same time; the round trip costs ~0.1 ms, which the benchmarks
using it (≥ 10 ms per call) can ignore.

    worker protocol (one JSON object per line): → {"builder", "kwargs"}  ← {"ok", "info"}
                                                 → "run"                   ← "done"
                                                 → "quit"
"""
from __future__ import annotations

import atexit
import importlib
import json
import os
import pathlib
import subprocess
import sys
from typing import Callable, Optional

ROOT = pathlib.Path(__file__).resolve().parent.parent


def build(builder: str, kwargs: dict) -> Callable[[], object]:
    mod, fn = builder.split(":")
    return getattr(importlib.import_module(mod), fn)(**kwargs)


def torch_python() -> Optional[str]:
    """The interpreter PyTorch contenders run in: $JAXDIFF_BENCH_TORCH_PYTHON, else this one (None)."""
    p = os.environ.get("JAXDIFF_BENCH_TORCH_PYTHON", "").strip()
    if not p or os.path.realpath(p) == os.path.realpath(sys.executable):
        return None
    return p


class _Remote:
    def __init__(self, python: str, builder: str, kwargs: dict, env_extra: Optional[dict] = None,
                 cwd: Optional[str] = None):
        env = dict(os.environ)
        env.pop("JAXDIFF_BENCH_TORCH_PYTHON", None)
        env.update(env_extra or {})
        self.proc = subprocess.Popen(
            [python, "-m", "bench.remote"],
            cwd=cwd or ROOT,
            env=env,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        self.proc.stdin.write(json.dumps({"builder": builder, "kwargs": kwargs}) + "\n")
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"bench.remote: worker {python} for {builder} exited with {self.proc.wait()}")
        self.info = json.loads(line).get("info", {})
        atexit.register(self.close)

    def __call__(self):
        self.proc.stdin.write("run\n")
        if self.proc.stdout.readline().strip() != "done":
            raise RuntimeError("bench.remote: worker failed during a call")

    def close(self):
        if self.proc.poll() is None:
            try:
                self.proc.stdin.write("quit\n")
                self.proc.stdin.flush()
                self.proc.wait(timeout=30)
            except Exception:  # noqa: BLE001
                self.proc.kill()


def contender(builder: str, python: Optional[str] = None, env: Optional[dict] = None, cwd: Optional[str] = None,
              **kwargs) -> Callable[[], object]:
    """The callable ``builder(**kwargs)``, built in this process or (``python`` or ``env`` set) in a worker of that
    Python (default: this one) with ``env`` added to its environment (e.g. its own XLA_FLAGS), started in ``cwd``
    (default: this tree; another checkout runs that checkout's code: bench.before_after)."""
    if env is not None and python is None:
        python = sys.executable
    if python is None:
        fn = build(builder, kwargs)
        info = {"python": sys.version.split()[0]}
        if "torch" in sys.modules:
            info["torch"] = sys.modules["torch"].__version__
        try:
            fn.info = {**info, **getattr(fn, "info", {})}
        except AttributeError:  # a callable that takes no attributes
            pass
        return fn
    return _Remote(python, builder, kwargs, env, cwd)


def _worker() -> None:
    from bench import common

    n = common.setup_threads()
    spec = json.loads(sys.stdin.readline())
    info = {"python": sys.version.split()[0]}
    try:
        import torch

        common.torch_threads(n)
        info["torch"] = torch.__version__
    except ImportError:
        pass
    fn = build(spec["builder"], spec["kwargs"])
    info.update(getattr(fn, "info", {}))
    print(json.dumps({"ok": True, "info": info}), flush=True)
    for line in sys.stdin:
        cmd = line.strip()
        if cmd == "quit":
            break
        common.block(fn())
        print("done", flush=True)


if __name__ == "__main__":
    _worker()
