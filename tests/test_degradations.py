"""Cold-diffusion degradations F_t: the shared contract for every registered one, then each
operator against a closed form, an independent float64 NumPy reference or a stated property."""
import math

import chex
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from absl.testing import parameterized

import degradation_cases as cases
from degradation_cases import CASE_IDS, N
from helpers.arrays import uniform_images
from jaxdiff import degradations as D
from references import blur_sequential

B = 4


def build(case_id):
    return cases.build(case_id)


def images(seed=0, b=B, c=3, n=N):
    return uniform_images(seed, (b, n, n, c))


def aux_for(deg, x0, seed=1):
    return None if deg.sample_aux is None else deg.sample_aux(jax.random.PRNGKey(seed), x0)


def test_every_builtin_degradation_has_a_case():
    assert cases.builtin_names() == {c.name for c in cases.CASES}
    cases.check_table()  # every row's parameters are declared by its builder


def test_case_table_check_fails_on_a_missing_row_or_an_unknown_parameter(monkeypatch):
    full = list(cases.CASES)
    monkeypatch.setattr(cases, "CASES", [c for c in full if c.name != "snow"])
    with pytest.raises(AssertionError, match="snow"):
        cases.check_table()
    monkeypatch.setattr(cases, "CASES", full + [cases.Case("blur_bad", "blur", 3, {"sigma": 1.0})])
    with pytest.raises(AssertionError, match="sigma"):
        cases.check_table()


# --------------------------------------------------------------------------------------------
# the shared contract
# --------------------------------------------------------------------------------------------


