"""Builders of the timed callables: the jaxdiff train step / forward / sampler and their PyTorch counterparts.

Each builder returns a zero-argument function doing one unit of work (one train step on one batch, one forward
pass, one whole sampling run), with its state kept in a closure, so ``bench.common.compare`` can interleave them.
"""
from __future__ import annotations

import copy
import pathlib
import runpy
from typing import Callable

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parent.parent


def default_config():
    """configs/default.py's get_config() (the main job)."""
    return runpy.run_path(str(ROOT / "configs" / "default.py"))["get_config"]()


# diffusers UNet2DModel(sample_size=32, in/out_channels=3, block_out_channels=(64, 128, 128), layers_per_block=2,
# Down/AttnDown/Down, Up/AttnUp/Up, norm_num_groups=32): the reference model's parameter count.
BENCH32_DIFFUSERS_PARAMS = 6_472_195


def bench32_config():
    """``model`` section matching the bench32 reference (diffusers UNet2DModel, 32×32 RGB).

    ``make_unet(bench32_config(), image_size=32, in_channels=3, out_channels=3)`` has 6,472,195 parameters, equal to
    diffusers' ``UNet2DModel(block_out_channels=(64, 128, 128), layers_per_block=2, down_block_types=(Down, AttnDown,
    Down), up_block_types=(Up, AttnUp, Up), norm_num_groups=32)``. diffusers' default ``attention_head_dim=8`` means
    16 heads at width 128; this config uses one head (diffusers: ``attention_head_dim=None``).
    """
    import ml_collections

    return ml_collections.ConfigDict(dict(ch=64, ch_mult=(1, 2, 2), num_res_blocks=2, attn_resolutions=(16,),
                                          dropout=0.0, num_groups=32, num_heads=1, mid_attention=True,
                                          dtype="float32"))


def bench32_train_config():
    """bench32 as a jaxdiff config: DDPM (linear β, T = 1000), ε-prediction, L2, AdamW, EMA 0.999, no clipping.

    The PyTorch side does exactly the same per step (see ``torch_train_step``).
    """
    c = default_config()
    c.data.image_size, c.data.channels = 32, 3
    c.diffusion.degradation, c.diffusion.degradation_params, c.diffusion.T = "identity", {}, 1000
    c.diffusion.schedule, c.diffusion.prediction, c.diffusion.loss = "linear", "eps", "l2"
    c.diffusion.loss_weighting = "none"
    c.model = bench32_config()
    c.train.batch_size = 32
    c.train.learning_rate, c.train.warmup_steps = 1e-4, 0
    c.train.grad_clip_norm, c.train.weight_decay = 0.0, 0.0
    c.train.ema_decay, c.train.ema_warmup = 0.999, False
    return c


# --------------------------------------------------------------------------------------------------
# JAX


def jax_batch(config, batch_size=None, seed=0):
    import jax
    import jax.numpy as jnp

    B = int(batch_size or config.train.batch_size)
    s, c = int(config.data.image_size), int(config.data.channels)
    return jnp.tanh(jax.random.normal(jax.random.PRNGKey(seed), (B, s, s, c), jnp.float32))


def shard_batch(*arrays, mesh=None):
    """Arrays with a leading batch axis → sharded P('data') over ``mesh`` (default: every device), as training and
    sample.py shard their batches; left as they are when the batch does not divide over the devices (batch 1)."""
    import jax
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxdiff import experiment

    from jaxdiff.train import step as step_lib

    mesh = experiment.make_mesh() if mesh is None else mesh
    if arrays[0].shape[0] % mesh.devices.size:
        return arrays if len(arrays) > 1 else arrays[0]
    sh = NamedSharding(mesh, P(experiment.DATA_AXIS))
    out = tuple(jax.device_put(a, sh) for a in arrays)
    return out if len(out) > 1 else out[0]


