"""Determinism: the same key gives bitwise identical samples, another key different ones (the same-run
determinism of training is checked by the reliability reference, tests/helpers/reliability.py).
"""
import numpy as np

import jax
import jax.numpy as jnp



def test_same_key_gives_identical_samples_and_another_key_does_not():
    from jaxdiff import sampling
    from jaxdiff.processes import GaussianProcess
    from jaxdiff.processes.schedules import make_schedule

    process = GaussianProcess(make_schedule("linear", 10))
    w = jnp.float32(0.3)

    def denoiser(params, x, t):  # a fixed smooth "network" predicting ε
        return jnp.tanh(params * x) + 0.01 * t[:, None, None, None].astype(jnp.float32)

    def draw(seed):
        key = jax.random.PRNGKey(seed)
        x_T = jax.random.normal(jax.random.fold_in(key, 1), (4, 8, 8, 1))
        out, _ = sampling.sample(denoiser, w, key, x_T, process=process, corrector="ddpm",
                                 timesteps=sampling.timesteps(10, 10), prediction="eps", clip=1.0, eta=1.0,
                                 return_every=0)
        return np.asarray(out)

    a, b, c = draw(0), draw(0), draw(1)
    assert a.tobytes() == b.tobytes()
    assert np.max(np.abs(a - c)) > 1e-3
