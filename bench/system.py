"""Compile times (train step of the main job and of bench32, the main job's sampler), import time of jaxdiff, and the
peak resident memory of the main job.

Compile time = ``jit(...).lower(...).compile()`` in a fresh process (no persistent compilation cache), wall clock and
process CPU seconds (XLA compiles mostly on one thread, so CPU seconds are the load-independent figure on a shared box).
Import time = median of 5 fresh ``python -c "import jaxdiff"`` runs. Peak memory = ru_maxrss of a subprocess running
``train_and_evaluate`` on configs/default.py (shortened to ``--steps`` steps; memory plateaus after the first step and
the first sample grid).

    python -m bench.system [--quick] [--steps N]
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time

from bench import common

_COMPILE = r"""
import json, sys, time
from bench import common
common.setup_threads()
import jax, jax.numpy as jnp
from bench import contenders as C
from jaxdiff import sampling
from jaxdiff import experiment
from jaxdiff.train import step as step_lib
which = sys.argv[1]
cfg = C.bench32_train_config() if which == "bench32" else C.default_config()
model = experiment.build_model(cfg)
mesh = experiment.make_mesh()
state = step_lib.init_train_state(cfg, model, mesh=mesh)
x = C.jax_batch(cfg)
out = {}
if which != "sampler":
    step = step_lib.make_train_step(cfg, model, mesh=mesh)
    w, c = time.perf_counter(), time.process_time()
    step.lower(state, x, 0).compile()
    out["wall_s"], out["cpu_s"] = time.perf_counter() - w, time.process_time() - c
else:
    process = experiment.build_process(cfg)
    den = lambda p, x, t: model.apply({"params": p}, x, t)
    ts = jnp.arange(process.T, -1, -1, dtype=jnp.int32)
    w, c = time.perf_counter(), time.process_time()
    sampling.sample_loop_jit.lower(den, state.ema_params, jax.random.PRNGKey(0), x, ts, process=process,
        corrector=cfg.sample.corrector, prediction="x0", clip=1.0, eta=0.0, aux=None, return_every=0).compile()
    out["wall_s"], out["cpu_s"] = time.perf_counter() - w, time.process_time() - c
print("RESULT" + json.dumps(out))
"""

_RSS = r"""
import json, resource, sys, tempfile
from bench import common
common.setup_threads()
from bench import contenders as C
from jaxdiff.train.loop import train_and_evaluate
cfg = C.default_config()
cfg.train.num_steps = int(sys.argv[1])
cfg.train.checkpoint_every = int(sys.argv[1])
with tempfile.TemporaryDirectory() as d:
    train_and_evaluate(cfg, d)
print("RESULT" + json.dumps({"maxrss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}))
"""


def _result(proc):
    for line in proc.stdout.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(f"subprocess failed:\n{proc.stdout[-2000:]}\n{proc.stderr[-4000:]}")


def run(quick: bool = False, steps: int = 200) -> dict:
    common.setup_threads()
    rows = []
    for which in ("main job train step", "bench32 train step", "main job sampler"):
        arg = {"main job train step": "main", "bench32 train step": "bench32", "main job sampler": "sampler"}[which]
        r = _result(common.run_subprocess(["-c", _COMPILE, arg]))
        rows.append({"what": f"compile: {which}", "value": r["wall_s"], "unit": "s wall", "cpu s": r["cpu_s"]})
    times = []
    for _ in range(3 if quick else 5):
        t0 = time.perf_counter()
        p = common.run_subprocess(["-c", "import jaxdiff"])
        times.append(time.perf_counter() - t0)
        if p.returncode:
            raise RuntimeError(p.stderr)
    stack = []
    for _ in range(3 if quick else 5):
        t0 = time.perf_counter()
        common.run_subprocess(["-c", "import jaxdiff.train.loop, jaxdiff.sampling, jaxdiff.models.unet"])
        stack.append(time.perf_counter() - t0)
    rows.append({"what": "import jaxdiff.train.loop, .sampling, .models.unet (jax, flax, optax)",
                 "value": statistics.median(stack), "unit": "s wall", "cpu s": ""})
    t0 = time.perf_counter()
    common.run_subprocess(["-c", "pass"])
    bare = time.perf_counter() - t0
    rows.append({"what": 'python -c "import jaxdiff"', "value": statistics.median(times), "unit": "s wall",
                 "cpu s": ""})
    rows.append({"what": 'python -c "pass" (interpreter start)', "value": bare, "unit": "s wall", "cpu s": ""})
    r = _result(common.run_subprocess(["-c", _RSS, str(50 if quick else steps)], timeout=3600))
    rows.append({"what": f"main job peak RSS ({50 if quick else steps} steps)", "value": r["maxrss_mb"],
                 "unit": "MB", "cpu s": ""})
    return common.finish("system", rows, ["what", "value", "unit", "cpu s"], import_runs_s=times)


if __name__ == "__main__":
    common.main(run, ("--steps", dict(type=int, default=200, help="train steps of the peak-memory run")))
    sys.exit(0)
