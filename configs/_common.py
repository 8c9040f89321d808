"""Pieces the experiment configs share: the data set variants and the training recipes.

Not a config itself (no ``get_config``). The experiment files load it by path (``runpy``), so that
``--config=configs/x.py`` works from any working directory without ``configs`` being importable.

Data set variants (``--config=configs/x.py:<variant>``); tfds sources never download (data.download=False):

    ""          scikit-learn digits, 16x16 grey, embedded (the default of every file)
    "mnist"     tfds:mnist at 32x32 (28x28 padded/resized), grey
    "cifar10"   tfds:cifar10, 32x32 RGB
    "celeb_a"   tfds:celeb_a at 128x128 (centre crop + resize), RGB

Color-only configs (decolor, snow) default to "photos" instead: crops of scikit-learn's sample photographs,
16x16 RGB, embedded (32x32 trains at under 2 steps/s on two CPU cores).

Every config is returned locked (ml_collections): an unknown or mistyped field is an error naming it.
"""
import pathlib
import runpy

from jaxdiff.config import degradation_params

_HERE = pathlib.Path(__file__).resolve().parent

VARIANTS = ("mnist", "cifar10", "celeb_a")

DATASETS = {
    "digits": dict(source="digits", image_size=16, channels=1, random_flip=False),
    "mnist": dict(source="tfds:mnist", image_size=32, channels=1, random_flip=False),  # flipped digits aren't digits
    "cifar10": dict(source="tfds:cifar10", image_size=32, channels=3, random_flip=True),
    "celeb_a": dict(source="tfds:celeb_a", image_size=128, channels=3, random_flip=True),
    "photos": dict(source="photos", image_size=16, channels=3, random_flip=True),  # color-only configs' default
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
    set_train(c, learning_rate=2e-5, weight_decay=0.0, warmup_steps=0, grad_clip_norm=0.0, batch_size=64,
              num_steps=700_000, ema_decay=0.995, ema_every=10, ema_start=2000)
    n = c.data.image_size
    return set_model(c, ch=64, ch_mult=(1, 2, 4, 8), num_res_blocks=2, attn_resolutions=(n // 4, n // 8),
                     dropout=0.0, num_groups=32)


def cold_config(name: str, variant: str, *, degradation: str, T: int, params: dict, default: str = "digits"):
    """A Cold Diffusion experiment: R predicts x0 with L1, restored by Algorithm 2 over every step.

    ``name`` is the config file's stem (for the variant error); ``variant`` picks the data set (DATASETS)
    and, when not the embedded default (``default``: "digits", or "photos" for color-only degradations),
    the published training recipe (``set_cold_published``).
    """
    check_variant(name, variant)
    c = base_config()
    set_data(c, variant or default)
    f = c.diffusion
    f.T = T
    f.degradation = degradation
    f.degradation_params = degradation_params(degradation, params)  # every declared parameter, overridable
    f.schedule = "constant"  # α = 1, σ = schedule_params.std (0: noise free)
    f.schedule_params = {"std": 0.0}
    f.prediction = "x0"
    f.loss = "l1"
    f.loss_weighting = "none"
    c.sample.corrector = "cold_improved"
    c.sample.steps = 0
    if variant:
        set_cold_published(c)
    c.lock()
    return c


def gaussian_config(name: str, variant: str, *, schedule: str, schedule_params: dict, loss: str, corrector: str,
                    steps: int, eta: float, recipe=None):
    """A Gaussian (DDPM/DDIM) experiment: D = identity, a variance-preserving schedule, T=1000, ε-prediction, no
    loss weighting, x̂0 clipped to [−1, 1].

    ``variant`` picks the data set (DATASETS); when not the embedded digits, ``recipe(c, variant)`` sets
    the published network and optimiser.
    """
    check_variant(name, variant)
    c = base_config()
    set_data(c, variant or "digits")
    f = c.diffusion
    f.T = 1000
    f.degradation = "identity"
    f.degradation_params = {}
    f.schedule = schedule
    f.schedule_params = dict(schedule_params)
    f.prediction = "eps"
    f.loss = loss
    f.loss_weighting = "none"
    s = c.sample
    s.corrector = corrector
    s.steps = steps
    s.eta = eta
    s.clip = 1.0
    if variant and recipe is not None:
        recipe(c, variant)
    c.lock()
    return c


def process_config(name: str, variant: str, *, degradation: str, schedule: str, prediction: str, loss: str,
                   corrector: str, steps: int, clip: float, T: int = 1000, degradation_params=None,
                   schedule_params=None, loss_weighting: str = "none", t_sampling: str = "uniform",
                   t_sampling_params=None, eta: float = 0.0):
    """An experiment named by its process (degradation + noise schedule), its training target and its sampler, on
    the data set of ``variant`` (DATASETS; "" = the embedded digits) with default.py's network and recipe."""
    check_variant(name, variant)
    c = base_config()
    set_data(c, variant or "digits")
    f = c.diffusion
    f.T = T
    f.degradation, f.degradation_params = degradation, dict(degradation_params or {})
    f.schedule, f.schedule_params = schedule, dict(schedule_params or {})
    f.prediction, f.loss, f.loss_weighting = prediction, loss, loss_weighting
    f.t_sampling, f.t_sampling_params = t_sampling, dict(t_sampling_params or {})
    s = c.sample
    s.corrector, s.steps, s.eta, s.clip = corrector, steps, eta, clip
    c.lock()
    return c


def set_train(c, *, learning_rate, weight_decay, warmup_steps, grad_clip_norm, batch_size, num_steps, ema_decay,
              ema_every=1, ema_start=0):
    """A published training recipe: the optimiser, batch, length and EMA (no EMA warm-up); logs every 100
    steps, checkpoints every 10k."""
    t = c.train
    t.learning_rate, t.weight_decay, t.warmup_steps = learning_rate, weight_decay, warmup_steps
    t.grad_clip_norm, t.batch_size, t.num_steps = grad_clip_norm, batch_size, num_steps
    t.ema_decay, t.ema_every, t.ema_start, t.ema_warmup = ema_decay, ema_every, ema_start, False
    t.log_every, t.checkpoint_every = 100, 10_000
    return c


def set_model(c, *, ch, ch_mult, num_res_blocks, attn_resolutions, dropout, num_groups):
    """A published UNet size."""
    m = c.model
    m.ch, m.ch_mult, m.num_res_blocks = ch, tuple(ch_mult), num_res_blocks
    m.attn_resolutions, m.dropout, m.num_groups = tuple(attn_resolutions), dropout, num_groups
    return c
