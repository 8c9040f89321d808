"""Optimizer schedule, AdamW details and the EMA rule against closed forms."""
import math

import ml_collections
import numpy as np
import optax
import pytest

import jax
import jax.numpy as jnp

from jaxdiff.train.state import (
    TrainState,
    create_train_state,
    ema_decay_at,
    ema_update,
    make_lr_schedule,
    make_optimizer,
)


def _train_cfg(**kw):
    t = ml_collections.ConfigDict(
        dict(learning_rate=1e-2, warmup_steps=10, num_steps=100, weight_decay=0.0, grad_clip_norm=0.0)
    )
    t.update(kw)
    return t


def test_warmup_then_constant_closed_form():
    sched = make_lr_schedule(_train_cfg())
    for s in [0, 1, 5, 8, 9, 10, 50, 99]:
        want = 1e-2 * min(1.0, (s + 1) / 10)
        assert float(sched(s)) == pytest.approx(want, rel=1e-6), s
    # no warm-up: the peak from the first update
    assert float(make_lr_schedule(_train_cfg(warmup_steps=0))(0)) == pytest.approx(1e-2)


def test_warmup_then_cosine_closed_form():
    sched = make_lr_schedule(_train_cfg(lr_schedule="cosine", min_learning_rate=1e-4))
    for s in [0, 8, 9, 20, 54, 98, 99, 150]:
        if s + 1 < 10:
            want = 1e-2 * (s + 1) / 10
        else:
            p = min(1.0, (s + 1 - 10) / 90)
            want = 1e-4 + (1e-2 - 1e-4) * 0.5 * (1 + math.cos(math.pi * p))
        assert float(sched(s)) == pytest.approx(want, rel=1e-5), s
    assert float(sched(99)) == pytest.approx(1e-4, rel=1e-5)


def _lr_closed_form(s, *, peak, warm, total, kind, floor):
    """The rate of optimizer update s + 1 in float64, written out from the module docstring's equations."""
    n = s + 1
    if warm > 0 and n < warm:
        return peak * n / warm
    if kind == "constant":
        return peak
    p = min(max((n - warm) / max(1, total - warm), 0.0), 1.0)
    return floor + (peak - floor) * 0.5 * (1.0 + math.cos(math.pi * p))


@pytest.mark.parametrize("kind,warm,total,floor", [
    ("constant", 0, 50, 0.0), ("constant", 1, 50, 0.0), ("constant", 7, 50, 0.0),
    ("cosine", 0, 50, 0.0), ("cosine", 1, 50, 1e-5), ("cosine", 7, 50, 3e-4), ("cosine", 50, 50, 0.0),
])
def test_schedule_matches_the_float64_closed_form_at_every_count(kind, warm, total, floor):
    """Every count 0 … total + 10 (also past the end) of the optax-built schedule, jitted as the optimizer
    calls it, against the closed form in float64: warm-up edges W = 0, 1, and a warm-up as long as the run."""
    peak = 2e-3
    cfg = _train_cfg(learning_rate=peak, warmup_steps=warm, num_steps=total, lr_schedule=kind,
                     min_learning_rate=floor)
    sched = jax.jit(make_lr_schedule(cfg))
    for s in range(total + 11):
        want = _lr_closed_form(s, peak=peak, warm=warm, total=total, kind=kind, floor=floor)
        got = float(sched(jnp.int32(s)))
        # float32 rounding at the scale of the peak (1 + cos(π p) → 0 loses relative precision at the end)
        assert got == pytest.approx(want, rel=1e-6, abs=1e-6 * peak), (s, got, want)


def test_first_adam_updates_follow_the_warmup_rate():
    # Adam's k-th update of a constant gradient g is −lr_k·g/(|g| + ε') (bias-corrected moments equal g, g²).
    tx = make_optimizer(_train_cfg(warmup_steps=4))
    p = {"w": jnp.ones((2, 3)), "b": jnp.zeros((3,))}
    g = {"w": jnp.full((2, 3), 0.5), "b": jnp.full((3,), -2.0)}
    state = tx.init(p)
    for k in range(6):
        u, state = tx.update(g, state, p)
        lr = 1e-2 * min(1.0, (k + 1) / 4)
        # rtol: float32 bias corrections 1 − b2^k (b2 = 0.999) carry ~1e-5 relative error
        np.testing.assert_allclose(u["w"], -lr * np.ones((2, 3)), rtol=1e-4)
        np.testing.assert_allclose(u["b"], lr * np.ones(3), rtol=1e-4)