def jax_train(config, process=None, model=None, mesh=None) -> Callable[[], object]:
    """One call = one jaxdiff train step (forward process, forward, backward, AdamW, EMA) on a fixed batch."""
    from jaxdiff import experiment
    from jaxdiff.train import step as step_lib

    mesh = experiment.make_mesh() if mesh is None else mesh
    model = experiment.build_model(config) if model is None else model
    state = step_lib.init_train_state(config, model, mesh=mesh)
    step_fn = step_lib.make_train_step(config, model, process, mesh=mesh)
    x = shard_batch(jax_batch(config), mesh=mesh)
    box = {"state": state, "i": 0}

    def run():
        box["state"], m = step_fn(box["state"], x, box["i"])
        box["i"] += 1
        return m["loss"]

    run.step_fn, run.state_box, run.batch = step_fn, box, x
    return run


def jax_forward(config, batch_size=None, model=None) -> Callable[[], object]:
    """One call = one jitted forward pass; the batch is sharded over every device (as training and sample.py do)."""
    import jax
    import jax.numpy as jnp

    from jaxdiff import experiment

    from jaxdiff.train import step as step_lib

    model = experiment.build_model(config) if model is None else model
    x = jax_batch(config, batch_size)
    t = jnp.full((x.shape[0],), 10, jnp.int32)
    params = model.init(jax.random.PRNGKey(0), x[:1], t[:1])["params"]
    x, t = shard_batch(x, t)
    fwd = jax.jit(lambda p, x, t: model.apply({"params": p}, x, t))
    return lambda: fwd(params, x, t)


# --------------------------------------------------------------------------------------------------
# PyTorch


