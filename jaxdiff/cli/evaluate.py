"""``--mode=evaluate``: the restoration table (cold processes), generation Fréchet/KID (when the run has a
generation prior) and a steps sweep (several ``--steps``), written as JSON and Markdown."""
from __future__ import annotations

import logging
import os
import time
from typing import Any

import jax
import numpy as np

from jaxdiff.cli import keys
from jaxdiff.cli.common import (GenerationRefused, held_out_aux, held_out_images, output_stem, prior_for_mode,
                                training_images)
from jaxdiff.cli.options import ModeSettings

log = logging.getLogger(__name__)

#: how many training images the judge's nearest-training-image search reads at most (a seeded subset)
JUDGE_MAX_TRAIN = 20000


def _timed(fn):
    """fn() after a warm-up call (compilation); returns (result, seconds of the second call)."""
    fn(warmup=True)
    t0 = time.perf_counter()
    out = fn(warmup=False)
    return out, time.perf_counter() - t0


def run(s: ModeSettings, inf, out_dir: str) -> dict[str, str]:
    """Writes <stem>.json and <stem>.md, prints the Markdown; returns both paths."""
    from jaxdiff import evaluation
    from jaxdiff.experiment import describe_process
    from jaxdiff.sampling import restoration

    o, config = s.options, inf.config
    T = int(inf.process.T)
    from jaxdiff.evaluation import features, judge

    from jaxdiff.evaluation.extract import choose_features
    from jaxdiff.evaluation.inception_weights import InceptionWeightsError

    src = str(config.data.source)
    try:
        net = choose_features(o.features, workdir=o.workdir, source=src)
    except (ValueError, InceptionWeightsError) as e:
        from jaxdiff.cli.options import UsageError

        raise UsageError(f"--features={o.features!r}: {e}") from None
    feature_fn, net_name = net.fn, net.name
    print(f"features: {net.name} ({net.description})", flush=True)
    if net.note:
        log.warning("%s", net.note)
    real = held_out_images(config, s.num)
    n = real.shape[0]
    floor_imgs = training_images(config, n, s.seed)
    key = lambda salt: keys.key_for(s.seed, salt)  # noqa: E731
    report: dict[str, Any] = {
        "workdir": os.path.abspath(o.workdir),
        "checkpoint_step": inf.step,
        "data": f"{src} (held-out split {config.data.eval_split!r}: {n} images)",
        "process": describe_process(inf.process),
        "feature_net": net.description,
        "seed": s.seed,
    }
    if net.note:
        report["feature_net_note"] = net.note
    sev = o.severity or T
    aux = degraded = None
    if inf.process.keeps_image:  # Cold Diffusion's table: restoration with Algorithms 1 and 2
        aux = held_out_aux(inf, real, key(keys.RESTORATION_AUX))
        degraded = inf.degrade(real, key=key(keys.RESTORATION_DEGRADE), severity=sev, aux=aux, batch=s.batch)
        outs = inf.restore(degraded, key=key(keys.RESTORATION_RUN), severity=sev, steps=s.steps, eta=s.eta, aux=aux,
                           batch=s.batch, correctors=restoration.COLD_CORRECTORS)
        report["restoration"] = evaluation.restoration_table(
            real,
            {"Degraded": degraded, "Direct": outs["direct"], "Sampled (naive, Alg. 1)": outs["cold_naive"],
             "Sampled (improved, Alg. 2)": outs["cold_improved"]},
            feature_fn, feature_net=net_name, floor_images=floor_imgs, seed=s.seed,
            info={"severity": f"t={sev} of T={T}",
                  "sampling steps": len(restoration.severity_timesteps(sev, s.steps)) - 1},
        )
    prior = None
    if inf.process.can_generate:
        try:
            prior = prior_for_mode(s, inf)
        except GenerationRefused as e:  # the prior does not stand in for F_T(x0): no generation numbers
            log.warning("%s", e)
            report["generation_refused"] = str(e)
    if prior is not None:
        res = inf.generate(key(keys.GENERATION), n, prior=prior, batch=s.batch, corrector=s.corrector,
                           steps=s.steps, eta=s.eta, spacing=s.spacing)
        from jaxdiff.sampling import network_calls

        n_steps = len(inf.timesteps(s.steps, s.spacing)) - 1
        calls = network_calls(s.corrector, n_steps)
        report["generation"] = evaluation.generation_metrics(
            res.x0, real, feature_fn, feature_net=net_name, floor_images=floor_imgs, seed=s.seed,
            info={"prior": prior.kind, "corrector": s.corrector, "sampling steps": n_steps, "spacing": s.spacing,
                  "network calls": calls, "seconds": round(res.seconds, 3)},
        )
        from jaxdiff.data import load_images

        train_all = load_images(config, split="train", num=JUDGE_MAX_TRAIN, seed=s.seed)
        report["generation"]["judge"] = judge.judge(
            np.asarray(res.x0), real=real, train=train_all,
            classifier=features.load_digits_classifier(net.digits_path), seed=s.seed,
            feature_net="digits_classifier" if net.digits_path is None else "feature_net.npz",
            info={"network_calls": calls, "seconds": round(res.seconds, 3)})
        end = inf.degrade(real, key=key(keys.END_STATE_DEGRADE), severity=T,
                          aux=held_out_aux(inf, real, key(keys.END_STATE_AUX)), batch=s.batch)
        report["generation"]["prior_vs_end_state"] = evaluation.prior_check(res.x_T, end, feature_fn)
    if s.sweep_steps is not None:
        report["steps_sweep"] = _sweep(s, inf, real, degraded, aux, sev, feature_fn,
                                       classifier=features.load_digits_classifier(net.digits_path))
    from jaxdiff.cli.common import corrector_tag  # the name carries every option that changes the report

    stem = output_stem(s, out_dir, inf.step, corrector_tag(s, inf))
    j, m = evaluation.write_report(stem, report, title=f"Evaluation of {os.path.basename(os.path.abspath(o.workdir))}")
    with open(m) as f:
        print(f.read())
    return {"json": j, "markdown": m}


