"""Every experiment config loads with every variant, passes validate_config, and carries the published numbers.

The published values (Bansal et al. 2022 "Cold Diffusion" and its code; Ho et al. 2020 DDPM; the Keras DDIM
example) are spec values, stated here as such (each next to its source).
"""
import glob
import os

import numpy as np
import pytest

import jaxdiff.config as cv
from jaxdiff.config import ConfigError, validate_config
from jaxdiff.data import parse_source
from jaxdiff.degradations import DEGRADATIONS

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLD = ("cold_blur", "cold_inpaint", "cold_superres", "cold_decolor", "cold_snow", "cold_animorph", "cold_blur_gen",
        "cold_fade")
EXPERIMENTS = COLD + ("ddpm", "ddim", "ddim_cond", "heat", "blurring_diffusion", "flow", "edm", "warm_blur",
                      "soft_diffusion")
VARIANTS = ("", "mnist", "cifar10", "celeb_a")
COLOR_ONLY = ("cold_decolor", "cold_snow")
#: the grey variants of the color-only configs (their default is the embedded RGB photos)
COLOR_ONLY_GREY = ("mnist",)


def load(name, variant=""):
    path = os.path.join(ROOT, "configs", f"{name}.py")
    return cv.load_config_file(f"{path}:{variant}" if variant else path)


def test_the_experiment_files_are_exactly_these():
    files = {os.path.basename(p)[:-3] for p in glob.glob(os.path.join(ROOT, "configs", "*.py"))}
    assert {f for f in files if f != "default" and not f.startswith("_")} == set(EXPERIMENTS)


@pytest.mark.parametrize("variant", VARIANTS)
@pytest.mark.parametrize("name", EXPERIMENTS)
def test_every_config_and_variant_validates(name, variant):
    config = load(name, variant)
    if name in COLOR_ONLY and variant in COLOR_ONLY_GREY:
        # The documented decision: grey data are refused for color-only degradations, naming data.channels.
        with pytest.raises(ConfigError) as info:
            validate_config(config, num_devices=8)
        assert info.value.fields == ["data.channels"]
        assert "needs color images" in str(info.value)
        return
    validate_config(config, num_devices=8)
    # every variant keeps the offline guarantee
    assert config.data.download is False


@pytest.mark.parametrize("name", COLOR_ONLY)
def test_color_only_configs_run_once_given_rgb_data(name):
    config = load(name)
    with config.ignore_type():
        config.data.source = "npz:/some/rgb_images.npz"
        config.data.channels = 3
    validate_config(config, num_devices=8)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_unknown_variant_is_refused_naming_the_allowed_ones(name):
    with pytest.raises(ValueError, match=r"unknown variant 'mnsit'.*'mnist', 'cifar10', 'celeb_a'"):
        load(name, "mnsit")


@pytest.mark.parametrize("name", [n for n in EXPERIMENTS if n not in COLOR_ONLY])
def test_default_variant_is_the_embedded_digits(name):
    d = load(name).data
    assert d.source.split(":")[0] == "digits" and d.image_size == 16 and d.channels == 1


@pytest.mark.parametrize("name", COLOR_ONLY)
def test_color_only_default_is_the_embedded_photos(name):
    d = load(name).data
    assert (d.source, d.image_size, d.channels, d.random_flip, d.download) == ("photos", 16, 3, True, False)
    assert d.eval_split == "test"  # the fixed held-out quarter of each photograph


@pytest.mark.parametrize("name", COLOR_ONLY)
def test_color_only_default_with_grey_channels_is_refused_naming_data_channels(name):
    config = load(name)
    with config.ignore_type():
        config.data.channels = 1
    with pytest.raises(ConfigError) as info:
        validate_config(config, num_devices=8)
    assert set(info.value.fields) == {"data.channels"}
    assert "3 for data.source='photos' (RGB images)" in str(info.value)


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_variant_data_sources(name):
    for variant, (tfds_name, size, channels) in {
        "mnist": ("mnist", 32, 1),
        "cifar10": ("cifar10", 32, 3),
        "celeb_a": ("celeb_a", 128, 3),
    }.items():
        d = load(name, variant).data
        spec = parse_source(d.source, "data.source")
        assert (spec.kind, spec.target.split(":")[0]) == ("tfds", tfds_name)
        assert (d.image_size, d.channels, d.download) == (size, channels, False)


# --- published numbers ----------------------------------------------------------------------------------


def _diff(name, variant):
    """T, the degradation and the parameters the config file sets; every other declared parameter of the
    degradation is in the config too, at the builder's default."""
    f = load(name, variant).diffusion
    params = f.degradation_params.to_dict()
    defaults = DEGRADATIONS[f.degradation].declared_params()
    named = _SET[name, variant]
    assert set(params) == set(defaults)
    assert all(params[k] == defaults[k] for k in set(params) - set(named))
    return f.T, f.degradation, {k: params[k] for k in named}


