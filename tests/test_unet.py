"""UNet: shapes/dtypes, validation before compilation, time embedding, t/dropout dependence, bf16, parameter counts."""
import math

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest

from bench.contenders import BENCH32_DIFFUSERS_PARAMS, bench32_config
from configs.default import get_config
from jaxdiff.models import (
    UNet,
    make_unet,
    param_count,
    timestep_embedding,
)


def _cfg(**overrides):
    m = ml_collections.ConfigDict(
        dict(ch=8, ch_mult=(1, 2), num_res_blocks=1, attn_resolutions=(4,), dropout=0.0, num_groups=4, dtype="float32")
    )
    m.update(overrides)
    return m


# XLA:CPU compiles threefry slowly (seconds per initializer); the counter-based 'rbg' keys compile in a fraction.
def _key(seed):
    return jax.random.key(seed, impl="rbg")


def _abstract(model, x, t):
    """Parameter shapes/dtypes without running or compiling anything."""
    return jax.eval_shape(model.init, _key(0), x, t)


def _random_variables(model, x, t, seed=1):
    """Random non-zero weights drawn on the host (no init compile). Non-zero matters: the DDPM init zeroes every
    residual branch's last layer, which would hide t and dropout."""
    rng = np.random.default_rng(seed)

    def draw(path, leaf):
        name = jax.tree_util.keystr(path)
        if "kernel" in name:
            w = rng.normal(size=leaf.shape) / math.sqrt(np.prod(leaf.shape[:-1]))
        elif "scale" in name:
            w = 1.0 + 0.1 * rng.normal(size=leaf.shape)
        else:
            w = 0.1 * rng.normal(size=leaf.shape)
        return jnp.asarray(w, leaf.dtype)

    return jax.tree_util.tree_map_with_path(draw, _abstract(model, x, t))


def _images(b, s, c, seed=0):
    return jnp.asarray(np.random.default_rng(seed).uniform(-1.0, 1.0, (b, s, s, c)), jnp.float32)


# One small model shared by the behavioural tests, so its forward pass is compiled once.
SMALL = make_unet(_cfg(), image_size=8, in_channels=1, out_channels=1)
_small_apply = jax.jit(SMALL.apply)


# ------------------------------------------------------------------------------------------- shapes and dtypes


@pytest.mark.parametrize(
    "overrides, image_size, cin, cout",
    [
        (dict(ch_mult=(1,), attn_resolutions=(8,)), 8, 1, 1),
        (dict(), 8, 3, 3),
        (dict(ch_mult=(1, 2, 2), attn_resolutions=(8, 4), num_res_blocks=2, dropout=0.1), 16, 3, 6),
        (dict(ch=16, ch_mult=(1, 1), attn_resolutions=(), num_groups=8, num_heads=4, dtype="bfloat16"), 16, 2, 1),
    ],
)
def test_output_shape_and_dtype(overrides, image_size, cin, cout):
    model = make_unet(_cfg(**overrides), image_size=image_size, in_channels=cin, out_channels=cout)
    x, t = jnp.zeros((2, image_size, image_size, cin)), jnp.array([0, 7], jnp.int32)
    variables = _abstract(model, x, t)
    for train in (False, True):
        y = jax.eval_shape(lambda v: model.apply(v, x, t, train=train, rngs={"dropout": _key(3)}), variables)
        assert y.shape == (2, image_size, image_size, cout)
        assert y.dtype == jnp.float32


def test_default_config_builds_and_accepts_scalar_t():
    cfg = get_config()
    model = make_unet(ml_collections.FrozenConfigDict(cfg.model), image_size=16, in_channels=1, out_channels=1)
    x = jnp.zeros((3, 16, 16, 1))
    variables = _abstract(model, x, jnp.zeros((3,), jnp.int32))
    assert jax.eval_shape(model.apply, variables, x, jnp.int32(5)).shape == (3, 16, 16, 1)


