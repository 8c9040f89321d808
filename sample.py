"""Pictures and numbers from a trained workdir.

    python sample.py --workdir=workdirs/cold_blur                          # generate 64 samples
    python sample.py --workdir=… --mode=restore [--severity=10] [--input=folder:my_blurry_pngs]
    python sample.py --workdir=… --mode=evaluate [--steps=5,10,20]        # Cold Diffusion table (+ sweep)
    python sample.py --workdir=… --mode=interpolate                       # between two prior draws
    python sample.py --workdir=… --mode=forward                           # x0 → x_t, no network involved

Restores the EMA parameters and the config of the newest (or ``--step``) checkpoint, runs the jitted sampler
in batches sharded over every device, and writes to <workdir>/samples/ (or --out):

    generate     <tag>.png (grid), <tag>.npz (samples, x_T), <tag>_trajectory.png and .gif (x_t and x̂0
                 across the reverse steps of the first batch)
    restore      <tag>.png: rows degraded | direct | sampled (naive) | sampled (improved) | original, and
                 <tag>.npz; --input takes images that arrive already degraded (at --severity; no original)
    evaluate     <tag>.json and <tag>.md: restoration table (cold processes), generation Fréchet/KID (when the
                 config has a generation prior), steps sweep (--steps with several values)
    interpolate  <tag>.png (+ .npz): rows of samples from points between two prior draws
    forward      <tag>.png: the forward process on held-out images

Generation priors are fitted on the training data on first use and stored in <workdir>/prior.npz.
A workdir without checkpoints (or a bad flag) ends with one message and exit code 2.
"""
from __future__ import annotations

import logging
import math
import os
import sys
import time
from typing import Any, Optional

from absl import app, flags

MODES = ("generate", "restore", "evaluate", "interpolate", "forward")

FLAGS = flags.FLAGS
flags.DEFINE_string("workdir", None, "Training run directory (holds checkpoints/).")
flags.DEFINE_enum("mode", "generate", MODES, "What to produce.")
flags.DEFINE_string("sampler", None, "Corrector (ddpm | ddim | cold_naive | cold_improved); default: the config's.")
flags.DEFINE_string("steps", None, "Network calls per sample (0: every step; default: the config's sample.steps); "
                                   "evaluate: a list 5,10,20 sweeps.")
flags.DEFINE_float("eta", None, "DDIM η (default: the config's).")
flags.DEFINE_integer("num", 0, "Images: generate 64, restore 32, interpolate 4 pairs, evaluate all held-out "
                               "images (at most 2000); 0 = that default.")
flags.DEFINE_integer("seed", 0, "Random seed of the prior draws, degradations and sampler noise.")
flags.DEFINE_integer("batch", 0, "Images per batch (rounded up to a multiple of the device count); 0: automatic.")
flags.DEFINE_integer("step", None, "Checkpoint step to restore (default: the newest valid one).")
flags.DEFINE_integer("severity", None, "restore/evaluate: the t the degraded images are at (default T).")
flags.DEFINE_string("input", None, "restore: already-degraded images, folder:<path> or npz:<path>.")
flags.DEFINE_float("prior_noise", None, "Per-pixel noise of the fitted cold prior (blur: 0.002 = broken "
                                        "symmetry, 0 = perfect symmetry); default: the stored prior's.")
flags.DEFINE_bool("refit_prior", False, "Refit the generation prior even if <workdir>/prior.npz exists.")
flags.DEFINE_enum("sweep", "auto", ("auto", "generation", "restoration"),
                  "evaluate --steps=a,b,…: what the sweep measures (auto: restoration for cold processes, "
                  "generation for Gaussian ones).")
flags.DEFINE_integer("frames", 10, "Frames of the reverse-trajectory picture and GIF (0: none).")
flags.DEFINE_string("out", None, "Output directory (default <workdir>/samples).")

log = logging.getLogger("sample")

DEFAULT_NUM = {"generate": 64, "restore": 32, "interpolate": 4, "forward": 4, "evaluate": 2000}
STRIP_WIDTH = 16  # images per row block of the restoration picture
FEATURE_NET = "digits_classifier (jaxdiff/assets/digits_classifier.npz, 64-d penultimate layer)"


class UsageError(ValueError):
    """A bad flag value, reported as one line and exit code 2."""


# ---------------------------------------------------------------------------------------------------------
# options