#: the parameters each config file names (some equal the builder's default)
_SET = {
    ("cold_blur", "mnist"): ("kernel_size", "std", "routine", "padding"),
    ("cold_blur", "cifar10"): ("kernel_size", "std", "std_increment", "routine", "padding"),
    ("cold_blur", "celeb_a"): ("kernel_size", "std", "routine", "padding"),
    ("cold_inpaint", "mnist"): ("kernel_std", "initial_mask", "centered"),
    ("cold_inpaint", "cifar10"): ("kernel_std", "initial_mask", "centered"),
    ("cold_inpaint", "celeb_a"): ("kernel_std", "initial_mask", "centered"),
    ("cold_snow", "cifar10"): ("seed", "thr_start", "thr_end", "sigma_start", "sigma_end"),
    **{("cold_decolor", v): () for v in ("", "mnist", "cifar10", "celeb_a")},
    **{("heat", v): ("sigma_min", "sigma_max") for v in ("", "mnist", "cifar10", "celeb_a")},
    **{("cold_blur_gen", v): ("kernel_size", "std", "routine", "padding", "to_mean") for v in VARIANTS},
    **{("cold_fade", v): ("kernel_std", "initial_mask", "centered") for v in VARIANTS},
}


def test_blur_published():
    assert _diff("cold_blur", "mnist") == (20, "blur", dict(kernel_size=11, std=7.0, routine="constant", padding="circular"))
    T, deg, p = _diff("cold_blur", "cifar10")
    assert (T, deg, p["kernel_size"], p["routine"], p["padding"]) == (50, "blur", 11, "affine", "reflect")
    # σ_i = 0.35 + i/100 for i = 0 … T−1
    sigmas = p["std"] + p["std_increment"] * np.arange(T)
    np.testing.assert_allclose(sigmas, 0.35 + np.arange(50) / 100)
    assert _diff("cold_blur", "celeb_a") == (
        200,
        "blur",
        dict(kernel_size=15, std=0.01, routine="exponential", padding="reflect"),
    )


def test_blur_generation_published():
    """Bansal et al. 2022, generation at 128x128: T = 300, Exponential σ_i = exp(0.01 i), 27x27, circular, and the
    last step replaced by the per-channel mean."""
    published = dict(kernel_size=27, std=0.01, routine="exponential", padding="circular", to_mean=True)
    assert _diff("cold_blur_gen", "celeb_a") == (300, "blur", published)
    for variant in VARIANTS:
        assert _diff("cold_blur_gen", variant)[2]["to_mean"] is True


@pytest.mark.parametrize("name", ("cold_blur_gen", "cold_fade", "heat"))
def test_generating_cold_digits_configs_end_at_their_prior(name):
    """F_T of the digits configs is what the prior draws: a flat image per channel (blur to the mean, heat up to
    the noise-free part) or exactly a solid color (fade), so the prior check passes by a wide margin."""
    import jax

    from jaxdiff import data, experiment

    c = load(name)
    process = experiment.build_process(c)
    x0 = data.load_images(c, split="train", num=64, seed=0)
    rng = jax.random.PRNGKey(0)
    aux = process.sample_aux(rng, x0)
    end = np.asarray(process.mean(x0, np.full((64,), c.diffusion.T, np.int32), aux), np.float64)
    spread = end.std(axis=(1, 2)).max()  # per image and channel: 0 for a flat image
    # heat's F_T keeps each non-DC coefficient at most exp(−π²/2) of itself: flat to well below its noise σ
    bound = 0.25 * c.diffusion.schedule_params.std if name == "heat" else 1e-3
    assert spread < bound, spread
    assert np.abs(end.mean(axis=(1, 2)) - np.asarray(x0, np.float64).mean(axis=(1, 2))).max() < 1e-4 or name == "cold_fade"


def test_inpaint_published():
    random = dict(kernel_std=0.1, initial_mask=11, centered=False)
    assert _diff("cold_inpaint", "mnist") == (50, "inpaint", random)
    assert _diff("cold_inpaint", "cifar10") == (50, "inpaint", random)
    assert _diff("cold_inpaint", "celeb_a") == (100, "inpaint", dict(kernel_std=0.2, initial_mask=1, centered=True))


def test_superres_published():
    for variant, T, final in (("mnist", 3, 4), ("cifar10", 3, 4), ("celeb_a", 4, 8)):
        c = load("cold_superres", variant)
        assert c.diffusion.degradation == "superres" and c.diffusion.T == T
        assert c.data.image_size // 2**c.diffusion.T == final  # 32 → 4, 128 → 8
        assert c.diffusion.degradation_params.method == "bicubic"


