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


def _keras_recipe(c):
    t, m = c.train, c.model
    m.ch = 32
    m.ch_mult = (1, 2, 3, 4)  # widths 32, 64, 96, 128
    m.num_res_blocks = 2
    m.attn_resolutions = ()
    m.dropout = 0.0
    m.num_groups = 8
    t.learning_rate = 1e-3
    t.weight_decay = 1e-4
    t.warmup_steps = 0
    t.grad_clip_norm = 0.0
    t.batch_size = 64
    t.num_steps = 100_000
    t.ema_decay = 0.999
    t.ema_every = 1
    t.ema_start = 0
    t.ema_warmup = False
    t.log_every = 100
    t.checkpoint_every = 10_000


def get_config(variant: str = ""):
    _common["check_variant"]("ddim", variant)
    c = _common["base_config"]()
    _common["set_data"](c, variant or "digits")
    f = c.diffusion
    f.kind = "gaussian"
    f.T = 1000
    f.schedule = "offset_cosine"
    f.schedule_params = dict(max_signal_rate=0.95, min_signal_rate=0.02)
    f.prediction = "eps"
    f.loss = "l1"
    f.loss_weighting = "none"
    f.noise_std = 0.0
    s = c.sample
    s.corrector = "ddim"
    s.steps = 20
    s.eta = 0.0
    s.clip = 1.0
    if variant:
        _keras_recipe(c)
    return c
