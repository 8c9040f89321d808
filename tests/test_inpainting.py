"""Inpainting with a known region (jaxdiff.sampling.inpainting) and sample.py --mode=fill."""
import os
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax.sharding import NamedSharding, PartitionSpec as P

from helpers.arrays import uniform_images
from jaxdiff import degradations, sampling
from jaxdiff.processes import schedules
from jaxdiff.processes import ColdProcess, GaussianProcess
from jaxdiff.sampling import inpainting as ip

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
BETA0, BETA1 = 1e-4, 2e-2


def abar64(T):
    """Independent float64 ᾱ_0 … ᾱ_T of the DDPM linear schedule."""
    return np.cumprod(np.concatenate([[1.0], 1.0 - np.linspace(BETA0, BETA1, T)]))


@pytest.fixture(scope="module")
def g10():
    return GaussianProcess(schedules.linear(10))


@pytest.fixture(scope="module")
def g50():
    return GaussianProcess(schedules.linear(50))


def x0_oracle(params, x, t):
    """x0-prediction of the true image (params)."""
    del x, t
    return params


def eps_net(params, x, t):
    """A network that knows nothing (ε-prediction)."""
    return params * jnp.tanh(x)


def images(seed, shape=(4, 8, 8, 1)):
    return uniform_images(seed, shape)


