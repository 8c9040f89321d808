"""One place that builds a run from its config: the mesh, the forward process, the model, the data sources.

Training, sampling, priors and pictures all build through here, so a config means the same thing to each.
"""
from __future__ import annotations

import logging
import os

import jax

from jaxdiff.forward import ColdProcess, ForwardProcess, GaussianProcess

log = logging.getLogger(__name__)

DATA_AXIS = "data"


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D ``('data',)`` mesh over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh(
        (len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
    )


def maybe_initialize_distributed(config) -> bool:
    """Calls ``jax.distributed.initialize`` when ``config.train.distributed`` or the environment asks.

    The environment asks through JAX_COORDINATOR_ADDRESS (with JAX_NUM_PROCESSES and JAX_PROCESS_ID,
    read here because jax itself only auto-detects them on managed clusters). Must run before anything
    touches a JAX backend. Returns whether the process is (now) part of a multi-process run.
    """
    if jax.distributed.is_initialized():
        return True
    wanted = bool(config.train.get("distributed", False))
    addr = os.environ.get("JAX_COORDINATOR_ADDRESS")
    if not (wanted or addr):
        return False
    kwargs = {}
    if addr:
        kwargs["coordinator_address"] = addr
    for env, name in (("JAX_NUM_PROCESSES", "num_processes"), ("JAX_PROCESS_ID", "process_id")):
        if os.environ.get(env):
            kwargs[name] = int(os.environ[env])
    # CPU backends need an explicit cross-process collectives library (GPU/TPU ignore this option).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    jax.distributed.initialize(**kwargs)
    log.info("jax.distributed: process %d of %d", jax.process_index(), jax.process_count())
    return True


def build_process(config) -> ForwardProcess:
    """GaussianProcess(make_schedule(...)) or ColdProcess(make_degradation(...), noise_std) from config.diffusion."""
    f, d = config.diffusion, config.data
    if f.kind == "gaussian":
        from jaxdiff.schedules import make_schedule

        return GaussianProcess(make_schedule(f.schedule, int(f.T), **dict(f.schedule_params)))
    if f.kind == "cold":
        from jaxdiff.degradations import make_degradation

        deg = make_degradation(
            f.degradation,
            T=int(f.T),
            image_size=int(d.image_size),
            channels=int(d.channels),
            **dict(f.degradation_params),
        )
        return ColdProcess(deg, noise_std=float(f.noise_std))
    raise ValueError(f"diffusion.kind must be 'cold' or 'gaussian', got {f.kind!r}")


def build_model(config):
    """The UNet of ``config.model`` for ``config.data``'s image size and channels."""
    from jaxdiff.models.unet import make_unet

    c = int(config.data.channels)
    return make_unet(config.model, image_size=int(config.data.image_size), in_channels=c, out_channels=c)
