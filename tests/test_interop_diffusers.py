"""jaxdiff.interop.diffusers against diffusers itself: converted UNets, schedulers, round trips, refusals.

The reference is diffusers' own UNet2DModel / DDPMScheduler / DDIMScheduler under PyTorch (CPU), randomly
initialised and every tensor perturbed (so no zero-initialised layer hides a mapping error). Tests that need
torch/diffusers skip without them; the refusals and workdir tests run everywhere.
"""
from __future__ import annotations

import json
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff.interop import diffusers as dx

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
TOL = 1e-4


def _torch():
    torch = pytest.importorskip("torch")
    pytest.importorskip("diffusers")
    return torch


def _diffusers_unet(torch, seed=0, **kw):
    from diffusers import UNet2DModel

    torch.manual_seed(seed)
    m = UNet2DModel(**kw).eval()
    with torch.no_grad():
        for p in m.parameters():
            p.add_(0.02 * torch.randn_like(p))
    return m


def _save(m, sched, path):
    m.save_pretrained(str(path))  # safetensors by default
    if sched is not None:
        sched.save_pretrained(str(path))
    return str(path)


def _compare(torch, m, conv, *, batch=3, seed=1):
    """max |diffusers(x, i) − jaxdiff denoiser(x, i + 1)| on random x and timesteps (incl. the first and last)."""
    rng = np.random.RandomState(seed)
    c = m.config
    s, ch = c.sample_size, c.in_channels
    T = int(conv.config.diffusion.T)
    x = rng.randn(batch, ch, s, s).astype(np.float32)
    i = np.concatenate([[0, T - 1], rng.randint(0, T, batch - 2)]).astype(np.int64)
    with torch.no_grad():
        ref = m(torch.from_numpy(x), torch.from_numpy(i)).sample.numpy()
    got = np.asarray(jax.jit(conv.denoiser)(conv.params, jnp.asarray(x.transpose(0, 2, 3, 1)),
                                            jnp.asarray(i + 1, jnp.int32)))
    assert got.shape == (batch, s, s, ch)
    return float(np.max(np.abs(got.transpose(0, 3, 1, 2) - ref))), float(np.max(np.abs(ref)))


def _param_count(tree) -> int:
    return int(sum(np.size(a) for a in jax.tree_util.tree_leaves(tree)))


def _bitwise_equal(a, b) -> bool:
    la, ta = jax.tree_util.tree_flatten(a)
    lb, tb = jax.tree_util.tree_flatten(b)
    return ta == tb and all(np.asarray(x).dtype == np.asarray(y).dtype and
                            np.array_equal(np.asarray(x).view(np.uint32), np.asarray(y).view(np.uint32))
                            for x, y in zip(la, lb))


# ---------------------------------------------------------------------------------------------------------
# layouts: bench32 and google/ddpm-cifar10-32 (smaller widths), compared with torch

BENCH32 = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(64, 128, 128), layers_per_block=2,
               down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
               up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=32,
               attention_head_dim=None)
# google/ddpm-cifar10-32's layout (widths 128/256/256/256 there), with its non-default embedding and padding
CIFAR_LAYOUT = dict(sample_size=32, in_channels=3, out_channels=3, block_out_channels=(16, 32, 32, 32),
                    layers_per_block=2,
                    down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D", "DownBlock2D"),
                    up_block_types=("UpBlock2D", "UpBlock2D", "AttnUpBlock2D", "UpBlock2D"), norm_num_groups=8,
                    attention_head_dim=None, downsample_padding=0, flip_sin_to_cos=False, freq_shift=1, norm_eps=1e-6)


def test_bench32_full_size_parameter_count_and_config(tmp_path):
    torch = _torch()
    m = _diffusers_unet(torch, **BENCH32)
    conv = dx.load(_save(m, None, tmp_path / "b32"))
    n = sum(p.numel() for p in m.parameters())
    assert n == 6_472_195 == _param_count(conv.params)
    mc = conv.config.model
    assert (mc.ch, tuple(mc.ch_mult), mc.num_res_blocks, tuple(mc.attn_resolutions), mc.num_groups) == (
        64, (1, 2, 2), 2, (16,), 32)
    assert (mc.num_heads, mc.head_dim, mc.mid_attention, mc.time_offset) == (1, 0, True, -1)
    # without a scheduler_config.json: DDPMScheduler's defaults
    f = conv.config.diffusion
    assert (f.degradation, f.T, f.schedule, f.prediction, conv.config.sample.corrector) == (
        "identity", 1000, "linear", "eps", "ddpm")


