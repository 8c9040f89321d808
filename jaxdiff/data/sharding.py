"""Process-local batches → global ``jax.Array``s sharded over a mesh's data axis."""
from __future__ import annotations

import jax
import numpy as np
from jax.sharding import NamedSharding, PartitionSpec as P

__all__ = ["to_global_array"]


def to_global_array(local_batch, mesh: jax.sharding.Mesh, *, axis: str = "data"):
    """Places a process-local batch (a numpy array or a pytree of them, leading dim B/P) on ``mesh``.

    Returns global ``jax.Array``s of leading dim B, sharded ``NamedSharding(mesh, P(axis))``: each of the
    ``mesh.shape[axis]`` devices holds B / n_devices rows; process p's rows are its own local batch.
    """
    n_dev = mesh.shape[axis]
    me = jax.process_index()
    # rows per process must also split over this process's devices (checked for 1-D meshes; on others
    # jax itself validates the layout)
    n_local = (sum(1 for d in mesh.devices.flat if d.process_index == me) if len(mesh.axis_names) == 1
               else 0)
    sharding = NamedSharding(mesh, P(axis))

    def put(x):
        x = np.asarray(x)
        if x.ndim == 0:
            raise ValueError("to_global_array: a batch needs a leading batch dimension")
        global_b = x.shape[0] * jax.process_count()
        if global_b % n_dev or (n_local and x.shape[0] % n_local):
            raise ValueError(f"train.batch_size={global_b} must be divisible by the number of devices on the "
                             f"{axis!r} mesh axis ({n_dev}; {n_local} on this process)")
        return jax.make_array_from_process_local_data(sharding, x)

    return jax.tree.map(put, local_batch)