class Contract(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.product(case_id=CASE_IDS, channels=(1, 3))
    def test_identity_at_0_and_shapes(self, case_id, channels):
        deg = build(case_id)
        x0 = images(c=channels)
        aux = aux_for(deg, x0)
        t = jnp.array([0, 1, deg.T, deg.T // 2], jnp.int32)
        out = self.variant(deg.apply)(x0, t, aux)
        assert out.shape == x0.shape and out.dtype == x0.dtype
        assert np.isfinite(np.asarray(out)).all()
        np.testing.assert_array_equal(out[0], x0[0])  # F_0 = identity, exactly
        np.testing.assert_array_equal(self.variant(deg.apply)(x0, 0, aux), x0)
        if deg.identity:  # D_t = identity at every t, exactly
            np.testing.assert_array_equal(out, x0)
        elif not (case_id == "decolor" and channels == 1):  # gray of one channel is the channel itself
            assert float(jnp.abs(out[2] - x0[2]).max()) > 1e-3  # F_T does something
        if channels == 3:
            xb = x0.astype(jnp.bfloat16)
            ob = self.variant(deg.apply)(xb, t, aux if case_id != "interpolate" else aux.astype(jnp.bfloat16))
            assert ob.shape == xb.shape and ob.dtype == jnp.bfloat16

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*CASE_IDS)
    def test_per_example_t_equals_per_t_calls(self, case_id):
        deg = build(case_id)
        x0 = images(2)
        aux = aux_for(deg, x0)
        t = jnp.array([deg.T, 0, 1, max(deg.T - 1, 0)], jnp.int32)
        f = self.variant(deg.apply)
        mixed = f(x0, t, aux)
        for b in range(B):
            np.testing.assert_allclose(mixed[b], f(x0, jnp.full((B,), t[b]), aux)[b], atol=1e-6)
            np.testing.assert_allclose(mixed[b], f(x0, int(t[b]), aux)[b], atol=1e-6)  # scalar t

    @parameterized.parameters(*CASE_IDS)
    def test_vmap_over_batches(self, case_id):
        deg = build(case_id)
        xs = jnp.stack([images(3), images(4)])
        auxs = [aux_for(deg, xs[0], 5), aux_for(deg, xs[1], 6)]
        aux = None if auxs[0] is None else jax.tree_util.tree_map(lambda a, b: jnp.stack([a, b]), *auxs)
        ts = jnp.array([[0, 1, deg.T, 2 % (deg.T + 1)], [deg.T, 1, 0, 1]], jnp.int32)
        out = jax.jit(jax.vmap(deg.apply))(xs, ts, aux)
        for k in range(2):
            np.testing.assert_allclose(out[k], deg.apply(xs[k], ts[k], auxs[k]), atol=1e-6)

    @parameterized.parameters(*CASE_IDS)
    def test_severity_never_decreases(self, case_id):
        """Each operator with a measure that is guaranteed monotone for it (why: see _severity_check)."""
        deg = build(case_id)
        x0 = images(7)
        aux = aux_for(deg, x0)
        if case_id == "interpolate":
            # z orthogonal to x0 per example, so <x_t, x0> = √ᾱ_t ‖x0‖² exactly
            z = aux
            proj = jnp.sum(z * x0, axis=(1, 2, 3), keepdims=True) / jnp.sum(x0 * x0, axis=(1, 2, 3), keepdims=True)
            aux = z - proj * x0
        f = jax.jit(deg.apply)
        xs = [np.asarray(f(x0, t, aux), np.float64) for t in range(deg.T + 1)]
        _severity_check(case_id, deg, xs, np.asarray(x0, np.float64), aux)

    @chex.variants(with_jit=True, without_jit=True)
    @parameterized.parameters(*[c for c in CASE_IDS if build(c).step is not None])
    def test_single_step_chains_to_F_t(self, case_id):
        deg = build(case_id)
        x0 = images(8)
        aux = aux_for(deg, x0)
        f, step = self.variant(deg.apply), self.variant(deg.step)
        for t in range(1, deg.T + 1):
            np.testing.assert_allclose(step(f(x0, t - 1, aux), t, aux), f(x0, t, aux), atol=1e-5)
        # per-example t in the step as well
        t = jnp.array([1, deg.T, 2 % (deg.T + 1), 1], jnp.int32)
        np.testing.assert_allclose(step(f(x0, t - 1, aux), t, aux), f(x0, t, aux), atol=1e-5)


def _weighted_var(x, w):
    """Per-example, per-channel weighted spatial variance; x (B, N, N, C), w (N, N)."""
    w = w[None, :, :, None] / w.sum()
    m = (x * w).sum(axis=(1, 2), keepdims=True)
    return (((x - m) ** 2) * w).sum(axis=(1, 2))


def _block_level(x):
    """Largest k such that every example is constant on 2^k × 2^k blocks."""
    k = 0
    while 2 ** (k + 1) <= x.shape[1]:
        f = 2 ** (k + 1)
        blocks = x.reshape(x.shape[0], x.shape[1] // f, f, x.shape[2] // f, f, x.shape[3])
        if np.ptp(blocks, axis=(2, 4)).max() > 1e-5:
            break
        k += 1
    return k


def _severity_check(case_id, deg, xs, x0, aux):
    tol = 1e-5
    pairs = list(zip(xs[:-1], xs[1:]))
    if case_id == "decolor":
        # ‖F_t − gray‖ = (1 − t/T) ‖x0 − gray‖
        g = x0.mean(-1, keepdims=True)
        d = [np.sqrt(((x - g) ** 2).sum(axis=(1, 2, 3))) for x in xs]
        assert all((b <= a + tol).all() for a, b in zip(d[:-1], d[1:]))
        assert (d[-1] < 1e-5).all()
    elif case_id.startswith("blur"):
        # circular: every step's transfer function has modulus ≤ 1 (non-negative weights summing to 1),
        # so the spatial variance cannot grow. reflect: the blur is the circular blur of the
        # mirrored image of period 2N−2, in which edge rows/columns appear once and the others twice.
        w1 = np.full(N, 2.0) if "reflect" in case_id else np.ones(N)
        if "reflect" in case_id:
            w1[0] = w1[-1] = 1.0
        v = [_weighted_var(x, np.outer(w1, w1)) for x in xs]
        assert all((b <= a + tol).all() for a, b in zip(v[:-1], v[1:]))
        assert (v[-1] < v[0]).all()
    elif case_id.startswith(("heat", "warm_blur")) or case_id == "dct_blur":
        # the orthonormal DCT keeps energy; every non-DC coefficient is scaled by a factor that falls with t
        # (heat: exp(−λτ_t); dct_blur: (1 − d_min) exp(−λτ_t) + d_min; warm_blur: the same with τ_t = σ_B,t²/2,
        # σ_B non-decreasing), and the DC one by 1: the spatial variance cannot grow and the mean does not move
        v = [_weighted_var(x, np.ones((N, N))) for x in xs]
        assert all((b <= a + tol).all() for a, b in zip(v[:-1], v[1:]))
        assert (v[-1] < v[0]).all()
        np.testing.assert_allclose(xs[-1].mean(axis=(1, 2)), x0.mean(axis=(1, 2)), atol=1e-5)
    elif case_id.startswith("inpaint"):
        # each mask factor lies in [0, 1]
        assert all((np.abs(b) <= np.abs(a) + tol).all() for a, b in pairs)
    elif case_id.startswith("fade"):
        c = np.asarray(aux["color"] if isinstance(aux, dict) else aux, np.float64)
        assert all((np.abs(b - c) <= np.abs(a - c) + tol).all() for a, b in pairs)
        np.testing.assert_allclose(xs[-1], np.broadcast_to(c, x0.shape), atol=1e-7)
    elif case_id.startswith("superres"):
        # F_t is constant on 2^t blocks and (for random x0) on nothing coarser
        assert [_block_level(x) for x in xs] == list(range(deg.T + 1))
        if case_id == "superres_area":
            # block averages are orthogonal projections onto nested subspaces: variance cannot grow
            v = [_weighted_var(x, np.ones((N, N))) for x in xs]
            assert all((b <= a + tol).all() for a, b in zip(v[:-1], v[1:]))
    elif case_id == "snow":
        # the snow layer only grows with t and clip is monotone: pointwise non-decreasing
        assert all((b >= a - tol).all() for a, b in pairs)
        assert (xs[-1] - x0).mean() > 0.01
    elif case_id == "interpolate":
        c = [(x * x0).sum(axis=(1, 2, 3)) for x in xs]
        assert all((b <= a + tol).all() for a, b in zip(c[:-1], c[1:]))
        assert (c[-1] < 0.05 * c[0]).all()
    elif case_id == "identity":
        for x in xs:
            np.testing.assert_array_equal(x, x0)
    else:  # pragma: no cover
        raise AssertionError(f"no severity measure for {case_id}")


# --------------------------------------------------------------------------------------------
# blur
# --------------------------------------------------------------------------------------------


def _numpy_blur_step(x, g, padding):
    """One depthwise 2-D correlation with g ⊗ g in float64 via np.pad: independent of the library."""
    r = g.size // 2
    xp = np.pad(x, ((0, 0), (r, r), (r, r), (0, 0)), mode="wrap" if padding == "circular" else "reflect")
    out = np.zeros_like(x)
    n = x.shape[1]
    for i in range(g.size):
        for j in range(g.size):
            out += g[i] * g[j] * xp[:, i : i + n, j : j + n, :]
    return out


@pytest.mark.parametrize("padding", ["circular", "reflect"])
def test_blur_sequential_reference_against_numpy(padding):
    x = np.asarray(images(9, b=2, n=8), np.float64)
    sig = [0.5 * (i + 1) for i in range(3)]  # "incremental": σ_i = std · (i + 1)
    ref = x
    for i in range(3):
        r = np.arange(-2, 3, dtype=np.float64)
        g = np.exp(-(r**2) / (2 * sig[i] ** 2))
        ref = _numpy_blur_step(ref, g / g.sum(), padding)
    got = blur_sequential(jnp.asarray(x, jnp.float32), 3, kernel_size=5, std=0.5, routine="incremental", padding=padding)
    np.testing.assert_allclose(got, ref, atol=2e-6)


BLUR_EQUIV = [
    dict(routine="constant", std=1.5, kernel_size=5),
    dict(routine="incremental", std=0.5, kernel_size=5),
    dict(routine="exponential", std=0.3, kernel_size=7),
    dict(routine="affine", std=0.35, std_increment=0.01, kernel_size=11),  # CIFAR-10 setting
    dict(routine="constant", std=7.0, kernel_size=11, to_mean=True),
    dict(routine="exponential", std=0.5, kernel_size=5, to_mean=True),
]


@pytest.mark.parametrize("padding", ["circular", "reflect"])
@pytest.mark.parametrize("p", BLUR_EQUIV, ids=lambda p: "-".join(f"{k}={v}" for k, v in p.items()))
def test_blur_o1_equals_sequential(p, padding):
    T, n = 6, 12
    deg = D.make_degradation("blur", T=T, image_size=n, channels=2, padding=padding, **p)
    x0 = images(10, b=2, c=2, n=n)
    ts = jnp.repeat(jnp.arange(T + 1), 2)
    fast = jax.jit(deg.apply)(jnp.tile(x0, (T + 1, 1, 1, 1)), ts)
    for t in range(T + 1):
        ref = blur_sequential(x0, t, padding=padding, T=T, **p)
        np.testing.assert_allclose(fast[2 * t : 2 * t + 2], ref, atol=1e-5, err_msg=f"t={t}")
    if p.get("to_mean"):
        last = np.asarray(fast[-2:])
        np.testing.assert_allclose(last, np.broadcast_to(last[:, :1, :1], last.shape), atol=1e-6)  # flat
        if padding == "circular":  # the circular blur keeps the mean, so F_T is the mean of x0
            np.testing.assert_allclose(last[:, 0, 0], x0.mean(axis=(1, 2)), atol=1e-6)


def test_blur_kernel_wider_than_image_wraps_around():
    # circular padding with k//2 > N: the kernel wraps more than once
    deg = D.make_degradation("blur", T=3, image_size=6, channels=1, kernel_size=21, std=3.0)
    x0 = images(11, b=2, c=1, n=6)
    f = jax.jit(deg.apply)
    for t in range(4):
        ref = blur_sequential(x0, t, kernel_size=21, std=3.0)
        np.testing.assert_allclose(f(x0, t), ref, atol=1e-5)


@pytest.mark.parametrize("p", [dict(routine="constant", std=2.0), dict(routine="exponential", std=7.0)])
def test_circular_blur_keeps_channel_means(p):
    # T = 110 with exp(7·i) overflows σ to inf: the kernel becomes a box, still finite and mean-keeping
    T = 110 if p["routine"] == "exponential" else 8
    deg = D.make_degradation("blur", T=T, image_size=N, channels=3, kernel_size=5, **p)
    x0 = images(12)
    f = jax.jit(deg.apply)
    for t in (1, 2, T // 2, T):
        y = f(x0, t)
        assert np.isfinite(np.asarray(y)).all()
        np.testing.assert_allclose(y.mean(axis=(1, 2)), x0.mean(axis=(1, 2)), atol=1e-6)


# --------------------------------------------------------------------------------------------
# inpaint / fade
# --------------------------------------------------------------------------------------------


def _numpy_mask(T_t, centers, kernel_std, initial_mask, n=N):
    """∏_{i<t} (1 − exp(−r²/(2 s_i²))), s_i = kernel_std (i + initial_mask), directly on the grid."""
    yy, xx = np.meshgrid(np.arange(n), np.arange(n), indexing="ij")
    out = []
    for c in np.asarray(centers):
        r2 = (yy - c[0]) ** 2 + (xx - c[1]) ** 2
        m = np.ones((n, n))
        for i in range(T_t):
            m *= 1 - np.exp(-r2 / (2 * (kernel_std * (i + initial_mask)) ** 2))
        out.append(m)
    return np.stack(out)[..., None]


def test_inpaint_matches_float64_masks_and_centres_are_fixed():
    deg = D.make_degradation("inpaint", T=6, image_size=N, channels=3, kernel_std=0.4, initial_mask=2.0)
    x0 = images(13, b=8)
    centers = deg.sample_aux(jax.random.PRNGKey(3), x0)
    assert centers.shape == (8, 2) and centers.dtype == jnp.int32
    assert len({tuple(c) for c in np.asarray(centers)}) > 1  # differ across examples
    ones = jnp.ones_like(x0)
    f = jax.jit(deg.apply)
    for t in range(7):
        ref = _numpy_mask(t, centers, 0.4, 2.0)
        np.testing.assert_allclose(f(x0, t, centers), np.asarray(x0) * ref, atol=1e-6)
        if t:
            m = np.asarray(f(ones, t, centers))[..., 0]
            # the hole sits on the same centre at every t; the centre pixel is exactly 0
            flat = m.reshape(8, -1).argmin(axis=1)
            np.testing.assert_array_equal(np.stack(np.unravel_index(flat, (N, N)), 1), centers)
            np.testing.assert_array_equal(m[np.arange(8), centers[:, 0], centers[:, 1]], 0.0)
    # no aux: the image centre
    mid = jnp.full((8, 2), N // 2, jnp.int32)
    np.testing.assert_allclose(deg.apply(x0, 4), np.asarray(x0) * _numpy_mask(4, mid, 0.4, 2.0), atol=1e-6)
    np.testing.assert_array_equal(deg.apply(x0, 4), deg.apply(x0, 4, mid))
    # centered ignores aux and draws none
    cdeg = D.make_degradation("inpaint", T=6, image_size=N, channels=3, kernel_std=0.4, initial_mask=2.0, centered=True)
    assert cdeg.sample_aux is None
    np.testing.assert_allclose(cdeg.apply(x0, 4, centers), np.asarray(x0) * _numpy_mask(4, mid, 0.4, 2.0), atol=1e-6)
    np.testing.assert_array_equal(cdeg.apply(x0, 4, centers), deg.apply(x0, 4, mid))
    with pytest.raises(ValueError, match=r"\(B, 2\)"):
        deg.apply(x0, 3, centers[:, :1])


def test_fade_closed_form_end_state_and_prior():
    T = 5
    deg = D.make_degradation("fade", T=T, image_size=N, channels=3, kernel_std=0.5, initial_mask=1.0, centered=False)
    x0 = images(14)
    aux = deg.sample_aux(jax.random.PRNGKey(4), x0)
    color, centers = np.asarray(aux["color"], np.float64), aux["center"]
    assert color.shape == (B, 1, 1, 3) and (np.abs(color) <= 0.5).all()
    f = jax.jit(deg.apply)
    for t in range(T):
        m = _numpy_mask(t, centers, 0.5, 1.0)
        np.testing.assert_allclose(f(x0, t, aux), m * np.asarray(x0) + (1 - m) * color, atol=1e-6)
    xT = deg.apply(x0, T, aux)
    np.testing.assert_array_equal(xT, jnp.broadcast_to(aux["color"], x0.shape))  # M_T = 0: exactly the color
    np.testing.assert_array_equal(deg.prior(jax.random.PRNGKey(0), x0.shape, aux), xT)
    p = np.asarray(deg.prior(jax.random.PRNGKey(5), (64, N, N, 3), None))
    assert (p == p[:, :1, :1, :]).all()  # solid per example and channel
    assert (np.abs(p) <= 0.5).all() and p[:, 0, 0, :].std() > 0.2  # U(−0.5, 0.5): std ≈ 0.29
    with pytest.raises(ValueError, match="aux"):
        deg.apply(x0, 2)
    with pytest.raises(ValueError, match="color"):
        deg.apply(x0, 2, jnp.zeros((B, 3)))


# --------------------------------------------------------------------------------------------
# superres
# --------------------------------------------------------------------------------------------


def test_superres_area_is_block_mean_and_bicubic_is_jax_resize():
    T = 3
    x0 = images(15)
    area = D.make_degradation("superres", T=T, image_size=N, channels=3)
    cubic = D.make_degradation("superres", T=T, image_size=N, channels=3, method="bicubic")
    assert cubic.step is None
    xn = np.asarray(x0, np.float64)
    fa, fc = jax.jit(area.apply), jax.jit(cubic.apply)
    for t in range(1, T + 1):
        f, lo = 2**t, N // 2**t
        means = xn.reshape(B, lo, f, lo, f, 3).mean(axis=(2, 4))
        ref = np.repeat(np.repeat(means, f, axis=1), f, axis=2)
        np.testing.assert_allclose(fa(x0, t), ref, atol=1e-6)
        small = jax.image.resize(x0, (B, lo, lo, 3), "cubic", antialias=True)
        ref = jnp.repeat(jnp.repeat(small, f, axis=1), f, axis=2)
        np.testing.assert_allclose(fc(x0, t), ref, atol=1e-5)


# --------------------------------------------------------------------------------------------
# snow
# --------------------------------------------------------------------------------------------


def test_snow_is_additive_symmetric_and_seeded():
    T = 6
    p = dict(thr_end=0.6, sigma_end=4.0)
    deg = D.make_degradation("snow", T=T, image_size=N, channels=3, **p)
    x0 = images(16)
    dark = -jnp.ones((1, N, N, 3))
    f = jax.jit(deg.apply)
    for t in (1, T // 2, T):
        layer = np.asarray(f(dark, t))[0] + 1.0  # = 2·min(S_t + rot180(S_t), 1)
        np.testing.assert_array_equal(layer, layer[::-1, ::-1])  # rot180-symmetric
        np.testing.assert_array_equal(layer[..., 0], layer[..., 2])  # the same on every channel
        # F_t(x) = clip(x + that layer, −1, 1) for every image: snow does not depend on the image
        np.testing.assert_allclose(f(x0, t), np.clip(np.asarray(x0) + layer, -1, 1), atol=1e-6)
    assert float((deg.apply(dark, T) + 1).mean()) > 0.02
    same = D.make_degradation("snow", T=T, image_size=N, channels=3, **p)
    other = D.make_degradation("snow", T=T, image_size=N, channels=3, seed=1, **p)
    np.testing.assert_array_equal(same.apply(x0, T), deg.apply(x0, T))
    assert float(jnp.abs(other.apply(x0, T) - deg.apply(x0, T)).max()) > 0.1


# --------------------------------------------------------------------------------------------
# decolor, interpolate
# --------------------------------------------------------------------------------------------


class ClosedForms(chex.TestCase):
    @chex.variants(with_jit=True, without_jit=True)
    def test_decolor(self):
        T = 4
        deg = D.make_degradation("decolor", T=T, image_size=N, channels=3)
        x0 = images(17)
        xn = np.asarray(x0, np.float64)
        g = xn.mean(-1, keepdims=True)
        t = jnp.array([0, 1, 3, 4])
        out = self.variant(deg.apply)(x0, t)
        for b, tv in enumerate([0, 1, 3, 4]):
            np.testing.assert_allclose(out[b], (1 - tv / T) * xn[b] + tv / T * g[b], atol=1e-6)
        one = images(17, c=1)
        np.testing.assert_allclose(self.variant(deg.apply)(one, t), one, atol=1e-7)  # gray of one channel = itself

    @chex.variants(with_jit=True, without_jit=True)
    def test_interpolate(self):
        T = 6
        deg = D.make_degradation("interpolate", T=T, image_size=N, channels=3)
        x0, z = images(18), images(19)
        # cosine ᾱ in float64 (Nichol & Dhariwal, s = 0.008, β ≤ 0.999), independently of the schedule module
        s = np.arange(T + 1) / T
        f = np.cos((s + 0.008) / 1.008 * np.pi / 2) ** 2
        beta = np.minimum(1 - f[1:] / f[:-1], 0.999)
        abar = np.concatenate([[1.0], np.cumprod(1 - beta)])
        t = jnp.array([0, 1, 3, T])
        out = self.variant(deg.apply)(x0, t, z)
        for b, tv in enumerate([0, 1, 3, T]):
            ref = np.sqrt(abar[tv]) * np.asarray(x0[b], np.float64) + np.sqrt(1 - abar[tv]) * np.asarray(z[b], np.float64)
            np.testing.assert_allclose(out[b], ref, atol=1e-6)
        np.testing.assert_array_equal(deg.prior(jax.random.PRNGKey(0), z.shape, z), z)
        noise = deg.prior(jax.random.PRNGKey(0), (256, N, N, 1))
        assert abs(float(noise.mean())) < 0.02 and abs(float(noise.std()) - 1) < 0.02
        eps = deg.sample_aux(jax.random.PRNGKey(1), x0)
        assert eps.shape == x0.shape and abs(float(eps.std()) - 1) < 0.1
        with pytest.raises(ValueError, match="aux"):
            deg.apply(x0, 3)
        with pytest.raises(ValueError, match="shape"):
            deg.apply(x0, 3, z[:2])


# --------------------------------------------------------------------------------------------
# validation
# --------------------------------------------------------------------------------------------

BAD = [
    ("blur", 5, dict(kernel_size=4), "kernel_size"),
    ("blur", 5, dict(kernel_size=0), "kernel_size"),
    ("blur", 5, dict(std=0.0), "std"),
    ("blur", 5, dict(std=float("nan")), "std"),
    ("blur", 5, dict(routine="linear"), "routine"),
    ("blur", 5, dict(padding="zeros"), "padding"),
    ("blur", 5, dict(padding="reflect", kernel_size=41), "image_size"),  # 41//2 = 20 >= 16
    ("blur", 5, dict(routine="affine", std=0.1, std_increment=-0.05), "std_increment"),
    ("blur", 5, dict(to_mean="yes"), "to_mean"),
    ("blur", 5, dict(sigma=1.0), "unknown parameter"),
    ("inpaint", 5, dict(kernel_std=0.0), "kernel_std"),
    ("inpaint", 5, dict(initial_mask=-1), "initial_mask"),
    ("inpaint", 5, dict(centered="no"), "centered"),
    ("fade", 5, dict(kernel_std=-0.1), "kernel_std"),
    ("superres", 5, dict(), "image_size"),  # 2**5 = 32 > 16
    ("superres", 1, dict(method="nearest"), "method"),
    ("snow", 5, dict(thr_end=1.3), "thr_end"),
    ("snow", 5, dict(sigma_start=0.0), "sigma_start"),
    ("snow", 5, dict(zoom=0.5), "zoom"),
    ("snow", 5, dict(seed=-1), "seed"),
    ("snow", 5, dict(scale=-0.1), "scale"),
    ("interpolate", 5, dict(s=0.01), "unknown parameter"),
    ("decolor", 0, dict(), "T must be"),
    ("nope", 5, dict(), "unknown degradation"),
]


@pytest.mark.parametrize("name,T,params,field", BAD, ids=[f"{b[0]}-{b[3]}" for b in BAD])
def test_bad_parameters_raise_naming_the_field(name, T, params, field):
    with pytest.raises(ValueError, match=field):
        D.make_degradation(name, T=T, image_size=N, channels=3, **params)


@pytest.mark.parametrize("kw,field", [(dict(image_size=0), "image_size"), (dict(channels=0), "channels")])
def test_bad_sizes_raise(kw, field):
    with pytest.raises(ValueError, match=field):
        D.make_degradation("blur", T=3, **{"image_size": N, "channels": 3, **kw})


def test_bad_inputs_raise_while_tracing():
    deg = build("blur_reflect")
    x0 = images(20)
    with pytest.raises(ValueError, match="image_size=16"):
        jax.jit(deg.apply)(images(20, n=8), jnp.zeros((B,), jnp.int32))
    with pytest.raises(ValueError, match="integer"):
        deg.apply(x0, jnp.ones((B,), jnp.float32))
    with pytest.raises(ValueError, match=r"shape \(B,\)"):
        deg.apply(x0, jnp.ones((B + 1,), jnp.int32))
    with pytest.raises(ValueError, match="NHWC"):
        deg.apply(x0[0], 1)
    with pytest.raises(ValueError, match="to_mean needs T"):
        blur_sequential(x0, 2, kernel_size=3, std=1.0, to_mean=True)


# --------------------------------------------------------------------------------------------
# the facts a degradation carries
# --------------------------------------------------------------------------------------------

# name -> (generation prior kind or None, fit_on, color_only, needs_end_source), as documented per family
FACTS = {
    "blur": ("blur_mean", "source", False, False),
    "heat": ("blur_mean", "source", False, False),
    "warm_blur": ("blur_mean", "source", False, False),  # used where the noise does not dominate x_T
    "superres": ("superres", "source", False, False),
    "fade": ("color", "none", False, False),
    "interpolate": ("dataset", "end_source", False, True),
    "inpaint": (None, None, False, False),
    "decolor": (None, None, True, False),
    "snow": (None, None, True, False),
    "dct_blur": (None, None, False, False),  # never flat (d_min > 0): the noise schedule's prior generates
    "identity": (None, None, False, False),
}


@pytest.mark.parametrize("case_id", CASE_IDS)
def test_facts_are_declared_at_registration(case_id):
    deg = build(case_id)
    kind, fit_on, color_only, needs_end = FACTS[deg.name]
    entry = D.DEGRADATIONS[deg.name]
    assert (entry.color_only, entry.needs_end_source) == (color_only, needs_end)
    assert (deg.color_only, deg.needs_end_source) == (color_only, needs_end)
    assert (deg.generation.kind, deg.generation.fit_on) == (kind, fit_on) if kind else deg.generation is None
    desc = deg.describe()
    if deg.identity:  # hot diffusion's reports say the schedule, not "identity(), T=…"
        assert desc == "identity"
        return
    assert desc.startswith(f"{deg.name}(") and desc.endswith(f"T={deg.T}")
    for k, v in next(c for c in cases.CASES if c.id == case_id).params.items():
        assert f"{k}={v}" in desc


def test_blur_generation_takes_the_prior_noise():
    assert build("blur_reflect").generation.prior_noise
    assert not build("fade_random").generation.prior_noise


def test_superres_end_state_is_F_T_and_constant_on_blocks():
    deg = build("superres_bicubic")
    x0 = images(30)
    end = deg.generation.end_state(np.asarray(x0, np.float64))
    assert end.dtype == np.float64 and end.shape == x0.shape
    small = jax.image.resize(x0, (B, 2, 2, 3), "cubic", antialias=True)  # N / 2^3 = 2
    np.testing.assert_allclose(end[:, ::8, ::8], small, atol=1e-5)
    np.testing.assert_array_equal(end, np.repeat(np.repeat(end[:, ::8, ::8], 8, 1), 8, 2))
    assert deg.generation.fit_params == {"T": 3}


def test_fade_generation_aux_reads_the_color_of_x_T():
    for case_id in ("fade_random", "fade_centered"):
        deg = build(case_id)
        x0 = images(31)
        aux = deg.sample_aux(jax.random.PRNGKey(2), x0)
        x_T = deg.apply(x0, deg.T, aux)  # the solid color of aux
        got = deg.generation.aux(x_T, jax.random.PRNGKey(3))
        want = aux["color"] if isinstance(aux, dict) else aux
        # a float32 mean over N×N equal pixels: exact up to rounding
        np.testing.assert_allclose(got["color"] if isinstance(got, dict) else got, want, atol=1e-5)
        np.testing.assert_allclose(deg.apply(x0, deg.T, got), x_T, atol=1e-5)
        assert deg.generation.fit_params == {"low": -0.5, "high": 0.5}


def test_interpolate_aux_of_generation_and_restoration():
    deg = build("interpolate")
    x0, z = images(32), images(33, b=3)
    np.testing.assert_array_equal(deg.generation.aux(x0, jax.random.PRNGKey(0)), x0)
    aux = deg.restoration_aux(jax.random.PRNGKey(0), x0, np.asarray(z))
    np.testing.assert_array_equal(aux, np.asarray(z)[[0, 1, 2, 0]])  # end images repeated to the batch
    noise = deg.restoration_aux(jax.random.PRNGKey(0), x0, None)  # no end images: its own Gaussian draw
    np.testing.assert_array_equal(noise, jax.random.normal(jax.random.PRNGKey(0), x0.shape, x0.dtype))
    with pytest.raises(ValueError, match="end_images"):
        deg.restoration_aux(jax.random.PRNGKey(0), x0, np.zeros((2, 8, 8, 3), np.float32))


def test_superres_size_message_names_the_config_fields():
    with pytest.raises(ValueError, match=r"diffusion\.T=5 must be <= 4 .*data\.image_size=16"):
        D.make_degradation("superres", T=5, image_size=16, channels=3)
    with pytest.raises(ValueError, match=r"diffusion\.T=2 must be <= 1 .*data\.image_size=6"):
        D.make_degradation("superres", T=2, image_size=6, channels=3)


def test_a_duplicate_degradation_name_is_refused():
    with pytest.raises(ValueError, match="'blur' is already registered"):
        D.register_degradation("blur")(lambda *, T, **_: (lambda x0, t: x0))
    assert D.DEGRADATIONS["blur"].builder is D.blur  # the first stays


def test_generation_prior_rejects_an_unknown_fit_on():
    with pytest.raises(ValueError, match="fit_on"):
        D.GenerationPrior(kind="color", fit_on="images")
