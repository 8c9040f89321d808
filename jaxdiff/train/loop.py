"""Data-parallel training: the pure jitted train step and the ``train_and_evaluate`` loop.

One step (all inside ``jax.jit``, no host round trip), for a global batch x0 (B, H, W, C) and step s:

    key            = fold_in(PRNGKey(config.seed), s);   k_t, k_ε, k_aux, k_drop = split(key, 4)
    t  ~ U{1 … T}  (B,),   ε ~ N(0, I) (B, H, W, C),   aux = sample_aux(k_aux, x0) (or the end batch)
    x_t            = F_t(x0; aux) + σ_t ε                         (jaxdiff.forward)
    y              = target(prediction, x0, ε, t)                  (ε, x0 or v)
    loss           = (1/B) Σ_b w_b ℓ(net(x_t, t), y)_b             (jaxdiff.losses)
    params, opt    ← AdamW(∇loss)  unless loss or ∇ is non-finite (then unchanged, counters + 1)
    ema            ← EMA rule of jaxdiff.train.state

Every random array is drawn at its full global shape from the step key, and jit partitions it over
the devices: with ``jax_threefry_partitionable`` (the default) the numbers do not depend on how many
devices (or processes) the batch is split over, so a run on 1 device and on 8 gives the same
parameters up to the float reduction order.

Parallelism: a 1-D mesh ``('data',)`` over every device; the batch is sharded
``NamedSharding(mesh, P('data'))``, the state replicated ``P()``. The loss is a mean over the global
batch, so XLA inserts the gradient all-reduce itself (no pmean).
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Any, Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np
import optax
from jax.sharding import NamedSharding
from jax.sharding import PartitionSpec as P

from jaxdiff import losses as losses_lib
from jaxdiff import parameterization
from jaxdiff.cpu import xla_options
from jaxdiff.forward import ColdProcess, ForwardProcess, GaussianProcess
from jaxdiff.experiment import DATA_AXIS, build_model, build_process, make_mesh, maybe_initialize_distributed
from jaxdiff.train.state import TrainState, create_train_state, ema_update, make_lr_schedule, make_optimizer

__all__ = [
    "make_mesh",
    "maybe_initialize_distributed",
    "build_process",
    "build_model",
    "init_train_state",
    "make_train_step",
    "train_and_evaluate",
    "load_trained",
    "make_sample_fn",
    "restore_level",
    "DATA_AXIS",
]

log = logging.getLogger(__name__)

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
        k_params, k_drop = jax.random.split(jax.random.fold_in(key, 0x1A17))
        x = jnp.zeros((1, s, s, c), jnp.float32)
        t = jnp.zeros((1,), jnp.int32)
        variables = model.init({"params": k_params, "dropout": k_drop}, x, t, train=False)
        return create_train_state(params=variables["params"], apply_fn=model.apply, tx=tx)

    # jit + replicated out_shardings: every process computes the same values into one global array.
    abstract = jax.eval_shape(init)
    repl = NamedSharding(mesh, P())
    out_sh = jax.tree.map(lambda _: repl, abstract)
    return jax.jit(init, out_shardings=out_sh)()


# ----------------------------------------------------------------------------------------------------
# the train step


def make_train_step(
    config,
    model=None,
    process: Optional[ForwardProcess] = None,
    *,
    mesh: Optional[jax.sharding.Mesh] = None,
    donate: bool = True,
) -> Callable:
    """Returns the jitted ``train_step(state, batch, step[, end_batch]) -> (state, metrics)``.

    state: a replicated TrainState; batch: global (B, H, W, C) float32 sharded P('data'); step: int
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
    noise_free = isinstance(process, ColdProcess) and process.noise_std == 0
    # Fail before tracing on combinations the step cannot handle.
    if kind not in losses_lib.LOSS_KINDS:
        raise ValueError(f"diffusion.loss must be one of {list(losses_lib.LOSS_KINDS)}, got {kind!r}")
    if weighting != "none" and not isinstance(process, GaussianProcess):
        raise ValueError(f"diffusion.loss_weighting={weighting!r} needs diffusion.kind='gaussian'; cold takes 'none'")
    if prediction != "x0" and not isinstance(process, GaussianProcess):
        raise ValueError(f"diffusion.prediction={prediction!r}: cold processes predict 'x0'")

    def step_fn(state: TrainState, batch, step, end_batch=None):
        x0 = batch
        key = jax.random.fold_in(base_key, step)
        k_t, k_eps, k_aux, k_drop = jax.random.split(key, 4)
        B = x0.shape[0]
        t = jax.random.randint(k_t, (B,), 1, T + 1, dtype=jnp.int32)
        if noise_free:  # σ_t ≡ 0: ε is multiplied by 0 and never a target; skip the draw
            eps = jnp.zeros_like(x0)
        else:
            eps = jax.random.normal(k_eps, x0.shape, x0.dtype)
        aux = end_batch if uses_end else process.sample_aux(k_aux, x0)
        x_t = process.perturb(x0, t, eps, aux)
        y = parameterization.target(process, prediction, x0, eps, t)
        w = losses_lib.loss_weights(process, t, weighting=weighting, prediction=prediction)

        def loss_fn(params):
            out = state.apply_fn({"params": params}, x_t, t, train=True, rngs={"dropout": k_drop})
            return losses_lib.diffusion_loss(out, y, kind=kind, weights=w)

        loss, grads = jax.value_and_grad(loss_fn)(state.params)
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


