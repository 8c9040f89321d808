"""DDIM sampling of a Gaussian diffusion with the Keras "Denoising Diffusion Implicit Models" example's recipe.

    python train.py --config=configs/ddim.py            # digits 16x16 (embedded), default.py's small UNet
    python train.py --config=configs/ddim.py:cifar10    # the Keras example's network and optimiser

Offset-cosine schedule (signal rate cos(angle), angle from arccos(0.95) to arccos(0.02)), discretised at
T=1000 steps; ε-prediction with a mean-absolute-error (L1) loss on ε; deterministic DDIM (η=0) over 20 steps.
Keras example (Oxford Flowers 64x64): widths 32/64/96/128, block depth 2, no attention, batch 64,
AdamW lr 1e-3 weight decay 1e-4, EMA 0.999. Here the data are scaled to [-1, 1] (the example normalises
by the data set's mean and std) and the number of training steps (not given by the example) is 100k.
"""
import pathlib
import runpy

_common = runpy.run_path(str(pathlib.Path(__file__).resolve().with_name("_common.py")))


def _keras_recipe(c, variant):
    _common["set_model"](c, ch=32, ch_mult=(1, 2, 3, 4), num_res_blocks=2, attn_resolutions=(), dropout=0.0,
                         num_groups=8)  # widths 32, 64, 96, 128
    _common["set_train"](c, learning_rate=1e-3, weight_decay=1e-4, warmup_steps=0, grad_clip_norm=0.0, batch_size=64,
                         num_steps=100_000, ema_decay=0.999)


def get_config(variant: str = ""):
    return _common["gaussian_config"]("ddim", variant, schedule="offset_cosine",
                                      schedule_params=dict(max_signal_rate=0.95, min_signal_rate=0.02), loss="l1",
                                      corrector="ddim", steps=20, eta=0.0, recipe=_keras_recipe)