def test_runs_and_scalar_t_broadcasts():
    x = _images(2, 8, 1)
    variables = _random_variables(SMALL, x, jnp.zeros((2,), jnp.int32))
    y = _small_apply(variables, x, jnp.array([5, 5]))
    assert bool(jnp.all(jnp.isfinite(y))) and float(jnp.std(y)) > 1e-3
    np.testing.assert_allclose(jax.jit(SMALL.apply)(variables, x, jnp.int32(5)), y, atol=1e-6)


# ------------------------------------------------------------------------------------------- validation


@pytest.mark.parametrize(
    "overrides, image_size, pattern",
    [
        (dict(ch_mult=(1, 2, 2)), 10, r"image_size=10.*ch_mult=\(1, 2, 2\).*multiple of .* = 4"),
        (dict(ch_mult=(1, 1, 1, 1)), 20, r"image_size=20.*at most 3 entries"),
        (dict(num_groups=3), 8, r"model\.num_groups=3.*allowed: \[1, 2, 4, 8\]"),
        (dict(ch=6, ch_mult=(1, 2), num_groups=4), 8, r"model\.num_groups=4.*\[6\] not divisible"),
        (dict(attn_resolutions=(5,)), 8, r"model\.attn_resolutions=\(5,\).*\[8, 4\]"),
        (dict(attn_resolutions=(16,)), 8, r"model\.attn_resolutions"),
        (dict(dtype="float16"), 8, r"model\.dtype='float16'.*bfloat16.*float32"),
        (dict(dtype="bf16"), 8, r"model\.dtype='bf16'"),
        (dict(num_heads=3), 8, r"model\.num_heads=3"),
        (dict(dropout=1.0), 8, r"model\.dropout=1\.0"),
        (dict(ch_mult=()), 8, r"model\.ch_mult=\(\)"),
        (dict(num_res_blocks=0), 8, r"model\.num_res_blocks=0"),
        (dict(chmult=(1, 2)), 8, r"unknown keys \['chmult'\]"),
    ],
)
def test_bad_config_raises_at_construction(overrides, image_size, pattern):
    cfg = _cfg(**overrides)
    with pytest.raises(ValueError, match=pattern):
        make_unet(cfg, image_size=image_size, in_channels=1, out_channels=1)
    if "chmult" not in overrides:
        # The module itself validates in __post_init__: a bare constructor call, nothing traced or compiled.
        with pytest.raises(ValueError, match=pattern):
            UNet(out_channels=1, image_size=image_size, in_channels=1, **cfg.to_dict())


def test_bad_channel_counts_raise():
    with pytest.raises(ValueError, match=r"out_channels=0"):
        make_unet(_cfg(), image_size=8, in_channels=1, out_channels=0)
    with pytest.raises(ValueError, match=r"image_size=8\.0"):
        make_unet(_cfg(), image_size=8.0, in_channels=1, out_channels=1)


def test_wrong_input_shapes_raise_at_trace_time():
    model = make_unet(_cfg(), image_size=8, in_channels=3, out_channels=3)
    variables = jax.eval_shape(model.init, _key(0), jnp.zeros((2, 8, 8, 3)), jnp.zeros((2,), jnp.int32))
    t = jnp.zeros((2,), jnp.int32)
    # eval_shape only traces: the errors surface before XLA would compile anything.
    with pytest.raises(ValueError, match=r"16×16.*image_size=8"):
        jax.eval_shape(model.apply, variables, jnp.zeros((2, 16, 16, 3)), t)
    with pytest.raises(ValueError, match=r"1 channels.*in_channels=3"):
        jax.eval_shape(model.apply, variables, jnp.zeros((2, 8, 8, 1)), t)
    with pytest.raises(ValueError, match=r"\(B, H, W, C\)"):
        jax.eval_shape(model.apply, variables, jnp.zeros((8, 8, 3)), t)
    with pytest.raises(ValueError, match=r"input t: shape \(3,\)"):
        jax.eval_shape(model.apply, variables, jnp.zeros((2, 8, 8, 3)), jnp.zeros((3,), jnp.int32))
    with pytest.raises(ValueError, match=r"floating"):
        jax.eval_shape(model.apply, variables, jnp.zeros((2, 8, 8, 3), jnp.int32), t)