def _check_options(o: dict, config, process) -> dict:
    """Validates flag values against the run's config; returns resolved options. Raises UsageError."""
    from jaxdiff import evaluation, sampling
    from jaxdiff.priors import store as prior_store
    from jaxdiff.forward import GaussianProcess

    T = int(process.T)
    mode = o["mode"]
    if mode not in MODES:
        raise UsageError(f"--mode={mode!r}: allowed {list(MODES)}")
    for name in ("num", "batch", "frames"):
        if o[name] is None or o[name] < 0:
            raise UsageError(f"--{name}={o[name]!r}: must be an integer >= 0")
    sampler = o["sampler"] or str(config.sample.corrector)
    if sampler not in sampling.CORRECTORS:
        raise UsageError(f"--sampler={sampler!r}: allowed {sorted(sampling.CORRECTORS)}")
    try:
        sampling.check_corrector(sampler, process)
    except ValueError as e:
        raise UsageError(f"--sampler={sampler!r}: {e}") from None
    eta = float(config.sample.eta) if o["eta"] is None else float(o["eta"])
    if not (math.isfinite(eta) and eta >= 0):
        raise UsageError(f"--eta={o['eta']!r}: must be a finite number >= 0")
    steps_list = None
    if o["steps"] is not None:
        try:
            steps_list = evaluation.parse_steps(o["steps"], T)
        except ValueError as e:
            raise UsageError(str(e)) from None
        if len(steps_list) > 1 and mode != "evaluate":
            raise UsageError(f"--steps={o['steps']!r}: a list of step counts is a sweep, only for --mode=evaluate")
    severity = o["severity"]
    if severity is not None and not 1 <= severity <= T:
        raise UsageError(f"--severity={severity}: must be in [1, T={T}]")
    if o["input"] is not None:
        if mode != "restore":
            raise UsageError(f"--input is for --mode=restore (images that arrive degraded), not --mode={mode}")
        if not (o["input"].startswith("folder:") or o["input"].startswith("npz:")):
            raise UsageError(f"--input={o['input']!r}: expected folder:<path> or npz:<path>")
    sweep = o["sweep"]
    if sweep not in ("auto", "generation", "restoration"):
        raise UsageError(f"--sweep={sweep!r}: allowed auto, generation, restoration")
    if sweep == "auto":
        sweep = "generation" if isinstance(process, GaussianProcess) else "restoration"
    if sweep == "generation" and not prior_store.can_generate(config):
        raise UsageError("--sweep=generation: this run has no generation prior (use --sweep=restoration)")
    if sweep == "restoration" and isinstance(process, GaussianProcess):
        raise UsageError("--sweep=restoration needs a cold process; Gaussian runs sweep generation")
    pn = o["prior_noise"]
    if pn is not None and not (math.isfinite(pn) and pn >= 0):
        raise UsageError(f"--prior_noise={pn!r}: must be a finite number >= 0")
    if mode == "restore" and isinstance(process, GaussianProcess) and severity is None:
        log.info("restore with a Gaussian process from t = T starts from (nearly) pure noise; "
                 "pass --severity=t < T to denoise partially noised images")
    return dict(o, sampler=sampler, eta=eta, steps_list=steps_list, sweep=sweep,
                steps=int(config.sample.steps) if steps_list is None else steps_list[0],
                num=o["num"] or DEFAULT_NUM[mode])


def _tag(o: dict, step: int, extra: str = "") -> str:
    parts = [o["mode"], f"step{step}"]
    if extra:
        parts.append(extra)
    if o["seed"]:
        parts.append(f"seed{o['seed']}")
    return "_".join(parts)


def _sampler_tag(o: dict, inf) -> str:
    steps = len(inf.timesteps(o["steps"])) - 1
    eta = f"_eta{o['eta']:g}" if o["sampler"] in ("ddim",) and o["eta"] else ""
    return f"{o['sampler']}_{steps}steps{eta}"


# ---------------------------------------------------------------------------------------------------------
# data


def _eval_images(config, num: int, *, split: Optional[str] = None):
    """The first ``num`` images of the config's held-out split, float32 in [−1, 1]."""
    import numpy as np

    from jaxdiff import data as data_lib

    d = config.data
    src = data_lib.load_source(d.source, split=split or d.eval_split, image_size=int(d.image_size),
                               channels=int(d.channels), download=bool(d.download), field="data.source")
    return data_lib.normalize(src.get(np.arange(min(int(num), len(src)))))


