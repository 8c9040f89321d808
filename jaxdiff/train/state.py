"""The training state (parameters, their EMA, the optimizer) and the optimizer/EMA rules; all pure.

Learning rate of update n = s + 1 (s: updates already applied; W warm-up steps, N total):
    warm-up  lr = peak · n / W  for n < W;   then constant  lr = peak,
    or cosine  lr = min + (peak − min) · ½ (1 + cos(π p)),  p = clip((n − W) / (N − W), 0, 1)
(optax.join_schedules of linear_schedule and constant/cosine_decay_schedule; the first update is not wasted).

EMA after the update that makes the step count n (k = EMA updates before this one):
    n ≤ ema_start: ema ← params;   n % ema_every == 0: ema ← d·ema + (1 − d)·params;   else unchanged
    d = min(decay, (1 + k)/(10 + k)) with warm-up, else decay.   Cold Diffusion: 0.995 every 10 from 2000.
"""
from __future__ import annotations

import math
from typing import Any, Callable

import flax.struct
import jax
import jax.numpy as jnp
import optax

__all__ = [
    "TrainState",
    "create_train_state",
    "make_lr_schedule",
    "make_optimizer",
    "ema_decay_at",
    "ema_update",
    "LR_SCHEDULES",
]

LR_SCHEDULES = ("constant", "cosine")


@flax.struct.dataclass
class TrainState:
    """step: int32 scalar (batches consumed, skipped ones included); params, ema_params: pytrees;
    opt_state: optax state; nonfinite_count: consecutive non-finite steps (int32); skipped_total:
    all skipped steps (int32). ``apply_fn`` and ``tx`` are static (not pytree leaves)."""

    step: jax.Array
    params: Any
    ema_params: Any
    opt_state: Any
    nonfinite_count: jax.Array
    skipped_total: jax.Array
    apply_fn: Callable = flax.struct.field(pytree_node=False)
    tx: optax.GradientTransformation = flax.struct.field(pytree_node=False)

    def to_pytree(self) -> dict:
        """The array part of the state, as a plain dict (what checkpoints store)."""
        return {
            "step": self.step,
            "params": self.params,
            "ema_params": self.ema_params,
            "opt_state": self.opt_state,
            "nonfinite_count": self.nonfinite_count,
            "skipped_total": self.skipped_total,
        }

    def replace_from_pytree(self, tree: dict) -> "TrainState":
        """The inverse of :meth:`to_pytree` (keeps apply_fn and tx)."""
        return self.replace(**tree)


def create_train_state(*, params: Any, apply_fn: Callable, tx: optax.GradientTransformation) -> TrainState:
    """A fresh state at step 0; ema_params start as an (independent) copy of params."""
    params = jax.tree.map(jnp.asarray, params)
    return TrainState(
        step=jnp.zeros((), jnp.int32),
        params=params,
        ema_params=jax.tree.map(jnp.copy, params),
        opt_state=tx.init(params),
        nonfinite_count=jnp.zeros((), jnp.int32),
        skipped_total=jnp.zeros((), jnp.int32),
        apply_fn=apply_fn,
        tx=tx,
    )


def _get(cfg, name, default):
    return cfg.get(name, default) if hasattr(cfg, "get") else getattr(cfg, name, default)


def make_lr_schedule(train_cfg) -> optax.Schedule:
    """count → learning rate (see the module docstring), from optax's schedule combinators.

    Reads learning_rate, warmup_steps, num_steps, lr_schedule ("constant" | "cosine") and
    min_learning_rate (cosine floor). optax counts from 0; the rate of the update n = count + 1 is returned.
    """
    peak = float(train_cfg.learning_rate)
    warm = int(_get(train_cfg, "warmup_steps", 0))
    total = int(_get(train_cfg, "num_steps", 1))
    kind = _get(train_cfg, "lr_schedule", "constant")
    floor = float(_get(train_cfg, "min_learning_rate", 0.0))
    if not (peak > 0 and math.isfinite(peak)):
        raise ValueError(f"train.learning_rate must be a finite number > 0, got {peak!r}")
    if warm < 0:
        raise ValueError(f"train.warmup_steps must be >= 0, got {warm!r}")
    if kind not in LR_SCHEDULES:
        raise ValueError(f"train.lr_schedule must be one of {list(LR_SCHEDULES)}, got {kind!r}")
    if kind == "constant":
        after = optax.constant_schedule(peak)
    else:
        after = optax.cosine_decay_schedule(peak, decay_steps=max(1, total - warm), alpha=floor / peak)
    # on the 1-based update n: peak·n/W while n < W, then `after` from n = W on
    by_update = after if warm == 0 else optax.join_schedules(
        [optax.linear_schedule(0.0, peak, transition_steps=warm), after], boundaries=[warm])

    def schedule(count):
        return by_update(jnp.asarray(count, jnp.int32) + 1)

    return schedule


def _decay_mask(params):
    # Decay kernels only: biases and normalisation scales (ndim ≤ 1) are not regularised.
    return jax.tree.map(lambda p: jnp.ndim(p) > 1, params)


def make_optimizer(train_cfg) -> optax.GradientTransformation:
    """AdamW with the schedule above, weight decay on kernels, optional global-norm clipping.

    Reads learning_rate, warmup_steps, num_steps, lr_schedule, weight_decay, grad_clip_norm (0: off),
    adam_b1 (0.9), adam_b2 (0.999), adam_eps (1e-8).
    """
    clip = float(_get(train_cfg, "grad_clip_norm", 0.0))
    wd = float(_get(train_cfg, "weight_decay", 0.0))
    if clip < 0:
        raise ValueError(f"train.grad_clip_norm must be >= 0 (0 = off), got {clip!r}")
    if wd < 0:
        raise ValueError(f"train.weight_decay must be >= 0, got {wd!r}")
    adam = optax.adamw(
        learning_rate=make_lr_schedule(train_cfg),
        b1=float(_get(train_cfg, "adam_b1", 0.9)),
        b2=float(_get(train_cfg, "adam_b2", 0.999)),
        eps=float(_get(train_cfg, "adam_eps", 1e-8)),
        weight_decay=wd,
        mask=_decay_mask,
    )
    if clip > 0:
        return optax.chain(optax.clip_by_global_norm(clip), adam)
    return adam


def ema_decay_at(n, *, decay: float, every: int, start: int, warmup: bool) -> jax.Array:
    """The factor d applied after the update that makes the step count n (see the module docstring).

    Returns 0 (copy params), 1 (keep the EMA) or the EMA decay, as a float32 scalar.
    """
    n = jnp.asarray(n, jnp.int32)
    k = n // every - start // every - 1  # EMA updates before this one
    d = jnp.float32(decay)
    if warmup:
        kf = k.astype(jnp.float32)
        d = jnp.minimum(d, (1.0 + kf) / (10.0 + kf))
    return jnp.where(n <= start, 0.0, jnp.where(n % every == 0, d, 1.0)).astype(jnp.float32)


def ema_update(ema_params, params, n, *, decay: float, every: int = 1, start: int = 0, warmup: bool = False):
    """EMA after the update that makes the step count n.

    d ∈ {0, 1} gives an exact copy / an exact no-op (step sizes 1 and 0 of incremental_update)."""
    d = ema_decay_at(n, decay=decay, every=every, start=start, warmup=warmup)
    return optax.incremental_update(params, ema_params, step_size=1.0 - d)
