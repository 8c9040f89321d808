"""Restoration, the evaluation table, generation metrics, interpolation, forward pictures and the stored prior."""
import json

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from jaxdiff import evaluation, forward_pictures, sampling
from jaxdiff.sampling import interpolation
from jaxdiff.priors import store as prior_store
from jaxdiff.sampling import restoration
from jaxdiff.data import load_source, normalize
from jaxdiff.degradations import make_degradation
from jaxdiff.experiment import build_process
from jaxdiff.processes import ColdProcess, GaussianProcess
from jaxdiff.processes.schedules import make_schedule
from references import blur_sequential, frechet64, kid64

IMG = 16


def digits(split="test", n=32):
    src = load_source("digits", split=split, image_size=IMG, channels=1)
    return normalize(src.get(np.arange(n)))


BLUR = dict(kernel_size=5, std=1.5, routine="constant", padding="circular")


def blur_process(T=6):
    return ColdProcess(make_degradation("blur", T=T, image_size=IMG, channels=1, **BLUR))


def blur64(x0, t):
    """F_t(x0) of :func:`blur_process` by the test reference: t depthwise convolutions one after the other."""
    return np.asarray(blur_sequential(jnp.asarray(x0), int(t), **BLUR))


def nn_oracle(process):
    """A perfect restorer: R(x_t, t) = the candidate x0 (in params) whose F_t(x0) is nearest to x_t.

    It never sees which image it is given, only x_t and t, so a sampler that moves x_t off F_t(x0) (or passes
    the wrong t) gets a wrong answer from it.
    """

    def denoiser(params, x, t):
        cands = params  # (N, H, W, C)
        n, b = cands.shape[0], x.shape[0]
        rep = jnp.repeat(cands[None], b, axis=0).reshape((b * n,) + cands.shape[1:])
        ft = process.mean(rep, jnp.repeat(t, n)).reshape((b, n) + cands.shape[1:])
        d = jnp.sum((ft - x[:, None]) ** 2, axis=(2, 3, 4))
        return cands[jnp.argmin(d, axis=1)]

    return denoiser


