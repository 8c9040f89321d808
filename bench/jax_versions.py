"""The same jaxdiff train step / forward under two Python environments (e.g. jax 0.10 on Python 3.11 vs jax 0.12 on
Python 3.12), alternating subprocesses A B A B …; each subprocess reports medians after warm-up.

    python -m bench.jax_versions --other /tmp/venv312/bin/python [--quick]

The other environment needs this project installed (``pip install -e .``). Set up on this machine with
``PYENV_VERSION=3.12.1 python3 -m venv /tmp/venv312 && /tmp/venv312/bin/pip install -e .``.
"""
from __future__ import annotations

import json
import statistics
import subprocess
import sys

from bench import common

_WORKER = r"""
import json, sys, time, statistics
from bench import common
common.setup_threads()
import jax
from bench import contenders as C
which, reps = sys.argv[1], int(sys.argv[2])
cfg = C.bench32_train_config() if which == "bench32" else C.default_config()
out = {"jax": jax.__version__, "python": sys.version.split()[0]}
for name, fn in (("train", C.jax_train(cfg)), ("forward", C.jax_forward(cfg))):
    common.block(fn()); common.block(fn())
    ts = [common.time_once(fn, 2) for _ in range(reps)]
    out[name] = statistics.median(ts)
print("RESULT" + json.dumps(out))
"""


def _one(python, which, reps):
    p = subprocess.run([python, "-c", _WORKER, which, str(reps)], cwd=str(common.RESULTS_DIR.parent.parent),
                       capture_output=True, text=True, timeout=3600)
    for line in p.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(p.stderr[-4000:])


def run(other: str, quick: bool = False) -> dict:
    common.setup_threads()
    envs = {"this": sys.executable, "other": other}
    rows, raw = [], {}
    for which in ("bench32", "main"):
        res = {k: [] for k in envs}
        for _ in range(1 if quick else 2):
            for k, py in envs.items():
                res[k].append(_one(py, which, 3 if quick else 5))
        raw[which] = res
        for k in envs:
            tr = statistics.median(r["train"] for r in res[k])
            fw = statistics.median(r["forward"] for r in res[k])
            rows.append({"model": which, "env": f"py {res[k][0]['python']} jax {res[k][0]['jax']}",
                         "train ms": 1e3 * tr, "forward ms": 1e3 * fw})
        base = rows[-2]
        for r in rows[-2:]:
            r["train speed vs this"] = base["train ms"] / r["train ms"]
            r["forward speed vs this"] = base["forward ms"] / r["forward ms"]
    return common.finish("jax_versions", rows, ["model", "env", "train ms", "forward ms", "train speed vs this",
                                                "forward speed vs this"], raw=raw)


if __name__ == "__main__":
    common.main(run, ("--other", dict(required=True, help="python executable of the other environment")))
