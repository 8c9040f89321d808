"""Warm diffusion: a blur whose width grows with the noise, on a variance-preserving process (blur + noise).

    python train.py --config=configs/warm_blur.py          # digits 16x16 (embedded), default.py's small UNet
    python sample.py --workdir=workdirs/warm_blur          # x_T ~ N(0, I), the one reverse step per frequency
    python sample.py --workdir=workdirs/warm_blur --corrector=ddim_2m --steps=10

x_t = α_t·D_t(x0) + σ_t·ε with D_t the heat-kernel blur of degradation ``warm_blur`` (diagonal in the DCT basis,
d_t = (1 − d_min) exp(−λ σ_B,t²/2) + d_min per frequency) whose width follows the noise: σ_B,t = BNR · σ_t/α_t
pixels (capped at sigma_max), Warm Diffusion's blur-to-noise ratio (Hsueh et al. 2025, arXiv 2511.16904). Where the
noise is small the blur is too, so the noise covers each frequency before the blur removes it — the paper's
account of why blur without noise leaves the data manifold. (α_t, σ_t): the offset-cosine schedule of
configs/ddim.py (signal rate from 0.95 to 0.02), T = 1000, so x_T is noise and the prior N(0, I).
Sampling: the one reverse step ``ddim`` per DCT frequency with the exact posterior, η = 1 (the posterior's noise;
``--eta=0`` is deterministic) or its second-order multistep ``ddim_2m``; x̂0 clipped to [−1, 1].

Where the constants come from:
* BNR = 0.5: Warm Diffusion's best ratio on CIFAR-10 (FID 1.85 against EDM's 1.97 at 35 network calls; 2.57 at
  BNR 2 and 11.97 at 10), as reported by a third-party reading of the paper. Not verified against the paper's
  text here: the units of its σ_B (we use pixels of blur std per unit of σ_t/α_t on data in [−1, 1]) and whether
  its blur is capped; the paper builds on EDM (VE schedule, Heun, two-headed network), which we do not copy.
* d_min = 0.001: the floor of blurring diffusion (Hoogeboom & Salimans 2023) so that D_t stays invertible.
* sigma_max = the image side (16 px on digits): blurs the last frequencies away (only where the noise already
  dominates, σ_t/α_t > 2·side).
* Schedule, L1 loss, 20 steps and clip: configs/ddim.py's (the Keras DDIM example), so that the only difference
  from hot diffusion is the blur.
* η = 1, measured: on digits after 1000 training steps (the shipped judge, 256 samples, mean ± s.e. over 4 prior
  keys) ddim-20 reaches Fréchet 29.2 ± 1.1 at η = 1 (88.8 % confident, every class ≥ 5.9 %) against 40.0 ± 3.6 at
  η = 0 (configs/ddim.py: 30.0 ± 3.3); at η = 1, 10/50/100 steps give 33.3/29.0/27.3, so 20 steps is within 7 % of
  100.
* prediction ``v`` (Salimans & Ho 2022): x̂0 = (α x_t − σ v̂)/(α² d + σ²) per frequency is bounded where d_t is
  small, unlike ε-prediction's (x_t − σ ε̂)/(α d) (which fails blurring diffusion on digits: docs/EVALUATION.md).
  Measured as above: at η = 0 v 40.0 ± 3.6, x0 39.7 ± 2.5 (a tie), ε 712.7 (draws noise: it divides by α d); at
  η = 1 v 29.2 ± 1.1, x0 33.8 ± 1.2. x0 with Soft Diffusion's loss (L2 after D_t): 39.9 ± 5.3 / 35.0 ± 0.9 at
  η = 0 / 1, no gain over the plain loss.
What the blur buys on digits, same measurements: configs/ddim.py (ε) at η = 1 reaches 24.2 ± 1.1 and with v
  27.9 ± 2.0, so at equal prediction and η this process matches hot diffusion within the spread and does not beat
  it; its lead over ddim.py's shipped default (η = 0, 30.0) is η's. A flow-matching variant (schedule ``flow``,
  prediction ``velocity``, L2: x_t = (1 − τ) D_τ(x0) + τ ε) does worse: 165.6 ± 12.1 (η = 0) and 118.3 ± 8.5
  (η = 1) at 20 steps, against configs/flow.py's 41.6 (Euler, 20, the generation table's run): not shipped.
Soft Diffusion's loss after degradation: ``--config.diffusion.loss_weighting=soft`` (configs/soft_diffusion.py).
"""
import pathlib
import runpy

from jaxdiff.config import degradation_params

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

#: Warm Diffusion's blur-to-noise ratio (pixels of blur std per unit of σ_t/α_t)
BNR = 0.5


def get_config(variant: str = ""):
    _common["check_variant"]("warm_blur", variant)
    side = float(_common["DATASETS"][variant or "digits"]["image_size"])
    blur = degradation_params("warm_blur", {"blur": "noise", "bnr": BNR, "sigma_max": side, "d_min": 0.001})
    return _common["process_config"](
        "warm_blur", variant, degradation="warm_blur", degradation_params=blur, schedule="offset_cosine",
        schedule_params={"max_signal_rate": 0.95, "min_signal_rate": 0.02}, prediction="v", loss="l1",
        corrector="ddim", steps=20, eta=1.0, clip=1.0)  # η = 1: measured (docstring)
