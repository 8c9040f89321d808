"""Judging samples: image metrics, the shipped digits features, and the reports of sample.py's evaluate mode."""
from jaxdiff.evaluation.report import *  # noqa: F401,F403
from jaxdiff.evaluation.report import __all__  # noqa: F401