def test_snow_decolor_animorph_published():
    T, deg, p = _diff("cold_snow", "cifar10")
    assert (T, deg) == (200, "snow")
    assert (p["thr_start"], p["thr_end"], p["sigma_start"], p["sigma_end"]) == (1.15, 0.70, 0.05, 16.0)
    for variant in VARIANTS:
        assert _diff("cold_decolor", variant) == (20, "decolor", {})
        c = load("cold_animorph", variant)
        # the interpolation weights ᾱ_t are the degradation's own (cosine); no noise on top
        assert (c.diffusion.T, c.diffusion.degradation, c.diffusion.schedule) == (200, "interpolate", "constant")
        assert c.diffusion.schedule_params.std == 0.0
        assert c.data.end_source and c.data.end_source != c.data.source


def test_animorph_digits_split_the_classes():
    """The digits sources name classes 0–4 and 5–9, and jaxdiff.data reads them as such."""
    from jaxdiff import data

    c = load("cold_animorph")
    start = data.load_source(c.data.source, split="train", image_size=16, channels=1)
    end = data.load_source(c.data.end_source, split="train", image_size=16, channels=1)
    assert set(np.unique(start.labels)) == set(range(5)) and set(np.unique(end.labels)) == set(range(5, 10))


@pytest.mark.parametrize("name", COLD)
def test_cold_configs_are_cold_x0_l1_algorithm_2(name):
    for variant in VARIANTS:
        c = load(name, variant)
        f = c.diffusion
        assert (f.schedule, f.prediction, f.loss, f.schedule_params.std) == ("constant", "x0", "l1", 0.0)
        assert (c.sample.corrector, c.sample.steps) == ("cold_improved", 0)


@pytest.mark.parametrize("name", COLD)
@pytest.mark.parametrize("variant", VARIANTS[1:])
def test_cold_published_training_recipe(name, variant):
    c = load(name, variant)
    t, m = c.train, c.model
    assert (t.learning_rate, t.batch_size, t.num_steps) == (2e-5, 64, 700_000)
    assert (t.ema_decay, t.ema_every, t.ema_start, t.ema_warmup) == (0.995, 10, 2000, False)
    assert (t.weight_decay, t.warmup_steps, t.grad_clip_norm) == (0.0, 0, 0.0)  # plain Adam, as their code
    assert (m.ch, tuple(m.ch_mult), m.num_res_blocks) == (64, (1, 2, 4, 8), 2)  # their Unet(dim=64, dim_mults)


def test_ddpm_published():
    for variant in VARIANTS:
        c = load("ddpm", variant)
        f = c.diffusion
        assert (f.degradation, f.T, f.schedule, f.prediction, f.loss) == ("identity", 1000, "linear", "eps", "l2")
        assert f.schedule_params.to_dict() == dict(beta_start=1e-4, beta_end=2e-2)
        assert (c.sample.corrector, c.sample.steps) == ("ddpm", 0)
    c = load("ddpm", "cifar10")
    m, t = c.model, c.train
    assert (m.ch, tuple(m.ch_mult), m.num_res_blocks, tuple(m.attn_resolutions), m.dropout) == (128, (1, 2, 2, 2), 2, (16,), 0.1)
    assert (t.learning_rate, t.batch_size, t.warmup_steps, t.grad_clip_norm, t.ema_decay) == (2e-4, 128, 5000, 1.0, 0.9999)


def test_heat_published():
    """The authors' code (Rissanen et al. 2023; data in [0, 1], so σ = δ = 0.01 there is 0.02 in [−1, 1]):
    MNIST K=100, σ_B 0.5…20; CIFAR-10 K=200, σ_B 0.5…24; Adam lr 2e-4, warm-up 5000, clip 1, batch 128,
    EMA 0.999; MNIST network 128 channels, (1, 2, 2), 4 blocks."""
    assert _diff("heat", "mnist") == (100, "heat", dict(sigma_min=0.5, sigma_max=20.0))
    assert _diff("heat", "cifar10") == (200, "heat", dict(sigma_min=0.5, sigma_max=24.0))
    assert _diff("heat", "") == (100, "heat", dict(sigma_min=0.5, sigma_max=16.0))  # digits: to the image size
    for variant in VARIANTS:
        c = load("heat", variant)
        f, s = c.diffusion, c.sample
        assert (f.schedule, f.prediction, f.loss, f.schedule_params.std) == ("constant", "x0", "l2", 0.02)
        assert (s.corrector, s.steps, s.prior_noise) == ("cold_improved", 0, 0.02)  # the prior's noise is σ
    c = load("heat", "mnist")
    t, m = c.train, c.model
    assert (t.learning_rate, t.warmup_steps, t.grad_clip_norm, t.batch_size, t.ema_decay) == (2e-4, 5000, 1.0, 128, 0.999)
    assert (m.ch, tuple(m.ch_mult), m.num_res_blocks, m.dropout) == (128, (1, 2, 2), 4, 0.1)


