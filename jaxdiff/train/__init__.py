"""Training: the train state, the jitted step, the loop, checkpoints and what the loop logs."""