def test_ddpm_cifar10_32_full_size_config_and_parameter_count():
    """google/ddpm-cifar10-32's UNet spec (35.7 M parameters): the config maps, the counts agree (no weights)."""
    torch = _torch()
    from diffusers import UNet2DModel

    from jaxdiff.experiment import build_model

    cfg = dict(CIFAR_LAYOUT, block_out_channels=(128, 256, 256, 256), norm_num_groups=32)
    config = dx.config_from_diffusers({"_class_name": "UNet2DModel", **cfg}, None)
    m = config.model
    assert (m.ch, tuple(m.ch_mult), m.num_res_blocks, tuple(m.attn_resolutions), m.num_groups) == (
        128, (1, 2, 2, 2), 2, (16,), 32)
    model = build_model(config)
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, 32, 32, 3)),
                                                 jnp.ones((1,), jnp.int32)))
    with torch.device("meta"):
        n = sum(p.numel() for p in UNet2DModel(**cfg).parameters())
    assert n == _param_count(abstract["params"]) == 35_746_307


def test_bench32_layout_small_widths_matches_torch(tmp_path):
    torch = _torch()
    from diffusers import DDPMScheduler

    spec = dict(BENCH32, sample_size=16, block_out_channels=(16, 32, 32), norm_num_groups=8)
    m = _diffusers_unet(torch, **spec)
    conv = dx.load(_save(m, DDPMScheduler(num_train_timesteps=1000), tmp_path / "m"))
    err, scale = _compare(torch, m, conv)
    assert scale > 0.1 and err <= TOL, (err, scale)


def test_ddpm_cifar10_layout_matches_torch_and_round_trips(tmp_path):
    torch = _torch()
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    m = _diffusers_unet(torch, seed=3, **CIFAR_LAYOUT)
    sched = DDPMScheduler(num_train_timesteps=1000, beta_schedule="linear", clip_sample=True)
    DDPMPipeline(unet=m, scheduler=sched).save_pretrained(str(tmp_path / "pipe"))  # unet/ + scheduler/
    conv = dx.load(str(tmp_path / "pipe"))
    mc = conv.config.model
    assert (mc.downsample_padding, mc.flip_sin_to_cos, mc.freq_shift, mc.norm_eps) == (0, False, 1, 1e-6)
    assert tuple(mc.attn_resolutions) == (16,) and tuple(mc.ch_mult) == (1, 2, 2, 2)
    err, scale = _compare(torch, m, conv, seed=4)
    assert scale > 0.1 and err <= TOL, (err, scale)

    # out and back: the same bits in diffusers' state dict and in jaxdiff's params, the same torch outputs
    dx.export(conv.config, conv.params, tmp_path / "out")
    back = UNet2DModel.from_pretrained(str(tmp_path / "out")).eval()
    sd0, sd1 = m.state_dict(), back.state_dict()
    assert set(sd0) == set(sd1) and all(torch.equal(sd0[k], sd1[k]) for k in sd0)
    x, i = torch.randn(2, 3, 32, 32), torch.tensor([5, 900])
    with torch.no_grad():
        assert torch.equal(m(x, i).sample, back(x, i).sample)
    again = dx.load(str(tmp_path / "out"))
    assert _bitwise_equal(again.params, conv.params)
    assert again.config.to_dict() == conv.config.to_dict()