def test_blurring_diffusion_config():
    """Hoogeboom & Salimans 2023 as configs/blurring_diffusion.py reads it: cosine schedule, MSE, d_min = 0.001,
    σ_B,max = 20 at 32x32 scaled with the image side; 20 per-frequency DDIM steps like configs/ddim.py; x0- rather
    than the paper's ε-prediction (issue 20: the ε-trained digits run draws noise)."""
    for variant, sigma_max in (("", 10.0), ("mnist", 20.0), ("cifar10", 20.0), ("celeb_a", 80.0)):
        c = load("blurring_diffusion", variant)
        f, s = c.diffusion, c.sample
        assert (f.degradation, f.T, f.schedule, f.prediction, f.loss) == ("dct_blur", 1000, "cosine", "x0", "l2")
        assert (f.degradation_params.sigma_max, f.degradation_params.d_min) == (sigma_max, 0.001)
        assert (s.corrector, s.steps, s.eta, s.clip) == ("ddim", 20, 0.0, 1.0)


def test_warm_blur_config():
    """Warm diffusion on the one process: the warm_blur degradation tied to the noise level with Warm Diffusion's
    blur-to-noise ratio 0.5, blurring diffusion's floor 0.001, blurred to the image side; configs/ddim.py's
    schedule, loss and sampler otherwise; v-prediction; η = 1 (measured better than 0 on digits)."""
    for variant, side in (("", 16), ("mnist", 32), ("cifar10", 32), ("celeb_a", 128)):
        c = load("warm_blur", variant)
        f, s = c.diffusion, c.sample
        assert (f.degradation, f.T, f.schedule, f.prediction, f.loss, f.loss_weighting) == (
            "warm_blur", 1000, "offset_cosine", "v", "l1", "none")
        p = f.degradation_params
        assert (p.blur, p.bnr, p.d_min, p.sigma_max) == ("noise", 0.5, 0.001, float(side))
        assert f.schedule_params.to_dict() == dict(max_signal_rate=0.95, min_signal_rate=0.02)
        assert (s.corrector, s.steps, s.eta, s.clip) == ("ddim", 20, 1.0, 1.0)


def test_soft_diffusion_config():
    """Soft Diffusion as configs/soft_diffusion.py reads it (second hand, see its docstring): a Gaussian blur from
    0.01 to 23 px at 64x64 linear in t (scaled with the image side), geometric noise from 0.01 (0.1 at a quarter,
    so 100 at T), x0-prediction trained on the error after the blur (loss weighting 'soft')."""
    for variant, side in (("", 16), ("mnist", 32), ("cifar10", 32), ("celeb_a", 128)):
        c = load("soft_diffusion", variant)
        f, s = c.diffusion, c.sample
        assert (f.degradation, f.T, f.schedule, f.prediction, f.loss, f.loss_weighting) == (
            "warm_blur", 1000, "geometric", "x0", "l2", "soft")
        p = f.degradation_params
        assert (p.blur, p.sigma_min, p.d_min) == ("linear", 0.01, 0.0)
        assert p.sigma_max == pytest.approx(23.0 * side / 64)
        assert f.schedule_params.to_dict() == dict(sigma_min=0.01, sigma_max=100.0)
        assert (s.corrector, s.steps, s.eta, s.clip) == ("ddim", 100, 0.0, 1.0)


def test_ddim_keras_example():
    for variant in VARIANTS:
        c = load("ddim", variant)
        f, s = c.diffusion, c.sample
        assert (f.degradation, f.schedule, f.prediction, f.loss) == ("identity", "offset_cosine", "eps", "l1")
        assert f.schedule_params.to_dict() == dict(max_signal_rate=0.95, min_signal_rate=0.02)
        assert (s.corrector, s.steps, s.eta) == ("ddim", 20, 0.0)
    c = load("ddim", "cifar10")
    widths = tuple(c.model.ch * m for m in c.model.ch_mult)
    assert widths == (32, 64, 96, 128) and c.model.num_res_blocks == 2 and tuple(c.model.attn_resolutions) == ()
    t = c.train
    assert (t.batch_size, t.learning_rate, t.weight_decay, t.ema_decay) == (64, 1e-3, 1e-4, 0.999)


@pytest.mark.parametrize("name", COLD)
def test_every_declared_degradation_parameter_is_in_the_config(name):
    """So that ``--config.diffusion.degradation_params.<any declared parameter>=…`` is accepted."""
    for variant in VARIANTS:
        f = load(name, variant).diffusion
        assert set(f.degradation_params) == set(DEGRADATIONS[f.degradation].declared_params())


@pytest.mark.parametrize("name", EXPERIMENTS)
def test_configs_are_locked(name):
    c = load(name)
    assert c.is_locked
    with pytest.raises(AttributeError):
        c.sample.sampler = "ddim"
