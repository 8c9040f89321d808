"""One place that builds a run: from a config (mesh, forward process, model) or from a trained workdir.

    run = load_run("workdirs/cold_blur")        # config read once, process and model built once, EMA params
    run.process, run.model, run.params, run.step

Training, sampling, priors and pictures all build through here, so a config means the same thing to each.
:func:`load_run` holds the one newest→oldest walk over a workdir's checkpoints.
"""
from __future__ import annotations

import dataclasses
import logging
import os
from typing import Any, Optional, Union

import jax

from jaxdiff.checkpoints import checkpoint_dir, list_checkpoint_steps
from jaxdiff.processes import Process, build_process

__all__ = [
    "DATA_AXIS",
    "make_mesh",
    "maybe_initialize_distributed",
    "build_process",
    "build_model",
    "describe_process",
    "NoCheckpointError",
    "Run",
    "load_run",
    "load_ema_params",
]

log = logging.getLogger(__name__)

DATA_AXIS = "data"


def make_mesh(devices=None) -> jax.sharding.Mesh:
    """A 1-D ``('data',)`` mesh over ``devices`` (default: every device of every process)."""
    devices = list(jax.devices() if devices is None else devices)
    return jax.make_mesh(
        (len(devices),), (DATA_AXIS,), axis_types=(jax.sharding.AxisType.Auto,), devices=devices
    )


def maybe_initialize_distributed(config=None) -> bool:
    """Calls ``jax.distributed.initialize`` when ``config.train.distributed`` or the environment asks.

    The environment asks through JAX_COORDINATOR_ADDRESS (with JAX_NUM_PROCESSES and JAX_PROCESS_ID,
    read here because jax itself only auto-detects them on managed clusters); without ``config`` (sample.py,
    which does not consult the stored config) only the environment asks. Must run before anything
    touches a JAX backend. Returns whether the process is (now) part of a multi-process run.
    """
    if jax.distributed.is_initialized():
        return True
    wanted = config is not None and bool(config.train.get("distributed", False))
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


def build_model(config, process: Optional[Process] = None):
    """The UNet of ``config.model`` for ``config.data``'s image size and channels; with EDM's prediction it scales
    its input by c_in (:func:`jaxdiff.parameterization.edm_input_scale` of the config's process)."""
    from jaxdiff.models.unet import make_unet

    c = int(config.data.channels)
    scale = None
    if str(config.diffusion.prediction) == "edm":
        from jaxdiff.parameterization import edm_input_scale

        scale = edm_input_scale(process if process is not None else build_process(config))
    return make_unet(config.model, image_size=int(config.data.image_size), in_channels=c, out_channels=c,
                     input_scale=scale)


def describe_process(process_or_config: Union[Process, Any]) -> str:
    """How reports and pictures name a process (or a config's): :meth:`Process.describe`."""
    process = process_or_config
    if not isinstance(process, Process):
        process = build_process(process_or_config)
    return process.describe()


# ---------------------------------------------------------------------------------------------------------
# a trained run


class NoCheckpointError(FileNotFoundError):
    """The workdir holds no checkpoint to load."""


@dataclasses.dataclass(frozen=True, eq=False)
class Run:
    """A trained run loaded from its workdir: the stored config, what it builds, the EMA params of ``step``.

    params are replicated over ``mesh``; meta is the checkpoint's metadata dict.
    """

    config: Any
    process: Process
    model: Any
    params: Any
    step: int
    meta: dict
    mesh: jax.sharding.Mesh
    workdir: str

    @property
    def image_shape(self) -> tuple[int, int, int]:
        d = self.config.data
        return int(d.image_size), int(d.image_size), int(d.channels)