# ----------------------------------------------------------------------------------------------------
# helpers of the loop


def _host(x) -> np.ndarray:
    """A replicated global array → NumPy on this host (works when other processes hold shards too)."""
    if isinstance(x, jax.Array) and not x.is_fully_addressable:
        return np.asarray(x.addressable_data(0))
    return np.asarray(x)


def _local_copy(tree):
    """A replicated tree → single-device arrays on this process's first local device (for sampling
    on one host without cross-process collectives)."""
    dev = jax.local_devices()[0]

    def one(x):
        if isinstance(x, jax.Array):
            return jax.device_put(x.addressable_data(0), dev)
        return jax.device_put(x, dev)

    return jax.tree.map(one, tree)


def _make_accumulate():
    # Running sums over a logging window, on device (no host sync per step).
    def acc(total, m):
        ok = 1 - m["skipped"]
        return {
            "loss_sum": total["loss_sum"] + jnp.where(ok > 0, m["loss"], 0.0),
            "grad_norm_sum": total["grad_norm_sum"] + jnp.where(ok > 0, m["grad_norm"], 0.0),
            "finite_steps": total["finite_steps"] + ok,
            "steps": total["steps"] + 1,
            # the streak counter's maximum: a streak that ends between two log steps is still seen
            "max_nonfinite": jnp.maximum(total["max_nonfinite"], m["nonfinite_count"]),
        }

    return jax.jit(acc)


def _zero_acc():
    return {
        "loss_sum": jnp.float32(0),
        "grad_norm_sum": jnp.float32(0),
        "finite_steps": jnp.int32(0),
        "steps": jnp.int32(0),
        "max_nonfinite": jnp.int32(0),
    }


class _StopFlag:
    """SIGTERM/SIGINT set a flag the loop checks each step (the handlers are restored afterwards)."""

    def __init__(self):
        self.signum: Optional[int] = None
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGTERM, signal.SIGINT):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):  # noqa: ARG002
        if self.signum is not None and signum == signal.SIGINT:
            raise KeyboardInterrupt  # a second Ctrl-C: give up on the clean stop
        self.signum = signum
        log.warning("received %s: saving a checkpoint and stopping", signal.Signals(signum).name)

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)
        return False

    def __bool__(self):
        return self.signum is not None


def _eval_images(config, n: int) -> np.ndarray:
    """n fixed held-out images (float32 in [−1, 1]) for the sample grids (all of them if fewer)."""
    from jaxdiff import data as data_lib

    d = config.data
    src = data_lib.load_source(d.source, split=d.eval_split, image_size=d.image_size, channels=d.channels,
                               download=d.download, field="data.source")
    n = min(n, len(src))
    it = data_lib.iterate_batches(src, global_batch_size=n, seed=int(config.seed) + 1, process_index=0,
                                  process_count=1, random_flip=False, start_step=0)
    return next(it)


def _eval_end_images(config, n: int) -> Optional[np.ndarray]:
    from jaxdiff import data as data_lib

    b = data_lib.end_source(config, split=config.data.eval_split, global_batch_size=n, process_index=0,
                            process_count=1)
    return None if b is None else b.batch(0)


