"""Training: the train state, the jitted step, the loop, checkpoints, the workdir lock and what the loop logs."""
from jaxdiff.train.lock import WorkdirBusyError

__all__ = ["train_and_evaluate", "WorkdirBusyError"]


def __getattr__(name):  # the loop imports jax, flax and optax: only when it is asked for
    if name == "train_and_evaluate":
        from jaxdiff.train.loop import train_and_evaluate

        return train_and_evaluate
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