def load_run(workdir, step: Optional[int] = None, *, mesh: Optional[jax.sharding.Mesh] = None) -> Run:
    """The run of checkpoint ``step`` (default: the newest one that loads, trying older ones after it).

    Per step: the JSON items (config, meta) after the integrity manifest is checked, the user's modules that
    registered what the run uses imported again (:func:`jaxdiff.plugins.import_plugins`), the config upgraded
    from older spellings (:func:`jaxdiff.config.upgrade.upgrade_stored_config`), process and model built,
    then only ``ema_params`` read (:func:`load_ema_params`). Raises :class:`NoCheckpointError` when there is
    no checkpoint, ValueError for an unknown ``step``, :class:`~jaxdiff.plugins.PluginError` when such a
    module is missing, CheckpointError when none loads.
    """
    from jaxdiff.checkpoints import CheckpointError, read_json_items
    from jaxdiff.config.upgrade import upgrade_stored_config
    from jaxdiff.plugins import PluginError, import_plugins

    workdir = os.path.abspath(os.fspath(workdir))
    steps = list_checkpoint_steps(workdir)
    if not steps:
        raise NoCheckpointError(
            f"no checkpoint in {checkpoint_dir(workdir)}: train first (python train.py --config=<config> "
            f"--workdir={workdir}) or point --workdir at a trained run")
    if step is not None and step not in steps:
        raise ValueError(f"step={step}: no such checkpoint in {workdir}; saved steps: {steps}")
    mesh = make_mesh() if mesh is None else mesh
    failures = []
    for s in ([int(step)] if step is not None else steps[::-1]):
        try:
            stored, meta = read_json_items(os.path.join(checkpoint_dir(workdir), str(s)), s)
            import_plugins(meta.get("plugins"), workdir=workdir)  # what the user registered: before any name is read
            config = upgrade_stored_config(stored)
            model = build_model(config)
            params = load_ema_params(workdir, s, model, config, mesh)
            process = build_process(config)
        except PluginError:
            raise  # one message naming the module: an older step would need the same one
        except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types; reported below
            failures.append(f"step {s}: {type(e).__name__}: {str(e)[:300]}")
            log.warning("checkpoint step %d of %s does not load (%s); trying an older one", s, workdir, e)
            continue
        return Run(config=config, process=process, model=model, params=params, step=s, meta=dict(meta or {}),
                   mesh=mesh, workdir=workdir)
    raise CheckpointError(None, f"no checkpoint in {workdir} loads:\n  " + "\n  ".join(failures))


def load_ema_params(workdir, step: int, model, config, mesh: jax.sharding.Mesh):
    """The ``ema_params`` of checkpoint ``step``, replicated over ``mesh`` (orbax partial read).

    The target shapes come from ``model.init`` traced abstractly (nothing is computed); orbax checks every
    stored shape and dtype against them. The step's files are checked against its integrity manifest
    first: a flipped byte in an array chunk is not noticed by tensorstore, so without this a damaged
    checkpoint would load silently wrong weights. No optimizer is built; its moments never leave the disk.
    """
    import jax.numpy as jnp
    import orbax.checkpoint as ocp  # heavy: only when a checkpoint is read
    from jax.sharding import NamedSharding
    from jax.sharding import PartitionSpec as P

    from jaxdiff.checkpoints import verify_checkpoint

    step_dir = os.path.join(checkpoint_dir(workdir), str(int(step)))
    verify_checkpoint(step_dir, int(step))
    s, c = int(config.data.image_size), int(config.data.channels)
    abstract = jax.eval_shape(
        lambda: model.init({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, s, s, c), jnp.float32),
                           jnp.zeros((1,), jnp.int32), train=False)["params"]
    )
    repl = NamedSharding(mesh, P())
    target = {"ema_params": jax.tree.map(lambda a: jax.ShapeDtypeStruct(a.shape, a.dtype, sharding=repl), abstract)}
    args = ocp.args.PyTreeRestore(target, restore_args=ocp.checkpoint_utils.construct_restore_args(target),
                                  partial_restore=True)
    with ocp.PyTreeCheckpointer() as ckptr:
        return ckptr.restore(os.path.join(step_dir, "state"), args=args)["ema_params"]