# ---------------------------------------------------------------------------------------------
# restoration
# ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("severity", [None, 3])
def test_restoration_with_oracle_returns_originals_exactly(severity):
    process = blur_process()
    x0 = jnp.asarray(digits(n=16))
    den = nn_oracle(process)
    s = severity or process.T
    mesh = jax.make_mesh((jax.device_count(),), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    x_s = jax.device_put(restoration.degrade(process, x0, s, jax.random.PRNGKey(0)), NamedSharding(mesh, P("data")))
    # the degraded images really are degraded (else the test would pass trivially)
    assert float(jnp.max(jnp.abs(x_s - x0))) > 0.1
    out = restoration.restore(den, x0, x_s, process=process, key=jax.random.PRNGKey(1), severity=severity,
                              correctors=("cold_naive", "cold_improved"), prediction="x0", clip=1.0)
    assert set(out) == {"direct", "cold_naive", "cold_improved"}
    for name, y in out.items():
        np.testing.assert_array_equal(np.asarray(y), np.asarray(x0), err_msg=name)


def test_oracle_improved_sampler_walks_the_forward_path():
    """With a perfect restorer, Algorithm 2's states are F_t(x0) at every visited t (a check of the oracle too)."""
    process = blur_process()
    x0 = jnp.asarray(digits(n=8))
    ts = restoration.severity_timesteps(process.T, 3)
    res = sampling.sample(nn_oracle(process), x0, jax.random.PRNGKey(0), process.mean(x0, process.T),
                          process=process, corrector="cold_improved", timesteps=ts, prediction="x0", return_every=1)
    for t, xt in zip(np.asarray(res.trajectory["t"]), np.asarray(res.trajectory["x_t"])):
        np.testing.assert_allclose(xt, blur64(x0, t), atol=1e-5)


def test_restore_gaussian_from_partial_noise_with_oracle():
    process = GaussianProcess(make_schedule("linear", 50))
    x0 = jnp.asarray(digits(n=8))
    x_s = restoration.degrade(process, x0, 20, jax.random.PRNGKey(0))
    out = restoration.restore(lambda p, x, t: p, x0, x_s, process=process, key=jax.random.PRNGKey(1), severity=20,
                              correctors=("ddim", "ddpm"), prediction="x0", steps=5)
    for name, y in out.items():
        np.testing.assert_allclose(np.asarray(y), np.asarray(x0), atol=1e-6, err_msg=name)


def test_severity_and_timesteps():
    ts = restoration.severity_timesteps(7, 3)
    assert ts[0] == 7 and ts[-1] == 0 and len(ts) == 4
    assert len(restoration.severity_timesteps(4, 10)) == 5  # more steps than t: every step
    for bad in (0, 21, 2.5, True):
        with pytest.raises(ValueError, match="severity"):
            restoration.check_severity(bad, 20)
    assert restoration.check_severity(None, 20) == 20


def test_check_aux_known():
    restoration.check_aux_known(blur_process(), (IMG, IMG, 1))
    for name in ("fade", "interpolate"):
        proc = ColdProcess(make_degradation(name, T=5, image_size=IMG, channels=1))
        with pytest.raises(ValueError, match=name):
            restoration.check_aux_known(proc, (IMG, IMG, 1))


# ---------------------------------------------------------------------------------------------
# the table
# ---------------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def table_inputs():
    x0 = digits(n=40)
    process = blur_process()
    blurred = np.asarray(process.mean(jnp.asarray(x0), 3))
    noisy = np.clip(x0 + 0.2 * np.random.default_rng(0).standard_normal(x0.shape).astype(np.float32), -1, 1)
    return x0, {"Degraded": blurred, "Noisy": noisy, "Same": x0.copy()}


def test_restoration_table_equals_direct_metrics(table_inputs, tmp_path):
    x0, outs = table_inputs
    fn = evaluation.digits_feature_fn()
    train = digits("train", 40)
    table = evaluation.restoration_table(x0, outs, fn, feature_net="digits", floor_images=train, info={"steps": 3})
    f0 = np.asarray(fn(x0), np.float64)
    u0 = (x0 + 1) / 2
    for name, y in outs.items():
        row = table["rows"][name]
        u = (y + 1) / 2
        ssim_ref = np.mean([structural_similarity(u0[i, ..., 0], u[i, ..., 0], gaussian_weights=True, sigma=1.5,
                                                  use_sample_covariance=False, data_range=1.0)
                            for i in range(len(x0))])
        np.testing.assert_allclose(row["ssim"], ssim_ref, atol=1e-4, err_msg=name)
        np.testing.assert_allclose(row["rmse"], np.sqrt(np.mean((u0.astype(np.float64) - u) ** 2)), rtol=1e-5)
        if name != "Same":
            psnr_ref = np.mean([peak_signal_noise_ratio(u0[i], u[i], data_range=1.0) for i in range(len(x0))])
            np.testing.assert_allclose(row["psnr"], psnr_ref, rtol=1e-4)
        fd_ref = frechet64(f0, np.asarray(fn(y)))
        np.testing.assert_allclose(row["frechet"], fd_ref, rtol=1e-3, atol=1e-3)
    assert abs(table["rows"]["Same"]["frechet"]) < 1e-3  # float64 round-off on features of scale ~10²
    assert table["rows"]["Degraded"]["frechet"] > 1.0
    assert table["num_images"] == 40 and table["feature_dim"] == 64
    assert table["floor"]["same_count"]["num_a"] == 40 and table["floor"]["halves"]["num_a"] == 20

    j, m = evaluation.write_report(str(tmp_path / "report"), {"restoration": table})
    back = json.load(open(j))["restoration"]
    assert back["rows"]["Noisy"]["ssim"] == table["rows"]["Noisy"]["ssim"]
    assert back["rows"]["Same"]["psnr"] == "inf"  # JSON has no infinity
    md = open(m).read()
    row_line = next(line for line in md.splitlines() if line.startswith("| Noisy |"))
    assert f"{table['rows']['Noisy']['ssim']:.4g}" in row_line
    assert f"{table['rows']['Noisy']['frechet']:.4g}" in row_line
    assert "real-vs-real floor" in md and "40 held-out vs 40 training" in md


def test_generation_metrics_equal_direct_metrics():
    import fake_features  # the network-free test features (tests/fake_features.py)

    fn = fake_features.make_random_projection((IMG, IMG, 1), 16, seed=3)
    real, samples = digits("test", 60), digits("train", 50)
    g = evaluation.generation_metrics(samples, real, fn, feature_net="proj", floor_images=digits("train", 80), seed=1)
    fs, fr = np.asarray(fn(samples)), np.asarray(fn(real))
    np.testing.assert_allclose(g["frechet"], frechet64(fs, fr), rtol=1e-4, atol=1e-6)
    # independent float64 MMD² over the documented subset draws (50 subsets of 25, seeded by seed=1)
    kid_mean, kid_std = kid64(fs, fr, num_subsets=50, subset_size=25, seed=1)
    assert g["kid_mean"] == pytest.approx(kid_mean, rel=1e-9, abs=1e-12)
    assert g["kid_std"] == pytest.approx(kid_std, rel=1e-9, abs=1e-12)
    assert (g["kid_subset_size"], g["kid_num_subsets"]) == (25, 50)
    assert (g["num_samples"], g["num_real"]) == (50, 60)
    assert g["floor"]["same_count"]["num_a"] == 50


def test_prior_check_separates_a_matching_prior_from_a_wrong_one():
    fn = evaluation.digits_feature_fn()
    process = blur_process(T=6)
    end = np.asarray(process.mean(jnp.asarray(digits("test", 60)), 6))
    matching = np.asarray(process.mean(jnp.asarray(digits("train", 60)), 6))
    flat = np.broadcast_to(matching.mean(axis=(1, 2), keepdims=True), matching.shape)  # a blur_mean-like prior
    good = evaluation.prior_check(matching, end, fn)
    bad = evaluation.prior_check(flat, end, fn)
    np.testing.assert_allclose(good["frechet"], frechet64(np.asarray(fn(matching)), np.asarray(fn(end))), rtol=1e-3)
    assert bad["frechet"] > 3 * good["frechet"]
    assert (good["num_prior"], good["num_end"]) == (60, 60)


def test_steps_sweep():
    calls = []

    def run(n):
        calls.append(n)
        return np.full(3, float(n)), 0.5 * n

    out = evaluation.steps_sweep(run, [2, 4], lambda x: {"frechet": float(x.sum())}, num_images=3)
    assert calls == [2, 4]
    assert [(r["steps"], r["seconds"], r["frechet"], r["images_per_sec"]) for r in out["rows"]] == [
        (2, 1.0, 6.0, 3.0), (4, 2.0, 12.0, 1.5)]
    assert "| 4 |" in evaluation.report_markdown({"steps_sweep": out})


# ---------------------------------------------------------------------------------------------
# interpolation
# ---------------------------------------------------------------------------------------------


def test_spherical_interpolation_endpoints_and_norm():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    b = rng.standard_normal((3, 8, 8, 2)).astype(np.float32)
    pts = interpolation.points_between(a, b, 7, "spherical")
    assert pts.shape == (3, 7, 8, 8, 2)
    np.testing.assert_array_equal(pts[:, 0], a)
    np.testing.assert_array_equal(pts[:, -1], b)
    # orthogonal draws of equal norm: Gram–Schmidt b against a, rescale
    a64, b64 = a.reshape(3, -1).astype(np.float64), b.reshape(3, -1).astype(np.float64)
    b64 -= (np.sum(a64 * b64, 1) / np.sum(a64 * a64, 1))[:, None] * a64
    b64 *= (np.linalg.norm(a64, axis=1) / np.linalg.norm(b64, axis=1))[:, None]
    pts = interpolation.points_between(a64.reshape(a.shape), b64.reshape(a.shape), 9, "spherical")
    norms = np.linalg.norm(pts.reshape(3, 9, -1), axis=2)
    np.testing.assert_allclose(norms, np.linalg.norm(a64, axis=1)[:, None].repeat(9, 1), rtol=1e-12)
    # the linear path shrinks the norm in between (why Gaussian noise uses the spherical one)
    lin = np.linalg.norm(interpolation.points_between(a64.reshape(a.shape), b64.reshape(a.shape), 3, "linear")
                         .reshape(3, 3, -1), axis=2)
    np.testing.assert_allclose(lin[:, 1], np.linalg.norm(a64, axis=1) / np.sqrt(2), rtol=1e-12)


def test_interpolation_weights_and_errors():
    wa, wb = interpolation.weights(5, "linear")
    np.testing.assert_allclose(wa + wb, 1.0)
    wa, wb = interpolation.weights(5, "spherical")
    np.testing.assert_allclose(wa**2 + wb**2, 1.0)
    assert interpolation.method_for_prior("gaussian") == "spherical"
    assert interpolation.method_for_prior("blur_mean") == "linear"
    with pytest.raises(ValueError, match="num"):
        interpolation.weights(1)
    with pytest.raises(ValueError, match="method"):
        interpolation.weights(3, "cubic")


# ---------------------------------------------------------------------------------------------
# forward pictures
# ---------------------------------------------------------------------------------------------


def test_forward_rows_cold_are_the_forward_process(tmp_path):
    process = blur_process(T=10)
    x0 = digits(n=3)
    rows, labels, ts = forward_pictures.forward_rows(process, x0, key=jax.random.PRNGKey(0), num_columns=4)
    np.testing.assert_array_equal(ts, [0, 3, 7, 10])
    assert len(rows) == 3 and labels == ["#0", "#1", "#2"]
    for i, row in enumerate(rows):
        ref = np.concatenate([blur64(x0[i:i + 1], t) for t in ts])
        np.testing.assert_allclose(row, ref, atol=1e-6)
    path = forward_pictures.save_forward_strip(tmp_path / "f.png", process, x0, key=jax.random.PRNGKey(0))
    from PIL import Image

    assert Image.open(path).size[0] > 8 * IMG


def test_forward_rows_gaussian_draw_several_noises():
    process = GaussianProcess(make_schedule("cosine", 100))
    x0 = digits(n=2)
    rows, labels, ts = forward_pictures.forward_rows(process, x0, key=jax.random.PRNGKey(0), num_columns=5)
    assert len(rows) == 6 and labels[1] == "#0 draw 2"
    np.testing.assert_array_equal(rows[0][0], x0[0])  # t = 0: σ_0 = 0
    assert not np.allclose(rows[0][-1], rows[1][-1])  # independent noise per draw
    # x_T is nearly N(0, 1) whatever x0 is
    assert abs(float(np.std(np.stack([r[-1] for r in rows]))) - 1.0) < 0.1


def test_forward_strip_of_an_interpolation_takes_its_end_images_from_end_source(tmp_path, monkeypatch):
    import runpy

    config = runpy.run_path("configs/cold_animorph.py")["get_config"]()
    seen = {}

    def capture(path, process, x0, **kw):
        seen.update(kw, process=process, x0=np.asarray(x0))
        return str(path)

    monkeypatch.setattr(forward_pictures, "save_forward_strip", capture)
    forward_pictures.forward_strip_for_config(config, tmp_path / "f.png", num_images=3, seed=0)
    d = config.data
    size, ch = int(d.image_size), int(d.channels)

    def images(spec):
        src = load_source(spec, split=d.eval_split, image_size=size, channels=ch)
        return normalize(src.get(np.arange(len(src))))

    start, end = images("digits:classes=0-4"), images("digits:classes=5-9")
    aux = np.asarray(seen["aux"])
    assert aux.shape == seen["x0"].shape == (3, size, size, ch)
    for x, z in zip(seen["x0"], aux):  # x0 from data.source, z from data.end_source
        assert np.any(np.all(start == x, axis=(1, 2, 3))) and np.any(np.all(end == z, axis=(1, 2, 3)))
    assert seen["title"].startswith("cold diffusion, interpolate(") and seen["title"].endswith("T=200")


# ---------------------------------------------------------------------------------------------
# stored prior
# ---------------------------------------------------------------------------------------------


def small_config(degradation="blur", T=3, **params):
    import runpy

    c = runpy.run_path("configs/default.py")["get_config"]()
    c.diffusion.degradation = degradation
    c.diffusion.T = T
    c.diffusion.degradation_params = ml_collections.ConfigDict(params)
    return c


def test_prior_store_fit_load_and_refit(tmp_path, monkeypatch):
    cfg = small_config("blur", 20, kernel_size=11, std=7.0, routine="constant", padding="circular")
    prior = prior_store.fit_and_store_prior(cfg, str(tmp_path))
    assert prior.kind == "blur_mean" and (tmp_path / "prior.npz").exists()
    # blur_mean of one component: the mean of the per-image means of the training images
    train = load_source("digits", split="train", image_size=IMG, channels=1)
    ref = normalize(train.get(np.arange(len(train)))).astype(np.float64).mean(axis=(1, 2)).mean(0)
    np.testing.assert_allclose(prior.arrays["means"][0], ref, rtol=1e-6)
    assert float(prior.arrays["noise"]) == pytest.approx(cfg.sample.prior_noise)

    def boom(*a, **k):
        raise AssertionError("refitted although a matching prior is stored")

    monkeypatch.setattr(prior_store, "fit_prior_for_run", boom)
    again = prior_store.load_or_fit_prior(cfg, str(tmp_path))
    for k, v in prior.arrays.items():
        np.testing.assert_array_equal(again.arrays[k], v)
    monkeypatch.undo()
    cfg.diffusion.degradation, cfg.diffusion.degradation_params = "identity", {}  # another process: refit, overwrite
    cfg.diffusion.schedule = "linear"
    assert prior_store.load_or_fit_prior(cfg, str(tmp_path)).kind == "gaussian"
    assert prior_store.load_prior(str(tmp_path)).kind == "gaussian"


def test_superres_prior_matches_the_end_state():
    cfg = small_config("superres", 3, method="bicubic")
    process = ColdProcess(make_degradation("superres", T=3, image_size=IMG, channels=1, method="bicubic"))
    prior = prior_store.fit_prior_for_run(cfg, process)
    train = load_source("digits", split="train", image_size=IMG, channels=1)
    x = jnp.asarray(normalize(train.get(np.arange(len(train)))))
    # independent: the antialiased cubic resize straight to 2×2 (16 / 2^3), as jax.image.resize computes it
    low = np.asarray(jax.image.resize(x, (x.shape[0], 2, 2, 1), "cubic", antialias=True), np.float64)
    low = low.reshape(len(train), -1)
    w, mu = prior.arrays["weights"], prior.arrays["means"]
    np.testing.assert_allclose((w[:, None] * mu).sum(0), low.mean(0), atol=1e-6)  # EM keeps the data mean
    draws = np.asarray(prior.sample(jax.random.PRNGKey(0), 4))
    np.testing.assert_array_equal(draws, np.repeat(np.repeat(draws[:, ::8, ::8], 8, 1), 8, 2))  # 8×8 blocks


def test_restoration_only_configs_have_no_prior(tmp_path):
    cfg = small_config("inpaint", 5)
    assert not build_process(cfg).can_generate
    assert build_process(small_config("blur", 5)).can_generate
    assert prior_store.fit_and_store_prior(cfg, str(tmp_path)) is None
    with pytest.raises(ValueError, match="inpaint"):
        prior_store.load_or_fit_prior(cfg, str(tmp_path))


def test_generation_aux_matches_the_end_state():
    key = jax.random.PRNGKey(0)
    x0 = jnp.asarray(digits(n=4))
    fade = ColdProcess(make_degradation("fade", T=5, image_size=IMG, channels=1, centered=False))
    x_T = fade.prior(key, x0.shape, aux=fade.sample_aux(key, x0))
    aux = fade.generation_aux(x_T, jax.random.PRNGKey(1))
    np.testing.assert_allclose(np.asarray(fade.mean(x0, 5, aux)), np.asarray(x_T), atol=1e-5)
    interp = ColdProcess(make_degradation("interpolate", T=50, image_size=IMG, channels=1))
    z = jax.random.normal(key, x0.shape)
    aux = interp.generation_aux(z, key)
    np.testing.assert_array_equal(np.asarray(aux), np.asarray(z))
    np.testing.assert_allclose(np.asarray(interp.mean(x0, 50, aux)), np.asarray(z), atol=0.05)
    assert blur_process().generation_aux(x0, key) is None
    assert GaussianProcess(make_schedule("linear", 10)).generation_aux(x0, key) is None
