"""The pure jitted train step, and the fresh replicated state it starts from.

One step (inside ``jax.jit``, no host round trip), for a global batch x0 (B, H, W, C) and step s:

    key = fold_in(PRNGKey(seed), s);  t ~ p(t) on {1 … T} (diffusion.t_sampling),  ε ~ N(0, I),
    aux = sample_aux(k, x0) (or the end batch);  x_t = α_t D_t(x0; aux) + σ_t ε
    loss = (1/B) Σ_b w_b ℓ(net(x_t, t), target)_b   (loss_weighting "soft": ℓ(D_t(x̂0), D_t(x0)))
    params, opt ← AdamW(∇loss) unless loss or ∇ is non-finite (then unchanged, counters + 1);  ema ← EMA rule

Random arrays are drawn at their global shape (partitionable threefry), so 1 or 8 devices give the same
numbers up to the reduction order. The batch is sharded P('data'), the state replicated P(); the loss is a
mean over the global batch, so XLA inserts the gradient all-reduce itself.
"""
from __future__ import annotations

import logging
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdiff import losses as losses_lib
from jaxdiff import parameterization
from jaxdiff.cpu import xla_options
from jaxdiff.experiment import DATA_AXIS, build_model, build_process, make_mesh
from jaxdiff.processes import Process
from jaxdiff.train.state import TrainState, create_train_state, ema_update, make_lr_schedule, make_optimizer

__all__ = ["init_train_state", "make_train_step", "accumulated_value_and_grad", "drop_labels"]

log = logging.getLogger(__name__)

#: folded into PRNGKey(config.seed) for the parameter initialisation (the train step folds in the step)
INIT_KEY_SALT = 0x1A17
#: folded into the step's key for the label dropout of a conditional model (the other draws keep their keys)
LABEL_DROPOUT_SALT = 0x1ABE


def init_train_state(config, model, *, mesh: Optional[jax.sharding.Mesh] = None) -> TrainState:
    """A fresh TrainState, replicated over ``mesh`` (params from PRNGKey(config.seed), split for init)."""
    mesh = make_mesh() if mesh is None else mesh
    tx = make_optimizer(config.train)
    s, c = int(config.data.image_size), int(config.data.channels)

    def init():
        # The RngBitGenerator-based "rbg" key: one HLO op per draw instead of an unrolled threefry
        # hash per parameter leaf, which halves the compile time of the init on XLA:CPU. The values are
        # deterministic for a given platform; the train step keeps the default (partitionable) threefry.
        key = jax.random.key(int(config.seed), impl="rbg")
        k_params, k_drop = jax.random.split(jax.random.fold_in(key, INIT_KEY_SALT))
        x = jnp.zeros((1, s, s, c), jnp.float32)
        t = jnp.zeros((1,), jnp.int32)
        variables = model.init({"params": k_params, "dropout": k_drop}, x, t, train=False)
        return create_train_state(params=variables["params"], apply_fn=model.apply, tx=tx)

    # jit + replicated out_shardings: every process computes the same values into one global array.
    abstract = jax.eval_shape(init)
    repl = NamedSharding(mesh, P())
    out_sh = jax.tree.map(lambda _: repl, abstract)
    return jax.jit(init, out_shardings=out_sh)()