def test_heads_v_prediction_ddim_scaled_linear(tmp_path):
    torch = _torch()
    from diffusers import DDIMScheduler

    spec = dict(sample_size=8, in_channels=1, out_channels=1, block_out_channels=(16, 32),
                layers_per_block=1, down_block_types=("AttnDownBlock2D", "AttnDownBlock2D"),
                up_block_types=("AttnUpBlock2D", "AttnUpBlock2D"), norm_num_groups=4, attention_head_dim=8)
    m = _diffusers_unet(torch, seed=5, **spec)
    sched = DDIMScheduler(num_train_timesteps=200, beta_schedule="scaled_linear", beta_start=8.5e-4, beta_end=1.2e-2,
                          prediction_type="v_prediction", clip_sample=False)
    conv = dx.load(_save(m, sched, tmp_path / "m"))
    c = conv.config
    assert (c.model.head_dim, c.model.num_heads, tuple(c.model.attn_resolutions)) == (8, 1, (8, 4))
    assert (c.diffusion.prediction, c.diffusion.schedule, c.sample.corrector, c.sample.clip) == ("v", "scaled_linear",
                                                                                                 "ddim", 0.0)
    err, scale = _compare(torch, m, conv, seed=6)
    assert scale > 0.1 and err <= TOL, (err, scale)
    out = dx.export(c, conv.params, tmp_path / "out")
    stored = json.load(open(out["scheduler"]))
    assert (stored["_class_name"], stored["prediction_type"], stored["beta_schedule"], stored["clip_sample"]) == (
        "DDIMScheduler", "v_prediction", "scaled_linear", False)
    assert _bitwise_equal(dx.load(str(tmp_path / "out")).params, conv.params)


def test_jaxdiff_trained_model_exports_to_diffusers(tmp_path):
    """A jaxdiff-native UNet (time_offset 0: it embeds t itself) exported: diffusers(x, i) = jaxdiff(x, i + 1)."""
    torch = _torch()
    from diffusers import UNet2DModel

    from jaxdiff.config.files import default_config
    from jaxdiff.experiment import build_model

    c = default_config()
    c.data.image_size, c.data.channels = 8, 3
    c.data.source = "photos"
    c.diffusion.degradation, c.diffusion.degradation_params, c.diffusion.schedule = "identity", {}, "linear"
    c.diffusion.T, c.diffusion.prediction = 1000, "eps"
    c.model.ch, c.model.ch_mult, c.model.attn_resolutions, c.model.num_groups = 16, (1, 2), (4,), 4
    c.sample.corrector = "ddpm"
    model = build_model(c)
    params = _model_params(c)
    dx.export(c, params, tmp_path / "out")
    m = UNet2DModel.from_pretrained(str(tmp_path / "out")).eval()
    rng = np.random.RandomState(2)
    x = rng.randn(3, 3, 8, 8).astype(np.float32)
    i = np.array([0, 999, 417])
    with torch.no_grad():
        ref = m(torch.from_numpy(x), torch.from_numpy(i)).sample.numpy()
    got = np.asarray(jax.jit(model.apply)({"params": params}, jnp.asarray(x.transpose(0, 2, 3, 1)),
                                          jnp.asarray(i + 1)))
    assert np.max(np.abs(ref)) > 0.1
    assert np.max(np.abs(got.transpose(0, 3, 1, 2) - ref)) <= TOL


# ---------------------------------------------------------------------------------------------------------
# schedulers

_SMALL_UNET = dict(_class_name="UNet2DModel", sample_size=8, in_channels=1, out_channels=1, block_out_channels=[8, 16],
                   layers_per_block=1, down_block_types=["DownBlock2D", "DownBlock2D"],
                   up_block_types=["UpBlock2D", "UpBlock2D"], norm_num_groups=4, attention_head_dim=None)