def test_unsized_model_checks_input_size_at_trace_time():
    model = UNet(out_channels=1, ch=8, ch_mult=(1, 2, 2), num_groups=4)  # image_size unknown until called
    with pytest.raises(ValueError, match=r"image_size=10.*ch_mult"):
        jax.eval_shape(model.init, _key(0), jnp.zeros((1, 10, 10, 1)), jnp.zeros((1,), jnp.int32))
    with pytest.raises(ValueError, match=r"H=8 and W=16"):
        jax.eval_shape(model.init, _key(0), jnp.zeros((1, 8, 16, 1)), jnp.zeros((1,), jnp.int32))


# ------------------------------------------------------------------------------------------- time embedding


@pytest.mark.parametrize("dim", [8, 7, 64])
def test_timestep_embedding_matches_numpy(dim):
    t = np.array([0, 1, 3, 17, 250, 999], np.float64)
    t_cont = np.array([0.0, 0.25, 12.5, 731.3])
    for tt in (t, t_cont):
        half = dim // 2
        ref = np.zeros((tt.size, dim))
        for k in range(half):
            w = 10000.0 ** (-k / half)
            ref[:, k] = np.cos(tt * w)
            ref[:, half + k] = np.sin(tt * w)
        arg = jnp.asarray(tt.astype(np.int32)) if tt is t else jnp.asarray(tt, jnp.float32)
        got = np.asarray(timestep_embedding(arg, dim))
        assert got.shape == (tt.size, dim) and got.dtype == np.float32
        # float32 rounding of t·f (|t·f| ≤ 1000) bounds the error by ~1000·2⁻²⁴ per unit of argument.
        np.testing.assert_allclose(got, ref, atol=2e-4, rtol=0)
    if dim % 2:
        assert np.all(np.asarray(timestep_embedding(jnp.asarray(t), dim))[:, -1] == 0.0)


# ------------------------------------------------------------------------------------------- behaviour


def test_output_depends_on_t_per_example():
    x1 = _images(1, 8, 1)
    x = jnp.concatenate([x1, x1])
    variables = _random_variables(SMALL, x, jnp.zeros((2,), jnp.int32))
    y = _small_apply(variables, x, jnp.array([1, 700]))
    assert float(jnp.max(jnp.abs(y[0] - y[1]))) > 1e-3  # same image, different t
    y_same = _small_apply(variables, x, jnp.array([700, 700]))
    np.testing.assert_allclose(y_same[0], y_same[1], atol=1e-5)  # no mixing across the batch
    np.testing.assert_allclose(y_same[1], y[1], atol=1e-5)


def test_init_zeroes_residual_branches():
    """DDPM init: a fresh model's residual branches are exactly zero, so its output cannot depend on t."""
    x1 = _images(1, 8, 1)
    x = jnp.concatenate([x1, x1])
    variables = jax.jit(SMALL.init)(_key(0), x, jnp.zeros((2,), jnp.int32))
    params = variables["params"]
    assert all(float(jnp.abs(params[k]["conv2"]["kernel"]).max()) == 0 for k in params if "_res" in k)
    assert float(jnp.abs(params["mid_attn"]["proj"]["kernel"]).max()) == 0
    assert float(jnp.abs(params["conv_out"]["kernel"]).max()) > 0
    y = _small_apply(variables, x, jnp.array([1, 700]))
    np.testing.assert_allclose(y[0], y[1], atol=1e-6)
    assert float(jnp.std(y)) > 0