def _train_images(config, num: int, seed: int):
    import numpy as np

    from jaxdiff import data as data_lib

    d = config.data
    src = data_lib.load_source(d.source, split="train", image_size=int(d.image_size), channels=int(d.channels),
                               download=bool(d.download), field="data.source")
    idx = np.sort(np.random.default_rng(seed).choice(len(src), min(int(num), len(src)), replace=False))
    return data_lib.normalize(src.get(idx))


def _restoration_aux(inf, x0, key):
    """aux for degrading held-out images: the end images of an interpolation, else the process's own draw."""
    import numpy as np

    from jaxdiff import data as data_lib
    from jaxdiff.forward import ColdProcess

    d = inf.config.data
    if isinstance(inf.process, ColdProcess) and inf.process.degradation.name == "interpolate" and d.get("end_source"):
        end = data_lib.load_source(d.end_source, split=d.eval_split, image_size=int(d.image_size),
                                   channels=int(d.channels), download=bool(d.download), field="data.end_source")
        n = x0.shape[0]
        idx = np.arange(n) % len(end)
        return data_lib.normalize(end.get(idx))
    return inf.sample_aux(x0, key=key)


def _input_images(spec: str, config):
    from jaxdiff import data as data_lib

    d = config.data
    src = data_lib.load_source(spec, split=d.eval_split, image_size=int(d.image_size), channels=int(d.channels),
                               field="--input")
    import numpy as np

    return data_lib.normalize(src.get(np.arange(len(src))))


# ---------------------------------------------------------------------------------------------------------
# modes


def _save_npz(path: str, **arrays) -> str:
    import numpy as np

    from jaxdiff.files import atomic_write

    return atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items() if v is not None}))


def _prior(o: dict, inf):
    from jaxdiff.priors import store as prior_store

    try:
        prior = prior_store.load_or_fit_prior(inf.config, o["workdir"], process=inf.process, refit=o["refit_prior"])
    except ValueError as e:
        raise UsageError(f"--mode={o['mode']}: this run has no generation prior: {e}") from None
    if o["prior_noise"] is not None:
        if "noise" not in prior.arrays:
            raise UsageError(f"--prior_noise: the {prior.kind!r} prior has no per-pixel noise to set")
        prior = prior.replace(noise=o["prior_noise"])
    return prior


def run_generate(o: dict, inf, out_dir: str) -> dict:
    import jax
    import numpy as np

    from jaxdiff import visualize

    prior = _prior(o, inf)
    key = jax.random.PRNGKey(o["seed"])
    res = inf.generate(key, o["num"], prior=prior, batch=o["batch"], corrector=o["sampler"], steps=o["steps"],
                       eta=o["eta"], trajectory_frames=o["frames"])
    stem = os.path.join(out_dir, _tag(o, inf.step, _sampler_tag(o, inf)))
    files = {"grid": visualize.save_grid(stem + ".png", res.x0, nrow=int(math.ceil(math.sqrt(res.x0.shape[0])))),
             "npz": _save_npz(stem + ".npz", samples=res.x0, x_T=res.x_T)}
    if res.trajectory is not None:
        tr = res.trajectory
        k = min(16, tr["x_t"].shape[1])
        # The strip starts from x_T so the first column shows what the sampler was given.
        xt = np.concatenate([res.x_T[None, :k], tr["x_t"][:, :k]])
        xh = np.concatenate([np.zeros_like(res.x_T[None, :k]), tr["x0_hat"][:, :k]])
        ts = [int(inf.timesteps(o["steps"])[0])] + [int(t) for t in tr["t"]]
        png, gif = visualize.save_trajectory(stem + "_trajectory.png", stem + "_trajectory.gif", xt, xh, ts)
        files.update(trajectory_png=png, trajectory_gif=gif)
    log.info("generated %d samples in %.1f s (prior %s)", res.x0.shape[0], res.seconds, prior.kind)
    return files


