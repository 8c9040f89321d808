"""model.dtype = "bfloat16": bfloat16 compute, float32 parameters, optimizer state, EMA, loss and sampler state.

Tiny models (8×8, one or two levels of width 8), one or two steps.
"""
import os

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from helpers.configs import tiny_gaussian
from jaxdiff import data as data_lib
from jaxdiff import experiment
from jaxdiff.config import ConfigError, validate_config
from jaxdiff.models.norm import group_norm
from jaxdiff.models.unet import make_unet
from jaxdiff.sampling import sample
from jaxdiff.train import step as step_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(dtype):
    return tiny_gaussian(model=dict(ch_mult=(1, 2), attn_resolutions=(4,), dtype=dtype), batch_size=8)


def _dtypes(tree):
    return {str(x.dtype) for x in jax.tree_util.tree_leaves(tree)}


def _images(b=4):
    return jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (b, 8, 8, 1)), jnp.float32)


def _nonzero(params, seed=3):
    """The DDPM init zeroes each residual branch's last layer; random weights make every layer count."""
    rng = np.random.default_rng(seed)
    return jax.tree.map(lambda p: jnp.asarray(rng.normal(0, 0.3, p.shape), jnp.float32), params)


def test_the_field_takes_float32_or_bfloat16_only():
    validate_config(tiny_config("bfloat16"), num_devices=1)
    with pytest.raises(ConfigError, match=r"model\.dtype='float16'.*'float32', 'bfloat16'"):
        validate_config(tiny_config("float16"), num_devices=1)


def test_bfloat16_activations_float32_params_and_output():
    x, t = _images(), jnp.array([1, 3, 5, 9])
    m32, m16 = (make_unet(tiny_config(d).model, image_size=8, in_channels=1, out_channels=1)
                for d in ("float32", "bfloat16"))
    # the init's shapes and dtypes only (eval_shape: nothing compiled); the values are drawn on the host
    abstract = jax.eval_shape(m16.init, jax.random.PRNGKey(0), x[:1], t[:1])["params"]
    assert _dtypes(abstract) == {"float32"}
    params = _nonzero(abstract)
    # jitted: op-by-op bfloat16 on XLA:CPU is slow, and jit changes no dtype
    y16, inter = jax.jit(lambda p: m16.apply({"params": p}, x, t, capture_intermediates=True))(params)
    acts = inter["intermediates"]
    assert acts["conv_in"]["__call__"][0].dtype == jnp.bfloat16
    assert acts["down0_res0"]["conv1"]["__call__"][0].dtype == jnp.bfloat16
    assert acts["down1_attn0"]["__call__"][0].dtype == jnp.bfloat16
    assert acts["norm_out"]["__call__"][0].dtype == jnp.bfloat16  # GroupNorm returns the compute dtype
    assert y16.dtype == jnp.float32
    y32 = jax.jit(lambda p: m32.apply({"params": p}, x, t))(params)
    rel = float(jnp.linalg.norm(y16 - y32) / jnp.linalg.norm(y32))
    assert 0 < rel < 0.05, rel  # 8-bit mantissa: close, not equal


def test_group_norm_statistics_of_bfloat16_input_are_reduced_in_float32():
    x = jnp.ones((2, 4, 4, 8), jnp.bfloat16)
    jaxpr = jax.make_jaxpr(lambda x: group_norm(x, jnp.ones(8), jnp.zeros(8), num_groups=4, dtype=jnp.bfloat16))(x)
    reductions = [e for e in jaxpr.eqns if e.primitive.name.startswith("reduce_")]
    assert reductions and all(v.aval.dtype == jnp.float32 for e in reductions for v in e.invars)


def test_a_bfloat16_train_step_keeps_float32_state_and_loss():
    losses = {}
    for dtype in ("float32", "bfloat16"):
        cfg = tiny_config(dtype)
        model, process = experiment.build_model(cfg), experiment.build_process(cfg)
        mesh = experiment.make_mesh(jax.devices()[:1])
        state = step_lib.init_train_state(cfg, model, mesh=mesh)
        step = step_lib.make_train_step(cfg, model, process, mesh=mesh, donate=False)
        src = data_lib.load_source("digits", split="train", image_size=8, channels=1)
        batch = next(data_lib.iterate_batches(src, global_batch_size=8, seed=0, process_index=0, process_count=1))
        new, m = step(state, data_lib.to_global_array(batch, mesh), 0)
        assert m["loss"].dtype == jnp.float32 and m["grad_norm"].dtype == jnp.float32
        assert _dtypes(new.params) == _dtypes(new.ema_params) == {"float32"}
        assert _dtypes(new.opt_state) <= {"float32", "int32"}
        assert np.isfinite(float(m["loss"]))
        losses[dtype] = float(m["loss"])
    assert abs(losses["bfloat16"] - losses["float32"]) <= 0.05 * losses["float32"], losses


def test_the_sampler_state_of_a_bfloat16_model_is_float32():
    cfg = tiny_config("bfloat16")
    model, process = experiment.build_model(cfg), experiment.build_process(cfg)
    x_T = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 1), jnp.float32)
    params = _nonzero(jax.eval_shape(model.init, jax.random.PRNGKey(0), x_T[:1], jnp.zeros((1,), jnp.int32))["params"])
    out = sample(lambda p, x, t: model.apply({"params": p}, x, t), params, jax.random.PRNGKey(2), x_T,
                 process=process, corrector="ddim", timesteps=3, prediction="eps", return_every=1)
    assert out.x0.dtype == jnp.float32
    assert out.trajectory["x_t"].dtype == out.trajectory["x0_hat"].dtype == jnp.float32