def test_dropout_only_in_training():
    model = make_unet(_cfg(dropout=0.5), image_size=8, in_channels=1, out_channels=1)
    x, t = _images(2, 8, 1), jnp.array([3, 9])
    variables = _random_variables(model, x, t)
    run = jax.jit(lambda v, key, train: model.apply(v, x, t, train=train, rngs={"dropout": key}), static_argnums=2)
    # Eval mode is the identity on the dropout layer: equal to the dropout-free model with the same weights.
    y_eval = run(variables, _key(1), False)
    np.testing.assert_allclose(y_eval, _small_apply(variables, x, t), atol=1e-6)
    ya, ya2, yb = run(variables, _key(1), True), run(variables, _key(1), True), run(variables, _key(2), True)
    np.testing.assert_array_equal(ya, ya2)  # the key decides the mask
    assert float(jnp.max(jnp.abs(ya - yb))) > 1e-3
    assert float(jnp.max(jnp.abs(ya - y_eval))) > 1e-3


def test_bfloat16_compute_float32_params():
    x, t = _images(2, 8, 1), jnp.array([2, 40])
    m16 = make_unet(_cfg(dtype="bfloat16"), image_size=8, in_channels=1, out_channels=1)
    assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(_abstract(m16, x, t)))
    variables = _random_variables(m16, x, t)
    y32 = _small_apply(variables, x, t)
    y16 = jax.jit(m16.apply)(variables, x, t)
    assert y16.dtype == jnp.float32 and y16.shape == y32.shape
    assert bool(jnp.all(jnp.isfinite(y16)))
    rel = float(jnp.linalg.norm(y16 - y32) / jnp.linalg.norm(y32))
    assert 0 < rel < 0.05, rel  # bf16 has an 8-bit mantissa: close, but not bit-identical
    # bf16 inputs are accepted too; the output is still float32.
    assert jax.eval_shape(m16.apply, variables, x.astype(jnp.bfloat16), t).dtype == jnp.float32


# ------------------------------------------------------------------------------------------- parameter counts


def _conv(k, cin, cout):
    return k * k * cin * cout + cout


def _dense(cin, cout):
    return cin * cout + cout


def _gn(c):
    return 2 * c


def _resnet(cin, cout, temb):
    # GroupNorm, conv3×3, time projection, GroupNorm, conv3×3, 1×1 shortcut when the width changes.
    return _gn(cin) + _conv(3, cin, cout) + _dense(temb, cout) + _gn(cout) + _conv(3, cout, cout) + (
        _conv(1, cin, cout) if cin != cout else 0
    )


def _attention(c):
    return _gn(c) + 4 * _dense(c, c)  # q, k, v, out


def _diffusers_layout_count(widths, layers, attn_levels, cin, cout):
    """Counts UNet2DModel's parameters, following diffusers' block constructors (down/mid/up bookkeeping)."""
    temb = 4 * widths[0]
    n = _conv(3, cin, widths[0]) + _dense(widths[0], temb) + _dense(temb, temb)
    out_ch = widths[0]
    for i, w in enumerate(widths):  # down blocks
        in_ch, out_ch = out_ch, w
        for j in range(layers):
            n += _resnet(in_ch if j == 0 else w, w, temb) + (_attention(w) if i in attn_levels else 0)
        if i != len(widths) - 1:
            n += _conv(3, w, w)
    n += 2 * _resnet(widths[-1], widths[-1], temb) + _attention(widths[-1])  # mid block
    rev = list(reversed(widths))
    prev = rev[0]
    for i, w in enumerate(rev):  # up blocks: layers + 1 resnets on concatenated skips
        skip_in = rev[min(i + 1, len(widths) - 1)]
        level = len(widths) - 1 - i
        for j in range(layers + 1):
            res_skip = skip_in if j == layers else w
            res_in = prev if j == 0 else w
            n += _resnet(res_in + res_skip, w, temb) + (_attention(w) if level in attn_levels else 0)
        if i != len(widths) - 1:
            n += _conv(3, w, w)
        prev = w
    return n + _gn(widths[0]) + _conv(3, widths[0], cout)