def run_restore(o: dict, inf, out_dir: str) -> dict:
    import jax

    from jaxdiff import visualize
    from jaxdiff.sampling import restoration

    T = int(inf.process.T)
    s = o["severity"] or T
    key = jax.random.PRNGKey(o["seed"])
    k_aux, k_deg, k_run = jax.random.split(key, 3)
    if o["input"] is not None:
        restoration.check_aux_known(inf.process, inf.image_shape, what="--input")
        degraded = _input_images(o["input"], inf.config)[: o["num"]]
        original, aux = None, None
    else:
        original = _eval_images(inf.config, o["num"])
        aux = _restoration_aux(inf, original, k_aux)
        degraded = inf.degrade(original, key=k_deg, severity=s, aux=aux, batch=o["batch"])
    correctors = restoration.default_correctors(inf.process, o["sampler"])
    outs = inf.restore(degraded, key=k_run, severity=s, correctors=correctors, steps=o["steps"], eta=o["eta"],
                       aux=aux, batch=o["batch"])
    names = [("degraded", degraded), ("direct", outs["direct"])]
    names += [(f"sampled ({c.replace('cold_', '')})", outs[c]) for c in correctors]
    if original is not None:
        names.append(("original", original))
    rows, labels = [], []
    for start in range(0, degraded.shape[0], STRIP_WIDTH):
        for label, arr in names:
            rows.append(arr[start:start + STRIP_WIDTH])
            labels.append(label)
    steps = len(restoration.severity_timesteps(s, o["steps"])) - 1
    stem = os.path.join(out_dir, _tag(o, inf.step, f"t{s}_{steps}steps" + ("_input" if o["input"] else "")))
    title = f"restoration from t={s} of T={T} ({steps} sampling steps)"
    files = {"strip": visualize.save_strip(stem + ".png", rows, labels, title=title),
             "npz": _save_npz(stem + ".npz", degraded=degraded, original=original,
                              **{k: v for k, v in outs.items()})}
    return files


def _timed(fn):
    """fn() after a warm-up call (compilation); returns (result, seconds of the second call)."""
    fn(warmup=True)
    t0 = time.perf_counter()
    out = fn(warmup=False)
    return out, time.perf_counter() - t0


def run_evaluate(o: dict, inf, out_dir: str) -> dict:
    import jax
    import numpy as np

    from jaxdiff import evaluation
    from jaxdiff.priors import store as prior_store
    from jaxdiff.sampling import restoration
    from jaxdiff.forward import ColdProcess

    config = inf.config
    T = int(inf.process.T)
    feature_fn = evaluation.digits_feature_fn()
    src = str(config.data.source)
    if not (src.startswith("digits") or "mnist" in src):
        log.warning("the Fréchet/KID features come from a digits classifier; on %s they only rank models "
                    "against each other", src)
    real = _eval_images(config, o["num"])
    n = real.shape[0]
    floor_imgs = _train_images(config, n, o["seed"])
    key = jax.random.PRNGKey(o["seed"])
    report: dict[str, Any] = {
        "workdir": os.path.abspath(o["workdir"]),
        "checkpoint_step": inf.step,
        "data": f"{src} (held-out split {config.data.eval_split!r}: {n} images)",
        "process": _describe_process(config),
        "feature_net": FEATURE_NET,
        "seed": o["seed"],
    }
    single_steps = o["steps"] if (o["steps_list"] is None or len(o["steps_list"]) == 1) else int(config.sample.steps)
    sweep = o["steps_list"] if o["steps_list"] is not None and len(o["steps_list"]) > 1 else None
    s = o["severity"] or T
    is_cold = isinstance(inf.process, ColdProcess)

    if is_cold:
        aux = _restoration_aux(inf, real, jax.random.fold_in(key, 10))
        degraded = inf.degrade(real, key=jax.random.fold_in(key, 11), severity=s, aux=aux, batch=o["batch"])
        outs = inf.restore(degraded, key=jax.random.fold_in(key, 12), severity=s, steps=single_steps, eta=o["eta"],
                           aux=aux, batch=o["batch"], correctors=restoration.COLD_CORRECTORS)
        steps_used = len(restoration.severity_timesteps(s, single_steps)) - 1
        report["restoration"] = evaluation.restoration_table(
            real,
            {"Degraded": degraded, "Direct": outs["direct"], "Sampled (naive, Alg. 1)": outs["cold_naive"],
             "Sampled (improved, Alg. 2)": outs["cold_improved"]},
            feature_fn, feature_net="digits_classifier", floor_images=floor_imgs, seed=o["seed"],
            info={"severity": f"t={s} of T={T}", "sampling steps": steps_used},
        )
    can_gen = prior_store.can_generate(config)
    if can_gen:
        prior = _prior(o, inf)
        res = inf.generate(jax.random.fold_in(key, 2), n, prior=prior, batch=o["batch"], corrector=o["sampler"],
                           steps=single_steps, eta=o["eta"])
        report["generation"] = evaluation.generation_metrics(
            res.x0, real, feature_fn, feature_net="digits_classifier", floor_images=floor_imgs, seed=o["seed"],
            info={"prior": prior.kind, "sampler": o["sampler"], "sampling steps": len(inf.timesteps(single_steps)) - 1,
                  "seconds": round(res.seconds, 3)},
        )
        end = inf.degrade(real, key=jax.random.fold_in(key, 5), severity=T,
                          aux=_restoration_aux(inf, real, jax.random.fold_in(key, 6)), batch=o["batch"])
        report["generation"]["prior_vs_end_state"] = evaluation.prior_check(res.x_T, end, feature_fn)
    task = o["sweep"]
    if sweep is not None:
        if task == "generation":
            prior = _prior(o, inf)

            def run(nsteps):
                def go(warmup):
                    num = inf.batch_size(o["batch"], n) if warmup else n
                    return inf.generate(jax.random.fold_in(key, 3), num, prior=prior, batch=o["batch"],
                                        corrector=o["sampler"], steps=nsteps, eta=o["eta"], progress=False).x0

                return _timed(go)

            def score(x):
                g = evaluation.generation_metrics(x, real, feature_fn, feature_net="digits_classifier", seed=o["seed"])
                return {k: g[k] for k in ("frechet", "kid_mean", "kid_std") if k in g}

            what = f"generation with {o['sampler']} from the {prior.kind} prior"
        else:
            def run(nsteps):
                def go(warmup):
                    m = inf.batch_size(o["batch"], n) if warmup else n
                    a = None if aux is None else jax.tree.map(lambda v: np.asarray(v)[:m], aux)
                    return inf.restore(degraded[:m], key=jax.random.fold_in(key, 4), severity=s, steps=nsteps,
                                       eta=o["eta"], aux=a, batch=o["batch"], correctors=(o["sampler"],),
                                       progress=False)[o["sampler"]]

                return _timed(go)

            def score(x):
                t = evaluation.restoration_table(real, {"s": x}, feature_fn, seed=o["seed"])["rows"]["s"]
                return {k: t[k] for k in ("frechet", "ssim", "rmse", "psnr")}

            what = f"restoration from t={s} with {o['sampler']}"
        # 0 means every step: show it as the number of network calls
        counts = [len(inf.timesteps(v)) - 1 if task == "generation" else len(restoration.severity_timesteps(s, v)) - 1
                  for v in sweep]
        result = evaluation.steps_sweep(run, sweep, score, num_images=n)
        for row, c in zip(result["rows"], counts):
            row["steps"] = c
        result["info"] = {"task": what}
        report["steps_sweep"] = result
    stem = os.path.join(out_dir, _tag(o, inf.step))
    j, m = evaluation.write_report(stem, report, title=f"Evaluation of {os.path.basename(os.path.abspath(o['workdir']))}")
    with open(m) as f:
        print(f.read())
    return {"json": j, "markdown": m}