def test_weight_decay_hits_kernels_only():
    tx = make_optimizer(_train_cfg(warmup_steps=0, weight_decay=0.1))
    p = {"kernel": jnp.full((2, 2), 3.0), "bias": jnp.full((2,), 3.0)}
    zero = jax.tree.map(jnp.zeros_like, p)
    u, _ = tx.update(zero, tx.init(p), p)
    np.testing.assert_allclose(u["kernel"], -1e-2 * 0.1 * 3.0, rtol=1e-6)  # −lr·wd·p
    np.testing.assert_allclose(u["bias"], 0.0)


def test_global_norm_clipping():
    # With clipping at c, the first-moment estimate sees g·c/‖g‖: visible in Adam's mu.
    tx = make_optimizer(_train_cfg(grad_clip_norm=1.0))
    p = {"w": jnp.zeros((4,))}
    g = {"w": jnp.array([3.0, 4.0, 0.0, 0.0])}  # norm 5
    _, state = tx.update(g, tx.init(p), p)
    mu = [s for s in jax.tree_util.tree_leaves(state, is_leaf=lambda x: isinstance(x, optax.ScaleByAdamState))
          if isinstance(s, optax.ScaleByAdamState)][0].mu["w"]
    np.testing.assert_allclose(mu, 0.1 * np.array([0.6, 0.8, 0, 0]), rtol=1e-6)  # (1 − b1)·g/‖g‖
    with pytest.raises(ValueError, match="grad_clip_norm"):
        make_optimizer(_train_cfg(grad_clip_norm=-1.0))
    with pytest.raises(ValueError, match="lr_schedule"):
        make_lr_schedule(_train_cfg(lr_schedule="step"))


def test_ema_closed_form_constant_target():
    # Params held at p: after k updates from e0, ema = d^k e0 + (1 − d^k) p.
    d, e0, p = 0.9, jnp.array([0.0, 10.0]), jnp.array([1.0, -1.0])
    e = e0
    for n in range(1, 8):
        e = ema_update(e, p, n, decay=d)
        np.testing.assert_allclose(e, d**n * np.asarray(e0) + (1 - d**n) * np.asarray(p), rtol=1e-5)


def test_ema_warmup_closed_form():
    # d_k = min(decay, (1 + k)/(10 + k)), k = 0, 1, …: ema_k = Π d · e0 + (1 − Π d) p for constant p.
    e0, p = jnp.array(4.0), jnp.array(-2.0)
    e, prod = e0, 1.0
    for n in range(1, 30):
        k = n - 1
        dk = min(0.95, (1 + k) / (10 + k))
        assert float(ema_decay_at(n, decay=0.95, every=1, start=0, warmup=True)) == pytest.approx(dk, rel=1e-6)
        prod *= dk
        e = ema_update(e, p, n, decay=0.95, warmup=True)
        assert float(e) == pytest.approx(prod * 4.0 + (1 - prod) * -2.0, rel=1e-5, abs=1e-6)


def test_ema_cold_diffusion_cadence():
    # 0.995 every 10 steps from step 2000 (scaled down: every 10 from 30): copy before, hold between.
    kw = dict(decay=0.995, every=10, start=30, warmup=False)
    ema = jnp.array(100.0)
    for n in range(1, 31):
        p = jnp.array(float(n))
        ema = ema_update(ema, p, n, **kw)
        assert float(ema) == float(n)  # an exact copy up to and including the start step
    held = float(ema)
    for n in range(31, 40):
        ema = ema_update(ema, jnp.array(-5.0), n, **kw)
        assert float(ema) == held  # no update off the cadence
    ema = ema_update(ema, jnp.array(-5.0), 40, **kw)
    assert float(ema) == pytest.approx(0.995 * held + 0.005 * -5.0, rel=1e-6)
    assert float(ema_decay_at(50, **kw)) == pytest.approx(0.995)


def test_create_train_state():
    tx = make_optimizer(_train_cfg())
    p = {"w": jnp.arange(3.0)}
    st = create_train_state(params=p, apply_fn=lambda *a: None, tx=tx)
    assert isinstance(st, TrainState)
    assert st.step.dtype == jnp.int32 and st.step.shape == ()
    assert int(st.nonfinite_count) == 0 and int(st.skipped_total) == 0
    np.testing.assert_array_equal(st.ema_params["w"], p["w"])
    assert st.ema_params["w"] is not st.params["w"]
    # the callables are static: the pytree holds arrays only
    assert all(isinstance(x, jax.Array) for x in jax.tree_util.tree_leaves(st))
    tree = st.to_pytree()
    assert set(tree) == {"step", "params", "ema_params", "opt_state", "nonfinite_count", "skipped_total"}
    assert st.replace_from_pytree(tree).tx is tx
