"""jaxdiff.models.norm: GroupNorm values and gradients against a float64 NumPy reference and flax's GroupNorm."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff.models.norm import GroupNorm, group_norm, resolve_impl


def _reference(x, scale, bias, G, eps):
    """Textbook GroupNorm in float64: normalize each (example, group) over positions and the group's channels."""
    x = np.asarray(x, np.float64)
    B, C = x.shape[0], x.shape[-1]
    xg = x.reshape(B, -1, G, C // G)
    mu = xg.mean(axis=(1, 3), keepdims=True)
    var = xg.var(axis=(1, 3), keepdims=True)
    y = ((xg - mu) / np.sqrt(var + eps)).reshape(x.shape)
    return y * np.asarray(scale, np.float64) + np.asarray(bias, np.float64)


def _inputs(shape, seed=0, offset=3.0):
    rng = np.random.default_rng(seed)
    # A large common offset makes E[x²] − E[x]² lose digits: the tolerance below covers float32 at this offset.
    x = rng.standard_normal(shape).astype(np.float32) * 1.5 + offset
    C = shape[-1]
    return x, rng.standard_normal(C).astype(np.float32), rng.standard_normal(C).astype(np.float32)


@pytest.mark.parametrize("impl", ["two_stage", "grouped"])
@pytest.mark.parametrize("shape,G", [((3, 5, 4, 12), 4), ((2, 8, 8, 16), 8), ((2, 7, 6), 3), ((4, 3, 3, 6), 6)])
def test_values_match_float64_reference(impl, shape, G):
    x, s, b = _inputs(shape)
    y = group_norm(jnp.asarray(x), jnp.asarray(s), jnp.asarray(b), num_groups=G, epsilon=1e-5, impl=impl)
    assert y.shape == x.shape and y.dtype == jnp.float32
    np.testing.assert_allclose(np.asarray(y), _reference(x, s, b, G, 1e-5), atol=2e-4, rtol=1e-4)


def test_gradients_of_both_impls_match_a_float64_finite_difference():
    x, s, b = _inputs((2, 4, 4, 8), seed=1, offset=0.5)
    G, eps = 4, 1e-5
    w = np.random.default_rng(2).standard_normal(x.shape)  # loss = Σ w · y, a generic linear functional

    def loss64(x_):
        return float(np.sum(w * _reference(x_, s, b, G, eps)))

    # Central differences in float64 on a few coordinates.
    idx = [(0, 0, 0, 0), (1, 3, 2, 5), (0, 2, 1, 7), (1, 0, 3, 2)]
    h = 1e-5
    fd = []
    for i in idx:
        e = np.zeros_like(x, np.float64)
        e[i] = h
        fd.append((loss64(x + e) - loss64(x - e)) / (2 * h))
    for impl in ("two_stage", "grouped"):
        g = jax.grad(
            lambda x_: jnp.sum(jnp.asarray(w, jnp.float32) * group_norm(x_, jnp.asarray(s), jnp.asarray(b), num_groups=G, epsilon=eps, impl=impl))
        )(jnp.asarray(x))
        np.testing.assert_allclose([float(g[i]) for i in idx], fd, rtol=2e-3, atol=2e-3, err_msg=impl)


def test_module_has_flax_groupnorm_parameters_and_output():
    x, _, _ = _inputs((2, 6, 6, 16), seed=3, offset=0.0)
    ours = GroupNorm(num_groups=8, epsilon=1e-5)
    ref = nn.GroupNorm(num_groups=8, epsilon=1e-5)
    p_ours = ours.init(jax.random.PRNGKey(0), x)
    p_ref = ref.init(jax.random.PRNGKey(0), x)
    assert jax.tree_util.tree_structure(p_ours) == jax.tree_util.tree_structure(p_ref)
    assert jax.tree_util.tree_map(lambda a: (a.shape, a.dtype), p_ours) == jax.tree_util.tree_map(
        lambda a: (a.shape, a.dtype), p_ref
    )
    # Non-trivial parameters, applied through both modules.
    rng = np.random.default_rng(4)
    params = {"params": {"scale": jnp.asarray(rng.standard_normal(16), jnp.float32), "bias": jnp.asarray(rng.standard_normal(16), jnp.float32)}}
    np.testing.assert_allclose(np.asarray(ours.apply(params, x)), np.asarray(ref.apply(params, x)), atol=2e-5, rtol=1e-5)


def test_bfloat16_output_with_float32_statistics():
    x, s, b = _inputs((2, 4, 4, 8), seed=5, offset=0.0)
    y = group_norm(jnp.asarray(x, jnp.bfloat16), jnp.asarray(s), jnp.asarray(b), num_groups=2, dtype=jnp.bfloat16)
    assert y.dtype == jnp.bfloat16
    ref = _reference(np.asarray(jnp.asarray(x, jnp.bfloat16), np.float32), s, b, 2, 1e-5)
    np.testing.assert_allclose(np.asarray(y, np.float32), ref, atol=3e-2, rtol=2e-2)


def test_auto_is_two_stage_on_cpu_only(monkeypatch):
    assert jax.default_backend() == "cpu"
    assert resolve_impl("auto") == "two_stage"
    monkeypatch.setattr(jax, "default_backend", lambda: "gpu")
    assert resolve_impl("auto") == "grouped"
    assert resolve_impl("two_stage") == "two_stage"


@pytest.mark.parametrize(
    "kwargs,msg",
    [
        (dict(num_groups=3), "num_groups=3 must divide the 8 channels"),
        (dict(num_groups=2, impl="fast"), "impl='fast' must be one of"),
    ],
)
def test_bad_arguments_name_the_field(kwargs, msg):
    x = jnp.zeros((1, 2, 2, 8))
    with pytest.raises(ValueError, match=msg):
        group_norm(x, jnp.ones(8), jnp.zeros(8), **kwargs)