def restore_level(T: int) -> int:
    """The intermediate level t_r = max(1, T // 2) the cold sample grids also restore from (next to
    t = T): it shows the progression, and still shows restoration when an operator erases the image
    well before t = T."""
    return max(1, T // 2)


def make_sample_fn(config, model, process) -> Callable:
    """``fn(params, key, x0, aux) -> dict of (N, H, W, C) arrays``, jitted (one device).

    Gaussian: ``{"x0_hat"}`` generated from x_T ~ N(0, I) (x0 only gives the shape).
    Cold: restoration of the given images from two levels: x_T = F_T(x0) (+σ noise) through the
    configured corrector over ``sample.steps`` steps, and x_{t_r} (t_r = :func:`restore_level`) through
    every step t_r … 0; keys ``x_T, from_T, x_tr, from_tr``.
    """
    from jaxdiff import sampling

    s = config.sample
    T = int(process.T)
    ts = sampling.timesteps(T, int(s.steps) if s.steps else None)
    t_r = restore_level(T)
    ts_r = np.arange(t_r, -1, -1, dtype=np.int32)
    clip = float(s.clip) if s.clip else None
    gaussian = isinstance(process, GaussianProcess)

    def denoiser(params, x, t):
        return model.apply({"params": params}, x, t, train=False)

    def run(params, key, x_start, aux, seq):
        return sampling.sample(
            denoiser, params, key, x_start,
            process=process, corrector=s.corrector, timesteps=seq, prediction=config.diffusion.prediction,
            clip=clip, eta=float(s.eta), aux=aux, return_every=0,
        ).x0

    def fn(params, key, x0, aux):
        k_prior, k_aux, k_s1, k_r, k_s2 = jax.random.split(key, 5)
        if gaussian:
            x_T = process.prior(k_prior, x0.shape, x0=x0)
            return {"x0_hat": run(params, k_s1, x_T, None, ts)}
        if aux is None:
            aux = process.sample_aux(k_aux, x0)
        x_T = process.prior(k_prior, x0.shape, x0=x0, aux=aux)
        x_tr = process.sample(x0, jnp.full((x0.shape[0],), t_r, jnp.int32), k_r, aux)
        return {"x_T": x_T, "from_T": run(params, k_s1, x_T, aux, ts),
                "x_tr": x_tr, "from_tr": run(params, k_s2, x_tr, aux, ts_r)}

    return jax.jit(fn)


def _save_sample_grid(path: str, config, process, x0, out: dict) -> None:
    from jaxdiff import visualize

    out = {k: np.asarray(v) for k, v in out.items()}
    if "x0_hat" in out:
        x = out["x0_hat"]
        visualize.save_grid(path, x, nrow=int(np.ceil(np.sqrt(x.shape[0]))),
                            title=f"step {_step_of(path)}: samples from N(0, I)")
        return
    # Cold: blocks of five rows, `cols` images wide:
    #   x_{t_r} | restored from t_r | x_T | restored from T | original
    x0 = np.asarray(x0)
    n = x0.shape[0]
    cols = n if n < 8 else (16 if n >= 64 else 8)
    rows = []
    for i in range(0, max(n - n % cols, cols) if n >= cols else n, cols):
        sl = slice(i, i + cols)
        rows += [out["x_tr"][sl], out["from_tr"][sl], out["x_T"][sl], out["from_T"][sl], x0[sl]]
    T = int(process.T)
    title = (f"step {_step_of(path)}: rows x_t (t={restore_level(T)}) | restored | x_T (t={T}) | restored | "
             f"original")
    visualize.save_grid(path, np.concatenate(rows, axis=0), nrow=cols, title=title)


def _step_of(path: str) -> int:
    return int(os.path.splitext(os.path.basename(path))[0].split("_")[-1])


# ----------------------------------------------------------------------------------------------------
# the loop


def _abstract_state(state: TrainState) -> dict:
    from jaxdiff.train.checkpoints import abstract_like

    return abstract_like(state.to_pytree())


def train_and_evaluate(config, workdir: str) -> TrainState:
    """Trains ``config`` in ``workdir`` (resuming from its latest valid checkpoint) and returns the final state.

    Writes <workdir>/checkpoints/<step>/ (orbax, last ``train.keep_checkpoints``), <workdir>/metrics.jsonl
    and TensorBoard events, and <workdir>/samples/step_<step>.png at every checkpoint. SIGTERM/SIGINT
    stop the run after the current step with a checkpoint.
    """
    from jaxdiff import data as data_lib
    from jaxdiff.train import faults
    from jaxdiff.train.checkpoints import CheckpointError, Checkpointer, make_meta
    from jaxdiff.config.validation import validate_config
    from jaxdiff.progress import ProgressBar
    from jaxdiff.train.logging_utils import MetricWriter

    from jaxdiff.cpu.devices import split_cpu_devices

    # CPU only, before any backend exists: the host's cores become devices the batch is split over (no-op on
    # accelerators, in multi-process runs, or when the user chose a device count).
    n_cpu = split_cpu_devices(config.train.get("batch_size"), distributed=bool(config.train.get("distributed", False)))
    maybe_initialize_distributed(config)
    if n_cpu:
        log.info("CPU: the batch is split over %d XLA CPU devices (JAXDIFF_CPU_DEVICES=1 turns this off)", n_cpu)
    validate_config(config, num_devices=jax.device_count(), process_count=jax.process_count())
    xla_options.enabled()  # a bad JAXDIFF_XLA_CPU_OPTIONS fails here, before data or compilation
    workdir = os.path.abspath(workdir)
    pidx, pcount = jax.process_index(), jax.process_count()
    is_main = pidx == 0
    tc = config.train
    num_steps, B = int(tc.num_steps), int(tc.batch_size)

    mesh = make_mesh()
    process = build_process(config)
    model = build_model(config)
    train_src = data_lib.load_source(config.data.source, split="train", image_size=config.data.image_size,
                                     channels=config.data.channels, download=config.data.download,
                                     field="data.source")
    end_batcher = data_lib.end_source(config, split="train", process_index=pidx, process_count=pcount)
    nan_steps = faults.nan_steps_from_env()  # test hook: $JAXDIFF_FAULT_NAN_STEPS poisons those batches
    if nan_steps:
        log.warning("fault injection: the batches of steps %s are replaced by NaN", sorted(nan_steps))

    state = init_train_state(config, model, mesh=mesh)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    ckpt = Checkpointer(ckpt_dir, max_to_keep=int(tc.keep_checkpoints))
    # Refused steps newer than the restored one are moved to checkpoints/rejected/ so they can be redone.
    restored = ckpt.restore_latest_valid(_abstract_state(state), quarantine=True)
    if restored is not None:
        state = state.replace_from_pytree(restored.state)
        log.info("resumed from %s at step %d", ckpt_dir, restored.step)
    start = int(_host(state.step))
    meta = make_meta(config)

    train_step = make_train_step(config, model, process, mesh=mesh)
    accumulate = _make_accumulate()
    batches = data_lib.iterate_batches(train_src, global_batch_size=B, seed=int(config.seed), process_index=pidx,
                                       process_count=pcount, random_flip=bool(config.data.random_flip),
                                       start_step=start)

    writer = MetricWriter(workdir, enabled=is_main)
    samples_dir = os.path.join(workdir, "samples")
    n_samples = int(tc.num_sample_images)
    sample_fn = eval_x0 = eval_aux = None
    if n_samples > 0 and is_main:
        os.makedirs(samples_dir, exist_ok=True)

    saved = set(ckpt.all_steps())

    def save(step: int, state: TrainState):
        nonlocal sample_fn, eval_x0, eval_aux
        if step in saved:
            return
        saved.add(step)
        ckpt.save(step, state.to_pytree(), config=config, meta=meta)
        if n_samples > 0 and is_main:
            try:
                if sample_fn is None:
                    sample_fn = make_sample_fn(config, model, process)
                    eval_x0 = _eval_images(config, n_samples)
                    eval_aux = _eval_end_images(config, eval_x0.shape[0])
                key = jax.random.PRNGKey(int(config.seed) + 7)
                out = sample_fn(_local_copy(state.ema_params), key, jnp.asarray(eval_x0),
                                None if eval_aux is None else jnp.asarray(eval_aux))
                path = os.path.join(samples_dir, f"step_{step:06d}.png")
                _save_sample_grid(path, config, process, eval_x0, jax.tree.map(_host, out))
                log.info("samples: %s", path)
            except Exception:  # noqa: BLE001 - a picture is not worth the run: warn and keep training
                log.exception("could not write the sample grid of step %d (training continues)", step)

    acc = _zero_acc()
    log_every, ckpt_every = int(tc.log_every), int(tc.checkpoint_every)
    max_bad = int(tc.get("max_consecutive_nonfinite", 0))
    bar = ProgressBar(num_steps, initial=start, batch_size=B, enabled=is_main)
    t_window, steps_window = time.perf_counter(), 0
    step = start

    def stop_if_nonfinite_streak(longest: int):
        # Raised before any checkpoint of the bad stretch is written: the newest one keeps the last
        # good parameters (skipped updates leave them unchanged).
        if not (max_bad and longest >= max_bad):
            return
        bar.close()
        writer.close()
        try:
            ckpt.close()
        except CheckpointError:
            pass  # already logged; the streak is the news
        raise FloatingPointError(
            f"{longest} consecutive non-finite losses/gradients by step {step} "
            f"(train.max_consecutive_nonfinite={max_bad}); stopped without saving. The newest checkpoint "
            f"(step {ckpt.latest_step()}) in {ckpt_dir} holds the last good parameters"
        )

    stop_now = False
    with _StopFlag() as stop:
        while step < num_steps and not stop_now:
            local = next(batches)
            if nan_steps:
                local = faults.poison_batch(local, step, nan_steps)
            batch = data_lib.to_global_array(local, mesh)
            if end_batcher is not None:
                end = data_lib.to_global_array(end_batcher.batch(step), mesh)
                state, metrics = train_step(state, batch, step, end)
            else:
                state, metrics = train_step(state, batch, step)
            acc = accumulate(acc, metrics)
            step += 1
            steps_window += 1
            if step % log_every == 0 or step == num_steps:
                host = jax.tree.map(lambda a: _host(a).item(), {**acc, "lr": metrics["lr"],
                                                                "nonfinite_count": metrics["nonfinite_count"],
                                                                "skipped_total": metrics["skipped_total"]})
                dt = time.perf_counter() - t_window
                fin = max(host["finite_steps"], 1)
                row = {
                    "loss": host["loss_sum"] / fin if host["finite_steps"] else float("nan"),
                    "grad_norm": host["grad_norm_sum"] / fin if host["finite_steps"] else float("nan"),
                    "lr": host["lr"],
                    "skipped_in_window": host["steps"] - host["finite_steps"],
                    "skipped_total": host["skipped_total"],
                    "checkpoint_failures": len(ckpt.failures),
                    "steps_per_sec": steps_window / dt,
                    "images_per_sec": steps_window * B / dt,
                }
                writer.write(step, row)
                bar.update(step, loss=row["loss"])
                acc, t_window, steps_window = _zero_acc(), time.perf_counter(), 0
                stop_if_nonfinite_streak(host["max_nonfinite"])
            if pcount == 1:
                stop_now = bool(stop)
            elif step % log_every == 0:
                # Processes agree on stopping at a logging step (where they sync anyway), so that they
                # all save the same step; a signal reaching one process stops them all.
                from jax.experimental import multihost_utils

                stop_now = bool(np.any(multihost_utils.process_allgather(np.int32(bool(stop)))))
            if step % ckpt_every == 0 and step < num_steps:
                stop_if_nonfinite_streak(int(_host(acc["max_nonfinite"])))
                t_save = time.perf_counter()
                save(step, state)
                t_window += time.perf_counter() - t_save  # keep steps/s a training rate
        if stop_now:
            why = signal.Signals(stop.signum).name if stop else "a signal to another process"
            log.warning("stopped by %s at step %d", why, step)
        stop_if_nonfinite_streak(int(_host(acc["max_nonfinite"])))
        save(step, state)
    bar.close()
    ckpt.close()
    writer.close()
    metrics_path = os.path.join(workdir, "metrics.jsonl")
    msg = (f"Finished at step {step}/{num_steps}. Checkpoints: {ckpt_dir} | metrics: {metrics_path} "
           f"(TensorBoard: {os.path.join(workdir, 'tb')}) | "
           f"samples: {samples_dir if n_samples > 0 else '(none)'}")
    if is_main:
        print(msg, flush=True)
    return state


def load_trained(workdir_or_ckpt_dir: str, *, step: Optional[int] = None, mesh=None):
    """(config, model, process, state, meta) of a saved run (default: its newest valid step).

    The config is read back from the checkpoint's JSON; the model and optimizer are rebuilt from it to
    give orbax its restore target. For a sampler: ``state.ema_params``.
    """
    import ml_collections

    from jaxdiff.train.checkpoints import Checkpointer, CheckpointError

    d = os.path.abspath(workdir_or_ckpt_dir)
    if os.path.isdir(os.path.join(d, "checkpoints")):
        d = os.path.join(d, "checkpoints")
    ckpt = Checkpointer(d, max_to_keep=None)
    steps = ckpt.all_steps()
    if not steps:
        raise CheckpointError(None, f"no checkpoint in {d}")
    cfg_dict = None
    for s in ([step] if step is not None else steps[::-1]):
        try:  # the config of the newest step whose files are intact
            cfg_dict, _ = ckpt.read_json(s)
            break
        except CheckpointError as e:
            if step is not None or s == steps[0]:
                raise
            log.warning("%s; reading the config of an older checkpoint", e)
    config = ml_collections.ConfigDict(cfg_dict)
    model = build_model(config)
    process = build_process(config)
    template = init_train_state(config, model, mesh=mesh)
    r = ckpt.restore(step, _abstract_state(template)) if step is not None else ckpt.restore_latest_valid(
        _abstract_state(template))
    ckpt.close()
    return config, model, process, template.replace_from_pytree(r.state), r.meta
