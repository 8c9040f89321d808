"""Experiment configs: loading config files and validating them before anything is built."""
