"""What several sample.py modes share: output names, the generation prior, and the images they read."""
from __future__ import annotations

import hashlib
import os
import re

import numpy as np

from jaxdiff.cli.options import ModeSettings, UsageError

__all__ = ["tag", "option_tags", "eta_tag", "HELD_OUT_SEED", "corrector_tag", "output_stem",
           "prior_for_mode", "GenerationRefused", "held_out_images",
           "training_images", "held_out_aux"]


#: the seed of the held-out subset evaluate and restore read: fixed, so runs that differ in --seed (the
#: sampling noise) score the same images
HELD_OUT_SEED = 20221201


def tag(s: ModeSettings, step: int, extra: str = "") -> str:
    """``<mode>_step<N>[_<extra>][_<option>…][_seed<S>]``: the stem of a mode's output files.

    ``extra`` is what the mode adds (e.g. :func:`corrector_tag`); :func:`option_tags` adds every other flag
    that changes the mode's result, so runs that differ in one write different files.
    """
    parts = [s.mode, f"step{step}"] + ([extra] if extra else []) + option_tags(s)
    return "_".join(parts + ([f"seed{s.seed}"] if s.seed else []))


def option_tags(s: ModeSettings) -> list[str]:
    """Name parts of the flags that change a mode's result besides the corrector, steps and η: ``noise<p>``
    (--prior_noise), ``t<s>`` (--severity, evaluate), ``sweep-<kind>-<counts>``, ``input-<name>-<hash>``
    (--input), ``label<c>`` / ``labels<a-b+c>`` with ``w<guidance>`` (--label, --labels, --guidance),
    ``n<num>`` (--num) and ``b<batch>`` (--batch: batch i draws from fold_in(key, i)). Forward mode (no
    network, no prior) adds none."""
    o, mode, parts = s.options, s.mode, []
    if mode == "forward":
        return parts
    if o.prior_noise is not None and mode in ("generate", "blend", "evaluate"):
        parts.append(f"noise{o.prior_noise:g}")
    if mode == "evaluate" and o.severity is not None:
        parts.append(f"t{o.severity}")
    if mode == "evaluate" and s.sweep_steps:
        parts.append(f"sweep-{s.sweep}-" + "-".join(str(v) for v in s.sweep_steps))
    if mode in ("restore", "fill") and o.input is not None:
        base = os.path.splitext(os.path.basename(o.input.split(":", 1)[-1].rstrip("/")))[0]
        name = re.sub(r"[^A-Za-z0-9.-]+", "-", base).strip("-") or "x"
        parts.append(f"input-{name}-{hashlib.sha1(o.input.encode()).hexdigest()[:6]}")
    if s.label_classes is not None:
        parts.append(("label" if o.label is not None else "labels") + _ranges(s.label_classes))
        parts.append(f"w{s.guidance:g}")
    parts.append(f"n{s.num}")
    if o.batch:
        parts.append(f"b{o.batch}")
    return parts


def _ranges(values) -> str:
    """(0, 1, 2, 7) → "0-2+7" (a file-name-safe spelling of the classes)."""
    runs, start = [], None
    for i, v in enumerate(values):
        if start is None:
            start = v
        if i + 1 == len(values) or values[i + 1] != v + 1:
            runs.append(str(start) if start == v else f"{start}-{v}")
            start = None
    return "+".join(runs)


def output_stem(s: ModeSettings, out_dir: str, step: int, extra: str = "") -> str:
    """``<out_dir>/<tag(s, step, extra)>``."""
    return os.path.join(out_dir, tag(s, step, extra))


def eta_tag(s: ModeSettings) -> str:
    """``_eta0.5`` for a non-zero η (also for correctors that ignore η: no fact says which do), else ""."""
    return f"_eta{s.eta:g}" if s.eta else ""


def corrector_tag(s: ModeSettings, inf) -> str:
    """``ddim_10steps_eta0.5``: the corrector, its steps, a spacing other than linear and a non-zero η."""
    steps = len(inf.timesteps(s.steps, s.spacing)) - 1
    spacing = "" if s.spacing == "linear" else f"_{s.spacing}"
    return f"{s.corrector}_{steps}steps{spacing}{eta_tag(s)}"


