"""Before and after a change, side by side in one run: the main job's and bench32's train step and sampler img/s at
another git revision (default: 2e3b236, main before the one process) against this tree, each in its own worker
process (bench.remote) interleaved A B A B; and the digits configs' training steps/s beside configs/ddim.py's.

    python -m bench.before_after [--quick [--bench32]] [--rev REV] [--configs ddim,flow,edm,…]

The revision is checked out into a temporary git worktree; both sides run the builders of bench/ab/jaxdiff_ab.py
against their own jaxdiff (the worker's working directory).
"""
from __future__ import annotations

import os
import pathlib
import subprocess
import sys
import tempfile

from bench import common, remote

ROOT = pathlib.Path(__file__).resolve().parent.parent
AB = str(ROOT / "bench" / "ab")
DEFAULT_REV = "2e3b236"


def _worker(tree: str, builder: str, **kwargs):
    env = {"PYTHONPATH": os.pathsep.join([tree, AB])}
    return remote.contender(f"jaxdiff_ab:{builder}", python=sys.executable, env=env, cwd=tree, **kwargs)


def run(quick: bool = False, rev: str = DEFAULT_REV, configs: str = "ddim,flow,edm", bench32: bool = False) -> dict:
    """``quick``: 2 rounds of 1 call, the main job only unless ``bench32``."""
    rows = []
    repeats, iters = (2, 1) if quick else (7, 3)
    with tempfile.TemporaryDirectory(prefix="jaxdiff_rev_") as tmp:
        old = os.path.join(tmp, "tree")
        subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", old, rev], check=True,
                       capture_output=True)
        try:
            cases = [("main job", "train", dict(spec="mainjob"), 64),
                     ("main job", "sample", dict(spec="mainjob", batch=64), 64),
                     ("bench32", "train", dict(spec="bench32"), 32),
                     ("bench32", "sample", dict(spec="bench32", batch=32, corrector="ddim", steps=10 if quick else 50),
                      32)]
            for what, kind, kw, n_img in cases if (bench32 or not quick) else cases[:2]:
                fns = {"before": _worker(old, kind, **kw), "after": _worker(str(ROOT), kind, **kw)}
                res = common.compare(fns, iters=iters, repeats=repeats)
                ratio = common.paired_ratio(res, "before", "after")
                rows.append({"what": f"{what} {kind}", "before img/s": n_img / res["before"]["median_s"],
                             "after img/s": n_img / res["after"]["median_s"], "after / before": ratio})
        finally:
            subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", old], capture_output=True)
    names = [n for n in configs.split(",") if n]
    if names:
        fns = {n: _worker(str(ROOT), "train_config", name=n) for n in names}
        res = common.compare(fns, iters=iters, repeats=repeats)
        for n in names:
            rows.append({"what": f"configs/{n}.py train", "after img/s": 1.0 / res[n]["median_s"],
                         "after / before": common.paired_ratio(res, names[0], n) if n != names[0] else 1.0})
    notes = [f"before = {rev}, after = this tree; img/s of one train step of the config's batch (steps/s for the "
             f"configs rows: steps, not images) and of one sampler call; ratios are medians over rounds of paired, "
             f"back-to-back timings (after / before > 1: faster now). The configs rows compare against "
             f"configs/{names[0] if names else 'ddim'}.py (their 'after / before' is its steps/s ratio)."]
    return common.finish("before_after", rows, ["what", "before img/s", "after img/s", "after / before"], notes=notes,
                         machine=common.machine_info(), rev=rev)


if __name__ == "__main__":
    common.main(run, ("--rev", dict(default=DEFAULT_REV)), ("--configs", dict(default="ddim,flow,edm")),
                ("--bench32", dict(action="store_true", help="with --quick: bench32's rows too")))