def _count(model, image_size, cin):
    return param_count(_abstract(model, jnp.zeros((1, image_size, image_size, cin)), jnp.zeros((1,)))["params"])


def test_param_count_one_level_by_hand():
    c, cin, cout = 8, 2, 3
    model = make_unet(_cfg(ch=c, ch_mult=(1,), attn_resolutions=(8,)), image_size=8, in_channels=cin, out_channels=cout)
    e = 4 * c
    res = 2 * c + (9 * c * c + c) + (e * c + c) + 2 * c + (9 * c * c + c)  # ResBlock c → c
    res_cat = 4 * c + (9 * 2 * c * c + c) + (e * c + c) + 2 * c + (9 * c * c + c) + (2 * c * c + c)  # 2c → c
    attn = 2 * c + 4 * (c * c + c)
    expected = (
        (c * e + e) + (e * e + e)  # time MLP
        + (9 * cin * c + c)  # conv_in
        + res + attn  # down: 1 block + attention
        + 2 * res + attn  # mid
        + 2 * (res_cat + attn)  # up: 2 blocks on [h, skip], each with attention
        + 2 * c + (9 * c * cout + cout)  # GroupNorm + conv_out
    )
    assert _count(model, 8, cin) == expected == _diffusers_layout_count([c], 1, {0}, cin, cout)


def test_param_count_multi_level_matches_layout_formula():
    model = make_unet(_cfg(ch=8, ch_mult=(1, 2, 3), num_res_blocks=2, attn_resolutions=(8,)), image_size=16,
                      in_channels=1, out_channels=2)
    assert _count(model, 16, 1) == _diffusers_layout_count([8, 16, 24], 2, {1}, 1, 2)


def test_bench32_param_count_equals_diffusers():
    model = make_unet(bench32_config(), image_size=32, in_channels=3, out_channels=3)
    n = _count(model, 32, 3)
    assert n == _diffusers_layout_count([64, 128, 128], 2, {1}, 3, 3)
    assert n == BENCH32_DIFFUSERS_PARAMS == 6_472_195  # the reference model's published count
    print(f"bench32_config UNet parameters: {n:,}")


def test_group_norm_implementations_give_the_same_unet():
    """The CPU two-stage GroupNorm and the textbook one: same parameters, same outputs and gradients (float32)."""
    import dataclasses

    x = _images(2, 8, 1) * 2 + 0.5
    t = jnp.array([3, 7])
    variables = _random_variables(SMALL, x, t)
    outs, grads = {}, {}
    for impl in ("two_stage", "grouped"):
        m = dataclasses.replace(SMALL, group_norm=impl)
        assert jax.tree_util.tree_structure(_abstract(m, x, t)) == jax.tree_util.tree_structure(variables)
        loss = lambda v, m=m: jnp.sum(m.apply(v, x, t) ** 2)  # noqa: E731
        outs[impl] = jax.jit(m.apply)(variables, x, t)  # jitted: op by op, XLA:CPU compiles ~200 programs
        grads[impl] = jax.jit(jax.grad(loss))(variables)
    scale = float(jnp.max(jnp.abs(outs["grouped"])))
    assert scale > 0.1
    np.testing.assert_allclose(np.asarray(outs["two_stage"]), np.asarray(outs["grouped"]), atol=1e-5 * scale + 1e-6)
    for a, b in zip(jax.tree_util.tree_leaves(grads["two_stage"]), jax.tree_util.tree_leaves(grads["grouped"])):
        np.testing.assert_allclose(np.asarray(a), np.asarray(b), rtol=1e-3, atol=1e-4 * float(jnp.max(jnp.abs(b))) + 1e-6)


def test_unknown_group_norm_implementation_is_refused():
    with pytest.raises(ValueError, match="group_norm='fast' must be one of"):
        UNet(out_channels=1, group_norm="fast")
