"""The one forward process x_t = α_t·D_t(x0) + σ_t·ε: a degradation D_t and a noise schedule (α_t, σ_t).

    process = build_process(config)                      # config.diffusion: degradation, schedule, T
    process = make_process("identity", "cosine", T=1000, image_size=32, channels=3)
    x_t = process.perturb(x0, t, eps)                    # x0 (B, H, W, C), t int32 (B,)

Modules: ``process`` (:class:`Process`, every fact about a process), ``schedules`` (the registered noise
schedules), ``noise`` (what every schedule answers), ``dct`` (the DCT basis of the diagonal degradations).
The processes jaxdiff had before it was one class are configurations of it:

    hot diffusion (DDPM/DDIM)   identity      variance preserving (linear, cosine, …)   GaussianProcess(schedule)
    cold diffusion              a degradation constant σ (0 or small)                    ColdProcess(deg, noise_std)
    inverse heat dissipation    heat          constant σ                                 ColdProcess(heat, σ)
    blurring diffusion          dct_blur      variance preserving                        BlurringProcess(...)
    flow matching               identity      flow (α = 1 − τ, σ = τ)
    EDM (variance exploding)    identity      ve (α = 1, σ_min … σ_max)
"""
from __future__ import annotations

from jaxdiff.processes.process import NOISE_DOMINATES_SNR, Process, as_t, bcast

__all__ = ["Process", "bcast", "as_t", "NOISE_DOMINATES_SNR", "make_process", "build_process", "noise_levels",
           "GaussianProcess", "ColdProcess", "BlurringProcess"]


def make_process(degradation: str, schedule: str, *, T: int, image_size: int, channels: int,
                 degradation_params=None, schedule_params=None) -> Process:
    """The process of a registered degradation and a registered noise schedule, both of ``T`` steps.

    A degradation whose builder declares ``noise_levels`` (a blur tied to the noise) receives the schedule's
    σ_t/α_t (float64 (T + 1,), +inf where α_t = 0)."""
    from jaxdiff.degradations import DEGRADATIONS, make_degradation
    from jaxdiff.processes.schedules import make_schedule

    sched = make_schedule(schedule, int(T), **dict(schedule_params or {}))
    params = dict(degradation_params or {})
    entry = DEGRADATIONS.get(degradation)
    if entry is not None and entry.needs_noise_levels:
        if "noise_levels" in params:
            raise ValueError(f"degradation {degradation!r}: noise_levels is not a parameter: the process passes "
                             "σ_t/α_t of its noise schedule")
        params["noise_levels"] = noise_levels(sched)
    deg = make_degradation(degradation, T=int(T), image_size=int(image_size), channels=int(channels), **params)
    return Process(deg, sched)


def noise_levels(schedule) -> "np.ndarray":
    """σ_t/α_t of a noise schedule, t = 0 … T (float64; +inf where α_t = 0): the noise level of x_t/α_t."""
    import numpy as np

    a = np.asarray(schedule.alpha64, np.float64)
    s = np.asarray(schedule.sigma64, np.float64)
    with np.errstate(divide="ignore", invalid="ignore"):
        return np.where(a > 0, s / np.where(a > 0, a, 1.0), np.inf)


def build_process(config) -> Process:
    """The process of ``config.diffusion`` (degradation, degradation_params, schedule, schedule_params, T) for
    ``config.data``'s image size and channels."""
    f, d = config.diffusion, config.data
    return make_process(str(f.degradation), str(f.schedule), T=int(f.T), image_size=int(d.image_size),
                        channels=int(d.channels), degradation_params=dict(f.degradation_params),
                        schedule_params=dict(f.schedule_params))


def GaussianProcess(schedule) -> Process:  # noqa: N802  (the spelling of the process it builds)
    """Hot diffusion: D = identity with a variance-preserving ``schedule`` (x_t = √ᾱ_t x0 + √(1 − ᾱ_t) ε)."""
    from jaxdiff.degradations import make_degradation

    return Process(make_degradation("identity", T=schedule.num_timesteps, image_size=1, channels=1), schedule)


def ColdProcess(degradation, noise_std: float = 0.0) -> Process:  # noqa: N802
    """Cold diffusion: a built ``degradation`` D_t with the constant noise σ_t = noise_std for t > 0."""
    from jaxdiff.processes.schedules import constant

    if isinstance(noise_std, bool) or not isinstance(noise_std, (int, float)) or not noise_std >= 0:
        raise ValueError(f"noise_std must be a finite number >= 0, got {noise_std!r}")
    return Process(degradation, constant(int(degradation.T), std=float(noise_std)))


def BlurringProcess(schedule, image_size, sigma_blur_max: float = 10.0, d_min: float = 0.001) -> Process:  # noqa: N802
    """Blurring diffusion: the ``dct_blur`` degradation of square ``image_size`` with a variance-preserving schedule."""
    from jaxdiff.degradations import make_degradation

    size = image_size if isinstance(image_size, int) else int(tuple(image_size)[0])
    if not isinstance(image_size, int) and len(set(tuple(image_size))) != 1:
        raise ValueError(f"image_size must be an integer or a square (n, n), got {image_size!r}")
    deg = make_degradation("dct_blur", T=schedule.num_timesteps, image_size=size, channels=1,
                           sigma_max=sigma_blur_max, d_min=d_min)
    return Process(deg, schedule)
