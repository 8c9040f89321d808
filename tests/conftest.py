"""Test set-up, before anything starts JAX: 8 simulated CPU devices, one persistent compilation cache per run,
and pytest-xdist's workers given whole groups of tests.

The 8 simulated devices are the test processes' own: the train.py/sample.py subprocesses of the end-to-end
tests see the machine as a user's command does (their batch split over the cores), unless a test sets
XLA_FLAGS for them.

The compilation cache is a fresh directory per run (removed at its end), shared through the environment by
every process of the run: the xdist workers and the train.py/sample.py subprocesses of the end-to-end tests,
so a program compiled once (a tiny run's train step, its sampler) is loaded by the next process that needs it
instead of compiled again. ``JAXDIFF_TEST_COMPILATION_CACHE=0`` turns it off; a ``JAX_COMPILATION_CACHE_DIR``
set by the caller is used as it is.

Under pytest-xdist (``-n``, ``--dist=loadgroup``: pyproject's addopts) a worker takes whole groups of tests,
the longest first: a module, or all the modules of the reliability harness together (tests/helpers/
scheduling.py). ``JAXDIFF_WRITE_DURATIONS=1`` writes each module's seconds to tests/durations.json, the
weights of that order.
"""
import os
import shutil
import tempfile

os.environ.setdefault("JAX_PLATFORMS", "cpu")

_CACHE_OWNED = None
if os.environ.get("JAXDIFF_TEST_COMPILATION_CACHE", "1") != "0" and not os.environ.get("JAX_COMPILATION_CACHE_DIR"):
    # The first process of the run (xdist's controller, or plain pytest) makes the directory; the workers and
    # every subprocess inherit it through the environment.
    _CACHE_OWNED = tempfile.mkdtemp(prefix="jaxdiff-tests-jax-cache-")
    os.environ["JAX_COMPILATION_CACHE_DIR"] = _CACHE_OWNED
    # Only programs that took a second or more to compile (train steps, samplers, networks): a run compiles
    # thousands of small ones, each cheaper to compile again than to compress, write and look up (measured: the
    # suite with every program cached took 1155 s against 1073 s, its compile-bound modules the ones slowed).
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "1")
    os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_ENTRY_SIZE_BYTES", "-1")
    # No size limit: with one, jax locks the directory and lists every entry on each write (quadratic in the
    # entries: minutes over a run). Without it two processes may write the same entry at once; a reader that
    # meets a half-written file gets a warning and compiles (jax_raise_persistent_cache_errors is off).
    os.environ.setdefault("JAX_COMPILATION_CACHE_MAX_SIZE", "-1")

import chex  # noqa: E402
import pytest  # noqa: E402

_XLA_FLAGS = os.environ.get("XLA_FLAGS")
chex.set_n_cpu_devices(8)  # through XLA_FLAGS, read when JAX starts its CPU backend: now
import jax  # noqa: E402

assert jax.device_count() == 8, jax.devices()
# The subprocesses (train.py, sample.py, scripts) start like a user's command on this machine, not with the 8
# simulated devices of the test processes: jaxdiff.cpu.devices splits their batch over the cores. A test that
# wants another count for a child sets it in the child's XLA_FLAGS.
os.environ["XLA_FLAGS"] = _XLA_FLAGS or ""


from helpers import scheduling  # noqa: E402

_SECONDS: dict = {}


def pytest_unconfigure(config):
    if _CACHE_OWNED and not hasattr(config, "workerinput"):
        shutil.rmtree(_CACHE_OWNED, ignore_errors=True)


def pytest_collection_modifyitems(config, items):
    if hasattr(config, "workerinput") and config.getvalue("loadgroup"):  # an xdist worker: longest groups first
        scheduling.order_items(items, config.rootpath)


@pytest.hookimpl(optionalhook=True)
def pytest_xdist_make_scheduler(config, log):
    if config.getvalue("dist") == "loadgroup":
        return scheduling.make_scheduler(config, log)
    return None


def pytest_runtest_logreport(report):
    _SECONDS[report.nodeid.split("::", 1)[0]] = _SECONDS.get(report.nodeid.split("::", 1)[0], 0.0) + report.duration


def pytest_sessionfinish(session, exitstatus):
    # JAXDIFF_WRITE_DURATIONS=1: this run's seconds per module go to tests/durations.json (the scheduler's weights)
    if os.environ.get("JAXDIFF_WRITE_DURATIONS") == "1" and not hasattr(session.config, "workerinput") and _SECONDS:
        scheduling.write_durations(_SECONDS)