def diffusers_bench32():
    from diffusers import UNet2DModel

    return UNet2DModel(
        sample_size=32,
        in_channels=3,
        out_channels=3,
        block_out_channels=(64, 128, 128),
        layers_per_block=2,
        down_block_types=("DownBlock2D", "AttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "AttnUpBlock2D", "UpBlock2D"),
        norm_num_groups=32,
        attention_head_dim=None,  # one head of width 128, as jaxdiff's bench32_config
    )


def torch_mirror(config):
    from bench.torch_unet import TorchUNet

    c = int(config.data.channels)
    return TorchUNet(in_channels=c, out_channels=c, image_size=int(config.data.image_size), **config.model.to_dict())


def _out(y):
    return y.sample if hasattr(y, "sample") else y


def linear_operator_tables(process, image_size: int) -> np.ndarray:
    """M (T+1, n², n²) with F_t(x)[c] = M_t · vec(x[c]) for a per-channel linear degradation (blur, decolor-free)."""
    import jax.numpy as jnp

    n = image_size
    eye = jnp.eye(n * n, dtype=jnp.float32).reshape(n * n, n, n, 1)
    rows = []
    for t in range(process.T + 1):
        y = process.mean(eye, jnp.full((n * n,), t, jnp.int32))  # (n², n, n, 1): column j = F_t(e_j)
        rows.append(np.asarray(y).reshape(n * n, n * n).T)
    return np.stack(rows)


def torch_train(model, config, *, compiled=False, op_tables=None) -> Callable[[], object]:
    """One call = one PyTorch train step written as a user would: the same forward process, loss, AdamW, EMA.

    gaussian/eps/L2 (bench32) or cold/x0/L1 with ``op_tables`` = F_t as dense per-t matrices (main job).
    """
    import torch

    torch.manual_seed(0)
    B = int(config.train.batch_size)
    s, c = int(config.data.image_size), int(config.data.channels)
    x0 = torch.tanh(torch.randn(B, c, s, s))
    net = torch.compile(model) if compiled else model
    tc = config.train
    opt = torch.optim.AdamW(model.parameters(), lr=float(tc.learning_rate), weight_decay=float(tc.weight_decay))
    ema = [p.detach().clone() for p in model.parameters()]
    params = list(model.parameters())
    T = int(config.diffusion.T)
    clip = float(tc.grad_clip_norm)
    decay = float(tc.ema_decay)
    gaussian = str(config.diffusion.degradation) == "identity"  # else: cold, D_t as matrices (op_tables)
    if gaussian:
        betas = torch.linspace(1e-4, 2e-2, T, dtype=torch.float64)
        ab = torch.cat([torch.ones(1, dtype=torch.float64), torch.cumprod(1 - betas, 0)]).float()
    else:
        M = torch.from_numpy(np.asarray(op_tables))

    def run():
        t = torch.randint(1, T + 1, (B,))
        if gaussian:
            eps = torch.randn_like(x0)
            a = ab[t][:, None, None, None]
            x_t = a.sqrt() * x0 + (1 - a).sqrt() * eps
            loss = torch.nn.functional.mse_loss(_out(net(x_t, t)), eps)
        else:
            x_t = torch.einsum("bij,bcj->bci", M[t], x0.flatten(2)).reshape(x0.shape)
            loss = (_out(net(x_t, t)) - x0).abs().mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        if clip > 0:
            torch.nn.utils.clip_grad_norm_(params, clip)
        opt.step()
        with torch.no_grad():
            torch._foreach_lerp_(ema, [p.detach() for p in params], 1 - decay)
        return loss

    return run


def torch_forward(model, config, batch_size=None, *, compiled=False) -> Callable[[], object]:
    import torch

    B = int(batch_size or config.train.batch_size)
    s, c = int(config.data.image_size), int(config.data.channels)
    x = torch.tanh(torch.randn(B, c, s, s))
    t = torch.full((B,), 10, dtype=torch.long)
    model = copy.deepcopy(model).eval()
    net = torch.compile(model) if compiled else model

    def run():
        with torch.inference_mode():
            return _out(net(x, t))

    return run


# --------------------------------------------------------------------------------------------------
# JSON-named PyTorch contenders (bench.remote builds these in another interpreter when asked)


def torch_mainjob(kind: str, batch: int = 0):
    """configs/default.py's model mirrored in PyTorch: kind = "train" | "forward" | "sample" (batch images)."""
    from jaxdiff import experiment
    from jaxdiff.train import step as step_lib

    cfg = default_config()
    s, c, T = int(cfg.data.image_size), int(cfg.data.channels), int(cfg.diffusion.T)
    model = torch_mirror(cfg)
    if kind == "forward":
        fn = torch_forward(model, cfg)
    else:
        M = linear_operator_tables(experiment.build_process(cfg), s)
        if kind == "train":
            fn = torch_train(model, cfg, op_tables=M)
        elif kind == "sample":
            from bench.mainjob import torch_cold_sampler

            fn = torch_cold_sampler(model, M, T, int(batch), s, c)
        else:
            raise ValueError(f"torch_mainjob: kind={kind!r} must be train | forward | sample")
    fn.info = {"params": sum(p.numel() for p in model.parameters())}
    return fn


def torch_bench32(kind: str, compiled: bool = False):
    """diffusers UNet2DModel at the bench32 spec: kind = "train" | "forward", eager or under torch.compile."""
    cfg = bench32_train_config()
    model = diffusers_bench32()
    n_params = sum(p.numel() for p in model.parameters())
    if kind == "train":
        fn = torch_train(model, cfg, compiled=compiled)
    elif kind == "forward":
        fn = torch_forward(model, cfg, compiled=compiled)
    else:
        raise ValueError(f"torch_bench32: kind={kind!r} must be train | forward")
    fn.info = {"params": n_params}
    return fn


def jax_mainjob(kind: str = "train", spec: str = "mainjob"):
    """The train step ("train") or forward ("forward") of configs/default.py (spec "mainjob") or bench32 (spec
    "bench32") in jaxdiff, in a fresh process set up as train.py sets itself up (CPU devices split by
    jaxdiff.cpu.devices unless JAXDIFF_CPU_DEVICES says otherwise); a JSON-named builder for bench.remote."""
    from jaxdiff.cpu.devices import split_cpu_devices

    cfg = {"mainjob": default_config, "bench32": bench32_train_config}[spec]()
    split_cpu_devices(int(cfg.train.batch_size))
    import jax

    from jaxdiff import experiment

    from jaxdiff.train import step as step_lib

    if kind == "train":
        fn = jax_train(cfg, experiment.build_process(cfg))
    elif kind == "forward":
        fn = jax_forward(cfg)
    else:
        raise ValueError(f"jax_mainjob: kind={kind!r} must be train | forward")
    fn.info = {"jax": jax.__version__, "devices": jax.device_count()}
    return fn