def accumulated_value_and_grad(loss_fn, params, batch, key, *, steps: int = 1, mesh=None, unroll=1):
    """(loss, grads) of ``loss_fn(params, batch, key)`` over the whole batch, in ``steps`` micro-batches.

    steps = 1: one ``jax.value_and_grad`` (the plain program). steps = k: a ``lax.scan`` over k micro-batches of
    B/k examples (micro-batch i holds rows i, i + k, …, so it stays split over the ('data',) devices like the
    batch); the loss and gradients are the means of the k micro-batch ones, which equals the whole-batch mean
    loss when it is a mean over examples. Micro-batch i's dropout key is fold_in(key, i). ``unroll``: lax.scan's
    (True: k copies of the micro-step in one program, no loop).
    """
    grad_fn = jax.value_and_grad(loss_fn)
    if steps == 1:
        return grad_fn(params, batch, key)

    def split(a):
        a = a.reshape((a.shape[0] // steps, steps) + a.shape[1:]).swapaxes(0, 1)
        if mesh is None:
            return a
        return jax.lax.with_sharding_constraint(a, NamedSharding(mesh, P(None, DATA_AXIS)))

    def body(total, xs):
        i, mb = xs
        out = grad_fn(params, mb, jax.random.fold_in(key, i))
        return jax.tree.map(jnp.add, total, out), None

    zero = (jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params))
    micro = (jnp.arange(steps, dtype=jnp.int32), jax.tree.map(split, batch))
    total, _ = jax.lax.scan(body, zero, micro, unroll=unroll)
    return jax.tree.map(lambda a: a / steps, total)


def drop_labels(key, labels, rate: float, null: int):
    """int32 labels with each entry replaced by ``null`` (the null label) with probability ``rate``, independently
    (Bernoulli draws at the labels' full shape: the same on any device count)."""
    drop = jax.random.bernoulli(key, rate, labels.shape)
    return jnp.where(drop, null, labels).astype(jnp.int32)


def make_train_step(
    config,
    model=None,
    process: Optional[Process] = None,
    *,
    mesh: Optional[jax.sharding.Mesh] = None,
    donate: bool = True,
) -> Callable:
    """Returns the jitted ``train_step(state, batch, step[, end_batch]) -> (state, metrics)``.

    state: a replicated TrainState; batch: global (B, H, W, C) float32 sharded P('data') (a conditional model,
    model.num_classes > 0: the pair (images, int32 labels (B,))); step: int
    (the state's step; it seeds the randomness); end_batch: only when ``config.data.end_source`` is set
    (interpolation/animorphosis), a batch like ``batch`` of the images the process moves toward.
    metrics (replicated scalars): loss, grad_norm, lr, skipped (1 if this update was dropped),
    nonfinite_count, skipped_total. ``donate`` reuses the input state's buffers (do not touch the
    state passed in afterwards).
    """
    mesh = make_mesh() if mesh is None else mesh
    model = build_model(config) if model is None else model
    process = build_process(config) if process is None else process
    f, tc = config.diffusion, config.train
    prediction, kind, weighting = f.prediction, f.loss, f.loss_weighting
    soft = weighting == "soft"
    T = int(process.T)
    base_key = jax.random.PRNGKey(int(config.seed))
    schedule = make_lr_schedule(tc)
    ema_kw = dict(
        decay=float(tc.ema_decay),
        every=int(tc.ema_every),
        start=int(tc.ema_start),
        warmup=bool(tc.ema_warmup),
    )
    uses_end = bool(config.data.get("end_source", ""))
    # A conditional model's batch is (images, labels); each label becomes the null label (num_classes) with
    # probability train.label_dropout, so one model learns ε(x, c) and ε(x, ∅) (classifier-free guidance).
    num_classes = int(config.model.get("num_classes", 0))
    label_dropout = float(tc.get("label_dropout", 0.0))
    accum = int(tc.get("grad_accum_steps", 1))
    # XLA:CPU runs the micro-step ~6x slower inside a while loop than unrolled (BENCHMARKS.md, "Gradient
    # accumulation"): unrolled on CPU meshes; elsewhere a rolled scan, which keeps one micro-batch's activations.
    unroll = True if mesh.devices.flat[0].platform == "cpu" else 1
    noise_free = process.noise_free
    # Fail before tracing on combinations the step cannot handle (each rule where it lives: the process
    # knows its predictions, losses its weightings, checked here on a one-element t).
    if kind not in losses_lib.LOSS_KINDS:
        raise ValueError(f"diffusion.loss must be one of {list(losses_lib.LOSS_KINDS)}, got {kind!r}")
    process.check_prediction(prediction)
    losses_lib.loss_weights(process, jnp.ones((1,), jnp.int32), weighting=weighting, prediction=prediction)
    from jaxdiff.processes.tsampling import t_logits

    logits = t_logits(process, str(f.get("t_sampling", "uniform")), **dict(f.get("t_sampling_params", {})))

    def step_fn(state: TrainState, batch, step, end_batch=None):
        x0, labels = batch if num_classes else (batch, None)
        key = jax.random.fold_in(base_key, step)
        k_t, k_eps, k_aux, k_drop = jax.random.split(key, 4)
        B = x0.shape[0]
        if logits is None:
            t = jax.random.randint(k_t, (B,), 1, T + 1, dtype=jnp.int32)
        else:
            t = (jax.random.categorical(k_t, jnp.asarray(logits), shape=(B,)) + 1).astype(jnp.int32)
        if noise_free:  # σ_t ≡ 0: ε is multiplied by 0 and never a target; skip the draw
            eps = jnp.zeros_like(x0)
        else:
            eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        aux = end_batch if uses_end else process.sample_aux(k_aux, x0)
        cond = {}
        if num_classes:
            cond = {"labels": drop_labels(jax.random.fold_in(key, LABEL_DROPOUT_SALT), labels, label_dropout,
                                          num_classes)}
        x_t = process.perturb(x0, t, eps, aux)
        if soft:  # Soft Diffusion: the x̂0 error measured after degradation (losses.soft_loss)
            y = x0
            cond["aux"] = aux
        else:
            y = parameterization.target(process, prediction, x0, eps, t, aux)
        w = losses_lib.loss_weights(process, t, weighting=weighting, prediction=prediction)

        def loss_fn(params, mb, k_drop):
            out = state.apply_fn({"params": params}, mb["x_t"], mb["t"], mb.get("labels"), train=True,
                                 rngs={"dropout": k_drop})
            if soft:
                return losses_lib.soft_loss(process, prediction, out, mb["x_t"], mb["t"], mb["y"], kind=kind,
                                            aux=mb["aux"])
            return losses_lib.diffusion_loss(out, mb["y"], kind=kind, weights=mb["w"])

        loss, grads = accumulated_value_and_grad(loss_fn, state.params, dict(x_t=x_t, t=t, y=y, w=w, **cond), k_drop,
                                                 steps=accum, mesh=mesh, unroll=unroll)
        grad_norm = optax.tree.norm(grads)
        # One scalar test covers every gradient leaf (a NaN/inf anywhere makes the norm non-finite; a
        # finite gradient whose squared norm overflows float32, > 1e19, is treated as broken too).
        finite = jnp.isfinite(loss) & jnp.isfinite(grad_norm)
        n = state.step + 1

        def apply_update(_):
            updates, new_opt = state.tx.update(grads, state.opt_state, state.params)
            new_params = optax.apply_updates(state.params, updates)
            return new_params, ema_update(state.ema_params, new_params, n, **ema_kw), new_opt

        def skip(_):
            return state.params, state.ema_params, state.opt_state

        # lax.cond rather than a per-leaf jnp.where: one branch runs, and XLA:CPU compiles the step
        # several times faster than with three selects over every parameter leaf.
        params, ema_params, opt_state = jax.lax.cond(finite, apply_update, skip, None)
        nonfinite = jnp.where(finite, 0, state.nonfinite_count + 1).astype(jnp.int32)
        skipped_total = (state.skipped_total + jnp.where(finite, 0, 1)).astype(jnp.int32)
        new_state = state.replace(
            step=n.astype(jnp.int32),
            params=params,
            ema_params=ema_params,
            opt_state=opt_state,
            nonfinite_count=nonfinite,
            skipped_total=skipped_total,
        )
        metrics = {
            "loss": loss,
            "grad_norm": grad_norm,
            # the optimizer's own count = updates applied so far (skipped steps do not count)
            "lr": schedule(state.step - state.skipped_total),
            "skipped": 1 - finite.astype(jnp.int32),
            "nonfinite_count": nonfinite,
            "skipped_total": skipped_total,
        }
        return new_state, metrics

    repl = NamedSharding(mesh, P())
    data = NamedSharding(mesh, P(DATA_AXIS))
    donate_argnums = (0,) if donate else ()
    # CPU meshes, models above the measured break-even: convolutions by XLA's own kernels, not YNNPACK's
    # (jaxdiff/cpu/xla_options.py has the measurements). None elsewhere: GPU/TPU programs are compiled as before.
    options = xla_options.train_compiler_options(mesh.devices, level_size=xla_options.level_size(config))
    if options:
        log.info("CPU: the train step uses XLA's own convolutions, not YNNPACK's "
                 "(JAXDIFF_XLA_CPU_OPTIONS=0 turns this off)")
    # Without an end source the step takes exactly (state, batch, step), so jit sees no optional argument.
    fn = step_fn if uses_end else (lambda state, batch, step: step_fn(state, batch, step))
    return jax.jit(
        fn,
        in_shardings=(repl, data, repl, data) if uses_end else (repl, data, repl),
        out_shardings=(repl, repl),
        donate_argnums=donate_argnums,
        compiler_options=options,
    )
