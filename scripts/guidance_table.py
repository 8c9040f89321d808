#!/usr/bin/env python
"""The classifier-free guidance table of docs/EVALUATION.md: label agreement and confident share against w.

    .venv/bin/python scripts/guidance_table.py --workdir=workdirs/ddim_cond [--w=0,1,3] [--num=256]

For each w: ``--num`` samples of the trained class-conditional run, labels spread evenly over its classes
(label of sample i = i mod num_classes), ``--steps`` DDIM steps, seed 0, judged by the shipped digits classifier
(jaxdiff.evaluation): agreement = share of samples whose argmax class is the requested label, confident = share
with max softmax ≥ 0.9 (confidence_stats), both per class, and the Fréchet distance to every held-out image on the classifier's features. Writes ``<out>.json`` / ``<out>.md`` and, per w,
a ``--labels``-style grid (one row per class, 8 per row) as ``<images>/guidance_w<w>.png``. Wall time: the
sampling after a warm-up batch of the same shape (compilation excluded).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, REPO)

from jaxdiff import console  # noqa: E402


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--workdir", required=True)
    ap.add_argument("--w", default="0,1,3", help="comma-separated guidance weights")
    ap.add_argument("--num", type=int, default=256)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--clip", type=float, default=None, help="override the stored sample.clip (0: off); sampling "
                    "only, the weights do not depend on it")
    ap.add_argument("--tag", default="", help="added to the grid names: guidance_w<w><tag>.png")
    ap.add_argument("--out", default="", help="stem of the .json/.md (default <workdir>/samples/guidance_table)")
    ap.add_argument("--images", default=os.path.join(REPO, "docs", "images"))
    console.add_verbosity_flag(ap)
    a = ap.parse_args(argv)
    if argv is None:  # the command line (not a caller in this process): progress and results, no library logs
        console.configure(a.verbosity)
    import jax
    import numpy as np

    from jaxdiff import visualize
    from jaxdiff.evaluation.features import load_digits_classifier
    from jaxdiff.cli.common import held_out_images
    from jaxdiff.evaluation import metrics
    from jaxdiff.evaluation.judge import confidence_stats
    from jaxdiff.inference import Inference
    from jaxdiff.priors.store import load_or_fit_prior

    a.out = a.out or os.path.join(a.workdir, "samples", "guidance_table")
    inf = Inference.from_workdir(a.workdir)
    if a.clip is not None:
        inf.config.sample.clip = float(a.clip)  # an existing field: allowed on the locked config
    K = int(inf.config.model.num_classes)
    if K == 0:
        raise SystemExit(f"{a.workdir}: model.num_classes=0, not a class-conditional run")
    prior = load_or_fit_prior(inf.config, a.workdir, process=inf.process)
    clf = load_digits_classifier()
    real = held_out_images(inf.config, 2000)  # every held-out digit (digits: 180)
    f_real = np.asarray(clf.features(real), np.float64)
    labels = (np.arange(a.num) % K).astype(np.int32)
    grid_labels = np.repeat(np.arange(K, dtype=np.int32), 8)
    os.makedirs(a.images, exist_ok=True)
    rows = []
    for w in [float(v) for v in a.w.split(",") if v]:
        gen = dict(prior=prior, corrector="ddim", steps=a.steps, eta=0.0, guidance=w, progress=False)
        inf.generate(jax.random.PRNGKey(99), min(a.num, 64), labels=labels[:min(a.num, 64)], **gen)  # warm-up
        t0 = time.perf_counter()
        x = inf.generate(jax.random.PRNGKey(0), a.num, labels=labels, **gen).x0
        seconds = time.perf_counter() - t0
        logits = np.asarray(clf.logits(x), np.float64)
        stats = confidence_stats(logits)
        pred = logits.argmax(axis=1)
        p = np.exp(logits - logits.max(axis=1, keepdims=True))
        conf = (p / p.sum(axis=1, keepdims=True)).max(axis=1) >= stats["confidence"]
        frechet = float(metrics.frechet_distance(np.asarray(clf.features(x), np.float64), f_real))
        per_class = [float(np.mean(pred[labels == c] == c)) for c in range(K)]
        rows.append({"w": w, "num": a.num, "steps": a.steps, "agreement": float(np.mean(pred == labels)),
                     "confident": stats["confident_fraction"],
                     "agreement_and_confident": float(np.mean((pred == labels) & conf)),
                     "frechet": frechet, "worst_class": int(np.argmin(per_class)), "worst_class_agreement": min(per_class),
                     "per_class_agreement": per_class, "seconds": seconds})
        g = inf.generate(jax.random.PRNGKey(1), grid_labels.shape[0], labels=grid_labels, **gen).x0
        rows[-1]["grid"] = visualize.save_grid(os.path.join(a.images, f"guidance_w{w:g}{a.tag}.png"), g,
                                               nrow=8, title=f"ddim_cond, w={w:g}, clip={inf.clip or 0:g}: "
                                               "one row per digit 0-9")
        print(json.dumps({k: v for k, v in rows[-1].items() if k != "per_class_agreement"}), flush=True)
    md = ["| w | agreement ↑ | confident (p ≥ 0.9) ↑ | agreeing and confident | worst class | Fréchet ↓ | wall time (s) |",
          "|---|---|---|---|---|---|---|"]
    for r in rows:
        md.append(f"| {r['w']:g} | {100 * r['agreement']:.1f} % | {100 * r['confident']:.1f} % | "
                  f"{100 * r['agreement_and_confident']:.1f} % | {r['worst_class']} "
                  f"({100 * r['worst_class_agreement']:.0f} %) | {r['frechet']:.1f} | {r['seconds']:.1f} |")
    meta = {"workdir": os.path.abspath(a.workdir), "step": inf.step, "clip": inf.clip, "rows": rows}
    with open(a.out + ".json", "w") as f:
        json.dump(meta, f, indent=2)
    with open(a.out + ".md", "w") as f:
        f.write("\n".join(md) + "\n")
    print("\n".join(md))
    return 0


if __name__ == "__main__":
    sys.exit(main())
