"""Generation by inverse heat dissipation (Rissanen, Heinonen & Solin, ICLR 2023) in the one cold forward process.

    python train.py --config=configs/heat.py            # digits 16x16 (embedded), default.py's small UNet
    python train.py --config=configs/heat.py:mnist      # the authors' MNIST settings and recipe
    python train.py --config=configs/heat.py:cifar10

x_t = F_t(x0) + σ ε: F_t the DCT-basis heat equation (degradation ``heat``), blur scale σ_B,t log-spaced from
0.5 px to sigma_max; σ the small training noise. The network predicts x̂0 (L2, so x̂0 is a posterior mean and
F_{t−1}(x̂0) the paper's "less blurred" mean). The paper's sampler is ``--corrector=cold_naive`` on this noisy
process: x_{t−1} = F_{t−1}(x̂0) + δ z, δ = σ = diffusion.schedule_params.std; the default is Algorithm 2 (``cold_improved``,
which carries the prior draw's noise instead of drawing fresh noise). The prior: a mixture on the per-channel
means (F_T is flat but for its mean) + sample.prior_noise = σ per pixel.
Published (the authors' code; data in [0, 1], so their σ = δ = 0.01 is 0.02 here): MNIST 28x28 K=100,
σ_B 0.5…20; CIFAR-10 K=200, σ_B 0.5…24; Adam lr 2e-4, 5k warm-up, clip 1, batch 128, EMA 0.999, 1.3M steps.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))

NOISE = 0.02  # σ (training) = δ (sampling) = the prior's per-pixel noise, in [−1, 1] units

#: variant -> (T, degradation params). Digits: σ_B,max = 16 px (the image size) leaves every non-DC
#: coefficient at most exp(−π²/2) ≈ 0.7 % of itself, so F_T is flat to well below σ; T = 100 as for MNIST.
SETTINGS = {
    "": (100, dict(sigma_min=0.5, sigma_max=16.0)),
    "mnist": (100, dict(sigma_min=0.5, sigma_max=20.0)),
    "cifar10": (200, dict(sigma_min=0.5, sigma_max=24.0)),
    # not in the paper for CelebA: the authors' 128x128 (FFHQ) setting blurs to 128 px; T as for CIFAR-10
    "celeb_a": (200, dict(sigma_min=0.5, sigma_max=128.0)),
}


def _heat_recipe(c):
    """The authors' optimiser and MNIST network (128 channels, (1, 2, 2), 4 blocks, attention at level 2)."""
    _common["set_train"](c, learning_rate=2e-4, weight_decay=0.0, warmup_steps=5000, grad_clip_norm=1.0,
                         batch_size=128, num_steps=1_300_000, ema_decay=0.999)
    n = c.data.image_size
    return _common["set_model"](c, ch=128, ch_mult=(1, 2, 2), num_res_blocks=4, attn_resolutions=(n // 4,),
                                dropout=0.1, num_groups=32)


def get_config(variant: str = ""):
    _common["check_variant"]("heat", variant)
    T, params = SETTINGS[variant]
    c = _common["cold_config"]("heat", "", degradation="heat", T=T, params=params)  # digits, then the variant
    _common["set_data"](c, variant or "digits")
    if variant:
        _heat_recipe(c)
    f = c.diffusion
    f.schedule_params = {"std": NOISE}
    f.loss = "l2"
    s = c.sample
    s.corrector = "cold_improved"
    s.steps = 0
    s.prior_noise = NOISE
    c.lock()
    return c
