"""The random streams of sample.py's modes: each use of the seed has its own named salt.

A mode's key is ``jax.random.PRNGKey(seed)``; evaluate folds one salt per use into it, so the degradation,
the restoration, the generation and the sweeps never share random numbers. Changing a value changes results.
"""
import jax

# evaluate: the restoration table
RESTORATION_AUX = 10
RESTORATION_DEGRADE = 11
RESTORATION_RUN = 12
# evaluate: generation, and the end states its prior draws are compared with
GENERATION = 2
END_STATE_DEGRADE = 5
END_STATE_AUX = 6
# evaluate: the steps sweeps
SWEEP_GENERATION = 3
SWEEP_RESTORATION = 4


def key_for(seed: int, salt: int) -> jax.Array:
    """``fold_in(PRNGKey(seed), salt)``."""
    return jax.random.fold_in(jax.random.PRNGKey(int(seed)), int(salt))
