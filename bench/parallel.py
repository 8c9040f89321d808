"""Data parallel: the main job's train step (global batch 64) on 1 vs 8 simulated CPU devices, and a 2-process
``jax.distributed`` run (gloo CPU collectives, 1 device per process) against 1 process on 2 devices.

Simulated devices share the same 2 cores, so this measures the overhead of sharding (partitioned program,
all-reduce of the gradients), not a speed-up. Each configuration runs in its own subprocess (XLA_FLAGS must be set
before JAX starts); subprocesses alternate A B A B … and each reports the median of its timed steps after warm-up.
The losses of the first steps are compared too: the step is device-count independent up to float reduction order.

    python -m bench.parallel [--quick]
"""
from __future__ import annotations

import json
import os
import socket
import statistics
import subprocess
import sys

from bench import common

_WORKER = r"""
import json, os, sys, time
from bench import common
common.setup_threads()
import jax
from jaxdiff import experiment
experiment.maybe_initialize_distributed()  # several processes: JAX_COORDINATOR_ADDRESS and co. are set
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P
from bench import contenders as C
from jaxdiff.train import step as step_lib
cfg = C.default_config()
mesh = experiment.make_mesh()
model = experiment.build_model(cfg)
state = step_lib.init_train_state(cfg, model, mesh=mesh)
step = step_lib.make_train_step(cfg, model, mesh=mesh)
x_np = np.asarray(C.jax_batch(cfg))
sh = NamedSharding(mesh, P(experiment.DATA_AXIS))
x = jax.make_array_from_callback(x_np.shape, sh, lambda idx: x_np[idx])
losses, times = [], []
n = int(sys.argv[1])
for i in range(n + 3):
    t0 = time.perf_counter()
    state, m = step(state, x, i)
    loss = float(jax.device_get(m["loss"]))  # per-step sync, the same for every configuration
    if i >= 3:
        times.append(time.perf_counter() - t0)
    losses.append(loss)
print("RESULT" + json.dumps({"devices": jax.device_count(), "processes": jax.process_count(),
                              "median_s": sorted(times)[len(times) // 2], "losses": losses[:3]}))
"""


def _parse(out: str, err: str = ""):
    for line in out.splitlines():
        if line.startswith("RESULT"):
            return json.loads(line[6:])
    raise RuntimeError(f"worker failed:\n{out[-2000:]}\n{err[-4000:]}")


def _single(devices: int, steps: int):
    env = {"XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
    p = common.run_subprocess(["-c", _WORKER, str(steps)], env_extra=env)
    return _parse(p.stdout, p.stderr)


def _multi(nproc: int, steps: int):
    with socket.socket() as s:
        s.bind(("localhost", 0))
        port = s.getsockname()[1]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    procs = []
    for pid in range(nproc):
        env = dict(os.environ, XLA_FLAGS="--xla_force_host_platform_device_count=1", JAX_NUM_PROCESSES=str(nproc),
                   JAX_PROCESS_ID=str(pid), JAX_COORDINATOR_ADDRESS=f"localhost:{port}")
        procs.append(subprocess.Popen([sys.executable, "-c", _WORKER, str(steps)], cwd=root, env=env,
                                      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = [p.communicate(timeout=1800) for p in procs]
    return [_parse(o, e) for o, e in outs]


def run(quick: bool = False) -> dict:
    common.setup_threads()
    steps = 5 if quick else 15
    rounds = 1 if quick else 2
    res = {"1 device": [], "8 devices": [], "2 devices (1 process)": [], "2 processes x 1 device": []}
    for _ in range(rounds):
        res["1 device"].append(_single(1, steps))
        res["8 devices"].append(_single(8, steps))
        res["2 devices (1 process)"].append(_single(2, steps))
        res["2 processes x 1 device"].append(_multi(2, steps)[0])
    base = statistics.median(r["median_s"] for r in res["1 device"])
    rows = []
    for name, rs in res.items():
        med = statistics.median(r["median_s"] for r in rs)
        rows.append({
            "configuration": name,
            "devices": rs[0]["devices"],
            "processes": rs[0]["processes"],
            "step ms (B=64)": 1e3 * med,
            "vs 1 device": base / med,
            "first losses": ", ".join(f"{v:.6f}" for v in rs[0]["losses"]),
        })
    return common.finish("parallel", rows, ["configuration", "devices", "processes", "step ms (B=64)",
                                            "vs 1 device", "first losses"], raw=res)


if __name__ == "__main__":
    common.main(run)
