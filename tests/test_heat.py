"""The heat-dissipation degradation (Rissanen et al. 2023) against a float64 scipy reference, its semigroup, its
facts, oracle recovery through the samplers (with the small sampling noise δ) and 1 vs 8 devices."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.fft
from jax.sharding import NamedSharding, PartitionSpec as P

from jaxdiff import sampling
from jaxdiff.degradations import make_degradation
from jaxdiff.processes import ColdProcess

N = 16


def ref_heat(x, tau):
    """Independent float64 reference: the Neumann heat equation run for time tau[b] on x (B, H, W, C)."""
    x = np.asarray(x, np.float64)
    h, w = x.shape[1:3]
    lam = np.pi**2 * ((np.arange(h)[:, None] / h) ** 2 + (np.arange(w)[None, :] / w) ** 2)
    u = scipy.fft.dctn(x, type=2, axes=(1, 2), norm="ortho")
    u = u * np.exp(-lam[None, :, :, None] * np.asarray(tau, np.float64).reshape(-1, 1, 1, 1))
    return scipy.fft.idctn(u, type=2, axes=(1, 2), norm="ortho")


def ref_tau(T, lo, hi):
    """τ_t = σ_t²/2, σ_0 = 0 and σ_1 … σ_T a geometric sequence from lo to hi."""
    return np.concatenate([[0.0], np.geomspace(lo, hi, T) ** 2 / 2])


def img(seed, shape=(4, N, N, 3)):
    return jax.random.uniform(jax.random.key(seed), shape, jnp.float32, -1.0, 1.0)


def build(T=8, lo=0.5, hi=16.0, c=3):
    return make_degradation("heat", T=T, image_size=N, channels=c, sigma_min=lo, sigma_max=hi)


def test_identity_at_0_exactly():
    deg, x0 = build(), img(0)
    np.testing.assert_array_equal(deg.apply(x0, 0), x0)
    out = deg.apply(x0, jnp.array([0, 3, 0, 8], jnp.int32))
    np.testing.assert_array_equal(out[0], x0[0])
    np.testing.assert_array_equal(out[2], x0[2])


@pytest.mark.parametrize("T,lo,hi", [(8, 0.5, 16.0), (1, 2.0, 2.0), (50, 0.5, 20.0)])
def test_matches_the_float64_dct_reference(T, lo, hi):
    deg, x0 = build(T, lo, hi), img(1)
    tau = ref_tau(T, lo, hi)
    for t in sorted({0, 1, T // 2, T}):
        np.testing.assert_allclose(deg.apply(x0, t), ref_heat(x0, np.full(4, tau[t])), atol=2e-6, err_msg=f"t={t}")


def test_per_example_t_matches_the_reference():
    T = 10
    deg, x0 = build(T), img(2)
    t = np.array([10, 0, 3, 7])
    np.testing.assert_allclose(deg.apply(x0, jnp.asarray(t, jnp.int32)), ref_heat(x0, ref_tau(T, 0.5, 16.0)[t]),
                               atol=2e-6)


def test_semigroup_in_tau():
    """Heat for τ_a then τ_b is heat for τ_a + τ_b: σ_B = a then b is σ_B = √(a² + b²)."""
    x0 = img(3)
    a, b = build(1, 1.5, 1.5), build(1, 2.0, 2.0)
    ab = build(1, 2.5, 2.5)  # 1.5² + 2² = 2.5²
    np.testing.assert_allclose(b.apply(a.apply(x0, 1), 1), ab.apply(x0, 1), atol=2e-6)
    np.testing.assert_allclose(a.apply(b.apply(x0, 1), 1), ab.apply(x0, 1), atol=2e-6)
    # and along one schedule: F_s ∘ F_t is the reference run for τ_s + τ_t
    deg = build(8)
    tau = ref_tau(8, 0.5, 16.0)
    for s, t in ((1, 1), (2, 5), (4, 4)):
        np.testing.assert_allclose(deg.apply(deg.apply(x0, t), s), ref_heat(x0, np.full(4, tau[s] + tau[t])),
                                   atol=2e-6)


def test_severity_every_coefficient_shrinks_and_the_mean_stays():
    T = 12
    deg, x0 = build(T), img(4)
    u = [scipy.fft.dctn(np.asarray(deg.apply(x0, t), np.float64), axes=(1, 2), norm="ortho") for t in range(T + 1)]
    for a, b in zip(u[:-1], u[1:]):
        assert (np.abs(b) <= np.abs(a) + 1e-5).all()
    u0 = scipy.fft.dctn(np.asarray(x0, np.float64), axes=(1, 2), norm="ortho")
    for ut in u:  # Neumann: the DC coefficient (the mean · N) never decays
        np.testing.assert_allclose(ut[:, 0, 0], u0[:, 0, 0], atol=1e-5)
    means = np.asarray(x0, np.float64).mean(axis=(1, 2))
    for t in range(T + 1):
        np.testing.assert_allclose(np.asarray(deg.apply(x0, t)).mean(axis=(1, 2)), means, atol=1e-6)


def test_blurred_to_the_image_size_the_end_state_is_flat():
    """σ_B,T = N: every non-DC coefficient is scaled by at most exp(−π²/N² · N²/2) = exp(−π²/2)."""
    deg, x0 = build(20, 0.5, float(N)), img(5)
    xT = np.asarray(deg.apply(x0, 20), np.float64)
    x = np.asarray(x0, np.float64)
    bound = np.exp(-np.pi**2 / 2)
    assert (xT.std(axis=(1, 2)) <= bound * x.std(axis=(1, 2)) + 1e-6).all()
    assert (xT.std(axis=(1, 2)) > 0).all()


def test_declares_its_generation_prior():
    g = build().generation
    assert (g.kind, g.fit_on, g.prior_noise, g.end_state) == ("blur_mean", "source", True, None)
    assert g.corrector == "cold_improved" and "degradation_params.sigma_max" in g.mismatch_hint


@pytest.mark.parametrize("params,msg", [
    (dict(sigma_min=0.0), r"degradation 'heat': sigma_min must be a finite number > 0, got 0.0"),
    (dict(sigma_min=-1.0), r"sigma_min must be a finite number > 0, got -1.0"),
    (dict(sigma_max=float("inf")), r"sigma_max must be a finite number > 0, got inf"),
    (dict(sigma_max="big"), r"sigma_max must be a finite number > 0, got 'big'"),
    (dict(sigma_min=True), r"sigma_min must be a finite number > 0, got True"),
    (dict(sigma_min=4.0, sigma_max=2.0), r"sigma_max must be >= sigma_min = 4.0 \(the blur only grows with t\), got 2.0"),
    (dict(image_size=0), r"degradation 'heat': image_size must be an integer >= 1, got 0"),
    (dict(sigma_mx=3.0), r"unknown parameter\(s\) \['sigma_mx'\]"),
])
def test_bad_parameters_one_message_each(params, msg):
    kw = {**dict(T=5, image_size=N, channels=1), **params}
    with pytest.raises(ValueError, match=msg):
        make_degradation("heat", **kw)


def test_bad_image_shape_names_the_build_size():
    with pytest.raises(ValueError, match=r"built for image_size=16"):
        build().apply(jnp.zeros((1, 8, 8, 3)), 1)


def _oracle(params, x_t, t):
    return params


def test_oracle_recovery_through_the_improved_corrector_keeps_the_noise():
    """Algorithm 2 with x̂0 = x0 on x_T = F_T(x0) + σε walks F_t(x0) + σε back (ε kept) and ends at x0."""
    T, sigma = 10, 0.02
    proc = ColdProcess(build(T), noise_std=sigma)
    x0 = img(6)
    eps = jax.random.normal(jax.random.key(7), x0.shape)
    x_T = proc.perturb(x0, T, eps)
    out, traj = sampling.sample(_oracle, x0, jax.random.key(0), x_T, process=proc, corrector="cold_improved",
                                prediction="x0", return_every=1)
    np.testing.assert_allclose(out, x0, atol=1e-5)
    tau = ref_tau(T, 0.5, 16.0)
    for j, t in enumerate(np.asarray(traj["t"])[:-1]):
        np.testing.assert_allclose(traj["x_t"][j], ref_heat(x0, np.full(4, tau[t])) + sigma * np.asarray(eps),
                                   atol=2e-5, err_msg=f"t={t}")


def test_naive_corrector_adds_the_sampling_noise_delta_at_every_step():
    """cold_naive on the noisy process: x_{t−1} = F_{t−1}(x̂0) + δ z, δ = noise_std, fresh z each step; x̂0 at the end."""
    T, delta = 6, 0.02
    proc = ColdProcess(build(T, c=1), noise_std=delta)
    x0 = img(8, (16, N, N, 1))
    x_T = proc.sample(x0, T, jax.random.key(9))
    out, traj = sampling.sample(_oracle, x0, jax.random.key(1), x_T, process=proc, corrector="cold_naive",
                                prediction="x0", return_every=1)
    np.testing.assert_array_equal(out, x0)
    tau = ref_tau(T, 0.5, 16.0)
    res = [np.asarray(traj["x_t"][j], np.float64) - ref_heat(x0, np.full(16, tau[t]))
           for j, t in enumerate(np.asarray(traj["t"])[:-1])]
    for r in res:  # 4096 values each: the sample std is within a few % of δ
        assert abs(r.std() / delta - 1) < 0.06 and abs(r.mean()) < 0.1 * delta
    # a fresh draw at every step: consecutive residuals are uncorrelated
    for a, b in zip(res[:-1], res[1:]):
        assert abs(np.corrcoef(a.ravel(), b.ravel())[0, 1]) < 0.1


def test_sharded_equals_single_device():
    n = jax.device_count()
    assert n == 8
    mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sh = NamedSharding(mesh, P("data"))
    proc = ColdProcess(build(8), noise_std=0.02)
    x0 = img(10, (16, N, N, 3))
    x_T = proc.sample(x0, 8, jax.random.key(11))
    net = lambda p, x, t: jnp.clip(x * p, -1, 1)  # noqa: E731
    for corrector in ("cold_naive", "cold_improved"):
        single, _ = sampling.sample(net, 1.1, jax.random.key(3), x_T, process=proc, corrector=corrector,
                                    prediction="x0")
        sharded, _ = sampling.sample(net, 1.1, jax.random.key(3), jax.device_put(x_T, sh), process=proc,
                                     corrector=corrector, prediction="x0")
        assert len(sharded.sharding.device_set) == n
        np.testing.assert_allclose(sharded, single, atol=1e-5)
    # and the forward process itself, sharded
    t = jnp.arange(16, dtype=jnp.int32) % 9
    np.testing.assert_allclose(jax.jit(proc.mean)(jax.device_put(x0, sh), t), proc.mean(x0, t), atol=1e-6)
