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
from jaxdiff.cli.common import held_out_aux, held_out_images, output_stem, prior_for_mode, training_images
from jaxdiff.cli.options import ModeSettings

log = logging.getLogger(__name__)

FEATURE_NET = "digits_classifier (jaxdiff/assets/digits_classifier.npz, 64-d penultimate layer)"


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
    from jaxdiff.forward import ColdProcess
    from jaxdiff.priors import store as prior_store
    from jaxdiff.sampling import restoration

    o, config = s.options, inf.config
    T = int(inf.process.T)
    feature_fn = evaluation.digits_feature_fn()
    src = str(config.data.source)
    if not (src.startswith("digits") or "mnist" in src):
        log.warning("the Fréchet/KID features come from a digits classifier; on %s they only rank models "
                    "against each other", src)
    real = held_out_images(config, s.num)
    n = real.shape[0]
    floor_imgs = training_images(config, n, s.seed)
    key = lambda salt: keys.key_for(s.seed, salt)  # noqa: E731
    report: dict[str, Any] = {
        "workdir": os.path.abspath(o.workdir),
        "checkpoint_step": inf.step,
        "data": f"{src} (held-out split {config.data.eval_split!r}: {n} images)",
        "process": describe_process(inf.process),
        "feature_net": FEATURE_NET,
        "seed": s.seed,
    }
    sev = o.severity or T
    aux = degraded = None
    if isinstance(inf.process, ColdProcess):
        aux = held_out_aux(inf, real, key(keys.RESTORATION_AUX))
        degraded = inf.degrade(real, key=key(keys.RESTORATION_DEGRADE), severity=sev, aux=aux, batch=s.batch)
        outs = inf.restore(degraded, key=key(keys.RESTORATION_RUN), severity=sev, steps=s.steps, eta=s.eta, aux=aux,
                           batch=s.batch, correctors=restoration.COLD_CORRECTORS)
        report["restoration"] = evaluation.restoration_table(
            real,
            {"Degraded": degraded, "Direct": outs["direct"], "Sampled (naive, Alg. 1)": outs["cold_naive"],
             "Sampled (improved, Alg. 2)": outs["cold_improved"]},
            feature_fn, feature_net="digits_classifier", floor_images=floor_imgs, seed=s.seed,
            info={"severity": f"t={sev} of T={T}",
                  "sampling steps": len(restoration.severity_timesteps(sev, s.steps)) - 1},
        )
    if prior_store.can_generate(inf.process):
        prior = prior_for_mode(s, inf)
        res = inf.generate(key(keys.GENERATION), n, prior=prior, batch=s.batch, corrector=s.corrector,
                           steps=s.steps, eta=s.eta)
        report["generation"] = evaluation.generation_metrics(
            res.x0, real, feature_fn, feature_net="digits_classifier", floor_images=floor_imgs, seed=s.seed,
            info={"prior": prior.kind, "corrector": s.corrector, "sampling steps": len(inf.timesteps(s.steps)) - 1,
                  "seconds": round(res.seconds, 3)},
        )
        end = inf.degrade(real, key=key(keys.END_STATE_DEGRADE), severity=T,
                          aux=held_out_aux(inf, real, key(keys.END_STATE_AUX)), batch=s.batch)
        report["generation"]["prior_vs_end_state"] = evaluation.prior_check(res.x_T, end, feature_fn)
    if s.sweep_steps is not None:
        report["steps_sweep"] = _sweep(s, inf, real, degraded, aux, sev, feature_fn)
    from jaxdiff.cli.common import corrector_tag  # the name carries every option that changes the report

    stem = output_stem(s, out_dir, inf.step, corrector_tag(s, inf))
    j, m = evaluation.write_report(stem, report, title=f"Evaluation of {os.path.basename(os.path.abspath(o.workdir))}")
    with open(m) as f:
        print(f.read())
    return {"json": j, "markdown": m}


def _sweep(s: ModeSettings, inf, real, degraded, aux, sev: int, feature_fn) -> dict[str, Any]:
    """Quality and wall time against the number of network calls: generation or restoration (``s.sweep``)."""
    from jaxdiff import evaluation
    from jaxdiff.sampling import restoration

    n = real.shape[0]
    if s.sweep == "generation":
        prior = prior_for_mode(s, inf)

        def run_one(nsteps):
            def go(warmup):
                num = inf.batch_size(s.batch, n) if warmup else n
                return inf.generate(keys.key_for(s.seed, keys.SWEEP_GENERATION), num, prior=prior, batch=s.batch,
                                    corrector=s.corrector, steps=nsteps, eta=s.eta, progress=False).x0

            return _timed(go)

        def score(x):
            g = evaluation.generation_metrics(x, real, feature_fn, feature_net="digits_classifier", seed=s.seed)
            return {k: g[k] for k in ("frechet", "kid_mean", "kid_std") if k in g}

        what = f"generation with {s.corrector} from the {prior.kind} prior"
        counts = [len(inf.timesteps(v)) - 1 for v in s.sweep_steps]
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
    for row, c in zip(result["rows"], counts):  # 0 means every step: show it as the number of network calls
        row["steps"] = c
    result["info"] = {"task": what}
    return result
