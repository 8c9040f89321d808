"""Network-free feature functions for the metric tests: deterministic stand-ins, not perceptual feature spaces."""
import jax.numpy as jnp
import numpy as np


def pixel_features(images):
    """Raw pixels as features: (N, H, W, C) → (N, H·W·C) float32."""
    x = jnp.asarray(images, jnp.float32)
    return x.reshape(x.shape[0], -1)


def make_random_projection(input_shape, dim: int = 64, *, seed: int = 0):
    """A fixed Gaussian random projection (N, H, W, C) → (N, dim): f(x) = flatten(x) · P/√(H·W·C)."""
    shape = tuple(int(s) for s in input_shape)
    n_in = int(np.prod(shape))
    proj = jnp.asarray(np.random.default_rng(seed).standard_normal((n_in, int(dim))).astype(np.float32) / np.sqrt(n_in))

    def features(images):
        x = jnp.asarray(images, jnp.float32)
        if x.shape[1:] != shape:
            raise ValueError(f"random projection built for images {shape}, got {x.shape[1:]}")
        return x.reshape(x.shape[0], -1) @ proj

    return features