def _sweep(s: ModeSettings, inf, real, degraded, aux, sev: int, feature_fn, classifier=None) -> dict[str, Any]:
    """Quality and wall time against the number of network calls: generation or restoration (``s.sweep``);
    generation rows also carry the judge's confident and smallest-class shares (``classifier``)."""
    from jaxdiff import evaluation
    from jaxdiff.evaluation.judge import confidence_stats
    from jaxdiff.sampling import network_calls, restoration

    n = real.shape[0]
    if s.sweep == "generation":
        prior = prior_for_mode(s, inf)

        def run_one(nsteps):
            def go(warmup):
                num = inf.batch_size(s.batch, n) if warmup else n
                return inf.generate(keys.key_for(s.seed, keys.SWEEP_GENERATION), num, prior=prior, batch=s.batch,
                                    corrector=s.corrector, steps=nsteps, eta=s.eta, progress=False,
                                    spacing=s.spacing).x0

            return _timed(go)

        def score(x):
            g = evaluation.generation_metrics(x, real, feature_fn, seed=s.seed)
            out = {k: g[k] for k in ("frechet", "kid_mean", "kid_std") if k in g}
            if classifier is not None:
                c = confidence_stats(classifier.logits(np.asarray(x)))
                out.update(confident_fraction=c["confident_fraction"], smallest_class_share=c["smallest_class_share"])
            return out

        what = f"generation with {s.corrector} ({s.spacing} spacing) from the {prior.kind} prior"
        counts = [len(inf.timesteps(v, s.spacing)) - 1 for v in s.sweep_steps]
    else:
        def run_one(nsteps):
            def go(warmup):
                m = inf.batch_size(s.batch, n) if warmup else n
                a = None if aux is None else jax.tree.map(lambda v: np.asarray(v)[:m], aux)
                return inf.restore(degraded[:m], key=keys.key_for(s.seed, keys.SWEEP_RESTORATION), severity=sev,
                                   steps=nsteps, eta=s.eta, aux=a, batch=s.batch, correctors=(s.corrector,),
                                   progress=False)[s.corrector]

            return _timed(go)

        def score(x):
            t = evaluation.restoration_table(real, {"s": x}, feature_fn, seed=s.seed)["rows"]["s"]
            return {k: t[k] for k in ("frechet", "ssim", "rmse", "psnr")}

        what = f"restoration from t={sev} with {s.corrector}"
        counts = [len(restoration.severity_timesteps(sev, v)) - 1 for v in s.sweep_steps]
    result = evaluation.steps_sweep(run_one, s.sweep_steps, score, num_images=n)
    for row, c in zip(result["rows"], counts):  # 0 means every step: show it as the number of steps
        row["steps"] = c
        row["network_calls"] = network_calls(s.corrector, c)
    result["info"] = {"task": what}
    return result