def _describe_process(config) -> str:
    f = config.diffusion
    if f.kind == "gaussian":
        return f"gaussian diffusion, {f.schedule} schedule, T={int(f.T)}, {f.prediction}-prediction"
    params = ", ".join(f"{k}={v}" for k, v in sorted(dict(f.degradation_params).items()))
    return f"cold diffusion, {f.degradation}({params}), T={int(f.T)}, noise_std={float(f.noise_std)}"


def run_interpolate(o: dict, inf, out_dir: str) -> dict:
    import jax
    import numpy as np

    from jaxdiff import visualize
    from jaxdiff.sampling import interpolation

    prior = _prior(o, inf)
    pairs, cols = min(o["num"], 8), 9
    k_a, k_b, k_run = jax.random.split(jax.random.PRNGKey(o["seed"]), 3)
    a, b = np.asarray(prior.sample(k_a, pairs)), np.asarray(prior.sample(k_b, pairs))
    method = interpolation.method_for_prior(prior.kind)
    points = interpolation.interpolate(a, b, cols, method)  # (P, K, H, W, C)
    flat = points.reshape((pairs * cols,) + points.shape[2:])
    res = inf.generate(k_run, flat.shape[0], prior=prior, batch=o["batch"], corrector=o["sampler"], steps=o["steps"],
                       eta=o["eta"], x_T=flat)
    x0 = res.x0.reshape(points.shape)
    rows, labels = [], []
    for p in range(pairs):
        rows += [points[p], x0[p]]
        labels += [f"x_T #{p}", f"x0 #{p}"]
    u = np.linspace(0, 1, cols)
    stem = os.path.join(out_dir, _tag(o, inf.step, f"{method}_{_sampler_tag(o, inf)}"))
    title = f"{method} interpolation between two {prior.kind} prior draws, then {o['sampler']}"
    return {"strip": visualize.save_strip(stem + ".png", rows, labels, column_labels=[f"u={v:.2g}" for v in u],
                                          title=title),
            "npz": _save_npz(stem + ".npz", x_T=points, samples=x0)}


