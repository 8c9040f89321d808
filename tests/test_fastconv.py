"""jaxdiff.models.fastconv: the GEMM weight gradients equal XLA's convolution gradients (float32 tolerance)."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jaxdiff.models import fastconv


def _ref_conv(x, w):
    return jax.lax.conv_general_dilated(
        x, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"), precision=jax.lax.Precision.HIGHEST
    )


def _np_wgrad(x, dy, k):
    """float64 NumPy: dW[i,j,c,o] = Σ_{b,h,w} x_pad[b,h+i,w+j,c] dy[b,h,w,o]."""
    x, dy = np.asarray(x, np.float64), np.asarray(dy, np.float64)
    B, H, W, C = x.shape
    r = k // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)))
    out = np.zeros((k, k, C, dy.shape[-1]))
    for i in range(k):
        for j in range(k):
            out[i, j] = np.einsum("bhwc,bhwo->co", xp[:, i : i + H, j : j + W], dy)
    return out


@pytest.mark.parametrize("fn", [fastconv.wgrad_rows, fastconv.wgrad_im2col, fastconv.wgrad_shift,
                                fastconv.wgrad_patches_t])
@pytest.mark.parametrize("k", [3, 5])
def test_weight_gradients_match_float64_reference(fn, k):
    rng = np.random.default_rng(0)
    x = rng.standard_normal((2, 6, 5, 3)).astype(np.float32)
    dy = rng.standard_normal((2, 6, 5, 4)).astype(np.float32)
    got = np.asarray(fn(jnp.asarray(x), jnp.asarray(dy), (k, k, 3, 4)))
    want = _np_wgrad(x, dy, k)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max())


@pytest.mark.parametrize("method", ["rows", "lax", "auto"])
def test_conv_same_matches_lax_conv_value_and_gradients(method):
    rng = np.random.default_rng(1)
    x = jnp.asarray(rng.standard_normal((3, 8, 8, 5)), jnp.float32)
    w = jnp.asarray(rng.standard_normal((3, 3, 5, 6)) * 0.2, jnp.float32)
    g = jnp.asarray(rng.standard_normal((3, 8, 8, 6)), jnp.float32)

    def loss(f):
        return lambda x, w: jnp.sum(f(x, w) * g) + 0.1 * jnp.sum(f(x, w) ** 2)

    ours = jax.jit(jax.value_and_grad(loss(lambda x, w: fastconv.conv_same(x, w, wgrad=method)), argnums=(0, 1)))
    ref = jax.value_and_grad(loss(_ref_conv), argnums=(0, 1))
    (v1, (dx1, dw1)), (v2, (dx2, dw2)) = ours(x, w), ref(x, w)
    np.testing.assert_allclose(v1, v2, rtol=1e-5)
    np.testing.assert_allclose(dx1, dx2, rtol=1e-4, atol=1e-4 * float(jnp.abs(dx2).max()))
    np.testing.assert_allclose(dw1, dw2, rtol=1e-4, atol=1e-4 * float(jnp.abs(dw2).max()))


def test_auto_selects_gemm_only_on_cpu_small_images():
    assert fastconv._pick("auto", (1, 8, 8, 1)) == ("rows" if jax.default_backend() == "cpu" else "lax")
    assert fastconv._pick("auto", (1, 32, 32, 1)) == "lax"
    assert fastconv._pick("rows", (1, 32, 32, 1)) == "rows"


def test_bad_arguments_raise_value_error():
    x = jnp.zeros((1, 4, 4, 2))
    with pytest.raises(ValueError, match="wgrad='gemm'"):
        fastconv.conv_same(x, jnp.zeros((3, 3, 2, 2)), wgrad="gemm")
    with pytest.raises(ValueError, match="odd"):
        fastconv.conv_same(x, jnp.zeros((2, 2, 2, 2)))