def prior_for_mode(s: ModeSettings, inf):
    """The run's generation prior (stored, else fitted and stored), with ``--prior_noise`` applied.

    Refused (:class:`GenerationRefused`, exit 2) when the prior does not stand in for F_T(x0): the Fréchet
    distance of :func:`jaxdiff.evaluation.prior_match.prior_match` above ``PRIOR_MISMATCH_RATIO`` × the real-vs-real
    floor, unless ``--force``.
    """
    from jaxdiff.priors import store as prior_store

    o = s.options
    try:
        prior = prior_store.load_or_fit_prior(inf.config, o.workdir, process=inf.process, refit=o.refit_prior)
    except ValueError as e:
        raise UsageError(f"--mode={o.mode}: this run has no generation prior: {e}") from None
    if o.prior_noise is not None:
        if "noise" not in prior.arrays:
            raise UsageError(f"--prior_noise: the {prior.kind!r} prior has no per-pixel noise to set")
        prior = prior.replace(noise=o.prior_noise)
    if not o.force:
        _refuse_mismatched_prior(s, inf, prior)
    return prior


class GenerationRefused(UsageError):
    """The run's prior does not match what its network saw at t = T (one line, exit 2; ``--force`` skips it)."""


_MATCH_CACHE: dict = {}


def _refuse_mismatched_prior(s: ModeSettings, inf, prior) -> None:
    from jaxdiff.evaluation.prior_match import PRIOR_MISMATCH_RATIO, prior_match

    if inf.process.noise_dominates:
        # x_T is noise by construction and the prior is the process's own N(0, prior_std² I), nothing fitted.
        # The check is for fitted priors; at a variance-exploding σ_T (EDM's 80) the digits features of x_T are
        # so spread that its floor, measured on clean images, says nothing (it refused every edm run).
        return
    key = (os.path.abspath(s.options.workdir), inf.step, prior.kind,
           tuple((k, v.tobytes()) for k, v in sorted(prior.arrays.items())))
    if key not in _MATCH_CACHE:
        _MATCH_CACHE.clear()
        _MATCH_CACHE[key] = prior_match(inf.config, inf.process, prior, seed=int(inf.config.seed))
    m = _MATCH_CACHE[key]
    if m["ratio"] <= PRIOR_MISMATCH_RATIO:
        return
    hint = inf.process.generation().mismatch_hint
    raise GenerationRefused(
        f"--mode={s.mode}: the fitted {prior.kind!r} prior does not match what the network saw at t = T: "
        f"Fréchet distance {m['frechet']:.1f} between {m['num']} prior draws and F_T(x0) of {m['num']} training "
        f"images, {m['ratio']:.1f}× the real-vs-real floor {m['floor']:.1f} (refused above "
        f"{PRIOR_MISMATCH_RATIO:g}×), so samples would start off what it was trained on. "
        f"Run --mode=restore to restore degraded images instead"
        + (f", or {hint}" if hint else "") + "; --force generates anyway")


def held_out_images(config, num: int, seed: int = HELD_OUT_SEED) -> np.ndarray:
    """``num`` images of the config's held-out split (all if it has fewer), a sorted random subset drawn from
    ``seed`` (a source stored class by class still gives every class), float32 in [−1, 1]. DataError naming
    data.source and the split when the source has no held-out split (it would score training images)."""
    from jaxdiff.data import load_images

    return load_images(config, split=str(config.data.eval_split), num=int(num), seed=int(seed),
                       require_split=True)


def training_images(config, num: int, seed: int) -> np.ndarray:
    """``num`` training images, a sorted random subset drawn from ``seed`` (the real-vs-real floor)."""
    from jaxdiff.data import load_images

    return load_images(config, split="train", num=int(num), seed=int(seed))


def held_out_aux(inf, x0, key):
    """The per-example draw for degrading held-out images x0; end images of ``data.end_source`` (a seeded subset
    of its held-out split, cycled to len(x0)) when the degradation needs them."""
    from jaxdiff.data.end_images import end_images_for

    end = end_images_for(inf.config, inf.process, x0.shape[0], split=str(inf.config.data.eval_split),
                         seed=HELD_OUT_SEED + 1)
    aux = inf.process.restoration_aux(x0, key, end_images=end)
    return None if aux is None else _to_host(aux)


def _to_host(tree):
    import jax

    return jax.tree.map(np.asarray, tree)
