"""Losses against float64 NumPy references and the closed forms of the SNR weightings."""
import numpy as np
import pytest

import jax.numpy as jnp

from jaxdiff import losses
from jaxdiff.degradations import make_degradation
from jaxdiff.processes import ColdProcess, GaussianProcess
from jaxdiff.processes.schedules import make_schedule


def _pair(seed=0, shape=(5, 4, 3, 2)):
    r = np.random.default_rng(seed)
    return r.normal(size=shape).astype(np.float32), r.normal(size=shape).astype(np.float32)


@pytest.mark.parametrize("kind", ["l1", "l2"])
def test_loss_is_pixel_mean_then_batch_mean(kind):
    o, y = _pair()
    d = o.astype(np.float64) - y
    per = (np.abs(d) if kind == "l1" else d**2).reshape(5, -1).mean(1)
    np.testing.assert_allclose(losses.per_example_loss(jnp.asarray(o), jnp.asarray(y), kind=kind), per, rtol=1e-6)
    np.testing.assert_allclose(losses.diffusion_loss(jnp.asarray(o), jnp.asarray(y), kind=kind), per.mean(), rtol=1e-6)
    w = np.array([0.0, 1.0, 2.0, 0.5, 3.0])
    np.testing.assert_allclose(
        losses.diffusion_loss(jnp.asarray(o), jnp.asarray(y), kind=kind, weights=jnp.asarray(w)),
        (w * per).mean(),
        rtol=1e-6,
    )


def test_loss_rejects_bad_arguments():
    o, y = _pair()
    with pytest.raises(ValueError, match="loss kind"):
        losses.diffusion_loss(o, y, kind="huber")
    with pytest.raises(ValueError, match="shape"):
        losses.diffusion_loss(o, y[:, :2])
    with pytest.raises(ValueError, match="weights"):
        losses.diffusion_loss(o, y, weights=jnp.ones(3))


def _ref_weights(snr, weighting, prediction, gamma=5.0):
    lam = {"snr": snr, "min_snr": np.minimum(snr, gamma), "truncated_snr": np.maximum(snr, 1.0)}[weighting]
    return {"eps": lam / snr, "x0": lam, "v": lam / (1.0 + snr)}[prediction]


@pytest.mark.parametrize("weighting", ["snr", "min_snr", "truncated_snr"])
@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_snr_weights_match_closed_form(weighting, prediction):
    T = 50
    proc = GaussianProcess(make_schedule("cosine", T))
    # independent float64 snr: ᾱ_t = Π (1 − β_s), β_s = min(1 − f(s)/f(s−1), 0.999) (Nichol & Dhariwal)
    s = 0.008
    tt = np.arange(T + 1) / T
    f = np.cos((tt + s) / (1 + s) * np.pi / 2) ** 2
    abar = np.cumprod(np.concatenate([[1.0], 1 - np.minimum(1 - (f[1:] / f[:-1]), 0.999)]))
    t = np.array([1, 2, 10, 25, 40, 49, 50])
    snr = abar[t] / (1 - abar[t])
    w = losses.loss_weights(proc, jnp.asarray(t), weighting=weighting, prediction=prediction)
    np.testing.assert_allclose(np.asarray(w), _ref_weights(snr, weighting, prediction), rtol=2e-4)


def test_weighting_properties():
    proc = GaussianProcess(make_schedule("linear", 100))
    t = jnp.arange(1, 101)
    # ε-prediction with λ = snr is the plain ε loss
    np.testing.assert_allclose(losses.loss_weights(proc, t, weighting="snr", prediction="eps"), 1.0, rtol=1e-5)
    # Min-SNR-5 on ε: min(snr, 5)/snr ≤ 1, equal to 1 where snr ≤ 5 (large t)
    w = np.asarray(losses.loss_weights(proc, t, weighting="min_snr", prediction="eps"))
    snr = np.exp(np.asarray(proc.schedule.log_snr[1:], np.float64))
    assert np.all(w <= 1 + 1e-6)
    np.testing.assert_allclose(w[snr <= 5], 1.0, rtol=1e-5)
    assert np.all(w[snr > 5.5] < 1)
    assert losses.loss_weights(proc, t, weighting="none", prediction="eps") is None
    # t = 0 (infinite SNR) stays finite
    w0 = losses.loss_weights(proc, jnp.zeros(3, jnp.int32), weighting="truncated_snr", prediction="v")
    assert np.all(np.isfinite(np.asarray(w0)))


def test_cold_process_takes_no_snr_weighting():
    deg = make_degradation("decolor", T=4, image_size=8, channels=3)
    proc = ColdProcess(deg)
    assert losses.loss_weights(proc, jnp.ones(2, jnp.int32), weighting="none", prediction="x0") is None
    with pytest.raises(ValueError, match="loss_weighting"):
        losses.loss_weights(proc, jnp.ones(2, jnp.int32), weighting="min_snr", prediction="x0")
    with pytest.raises(ValueError, match="loss_weighting"):
        losses.loss_weights(proc, jnp.ones(2, jnp.int32), weighting="p2", prediction="x0")
