"""DDPM (Ho et al. 2020): Gaussian diffusion, ε-prediction, linear β 1e-4 → 2e-2 over T=1000, ancestral sampling.

    python train.py --config=configs/ddpm.py            # digits 16x16 (embedded), default.py's small UNet
    python train.py --config=configs/ddpm.py:cifar10    # the DDPM CIFAR-10 recipe below
    python train.py --config=configs/ddpm.py:mnist      # the same recipe on MNIST 32x32
    python train.py --config=configs/ddpm.py:celeb_a    # DDPM's CelebA-HQ recipe, one level fewer at 128x128

Loss: the "simple" objective, mean squared error on ε. Sampler ``ddpm`` over every step (steps=0).
CIFAR-10 recipe (DDPM paper): base width 128, multipliers (1, 2, 2, 2), 2 res blocks, attention at 16x16,
dropout 0.1, Adam lr 2e-4 with 5000 warm-up steps, batch 128, 800k steps, gradient clipping 1, EMA 0.9999.
CelebA-HQ 256 there: multipliers (1, 1, 2, 2, 4, 4), lr 2e-5, batch 64, 0.5M steps; at 128 one level fewer.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))


def _ddpm_recipe(c, variant):
    t, m = c.train, c.model
    m.ch = 128
    m.ch_mult = (1, 2, 2, 2) if variant != "celeb_a" else (1, 1, 2, 2, 4)
    m.num_res_blocks = 2
    m.attn_resolutions = (16,)
    m.dropout = 0.1
    m.num_groups = 32
    t.learning_rate = 2e-4 if variant != "celeb_a" else 2e-5
    t.warmup_steps = 5000
    t.weight_decay = 0.0
    t.grad_clip_norm = 1.0
    t.batch_size = 128 if variant != "celeb_a" else 64
    t.num_steps = 800_000 if variant != "celeb_a" else 500_000
    t.ema_decay = 0.9999
    t.ema_every = 1
    t.ema_start = 0
    t.ema_warmup = False
    t.log_every = 100
    t.checkpoint_every = 10_000


def get_config(variant: str = ""):
    _common["check_variant"]("ddpm", variant)
    c = _common["base_config"]()
    _common["set_data"](c, variant or "digits")
    f = c.diffusion
    f.kind = "gaussian"
    f.T = 1000
    f.schedule = "linear"
    f.schedule_params = dict(beta_start=1e-4, beta_end=2e-2)
    f.prediction = "eps"
    f.loss = "l2"
    f.loss_weighting = "none"
    f.noise_std = 0.0
    s = c.sample
    s.corrector = "ddpm"
    s.steps = 0
    s.eta = 1.0
    s.clip = 1.0
    if variant:
        _ddpm_recipe(c, variant)
    return c
