"""A converted diffusers model stored as a jaxdiff workdir (step 0) that sample.py reads like a trained run."""
from __future__ import annotations

import os

from jaxdiff.interop.diffusers.convert import Converted
from jaxdiff.interop.diffusers.layout import InteropError

__all__ = ["write_workdir"]


def write_workdir(converted: Converted, workdir) -> str:
    """Stores ``converted`` as step 0 of ``workdir`` (params = EMA params), in train/checkpoints' format, so that
    sample.py and :func:`jaxdiff.experiment.load_run` read it like a trained run. Refuses (InteropError) a busy
    or non-empty workdir, writing nothing. Returns the step directory."""
    import jax
    import jax.numpy as jnp

    from jaxdiff.checkpoints import make_meta
    from jaxdiff.train.checkpoints import Checkpointer
    from jaxdiff.train.lock import LOCK_FILE, WorkdirBusyError, WorkdirLock

    workdir = os.path.abspath(os.fspath(workdir))
    if os.path.exists(workdir) and not os.path.isdir(workdir):
        raise InteropError(f"--workdir={workdir} is a file; choose a new directory (nothing was written)")

    def refuse_nonempty():
        entries = sorted(n for n in os.listdir(workdir) if n != LOCK_FILE) if os.path.isdir(workdir) else []
        if entries:
            raise InteropError(f"--workdir={workdir} is not empty ({entries[:5]}); import into a new directory "
                               "(nothing was written)")

    if not os.path.exists(os.path.join(workdir, LOCK_FILE)):
        refuse_nonempty()  # before the lock file is created
    lock = WorkdirLock(workdir)
    try:
        lock.acquire()
    except WorkdirBusyError as e:
        raise InteropError(f"--workdir: {e} (nothing was written)") from None
    try:
        refuse_nonempty()
        params = jax.tree.map(jnp.asarray, converted.params)
        state = {"step": jnp.zeros((), jnp.int32), "params": params, "ema_params": params}
        meta = make_meta(converted.config, imported_from=converted.source, imported_by="jaxdiff.interop.diffusers")
        ckpt = Checkpointer(os.path.join(workdir, "checkpoints"), max_to_keep=None, async_save=False)
        try:
            if not ckpt.save(0, state, config=converted.config, meta=meta):
                raise InteropError(f"could not write the checkpoint in {workdir}: {ckpt.failures}")
        finally:
            ckpt.close()
        return ckpt.step_dir(0)
    finally:
        lock.release()
