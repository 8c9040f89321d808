"""Pieces the experiment configs share: the data set variants and the training recipes.

Not a config itself (no ``get_config``). The experiment files load it by path (``runpy``), so that
``--config=configs/x.py`` works from any working directory without ``configs`` being importable.

Data set variants (``--config=configs/x.py:<variant>``); tfds sources never download (data.download=False):

    ""          scikit-learn digits, 16x16 grey, embedded (the default of every file)
    "mnist"     tfds:mnist at 32x32 (28x28 padded/resized), grey
    "cifar10"   tfds:cifar10, 32x32 RGB
    "celeb_a"   tfds:celeb_a at 128x128 (centre crop + resize), RGB
"""
import pathlib
import runpy

_HERE = pathlib.Path(__file__).resolve().parent

VARIANTS = ("mnist", "cifar10", "celeb_a")

DATASETS = {
    "digits": dict(source="digits", image_size=16, channels=1, random_flip=False),
    "mnist": dict(source="tfds:mnist", image_size=32, channels=1, random_flip=False),  # flipped digits aren't digits
    "cifar10": dict(source="tfds:cifar10", image_size=32, channels=3, random_flip=True),
    "celeb_a": dict(source="tfds:celeb_a", image_size=128, channels=3, random_flip=True),
}


def base_config():
    """configs/default.py's ``get_config()``."""
    return runpy.run_path(str(_HERE / "default.py"))["get_config"]()


def check_variant(name: str, variant: str, allowed=VARIANTS, *, why: str = "") -> str:
    """Returns ``variant`` or raises a ValueError naming the config's variants."""
    if variant not in ("",) + tuple(allowed):
        listing = ", ".join(repr(v) for v in ("",) + tuple(allowed))
        raise ValueError(f"configs/{name}.py: unknown variant {variant!r}{why}; allowed: {listing}")
    return variant


def set_data(c, dataset: str):
    """Points ``c.data`` at one of DATASETS."""
    d = DATASETS[dataset]
    c.data.source = d["source"]
    c.data.image_size = d["image_size"]
    c.data.channels = d["channels"]
    c.data.random_flip = d["random_flip"]
    c.data.eval_split = "test"
    c.data.download = False
    return c


def set_cold_published(c):
    """Cold Diffusion's training recipe (Bansal et al. 2022, their PyTorch code) and network size.

    Adam lr 2e-5 (no weight decay, no warm-up, no clipping), global batch 64 (32 x 2 accumulation there),
    700k steps, L1 on x0, EMA 0.995 updated every 10 steps from step 2000 (a copy of the weights before).
    Their UNet: base width 64, multipliers (1, 2, 4, 8), two blocks per resolution, linear attention at
    every resolution; here full attention at the two lowest resolutions instead.
    """
    t = c.train
    t.learning_rate = 2e-5
    t.weight_decay = 0.0
    t.warmup_steps = 0
    t.grad_clip_norm = 0.0
    t.batch_size = 64
    t.num_steps = 700_000
    t.ema_decay = 0.995
    t.ema_every = 10
    t.ema_start = 2000
    t.ema_warmup = False
    t.log_every = 100
    t.checkpoint_every = 10_000

    m = c.model
    m.ch = 64
    m.ch_mult = (1, 2, 4, 8)
    m.num_res_blocks = 2
    n = c.data.image_size
    m.attn_resolutions = (n // 4, n // 8)
    m.dropout = 0.0
    m.num_groups = 32
    return c


def cold_config(name: str, variant: str, *, degradation: str, T: int, params: dict):
    """A Cold Diffusion experiment: R predicts x0 with L1, restored by Algorithm 2 over every step.

    ``name`` is the config file's stem (for the variant error); ``variant`` picks the data set (DATASETS)
    and, when not the embedded digits, the published training recipe (``set_cold_published``).
    """
    check_variant(name, variant)
    c = base_config()
    set_data(c, variant or "digits")
    f = c.diffusion
    f.kind = "cold"
    f.T = T
    f.degradation = degradation
    f.degradation_params = dict(params)
    f.noise_std = 0.0
    f.prediction = "x0"
    f.loss = "l1"
    f.loss_weighting = "none"
    c.sample.corrector = "cold_improved"
    c.sample.steps = 0
    if variant:
        set_cold_published(c)
    return c
