"""Gradient accumulation (train.grad_accum_steps): k micro-batches give the large batch's update.

A tiny config (8×8 digits, Gaussian T = 10, a one-level UNet of width 8), two devices, a few steps.
"""
import os
import signal

import numpy as np
import pytest

import jax
import jax.numpy as jnp

from helpers.configs import tiny_gaussian
from jaxdiff import data as data_lib
from jaxdiff import experiment
from jaxdiff.config import ConfigError, validate_config
from jaxdiff.train import loop as training
from jaxdiff.train import step as step_lib

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def tiny_config(**train):
    return tiny_gaussian(**{**dict(batch_size=16, num_steps=4, log_every=2, checkpoint_every=2, keep_checkpoints=3,
                                   num_sample_images=0, grad_clip_norm=0.0), **train})


def _flat(tree):
    return np.concatenate([np.asarray(jax.device_get(x), np.float64).ravel() for x in jax.tree_util.tree_leaves(tree)])


def test_accumulated_gradient_of_a_least_squares_loss_is_the_closed_form():
    # loss(w) = mean_b (x_b · w − y_b)²  →  ∇ = (2/B) Xᵀ(Xw − y), computed here in float64 NumPy.
    rng = np.random.default_rng(0)
    X, y, w = rng.normal(size=(12, 5)), rng.normal(size=12), rng.normal(size=5)

    def loss_fn(params, mb, key):
        return jnp.mean(jnp.square(mb["x"] @ params["w"] - mb["y"]))

    batch = {"x": jnp.asarray(X, jnp.float32), "y": jnp.asarray(y, jnp.float32)}
    want_loss = np.mean((X @ w - y) ** 2)
    want_grad = 2.0 / 12 * X.T @ (X @ w - y)
    for k, unroll in ((1, 1), (2, 1), (3, True), (4, 1), (4, True), (6, 2), (12, 1)):
        loss, grads = jax.jit(lambda p, b: step_lib.accumulated_value_and_grad(
            loss_fn, p, b, jax.random.PRNGKey(0), steps=k, unroll=unroll))({"w": jnp.asarray(w, jnp.float32)}, batch)
        np.testing.assert_allclose(float(loss), want_loss, rtol=2e-6)
        np.testing.assert_allclose(np.asarray(grads["w"]), want_grad, rtol=1e-5, atol=1e-6)


@pytest.fixture(scope="module")
def setup():
    cfg = tiny_config()
    model, process = experiment.build_model(cfg), experiment.build_process(cfg)
    mesh = experiment.make_mesh(jax.devices()[:2])
    src = data_lib.load_source("digits", split="train", image_size=8, channels=1)
    it = data_lib.iterate_batches(src, global_batch_size=16, seed=0, process_index=0, process_count=1)
    batches = [next(it) for _ in range(3)]
    return cfg, model, process, mesh, batches


def _train(setup, k):
    cfg, model, process, mesh, batches = setup
    cfg = tiny_config(grad_accum_steps=k)
    state = step_lib.init_train_state(cfg, model, mesh=mesh)
    step = step_lib.make_train_step(cfg, model, process, mesh=mesh, donate=False)
    losses = []
    for i, b in enumerate(batches):
        state, m = step(state, data_lib.to_global_array(b, mesh), i)
        assert m["loss"].dtype == jnp.float32
        losses.append(float(m["loss"]))
    return state, losses


def test_micro_batches_give_the_large_batch_parameters(setup):
    ref, ref_losses = _train(setup, 1)
    p_ref, e_ref = _flat(ref.params), _flat(ref.ema_params)
    p0 = _flat(step_lib.init_train_state(setup[0], setup[1], mesh=setup[3]).params)
    assert np.linalg.norm(p_ref - p0) > 1e-3 * np.linalg.norm(p0)  # the steps moved the parameters
    for k in (4,):  # 4 micro-batches of 4 examples, 2 per device (more k: the closed-form test above)
        st, losses = _train(setup, k)
        np.testing.assert_allclose(losses, ref_losses, rtol=1e-5)
        rel = np.linalg.norm(_flat(st.params) - p_ref) / np.linalg.norm(p_ref)
        assert rel <= 1e-5, (k, rel)
        assert np.linalg.norm(_flat(st.ema_params) - e_ref) / np.linalg.norm(e_ref) <= 1e-5
        assert int(st.step) == 3


def test_batch_must_split_into_micro_batches_over_the_devices():
    validate_config(tiny_config(batch_size=16, grad_accum_steps=4), num_devices=2)
    with pytest.raises(ConfigError) as e:
        validate_config(tiny_config(batch_size=12, grad_accum_steps=4), num_devices=2)
    msg = str(e.value)
    assert "train.batch_size=12" in msg and "train.grad_accum_steps" in msg and "4 × 2 = 8" in msg
    with pytest.raises(ConfigError, match=r"train\.grad_accum_steps=0"):
        validate_config(tiny_config(grad_accum_steps=0), num_devices=2)


@pytest.mark.slow
def test_accumulating_run_resumes_to_the_uninterrupted_result(tmp_path, monkeypatch):
    cfg = tiny_config(grad_accum_steps=2)
    full = training.train_and_evaluate(cfg, str(tmp_path / "full"))
    real = data_lib.iterate_batches

    def interrupting(*args, start_step=0, **kwargs):  # a real SIGTERM while step index 1 runs
        for i, b in enumerate(real(*args, start_step=start_step, **kwargs)):
            if start_step + i == 1:
                os.kill(os.getpid(), signal.SIGTERM)
            yield b

    with monkeypatch.context() as m:
        m.setattr(data_lib, "iterate_batches", interrupting)
        cut = training.train_and_evaluate(cfg, str(tmp_path / "cut"))
    assert int(cut.step) == 2
    resumed = training.train_and_evaluate(cfg, str(tmp_path / "cut"))
    assert int(resumed.step) == int(full.step) == 4
    for name in ("params", "ema_params", "opt_state"):
        np.testing.assert_array_equal(_flat(getattr(resumed, name)), _flat(getattr(full, name)), err_msg=name)