@pytest.mark.parametrize("cls,beta_schedule,extra", [
    ("DDPMScheduler", "linear", {}),
    ("DDPMScheduler", "linear", {"beta_start": 2e-4, "beta_end": 0.03}),
    ("DDPMScheduler", "scaled_linear", {"beta_start": 8.5e-4, "beta_end": 1.2e-2}),
    ("DDIMScheduler", "squaredcos_cap_v2", {}),
])
def test_scheduler_alphas_cumprod_match_diffusers(cls, beta_schedule, extra):
    torch = _torch()
    import diffusers

    sched = getattr(diffusers, cls)(num_train_timesteps=1000, beta_schedule=beta_schedule, **extra)
    config = dx.config_from_diffusers(_SMALL_UNET, {**sched.config, "_class_name": cls})
    assert config.sample.corrector == cls[:4].lower()
    from jaxdiff.experiment import build_process

    process = build_process(config)
    abar = np.asarray(process.schedule.alphas_cumprod)
    ref = sched.alphas_cumprod.numpy().astype(np.float64)
    assert abar.shape == (1001,) and abar[0] == 1.0  # t = 0: clean data
    np.testing.assert_allclose(abar[1:], ref, rtol=1e-5, atol=1e-7)  # jaxdiff's t = diffusers' index + 1
    # q(x_t | x0) is diffusers' add_noise at index t − 1
    rng = np.random.RandomState(0)
    x0, eps = rng.randn(4, 1, 8, 8).astype(np.float32), rng.randn(4, 1, 8, 8).astype(np.float32)
    i = np.array([0, 1, 500, 999])
    want = sched.add_noise(torch.from_numpy(x0), torch.from_numpy(eps), torch.from_numpy(i)).numpy()
    nhwc = lambda a: jnp.asarray(a.transpose(0, 2, 3, 1))  # noqa: E731
    got = process.perturb(nhwc(x0), jnp.asarray(i + 1), nhwc(eps))
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), want, atol=1e-5)
    # and back: the exported scheduler config gives diffusers the same table
    again = getattr(diffusers, cls).from_config(dx.scheduler_config_from(config))
    np.testing.assert_allclose(again.alphas_cumprod.numpy(), sched.alphas_cumprod.numpy(), rtol=1e-6, atol=0)


@pytest.mark.slow
def test_ddim_sampling_matches_diffusers_loop(tmp_path):
    """The whole convention at once: jaxdiff's DDIM over every step T … 1 (t_prev = t − 1) with the converted
    denoiser and process gives diffusers' DDIMScheduler loop over its indices T − 1 … 0 (η = 0, no clipping)."""
    torch = _torch()
    from diffusers import DDIMScheduler

    from jaxdiff.sampling import sample

    m = _diffusers_unet(torch, seed=7, sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                        layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                        up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=None)
    sched = DDIMScheduler(num_train_timesteps=20, beta_start=1e-3, beta_end=0.2, clip_sample=False)
    conv = dx.load(_save(m, sched, tmp_path / "m"))
    x_T = np.random.RandomState(8).randn(2, 1, 8, 8).astype(np.float32)
    sched.set_timesteps(20)
    assert sched.timesteps.tolist() == list(range(19, -1, -1))
    x = torch.from_numpy(x_T)
    with torch.no_grad():
        for i in sched.timesteps:
            x = sched.step(m(x, i).sample, i, x, eta=0.0).prev_sample
    got = sample(conv.denoiser, conv.params, jax.random.PRNGKey(0), jnp.asarray(x_T.transpose(0, 2, 3, 1)),
                 process=conv.process, corrector="ddim", timesteps=None, prediction=conv.config.diffusion.prediction,
                 clip=conv.config.sample.clip, eta=0.0).x0
    ref = x.numpy()
    assert np.max(np.abs(ref)) > 0.1
    np.testing.assert_allclose(np.asarray(got).transpose(0, 3, 1, 2), ref, atol=TOL, rtol=0)


@pytest.mark.parametrize("spacing", ["leading", "trailing"])
def test_timestep_spacing_gives_diffusers_steps(spacing):
    pytest.importorskip("diffusers")
    from diffusers import DDIMScheduler

    from jaxdiff.sampling.steps import timesteps

    sched = DDIMScheduler(num_train_timesteps=1000, timestep_spacing=spacing)
    config = dx.config_from_diffusers(_SMALL_UNET, {**sched.config, "_class_name": "DDIMScheduler"})
    assert (config.sample.spacing, config.sample.steps) == (spacing, 50)
    sched.set_timesteps(50)
    ours = timesteps(1000, 50, spacing=config.sample.spacing)
    assert ours.tolist() == [int(i) + 1 for i in sched.timesteps] + [0]  # t = index + 1, then the clean t = 0
    assert dx.scheduler_config_from(config)["timestep_spacing"] == spacing


@pytest.mark.parametrize("field,expect", [
    ({"prediction_type": "epsilon"}, ("eps", 1.0)),
    ({"prediction_type": "sample", "clip_sample": False}, ("x0", 0.0)),
    ({"prediction_type": "v_prediction", "clip_sample_range": 2.0}, ("v", 2.0)),
])
def test_scheduler_prediction_and_clip(field, expect):
    config = dx.config_from_diffusers(_SMALL_UNET, {"_class_name": "DDPMScheduler", **field})
    assert (config.diffusion.prediction, config.sample.clip) == expect


