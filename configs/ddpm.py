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
    celeb = variant == "celeb_a"
    _common["set_model"](c, ch=128, ch_mult=(1, 1, 2, 2, 4) if celeb else (1, 2, 2, 2), num_res_blocks=2,
                         attn_resolutions=(16,), dropout=0.1, num_groups=32)
    _common["set_train"](c, learning_rate=2e-5 if celeb else 2e-4, weight_decay=0.0, warmup_steps=5000,
                         grad_clip_norm=1.0, batch_size=64 if celeb else 128,
                         num_steps=500_000 if celeb else 800_000, ema_decay=0.9999)


def get_config(variant: str = ""):
    return _common["gaussian_config"]("ddpm", variant, schedule="linear",
                                      schedule_params=dict(beta_start=1e-4, beta_end=2e-2), loss="l2",
                                      corrector="ddpm", steps=0, eta=1.0, recipe=_ddpm_recipe)
