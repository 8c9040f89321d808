"""The training loop: ``train_and_evaluate(config, workdir)`` resumes, trains, logs, checkpoints and draws.

Per step: the batch of (seed, step) → the jitted step (jaxdiff.train.step); every ``log_every`` steps one
host sync for the metrics row; every ``checkpoint_every`` steps an (asynchronous) checkpoint, a sample
grid and the generation prior. The workdir is locked for the run (jaxdiff.train.lock); a resume starts
from the newest checkpoint that passes its manifest. SIGTERM/SIGINT stop after the current step with a
checkpoint of it.
"""
from __future__ import annotations

import logging
import os
import signal
import threading
import time
from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from jaxdiff.cpu import xla_options
from jaxdiff.experiment import build_model, build_process, make_mesh, maybe_initialize_distributed
from jaxdiff.train.state import TrainState
from jaxdiff.train.step import init_train_state, make_train_step

__all__ = ["train_and_evaluate", "BatchHook"]

log = logging.getLogger(__name__)

#: ``hook(step, local_batch) -> local_batch``: sees (and may replace) this process's host batch of ``step``
BatchHook = Callable[[int, np.ndarray], np.ndarray]


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


def _abstract_state(state: TrainState) -> dict:
    from jaxdiff.train.checkpoints import abstract_like

    return abstract_like(state.to_pytree())


def train_and_evaluate(config, workdir: str, *, batch_hook: Optional[BatchHook] = None) -> TrainState:
    """Trains ``config`` in ``workdir`` (resuming from its latest valid checkpoint) and returns the final state.

    Writes <workdir>/checkpoints/<step>/ (orbax, last ``train.keep_checkpoints``), <workdir>/metrics.jsonl
    and TensorBoard events, <workdir>/samples/step_<step>.png and the generation prior <workdir>/prior.npz
(fitted once, stored with the step of each checkpoint; none for restoration-only runs). SIGTERM/SIGINT
    stop the run after the current step with a checkpoint. A second trainer on the same workdir is refused
    with :class:`~jaxdiff.train.lock.WorkdirBusyError` before anything is loaded. ``batch_hook`` (see
    :data:`BatchHook`) is called on every host batch before it is sharded (tests inject faults with it).
    """
    from jaxdiff.config import validate_config
    from jaxdiff.cpu.devices import split_cpu_devices
    from jaxdiff.train.lock import LOCK_FILE, WorkdirBusyError, WorkdirLock

    # CPU only, before any backend exists: the host's cores become devices the batch is split over (no-op on
    # accelerators, in multi-process runs, or when the user chose a device count).
    # With gradient accumulation each micro-batch (batch_size / grad_accum_steps) is what is split.
    b, k = config.train.get("batch_size"), config.train.get("grad_accum_steps", 1)
    micro = b // k if isinstance(b, int) and isinstance(k, int) and k >= 1 and b % k == 0 else b
    n_cpu = split_cpu_devices(micro, distributed=bool(config.train.get("distributed", False)))
    maybe_initialize_distributed(config)
    if n_cpu:
        log.info("CPU: the batch is split over %d XLA CPU devices (JAXDIFF_CPU_DEVICES=1 turns this off)", n_cpu)
    validate_config(config, num_devices=jax.device_count(), process_count=jax.process_count())
    xla_options.enabled()  # a bad JAXDIFF_XLA_CPU_OPTIONS fails here, before data or compilation
    workdir = os.path.abspath(workdir)
    is_main = jax.process_index() == 0
    # Only process 0 locks: the processes of one multi-process run share the workdir. The others learn the
    # outcome from one all-gather, so a refused run stops on every process, before anything is loaded.
    lock = busy = None
    if is_main:
        try:
            lock = WorkdirLock(workdir).acquire()
        except WorkdirBusyError as e:
            busy = e
    if jax.process_count() > 1:
        from jax.experimental import multihost_utils

        if np.max(multihost_utils.process_allgather(np.int32(busy is not None))) and busy is None:
            busy = WorkdirBusyError(f"workdir {workdir} is in use by another training process "
                                    f"(process 0 of this run could not lock {os.path.join(workdir, LOCK_FILE)})")
    if busy is not None:
        raise busy
    try:
        return _train(config, workdir, batch_hook)
    finally:
        if lock is not None:
            lock.release()