# ---------------------------------------------------------------------------------------------------------
# refusals (no torch needed)


def _write_model_dir(path, unet_cfg, tensors=None, scheduler=None):
    os.makedirs(path, exist_ok=True)
    with open(os.path.join(path, "config.json"), "w") as fh:
        json.dump(unet_cfg, fh)
    if scheduler is not None:
        with open(os.path.join(path, "scheduler_config.json"), "w") as fh:
            json.dump(scheduler, fh)
    if tensors is not None:
        from safetensors.numpy import save_file

        save_file(tensors, os.path.join(path, dx.WEIGHTS_NAME))
    return str(path)


def test_pickled_weights_are_refused_naming_safetensors(tmp_path):
    d = _write_model_dir(tmp_path / "m", _SMALL_UNET)
    (tmp_path / "m" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04 not loaded")
    with pytest.raises(dx.InteropError, match=r"pickled.*safe_serialization=True"):
        dx.load(d)
    (tmp_path / "model.ckpt").write_bytes(b"\x80\x04 not loaded")
    with pytest.raises(dx.InteropError, match=r"model\.ckpt: a pickled PyTorch file.*safe_serialization=True"):
        dx.load(str(tmp_path / "model.ckpt"))


@pytest.mark.parametrize("change,match", [
    ({"down_block_types": ["DownBlock2D", "CrossAttnDownBlock2D"]}, r"down_block_types=.*CrossAttnDownBlock2D"),
    ({"up_block_types": ["AttnUpBlock2D", "UpBlock2D"]}, r"up_block_types=.*mirrored"),
    ({"resnet_time_scale_shift": "scale_shift"}, r"resnet_time_scale_shift='scale_shift'.*allowed: 'default'"),
    ({"center_input_sample": True}, r"center_input_sample=True"),
    ({"act_fn": "gelu"}, r"act_fn='gelu'"),
    ({"time_embedding_type": "fourier"}, r"time_embedding_type='fourier'"),
    ({"num_class_embeds": 10}, r"num_class_embeds=10"),
    ({"mid_block_scale_factor": 1.414}, r"mid_block_scale_factor=1.414"),
    ({"out_channels": 2}, r"in_channels=1, out_channels=2"),
    ({"block_out_channels": [8, 12]}, r"block_out_channels=\[8, 12\]"),
    ({"attention_head_dim": 3, "down_block_types": ["AttnDownBlock2D", "DownBlock2D"],
      "up_block_types": ["UpBlock2D", "AttnUpBlock2D"]}, r"attention_head_dim=3"),
    ({"sample_size": None}, r"sample_size=None"),
    ({"some_new_field": 1}, r"\['some_new_field'\] unknown"),
])
def test_unet_config_fields_refused_by_name(tmp_path, change, match):
    d = _write_model_dir(tmp_path / "m", {**_SMALL_UNET, **change})
    with pytest.raises(dx.InteropError, match=match):
        dx.load(d)


@pytest.mark.parametrize("sched,match", [
    ({"_class_name": "PNDMScheduler"}, r"_class_name='PNDMScheduler'"),
    ({"beta_schedule": "sigmoid"}, r"beta_schedule='sigmoid'"),
    ({"variance_type": "learned_range"}, r"variance_type='learned_range'"),
    ({"prediction_type": "flow"}, r"prediction_type='flow'"),
    ({"thresholding": True}, r"thresholding=True"),
    ({"trained_betas": [0.1, 0.2]}, r"trained_betas="),
    ({"rescale_betas_zero_snr": True}, r"rescale_betas_zero_snr=True"),
    ({"timestep_spacing": "karras"}, r"timestep_spacing='karras'"),
])
def test_scheduler_fields_refused_by_name(tmp_path, sched, match):
    d = _write_model_dir(tmp_path / "m", _SMALL_UNET, scheduler={"_class_name": "DDPMScheduler", **sched})
    with pytest.raises(dx.InteropError, match=match):
        dx.load(d)


def _gaussian_config(**model):
    from jaxdiff.config.files import default_config

    c = default_config()
    c.data.image_size, c.data.channels, c.data.source = 8, 1, "digits"
    c.diffusion.degradation, c.diffusion.degradation_params, c.diffusion.schedule = "identity", {}, "linear"
    c.diffusion.T, c.diffusion.prediction = 50, "eps"
    c.diffusion.schedule = "linear"
    c.sample.corrector = "ddpm"
    c.model.ch, c.model.ch_mult, c.model.num_groups = 8, (1, 2), 4
    for k, v in model.items():
        c.model[k] = v
    return c


def _model_params(c, seed=0):
    """Random params of the config's UNet, none zero: kernels N(0, 1/fan_in), biases N(0, 0.02²), GroupNorm scales
    1 + N(0, 0.02²)."""
    from jaxdiff.experiment import build_model

    s, ch = int(c.data.image_size), int(c.data.channels)
    model = build_model(c)
    abstract = jax.eval_shape(lambda: model.init(jax.random.PRNGKey(0), jnp.zeros((1, s, s, ch)),
                                                 jnp.ones((1,), jnp.int32))["params"])
    rng = np.random.RandomState(seed)

    def one(path, a):
        name = path[-1].key
        z = rng.standard_normal(a.shape)
        if name == "kernel":
            return (z / np.sqrt(np.prod(a.shape[:-1]))).astype(np.float32)
        return ((1.0 if name == "scale" else 0.0) + 0.02 * z).astype(np.float32)

    return jax.tree_util.tree_map_with_path(one, abstract)


def test_export_refuses_what_diffusers_cannot_express(tmp_path):
    from jaxdiff.config.files import default_config

    c = default_config()  # cold blur on digits
    with pytest.raises(dx.InteropError, match=r"diffusion.degradation='blur'.*Gaussian diffusion \(degradation "
                                              r"'identity' and a variance-preserving schedule\)"):
        dx.scheduler_config_from(c)
    c = _gaussian_config()
    c.diffusion.degradation, c.diffusion.degradation_params = "dct_blur", {}
    with pytest.raises(dx.InteropError, match=r"diffusion.degradation='dct_blur'.*blurring diffusion"):
        dx.scheduler_config_from(c)
    c = _gaussian_config()
    c.diffusion.schedule, c.diffusion.schedule_params = "flow", {}
    with pytest.raises(dx.InteropError, match=r"diffusion.schedule='flow'.*has none"):
        dx.scheduler_config_from(c)
    c = _gaussian_config()
    c.diffusion.schedule = "sigmoid"
    with pytest.raises(dx.InteropError, match=r"diffusion.schedule='sigmoid'.*allowed"):
        dx.scheduler_config_from(c)
    c = _gaussian_config()
    c.diffusion.schedule, c.diffusion.schedule_params = "cosine", {"s": 0.01}
    with pytest.raises(dx.InteropError, match=r"squaredcos_cap_v2"):
        dx.scheduler_config_from(c)
    c = _gaussian_config(ch_mult=(2, 2))
    with pytest.raises(dx.InteropError, match=r"model.ch_mult=\(2, 2\)"):
        dx.unet_config_from(c)
    c = _gaussian_config(num_classes=10)
    with pytest.raises(dx.InteropError, match=r"model.num_classes=10"):
        dx.unet_config_from(c)
    with c.unlocked():
        c.model.num_classes, c.model.num_heads, c.model.attn_resolutions = 0, 2, (8,)
    c.model.ch = 16  # attention widths 16 (level 0) and 32 (mid): 8- and 16-wide heads
    with pytest.raises(dx.InteropError, match=r"model.num_heads=2"):
        dx.unet_config_from(c)
    # a refused export writes nothing
    c = _gaussian_config()
    c.diffusion.schedule = "sigmoid"
    with pytest.raises(dx.InteropError):
        dx.export(c, _model_params(_gaussian_config()), tmp_path / "out")
    assert not (tmp_path / "out").exists()


def test_weights_that_do_not_match_config_are_refused(tmp_path):
    c = _gaussian_config()
    dx.export(c, _model_params(c), tmp_path / "ok")
    from safetensors.numpy import load_file

    tensors = load_file(str(tmp_path / "ok" / dx.WEIGHTS_NAME))
    cfg = json.load(open(tmp_path / "ok" / "config.json"))
    missing = dict(tensors)
    missing.pop("mid_block.attentions.0.to_k.weight")
    with pytest.raises(dx.InteropError, match=r"no tensor 'mid_block.attentions.0.to_k.weight'"):
        dx.load(_write_model_dir(tmp_path / "missing", cfg, missing))
    extra = {**tensors, "class_embedding.weight": np.zeros((3, 32), np.float32)}
    with pytest.raises(dx.InteropError, match=r"class_embedding.weight"):
        dx.load(_write_model_dir(tmp_path / "extra", cfg, extra))
    wrong = {**tensors, "conv_in.weight": np.zeros((8, 1, 5, 5), np.float32)}
    with pytest.raises(dx.InteropError, match=r"'conv_in.weight' has shape \(8, 1, 5, 5\)"):
        dx.load(_write_model_dir(tmp_path / "wrong", cfg, wrong))


def test_export_then_load_is_bitwise_without_torch(tmp_path):
    c = _gaussian_config(attn_resolutions=(4,))
    params = _model_params(c)
    dx.export(c, params, tmp_path / "a")
    conv = dx.load(str(tmp_path / "a"))
    assert conv.config.model.time_offset == -1  # diffusers' index convention from here on
    dx.export(conv.config, conv.params, tmp_path / "b")
    for name in (dx.WEIGHTS_NAME, "config.json", "scheduler_config.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    with pytest.raises(dx.InteropError, match=r"--out=.* is not empty"):
        dx.export(conv.config, conv.params, tmp_path / "b")


def test_deprecated_attention_names_load(tmp_path):
    """Older diffusers checkpoints name the attention query/key/value/proj_attn (diffusers renames them on load)."""
    from safetensors.numpy import load_file, save_file

    c = _gaussian_config(attn_resolutions=(4,))
    dx.export(c, _model_params(c), tmp_path / "new")
    new = dx.load(str(tmp_path / "new"))
    tensors = load_file(str(tmp_path / "new" / dx.WEIGHTS_NAME))
    old_names = {"to_q": "query", "to_k": "key", "to_v": "value", "to_out.0": "proj_attn"}
    old = {}
    for k, v in tensors.items():
        for a, b in old_names.items():
            if f".attentions.0.{a}." in k:
                k = k.replace(f".{a}.", f".{b}.")
        old[k] = v
    assert "mid_block.attentions.0.proj_attn.weight" in old and "down_blocks.1.attentions.0.query.bias" in old
    os.makedirs(tmp_path / "old")
    (tmp_path / "old" / "config.json").write_bytes((tmp_path / "new" / "config.json").read_bytes())
    save_file(old, str(tmp_path / "old" / dx.WEIGHTS_NAME))
    assert _bitwise_equal(dx.load(str(tmp_path / "old")).params, new.params)


def test_write_workdir_refuses_busy_or_nonempty(tmp_path):
    from jaxdiff.train.lock import WorkdirLock

    c = _gaussian_config()
    dx.export(c, _model_params(c), tmp_path / "m")
    conv = dx.load(str(tmp_path / "m"))
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "notes.txt").write_text("mine")
    with pytest.raises(dx.InteropError, match=r"--workdir=.*full is not empty \(\['notes.txt'\]\)"):
        dx.write_workdir(conv, tmp_path / "full")
    assert os.listdir(tmp_path / "full") == ["notes.txt"]
    with WorkdirLock(str(tmp_path / "busy")):
        with pytest.raises(dx.InteropError, match=r"in use by another training process"):
            dx.write_workdir(conv, tmp_path / "busy")
    assert os.listdir(tmp_path / "busy") == [".jaxdiff.lock"]


def test_written_workdir_loads_as_a_run(tmp_path):
    from jaxdiff.experiment import load_run

    c = _gaussian_config()
    dx.export(c, _model_params(c), tmp_path / "m")
    conv = dx.load(str(tmp_path / "m"))
    dx.write_workdir(conv, tmp_path / "w")
    run = load_run(str(tmp_path / "w"))
    assert run.step == 0 and run.meta["imported_from"] == str(tmp_path / "m")
    assert _bitwise_equal(jax.tree.map(np.asarray, run.params), jax.tree.map(np.asarray, conv.params))
    assert run.config.to_dict() == conv.config.to_dict()


def _script(name):
    import importlib.util

    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "scripts", f"{name}.py"))
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_scripts_refuse_with_one_line_and_exit_2(tmp_path, capsys):
    c = _gaussian_config()
    dx.export(c, _model_params(c), tmp_path / "m")
    (tmp_path / "m" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04")
    os.remove(tmp_path / "m" / dx.WEIGHTS_NAME)
    assert _script("import_diffusers").main([str(tmp_path / "m"), f"--workdir={tmp_path / 'w'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("import_diffusers.py: ") and "safe_serialization=True" in err and err.count("\n") == 1
    assert not (tmp_path / "w").exists()
    assert _script("export_diffusers").main([f"--workdir={tmp_path / 'none'}", f"--out={tmp_path / 'o'}"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("export_diffusers.py: no checkpoint in ") and not (tmp_path / "o").exists()


@pytest.mark.slow
def test_import_script_then_sample_generate(tmp_path):
    torch = _torch()
    from diffusers import DDIMScheduler

    m = _diffusers_unet(torch, sample_size=8, in_channels=1, out_channels=1, block_out_channels=(8, 16),
                        layers_per_block=1, down_block_types=("DownBlock2D", "AttnDownBlock2D"),
                        up_block_types=("AttnUpBlock2D", "UpBlock2D"), norm_num_groups=4, attention_head_dim=None)
    src = _save(m, DDIMScheduler(num_train_timesteps=1000), tmp_path / "src")
    w = tmp_path / "w"
    env = dict(os.environ, JAX_PLATFORMS="cpu")
    r = subprocess.run([sys.executable, "scripts/import_diffusers.py", src, f"--workdir={w}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    assert "corrector ddim" in r.stdout
    r = subprocess.run([sys.executable, "scripts/import_diffusers.py", src, f"--workdir={w}"], cwd=REPO, env=env,
                       capture_output=True, text=True, timeout=600)
    assert r.returncode == 2 and "is not empty" in r.stderr and "nothing was written" in r.stderr
    r = subprocess.run([sys.executable, "sample.py", f"--workdir={w}", "--mode=generate", "--num=4", "--steps=3"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    npz = [line.split(": ", 1)[1] for line in r.stdout.splitlines() if line.startswith("npz: ")]
    samples = np.load(npz[0])["samples"]
    assert samples.shape == (4, 8, 8, 1) and np.all(np.isfinite(samples))
    r = subprocess.run([sys.executable, "scripts/export_diffusers.py", f"--workdir={w}", f"--out={tmp_path / 'out'}"],
                       cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert r.returncode == 0, r.stderr[-2000:]
    from safetensors.numpy import load_file

    a, b = load_file(os.path.join(src, dx.WEIGHTS_NAME)), load_file(str(tmp_path / "out" / dx.WEIGHTS_NAME))
    assert set(a) == set(b) and all(np.array_equal(a[k], b[k]) for k in a)


@pytest.mark.parametrize("field,value", [("norm_eps", 0.0), ("downsample_padding", 2), ("head_dim", -1),
                                         ("time_offset", 0.5), ("flip_sin_to_cos", 1), ("head_dim", 3)])
def test_layout_fields_are_validated_by_name(field, value):
    from jaxdiff.config.validate import ConfigError, validate_config

    c = _gaussian_config(attn_resolutions=(4,))
    with c.unlocked():
        c.model[field] = value
    with pytest.raises(ConfigError, match=rf"model\.{field}={value!r}"):
        validate_config(c, num_devices=1)


def test_layout_fields_at_equivalent_values_change_nothing():
    """time_offset −1 at t is the default model at t − 1, and head_dim = width is one head: bitwise."""
    from jaxdiff.experiment import build_model

    c = _gaussian_config(attn_resolutions=(4,))
    params = _model_params(c)
    x = jnp.asarray(np.random.RandomState(0).randn(2, 8, 8, 1).astype(np.float32))
    t = jnp.asarray([1, 37])
    base = jax.jit(build_model(c).apply)({"params": params}, x, t - 1)
    with c.unlocked():
        c.model.time_offset, c.model.head_dim = -1, 16  # widths 8 (no attention there), 16 at 4×4 and mid
    other = jax.jit(build_model(c).apply)({"params": params}, x, t)
    assert np.array_equal(np.asarray(base), np.asarray(other))