def run_forward(o: dict, config, step: int, out_dir: str) -> dict:
    from jaxdiff.forward_pictures import forward_strip_for_config

    path = os.path.join(out_dir, _tag(o, step) + ".png")
    return {"strip": forward_strip_for_config(config, path, num_images=min(o["num"], 8), seed=o["seed"])}


# ---------------------------------------------------------------------------------------------------------
# entry points


_INFERENCE_CACHE: dict = {}


def _load_inference(workdir: str, step: Optional[int]):
    """Inference.from_workdir, reused while the workdir's checkpoints are unchanged: repeated run() calls in one
    process (a notebook, the tests) keep one denoiser object, so jax.jit's caches hit across modes."""
    from jaxdiff.inference import Inference, list_checkpoint_steps

    key = (os.path.abspath(workdir), step, tuple(list_checkpoint_steps(workdir)))
    if key not in _INFERENCE_CACHE:
        _INFERENCE_CACHE.clear()  # one restored model at a time
        _INFERENCE_CACHE[key] = Inference.from_workdir(workdir, step=step)
    return _INFERENCE_CACHE[key]


def run(*, workdir: str, mode: str = "generate", sampler: Optional[str] = None, steps=None, eta=None, num: int = 0,
        seed: int = 0, batch: int = 0, step: Optional[int] = None, severity: Optional[int] = None,
        input: Optional[str] = None, prior_noise: Optional[float] = None, refit_prior: bool = False,  # noqa: A002
        frames: int = 10, out: Optional[str] = None, sweep: str = "auto") -> dict:
    """Runs one mode; returns {name: path} of the files written. Raises NoCheckpointError / ValueError."""
    from jaxdiff.inference import load_config
    from jaxdiff.experiment import build_process

    if not workdir:
        raise UsageError("--workdir is required")
    o = dict(workdir=workdir, mode=mode, sampler=sampler, steps=None if steps is None else str(steps), eta=eta,
             num=num, seed=seed, batch=batch, step=step, severity=severity, input=input, prior_noise=prior_noise,
             refit_prior=refit_prior, frames=frames, sweep=sweep)
    if mode not in MODES:
        raise UsageError(f"--mode={mode!r}: allowed {list(MODES)}")
    config, _, ckpt_step = load_config(workdir, step=step)
    o = _check_options(o, config, build_process(config))
    out_dir = out or os.path.join(os.path.abspath(workdir), "samples")
    os.makedirs(out_dir, exist_ok=True)
    if mode == "forward":
        files = run_forward(o, config, ckpt_step, out_dir)
    else:
        inf = _load_inference(workdir, step)
        log.info("restored step %d of %s (%d devices)", inf.step, workdir, inf.num_devices)
        files = {"generate": run_generate, "restore": run_restore, "evaluate": run_evaluate,
                 "interpolate": run_interpolate}[mode](o, inf, out_dir)
    for name, path in files.items():
        print(f"{name}: {path}", flush=True)
    return files


def main(argv) -> int:
    if len(argv) > 1:
        raise app.UsageError(f"unexpected arguments: {argv[1:]}")
    from jaxdiff.train.checkpoints import CheckpointError
    from jaxdiff.data import DataError
    from jaxdiff.inference import NoCheckpointError

    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    from jaxdiff.cpu.devices import CpuDevicesError, split_cpu_devices

    try:
        # CPU only: split each sampling batch over the cores (batches are rounded up to a multiple of the count).
        split_cpu_devices(FLAGS.batch if FLAGS.batch > 0 else 64)
        run(workdir=FLAGS.workdir, mode=FLAGS.mode, sampler=FLAGS.sampler, steps=FLAGS.steps, eta=FLAGS.eta,
            num=FLAGS.num, seed=FLAGS.seed, batch=FLAGS.batch, step=FLAGS.step, severity=FLAGS.severity,
            input=FLAGS.input, prior_noise=FLAGS.prior_noise, refit_prior=FLAGS.refit_prior, frames=FLAGS.frames,
            out=FLAGS.out, sweep=FLAGS.sweep)
    except (NoCheckpointError, CheckpointError, UsageError, DataError, CpuDevicesError) as e:
        print(f"sample.py: {e}", file=sys.stderr, flush=True)
        return 2
    return 0


if __name__ == "__main__":
    flags.mark_flag_as_required("workdir")
    app.run(lambda argv: sys.exit(main(argv)))
