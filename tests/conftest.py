"""Test set-up: 8 simulated CPU devices, before anything starts JAX."""
import os

os.environ.setdefault("JAX_PLATFORMS", "cpu")

import chex  # noqa: E402

chex.set_n_cpu_devices(8)