def half_mask(shape=(4, 8, 8, 1)):
    """Left half known (1), right half unknown (0)."""
    m = np.zeros(shape, np.float32)
    m[:, :, : shape[2] // 2] = 1.0
    return m


# ------------------------------------------------------------------------------------------- the pair list


def test_repaint_pairs_hand_built():
    # T = N = 10, j = 2, r = 2: jump points k = 1, 3, 5, 7 (k + j ≤ N), each segment walked twice
    want = [(10, 9), (9, 8), (8, 7), (7, 9), (9, 8), (8, 7), (7, 6), (6, 5), (5, 7), (7, 6), (6, 5), (5, 4),
            (4, 3), (3, 5), (5, 4), (4, 3), (3, 2), (2, 1), (1, 3), (3, 2), (2, 1), (1, 0)]
    pairs = ip.repaint_pairs(np.arange(10, -1, -1), (2, 2))
    np.testing.assert_array_equal(pairs, np.array(want))
    assert pairs.dtype == np.int32 and ip.down_steps(pairs) == 18  # 10 + (2 − 1)·2·⌊9/2⌋
    # strided N = 5 over [10, 8, 6, 4, 2, 0], j = 2, r = 3: jump points k = 1, 3 (t = 2, 6), three walks each
    want = [(10, 8), (8, 6), (6, 10), (10, 8), (8, 6), (6, 10), (10, 8), (8, 6), (6, 4), (4, 2), (2, 6), (6, 4),
            (4, 2), (2, 6), (6, 4), (4, 2), (2, 0)]
    pairs = ip.repaint_pairs([10, 8, 6, 4, 2, 0], (2, 3))
    np.testing.assert_array_equal(pairs, np.array(want))
    assert ip.down_steps(pairs) == 13  # 5 + 2·2·⌊4/2⌋
    # no jumps, and r = 1 (each segment once): the plain descent
    plain = [(10, 8), (8, 6), (6, 4), (4, 2), (2, 0)]
    np.testing.assert_array_equal(ip.repaint_pairs([10, 8, 6, 4, 2, 0]), plain)
    np.testing.assert_array_equal(ip.repaint_pairs([10, 8, 6, 4, 2, 0], (2, 1)), plain)
    # RePaint's own setting: 250 steps, j = r = 10 → 250 + 9·10·24 network calls
    assert ip.down_steps(ip.repaint_pairs(np.arange(250, -1, -1), (10, 10))) == 2410


@pytest.mark.parametrize("jumps,match", [((0, 2), "two integers"), ((2,), "two integers"), ((2, 0), "two integers"),
                                         ((2.5, 2), "two integers"), ((10, 2), "below the number of steps N=10"),
                                         ("2,2", "two integers")])
def test_check_jumps(jumps, match):
    with pytest.raises(ValueError, match=match):
        ip.check_jumps(jumps, 10)
    assert ip.check_jumps((9, 3), 10) == (9, 3) and ip.check_jumps(None, 10) is None


# ------------------------------------------------------------------------------------------- the renoise step


@pytest.mark.parametrize("t,t_up", [(1, 2), (3, 5), (20, 50), (0, 7)])
def test_renoise_mean_and_variance_match_the_closed_form(g50, t, t_up):
    ab = abar64(50)
    ratio = ab[t_up] / ab[t]
    x = jnp.broadcast_to(jnp.linspace(-1.0, 1.0, 16).reshape(1, 4, 4, 1), (4000, 4, 4, 1))
    out = np.asarray(ip.renoise(g50, x, jnp.full((4000,), t), jnp.full((4000,), t_up), jax.random.key(t_up)),
                     np.float64)
    mean, var = out.mean(0), out.var(0)  # per pixel over 4000 draws
    np.testing.assert_allclose(mean, np.sqrt(ratio) * np.asarray(x[0], np.float64),
                               atol=5 * np.sqrt((1 - ratio) / 4000))
    np.testing.assert_allclose(var, np.full_like(var, 1 - ratio), rtol=5 * np.sqrt(2 / 4000))


# ------------------------------------------------------------------------------------------- the loop


@pytest.mark.parametrize("corrector", ["ddpm", "ddim"])
@pytest.mark.parametrize("jumps", [None, (2, 2)])
def test_oracle_fills_the_hole_and_keeps_the_known_region(g10, corrector, jumps):
    x0 = images(1)
    m = half_mask()
    # the hole of the known image holds junk: it must never reach the result
    known = jnp.where(m > 0.5, x0, 0.37)
    x_T = jax.random.normal(jax.random.key(2), x0.shape)
    res = ip.inpaint(x0_oracle, x0, jax.random.key(3), x_T, known, m, process=g10, corrector=corrector,
                     prediction="x0", jumps=jumps, eta=0.5)
    np.testing.assert_array_equal(res.x0, x0)


def test_known_region_is_exact_whatever_the_network(g50):
    x0 = images(4)
    m = half_mask()
    x_T = jax.random.normal(jax.random.key(5), x0.shape)
    out = np.asarray(ip.inpaint(eps_net, 0.8, jax.random.key(6), x_T, x0, m, process=g50, corrector="ddpm",
                                timesteps=10, jumps=(3, 2)).x0)
    k = m > 0.5
    np.testing.assert_array_equal(out[np.broadcast_to(k, out.shape)], np.asarray(x0)[np.broadcast_to(k, out.shape)])
    hole = ~np.broadcast_to(k, out.shape)
    assert np.abs(out[hole] - np.asarray(x0)[hole]).mean() > 0.1  # the network knows nothing: the hole differs


@pytest.mark.parametrize("net,params,prediction,which", [(x0_oracle, None, "x0", "all"), (eps_net, 0.8, "eps", "known")])
def test_trajectory_follows_q_xt_given_x0(g10, net, params, prediction, which):
    """Every state (after down and up pairs alike) has x_t ~ N(√ᾱ_t x0, 1 − ᾱ_t): on the known pixels for any
    network (x_T pure noise, off q: its known pixels are replaced first); everywhere for the oracle with ddpm
    started from x_T ~ q(x_T | x0) (ᾱ_10 ≈ 0.9 here), since its posterior with the true x0 keeps q's marginals."""
    ab = abar64(10)
    B = 512
    x0 = images(7, (B, 4, 4, 1))
    m = np.zeros((B, 4, 4, 1), np.float32)
    m[:, :2] = 1.0
    noise = np.asarray(jax.random.normal(jax.random.key(8), x0.shape), np.float64)
    on_q = np.sqrt(ab[10]) * np.asarray(x0, np.float64) + np.sqrt(1 - ab[10]) * noise
    x_T = jnp.asarray(on_q if which == "all" else noise, jnp.float32)
    res = ip.inpaint(net, x0 if params is None else params, jax.random.key(9), x_T, x0, m, process=g10,
                     corrector="ddpm", prediction=prediction, jumps=(2, 2), return_states=True)
    ts = np.asarray(res.states["t"])
    np.testing.assert_array_equal(ts, ip.repaint_pairs(np.arange(10, -1, -1), (2, 2))[:, 1])
    sel = np.broadcast_to(m > 0.5 if which == "known" else np.ones_like(m, bool), x0.shape)
    x0n = np.asarray(x0, np.float64)
    for p, t in enumerate(ts[:-1]):
        z = (np.asarray(res.states["x_t"][p], np.float64) - np.sqrt(ab[t]) * x0n) / np.sqrt(1 - ab[t])
        z = z[sel]
        n = z.size
        assert abs(z.mean()) < 5 / np.sqrt(n), (p, t, z.mean())
        assert abs(z.var() - 1) < 5 * np.sqrt(2 / n), (p, t, z.var())
    np.testing.assert_array_equal(np.asarray(res.states["x_t"][-1])[sel], x0n.astype(np.float32)[sel])


def test_all_ones_mask_returns_the_input(g50):
    x0 = images(10)
    x_T = jax.random.normal(jax.random.key(11), x0.shape)
    out = ip.inpaint(eps_net, 0.8, jax.random.key(12), x_T, x0, np.ones((1, 8, 8, 1)), process=g50,
                     corrector="ddpm", timesteps=5, jumps=(2, 2)).x0
    np.testing.assert_array_equal(out, x0)


@pytest.mark.parametrize("corrector,eta", [("ddpm", 0.0), ("ddim", 0.7)])
def test_all_zero_mask_is_plain_sampling_with_the_same_keys(g50, corrector, eta):
    x0 = images(13)
    x_T = jax.random.normal(jax.random.key(14), x0.shape)
    key = jax.random.key(15)
    got = ip.inpaint(eps_net, 0.8, key, x_T, x0, jnp.zeros((4, 8, 8, 1)), process=g50, corrector=corrector,
                     timesteps=10, eta=eta).x0
    want = sampling.sample(eps_net, 0.8, key, x_T, process=g50, corrector=corrector, timesteps=10, eta=eta).x0
    np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
    other = sampling.sample(eps_net, 0.8, jax.random.key(16), x_T, process=g50, corrector=corrector, timesteps=10,
                            eta=eta).x0
    assert float(jnp.max(jnp.abs(other - want))) > 0.05  # a different key moves it: the keys are really shared


def test_network_calls_are_the_down_pairs_only(g10):
    calls = []

    def counted(params, x, t):
        jax.debug.callback(lambda: calls.append(1))
        return eps_net(params, x, t)

    x0 = images(17)
    x_T = jax.random.normal(jax.random.key(18), x0.shape)
    out = ip.inpaint(counted, 0.8, jax.random.key(19), x_T, x0, half_mask(), process=g10, corrector="ddim",
                     jumps=(2, 2))
    jax.block_until_ready(out.x0)
    jax.effects_barrier()
    assert len(calls) == 18  # T = 10 steps + (2 − 1)·2·4 resampled ones; the 4 up pairs call no network


def test_one_program_for_new_values(g50):
    traces = []

    def den(params, x, t):
        traces.append(1)
        return eps_net(params, x, t)

    x0 = images(20)
    x_T = jax.random.normal(jax.random.key(21), x0.shape)
    outs = []
    for ts, m in (([50, 30, 10, 0], half_mask()), ([40, 21, 7, 0], 1 - half_mask())):
        outs.append(ip.inpaint(den, 0.8, jax.random.key(0), x_T, x0, m, process=g50, corrector="ddpm",
                               timesteps=ts, jumps=(1, 2)).x0)
    assert len(traces) == 1  # the denoiser is traced once: one scan, one cond branch, values traced
    assert float(jnp.max(jnp.abs(outs[0] - outs[1]))) > 1e-2
    # the program: one scan over the pairs (no per-step Python loop), a cond in its body (the up pairs skip the net)
    jaxpr = jax.make_jaxpr(lambda x: ip.known_region_loop(
        den, 0.8, jax.random.key(0), x, ip.repaint_pairs([50, 30, 10, 0], (1, 2)), (x0, half_mask()), process=g50,
        corrector="ddpm", prediction="eps", clip=None, eta=0.0, aux=None, return_every=0).x0)(x_T)
    top = [e.primitive.name for e in jaxpr.jaxpr.eqns]
    assert top.count("scan") == 1, top
    body = next(e for e in jaxpr.jaxpr.eqns if e.primitive.name == "scan").params["jaxpr"].jaxpr
    assert [e.primitive.name for e in body.eqns].count("cond") == 1


def test_sharded_equals_single_device(g50):
    n = jax.device_count()
    assert n == 8
    mesh = jax.make_mesh((n,), ("data",), axis_types=(jax.sharding.AxisType.Auto,))
    sh = NamedSharding(mesh, P("data"))
    shape = (16, 8, 8, 1)
    x0 = images(22, shape)
    x_T = jax.random.normal(jax.random.key(23), shape)
    m = half_mask(shape)
    args = dict(process=g50, corrector="ddpm", timesteps=6, jumps=(2, 2))
    single = ip.inpaint(eps_net, 0.8, jax.random.key(24), x_T, x0, m, **args).x0
    put = lambda a: jax.device_put(jnp.asarray(a), sh)  # noqa: E731
    sharded = ip.inpaint(eps_net, 0.8, jax.random.key(24), put(x_T), put(x0), put(m), **args).x0
    assert len(sharded.sharding.device_set) == n
    np.testing.assert_allclose(sharded, single, rtol=0, atol=1e-6)


@pytest.mark.parametrize("kw,match", [
    (dict(corrector="dpmpp_2m", jumps=(2, 2), timesteps=10), r"corrector 'dpmpp_2m' carries a history.*jumps"),
    (dict(corrector="nope"), r"corrector must be one of .*'ddim'"),
    (dict(mask=np.ones((4, 8, 7, 1))), r"mask of shape \(4, 8, 7, 1\) does not broadcast to the images' \(4, 8, 8, 1\)"),
    (dict(mask=np.ones((8, 8))), "does not broadcast"),
    (dict(x0_known=np.zeros((4, 8, 8, 3))), "x0_known must have x_T's shape"),
    (dict(jumps=(10, 2), timesteps=10), "below the number of steps N=10"),
    (dict(prediction="score"), "prediction must be one of"),
    (dict(eta=-1.0), "eta must be"),
])
def test_validates_before_tracing(g50, kw, match):
    traces = []

    def den(params, x, t):
        traces.append(1)
        return eps_net(params, x, t)

    args = dict(x0_known=np.zeros((4, 8, 8, 1)), mask=half_mask(), process=g50)
    args.update(kw)
    x0k, m = args.pop("x0_known"), args.pop("mask")
    with pytest.raises(ValueError, match=match):
        ip.inpaint(den, 0.8, jax.random.key(0), jnp.zeros((4, 8, 8, 1)), x0k, m, **args)
    assert not traces


def test_cold_process_is_told_to_restore():
    deg = degradations.make_degradation("decolor", T=10, image_size=8, channels=3)
    with pytest.raises(ValueError, match=r"needs D = identity and σ_t > 0.*got cold diffusion, decolor.*--mode=restore"):
        ip.inpaint(eps_net, 0.8, jax.random.key(0), jnp.zeros((2, 8, 8, 3)), jnp.zeros((2, 8, 8, 3)),
                   np.ones((2, 8, 8, 1)), process=ColdProcess(deg), prediction="x0")


class ClassImages:
    """A class-conditional x0-predictor: o(x, t, c) = P[c], its own image per class (row K = the null label)."""

    num_classes = 3

    def __init__(self):
        self.traces = 0

    def apply(self, variables, x, t, labels=None, *, train=False):
        self.traces += 1
        lab = jnp.full((x.shape[0],), self.num_classes, jnp.int32) if labels is None else labels
        return variables["params"][lab]


def test_a_guided_denoiser_drops_in(g10):
    """guidance.guided_params' (denoiser, (params, labels, w)): the hole is the guided x̂0 of the last step,
    (1 + w) P[c] − w P[∅] (float64 by hand); new labels and w reuse the program."""
    from jaxdiff.sampling import guidance

    model = ClassImages()
    P = np.asarray(jax.random.uniform(jax.random.key(30), (4, 8, 8, 1), minval=-1, maxval=1), np.float32)
    x0 = images(31)
    m = half_mask()
    x_T = jax.random.normal(jax.random.key(32), x0.shape)
    hole = np.broadcast_to(m < 0.5, x0.shape)
    for labels, w in (([0, 2, 1, 0], 1.5), ([2, 2, 1, 1], 0.25)):
        den, params = guidance.guided_params(model, jnp.asarray(P), jnp.asarray(labels, jnp.int32), w)
        out = np.asarray(ip.inpaint(den, params, jax.random.key(33), x_T, x0, m, process=g10, corrector="ddpm",
                                    prediction="x0", timesteps=5, jumps=(2, 2)).x0)
        want = (1 + w) * P.astype(np.float64)[labels] - w * P.astype(np.float64)[3]
        np.testing.assert_allclose(out[hole], want[hole], rtol=0, atol=1e-5)
        np.testing.assert_array_equal(out[~hole], np.asarray(x0)[~hole])
    assert model.traces == 1


# ------------------------------------------------------------------------------------------- sample.py --mode=fill


def _png(path, array_u8):
    from PIL import Image

    Image.fromarray(np.asarray(array_u8, np.uint8)).save(path)
    return str(path)


def test_inpaint_options_refuse_bad_flags_before_anything_is_loaded(tmp_path):
    from jaxdiff import cli

    wd = str(tmp_path / "missing")
    png = _png(tmp_path / "m.png", np.full((16, 16), 255))
    for kw, match in (
        (dict(mode="fill"), "--mode=fill needs --mask="),
        (dict(mask=png), "--mask is for --mode=fill, not --mode=generate"),
        (dict(mode="restore", jumps="2,2"), "--jumps is for --mode=fill"),
        (dict(mode="fill", mask=str(tmp_path / "nope.png")), r"--mask='.*nope.png': no such file"),
        (dict(mode="fill", mask=str(tmp_path / "m.txt")), "expected a .png/.jpg image or an .npz/.npy"),
        (dict(mode="fill", mask=png, jumps="10"), r"--jumps='10': expected j,r, two integers >= 1"),
        (dict(mode="fill", mask=png, jumps="0,3"), r"--jumps='0,3'"),
        (dict(mode="fill", mask=png, input="png:/x"), "expected folder:<path> or npz:<path>"),
        (dict(mode="generate", input="npz:/x"), r"--input is for --mode=restore .* or --mode=fill"),
        (dict(mode="fill", mask=png, labels="0-9"), r"--labels='0-9' is for --mode=generate .* takes --label=c"),
    ):
        with pytest.raises(cli.UsageError, match=match):
            cli.SampleOptions(workdir=wd, **kw)
    o = cli.SampleOptions(workdir=wd, mode="fill", mask=png, jumps=" 10, 3", label=2, guidance=1.5)
    assert o.jump_pair == (10, 3) and o.label_classes == (2,) and not os.path.exists(wd)


def test_read_mask_shapes_values_and_refusals(tmp_path):
    from jaxdiff.cli import UsageError
    from jaxdiff.cli.fill import read_mask

    half = np.zeros((8, 8), np.uint8)
    half[:, :4] = 200  # ≥ 0.5 · 255: kept
    half[0, 0] = 100  # < 0.5: filled
    m = read_mask(_png(tmp_path / "half.png", half), (8, 8, 3))
    want = (half >= 128).astype(np.float32)[None, :, :, None]
    np.testing.assert_array_equal(m, want)
    # npz: one per image (bool, 0‥255 integers, floats), broadcast over channels
    per = np.zeros((3, 8, 8), bool)
    per[:, 2:6, 2:6] = True
    for arr in (per, per.astype(np.uint8) * 255, per.astype(np.float32) * 0.9):
        np.savez(tmp_path / "per.npz", mask=arr)
        np.testing.assert_array_equal(read_mask(str(tmp_path / "per.npz"), (8, 8, 1)), per[..., None].astype(np.float32))
    np.save(tmp_path / "one.npy", per[0])
    assert read_mask(str(tmp_path / "one.npy"), (8, 8, 1)).shape == (1, 8, 8, 1)
    for path, shape, match in (
        (_png(tmp_path / "big.png", np.full((16, 12), 255)), (8, 8, 1),
         r"--mask='.*big.png': the mask is 16×12 but the images are 8×8"),
        (_png(tmp_path / "zeros.png", np.zeros((8, 8))), (8, 8, 1), "is all 0 .* plain generation"),
        (_png(tmp_path / "ones.png", np.full((8, 8), 255)), (8, 8, 1), "is all 1 .* nothing to fill"),
        (str(tmp_path / "missing.png"), (8, 8, 1), "no such file"),
    ):
        with pytest.raises(UsageError, match=match):
            read_mask(path, shape)
    (tmp_path / "bad.png").write_bytes(b"not a png")
    with pytest.raises(UsageError, match=r"bad.png': cannot read it as an image"):
        read_mask(str(tmp_path / "bad.png"), (8, 8, 1))
    np.savez(tmp_path / "keys.npz", a=per, b=per)
    with pytest.raises(UsageError, match=r"expected an array 'mask'.*found keys \['a', 'b'\]"):
        read_mask(str(tmp_path / "keys.npz"), (8, 8, 1))
    both = per.copy()
    both[1] = True
    np.savez(tmp_path / "both.npz", masks=both)
    with pytest.raises(UsageError, match="mask 1 of 3 is all 1"):
        read_mask(str(tmp_path / "both.npz"), (8, 8, 1))


def test_a_cold_run_is_told_to_restore(tmp_path):
    import types

    from jaxdiff import cli

    deg = degradations.make_degradation("blur", T=6, image_size=8, channels=1)
    run = types.SimpleNamespace(process=ColdProcess(deg), config=None)
    o = cli.SampleOptions(workdir=str(tmp_path), mode="fill", mask=_png(tmp_path / "m.png", np.eye(8) * 255))
    with pytest.raises(cli.UsageError, match=r"^--mode=fill: .*needs D = identity.*got cold diffusion.*--mode=restore"):
        o.resolve(run)


def tiny_gaussian():
    """configs/ddim_cond.py (class-conditional: it also samples unconditionally, with the null label) with a tiny
    UNet, T = 20, 5 DDIM steps, trained for 1 step."""
    import runpy

    c = runpy.run_path(os.path.join(ROOT, "configs", "ddim_cond.py"))["get_config"]()
    m, t = c.model, c.train
    m.ch, m.ch_mult, m.num_res_blocks, m.attn_resolutions, m.num_groups = 8, (1,), 1, (), 4
    t.batch_size, t.num_steps, t.checkpoint_every, t.log_every, t.warmup_steps = 16, 1, 1, 1, 0
    t.num_sample_images = 0
    c.diffusion.T, c.sample.steps = 20, 5
    return c


@pytest.fixture(scope="module")
def gaussian_workdir(tmp_path_factory):
    from jaxdiff.train.loop import train_and_evaluate

    wd = str(tmp_path_factory.mktemp("inpaint_run"))
    train_and_evaluate(tiny_gaussian(), wd)
    return wd


@pytest.mark.slow
def test_sample_py_inpaint_end_to_end(gaussian_workdir, tmp_path):
    from PIL import Image

    from jaxdiff import cli
    from jaxdiff.cli.common import held_out_images

    wd, out = gaussian_workdir, str(tmp_path / "out")
    keep = np.zeros((16, 16), np.uint8)
    keep[:, :8] = 255  # left half kept
    png = _png(tmp_path / "left.png", keep)
    # the real entry point: flags → run → files, exit code 0
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={wd}", "--mode=fill",
                        f"--mask={png}", "--num=4", "--steps=3", f"--out={out}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 0, r.stderr[-3000:]
    names = sorted(os.listdir(out))
    stem = names[0][: -len(".npz")]
    assert names == [stem + ".npz", stem + ".png"]
    assert stem.startswith("fill_step1_mask-left-") and stem.endswith("_ddim_3steps_n4"), stem
    z = np.load(os.path.join(out, stem + ".npz"))
    original = held_out_images(__import__("jaxdiff.experiment", fromlist=["x"]).load_run(wd).config, 4)
    np.testing.assert_array_equal(z["original"], original)
    left = np.s_[:, :, :8]
    np.testing.assert_array_equal(z["inpainted"][left], original[left])  # the known half, exactly
    assert np.abs(z["inpainted"][:, :, 8:] - original[:, :, 8:]).max() > 1e-3
    assert int(z["network_calls"]) == 3 and z["mask"].shape == (4, 16, 16, 1)
    w, h = Image.open(os.path.join(out, stem + ".png")).size
    assert w > 4 * 16 and h > 3 * 16  # three rows of four
    # RePaint jumps, one mask per image from an npz, --input images: in-process, names carry every option
    per = np.zeros((2, 16, 16), bool)
    per[0, :8] = True
    per[1, 4:12, 4:12] = True
    per[1] = ~per[1]  # a centred square hole
    np.savez(tmp_path / "per.npz", mask=per)
    np.savez(tmp_path / "imgs.npz", images=(original[:2] + 1) / 2)
    files = cli.run(workdir=wd, mode="fill", mask=str(tmp_path / "per.npz"), input=f"npz:{tmp_path}/imgs.npz",
                    steps=4, jumps="2,3", corrector="ddpm", seed=1, out=out)
    z = np.load(files["npz"])
    assert "_jumps2-3_" in files["npz"] and "_ddpm_4steps_" in files["npz"] and "_input-imgs-" in files["npz"]
    assert files["npz"].endswith("_n2_seed1.npz")
    assert int(z["network_calls"]) == 4 + 2 * 2 * 1 and "original" not in z and z["known"].shape == (2, 16, 16, 1)
    known = per[..., None]
    np.testing.assert_array_equal(z["inpainted"][known], z["known"][known])
    # a label (and guidance) for every image: the name says so, the known region stays exact
    files = cli.run(workdir=wd, mode="fill", mask=png, num=2, steps=3, label=3, guidance=2.0, out=out)
    assert "_ddim_3steps_label3_w2_n2" in files["npz"]
    z = np.load(files["npz"])
    np.testing.assert_array_equal(z["labels"], [3, 3])
    np.testing.assert_array_equal(z["inpainted"][left], z["original"][left])
    # the failures: one line each, before anything compiles
    for kw, match in ((dict(mask=_png(tmp_path / "small.png", keep[:8, :8])),
                       r"the mask is 8×8 but the images are 16×16"),
                      (dict(mask=png, corrector="dpmpp_2m", jumps="2,3", steps=4),
                       "--corrector='dpmpp_2m' carries a history"),
                      (dict(mask=png, jumps="5,2", steps=5), "below the number of steps N=5"),
                      (dict(mask=str(tmp_path / "per.npz"), num=3), "holds 2 masks for 3 images"),
                      (dict(mask=png, label=10), "label 10 does not exist")):
        with pytest.raises(cli.UsageError, match=match):
            cli.run(workdir=wd, mode="fill", out=out, **kw)
    r = subprocess.run([sys.executable, os.path.join(ROOT, "sample.py"), f"--workdir={wd}", "--mode=fill",
                        f"--mask={tmp_path / 'small.png'}", f"--out={out}"],
                       capture_output=True, text=True, cwd=ROOT, timeout=600)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines()[-1].startswith("sample.py: --mask=") and "16×16" in r.stderr


def test_the_old_mode_names_say_what_they_were_renamed_to():
    from jaxdiff import cli

    for old, new in (("inpaint", "fill"), ("interpolate", "blend")):
        with pytest.raises(cli.UsageError, match=rf"--mode={old}: renamed --mode={new} .*'{old}' is one"):
            cli.SampleOptions(workdir="w", mode=old)
    from jaxdiff.cli.options import MODES
    from jaxdiff.degradations import DEGRADATIONS

    assert not set(MODES) & set(DEGRADATIONS)  # one name, one thing
