"""Random test inputs drawn on the host: a ``jax.random`` draw compiles a program for every new shape (most of a
second each on XLA:CPU), NumPy compiles nothing."""
import jax.numpy as jnp
import numpy as np


def uniform_images(seed: int, shape) -> jnp.ndarray:
    """float32 images of ``shape`` uniform in [−1, 1), a fixed function of ``seed``."""
    return jnp.asarray(np.random.default_rng(seed).uniform(-1.0, 1.0, shape), jnp.float32)
