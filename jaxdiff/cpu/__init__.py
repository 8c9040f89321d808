"""Choices made for the XLA:CPU backend only: the batch split over the cores, per-program compile options."""