def _train(config, workdir: str, batch_hook: Optional[BatchHook]) -> TrainState:
    from jaxdiff import data as data_lib
    from jaxdiff.progress import ProgressBar
    from jaxdiff.train import sample_grid
    from jaxdiff.checkpoints import CheckpointError, make_meta
    from jaxdiff.plugins import plugin_records
    from jaxdiff.train.checkpoints import Checkpointer
    from jaxdiff.train.metric_writer import MetricWriter

    pidx, pcount = jax.process_index(), jax.process_count()
    is_main = pidx == 0
    tc = config.train
    num_steps, B = int(tc.num_steps), int(tc.batch_size)

    mesh = make_mesh()
    process = build_process(config)
    model = build_model(config)
    train_src = data_lib.source_from_config(config, split="train", field="data.source")
    num_classes = int(config.model.get("num_classes", 0))
    if num_classes:  # a conditional model trains on (images, labels): refuse a source without them before compiling
        data_lib.check_labels(train_src, num_classes, source_string=str(config.data.source))
    end_batcher = data_lib.end_source(config, split="train", process_index=pidx, process_count=pcount)

    state = init_train_state(config, model, mesh=mesh)
    ckpt_dir = os.path.join(workdir, "checkpoints")
    ckpt = Checkpointer(ckpt_dir, max_to_keep=int(tc.keep_checkpoints))
    # Refused steps newer than the loaded one are moved to checkpoints/rejected/ so they can be redone.
    loaded = ckpt.load_latest_valid(_abstract_state(state), quarantine=True)
    if loaded is not None:
        state = state.replace_from_pytree(loaded.state)
        log.info("resumed from %s at step %d", ckpt_dir, loaded.step)
    start = int(_host(state.step))
    meta = make_meta(config, plugins=plugin_records(config))  # the user's modules, imported again on loading

    train_step = make_train_step(config, model, process, mesh=mesh)
    accumulate = _make_accumulate()
    batches = data_lib.iterate_batches(train_src, global_batch_size=B, seed=int(config.seed), process_index=pidx,
                                       process_count=pcount, random_flip=bool(config.data.random_flip),
                                       start_step=start, with_labels=bool(num_classes))

    # What a killed run logged after `start` is dropped: every step is logged once (jsonl and TensorBoard).
    writer = MetricWriter(workdir, enabled=is_main, resume_step=start)
    samples_dir = os.path.join(workdir, "samples")
    n_samples = int(tc.num_sample_images)
    sample_fn = eval_x0 = eval_aux = None
    if n_samples > 0 and is_main:
        os.makedirs(samples_dir, exist_ok=True)

    from jaxdiff.evaluation.train_eval import make_evaluator  # FID while training (train.eval_every)

    evaluator = make_evaluator(config, model, process, workdir) if is_main else None
    eval_every = int(tc.get("eval_every", 0))
    saved = set(ckpt.all_steps())
    run_prior = None  # the generation prior, fitted once per run: it depends on the data and the process, not the step

    def store_prior(step: int):
        nonlocal run_prior
        from jaxdiff.priors import store as prior_store

        try:
            run_prior = prior_store.store_prior_with_checkpoint(config, workdir, step, process=process,
                                                                prior=run_prior)
        except Exception:  # noqa: BLE001 - sample.py fits it on first use instead: warn and keep training
            log.exception("could not fit or store the generation prior at step %d (training continues)", step)

    def draw(step: int, state: TrainState):
        nonlocal sample_fn, eval_x0, eval_aux
        try:
            if sample_fn is None:
                sample_fn = sample_grid.make_sample_fn(config, model, process)
                eval_x0 = sample_grid.eval_images(config, n_samples)
                eval_aux = sample_grid.eval_end_images(config, eval_x0.shape[0])
            key = jax.random.PRNGKey(int(config.seed) + sample_grid.SAMPLE_SEED_OFFSET)
            out = sample_fn(_local_copy(state.ema_params), key, jnp.asarray(eval_x0),
                            None if eval_aux is None else jnp.asarray(eval_aux))
            path = sample_grid.save_sample_grid(sample_grid.grid_path(samples_dir, step), step, process, eval_x0,
                                                jax.tree.map(_host, out))
            from PIL import Image

            with Image.open(path) as im:
                writer.write_image(step, "samples", np.asarray(im.convert("RGB")))
            log.info("samples: %s", path)
        except Exception:  # noqa: BLE001 - a picture is not worth the run: warn and keep training
            log.exception("could not write the sample grid of step %d (training continues)", step)

    def save(step: int, state: TrainState):
        if step in saved:
            return
        saved.add(step)
        if n_samples > 0 and is_main:
            draw(step, state)
        if is_main:  # <workdir>/prior.npz (outside the step directory, so the step's manifest stays valid)
            store_prior(step)
        # Before the checkpoint can exist, every step logged up to it is on disk (a resume from it keeps them).
        writer.sync()
        ckpt.save(step, state.to_pytree(), config=config, meta=meta)

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
            if batch_hook is not None:
                local = batch_hook(step, local)
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
            if evaluator is not None and step % eval_every == 0:
                t_eval = time.perf_counter()  # the evaluation reads a copy of the EMA params: no effect on training
                row, grid, message = evaluator(step, _local_copy(state.ema_params))
                writer.write(step, row)
                writer.write_image(step, "eval_samples", grid)
                bar.write(message)
                t_window += time.perf_counter() - t_eval  # keep steps/s a training rate
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
