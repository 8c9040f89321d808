"""What a person reads on the console of train.py, sample.py and the scripts.

By default (absl's ``--verbosity=0``): the progress bar, the results, one-line errors, jaxdiff's own messages
(its INFO and up, one plain line each, printed above a running bar) and every library's warnings and errors.
Library INFO and DEBUG records (orbax's checkpoint-manager internals, jax's backend probing, absl) are dropped.
``--verbosity=-1`` leaves jaxdiff's INFO out too. ``--verbosity=1`` or higher gives every library's records at
absl's level for it (1 = DEBUG), each line with absl's prefix. Every line goes through ``tqdm.write``, above
a running bar.
"""
from __future__ import annotations

import logging
import os
import sys
from typing import Optional

__all__ = ["configure", "add_verbosity_flag", "ConsoleHandler"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__)) + os.sep


def _is_own(record: logging.LogRecord) -> bool:
    """jaxdiff's record: its loggers, or absl's logger called from jaxdiff's files."""
    return record.name == "jaxdiff" or record.name.startswith("jaxdiff.") or record.pathname.startswith(_PACKAGE_DIR)


def _library(record: logging.LogRecord) -> str:
    """The library a record comes from: its logger's first name, or for absl's logger (which orbax and others
    log through) the top-level package of the calling file."""
    if record.name != "absl":
        return record.name.split(".")[0]
    parts = record.pathname.split(os.sep)
    if "site-packages" in parts:
        tail = parts[parts.index("site-packages") + 1:]
        if len(tail) > 1:
            return tail[0]
    return "absl"


class ConsoleFormatter(logging.Formatter):
    """jaxdiff's INFO as the bare message; warnings and errors as ``warning: …`` / ``warning (orbax): …``."""

    def format(self, record: logging.LogRecord) -> str:
        msg = record.getMessage()
        if record.exc_info:
            msg = f"{msg}\n{self.formatException(record.exc_info)}"
        if record.levelno < logging.WARNING and _is_own(record):
            return msg
        level = record.levelname.lower()
        return f"{level}: {msg}" if _is_own(record) else f"{level} ({_library(record)}): {msg}"


class ConsoleHandler(logging.Handler):
    """Writes to the current ``sys.stderr`` through ``tqdm.write``, so that a line never lands in the middle of a
    running progress bar."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            msg = self.format(record)
            import tqdm  # noqa: PLC0415

            tqdm.tqdm.write(msg, file=sys.stderr)
            sys.stderr.flush()
        except Exception:  # noqa: BLE001 - logging must never raise
            self.handleError(record)


def add_verbosity_flag(parser) -> None:
    """``--verbosity`` for an argparse script, with absl's meaning (see :func:`configure`)."""
    parser.add_argument("--verbosity", "-v", type=int, default=0,
                        help="0: progress, results, jaxdiff's messages and every warning (default); -1: without "
                             "jaxdiff's INFO; 1 or higher: every library's logs too (1 = DEBUG).")


def configure(verbosity: Optional[int] = None) -> None:
    """Sets up the console of a command-line program (call it once, from the program's entry point only: it
    changes the root logger of the process).

    ``verbosity`` is absl's ``--verbosity`` (default: that flag's value when absl parsed the flags, else 0).
    absl's handler (and any other stderr handler) on the root logger is replaced by one :class:`ConsoleHandler`.
    Below 1, the root logger is at WARNING, so libraries' INFO is never even formatted, and the ``jaxdiff``
    logger at INFO (0) or WARNING (-1), unless ``--logger_levels`` names it. 1 or higher: every logger at
    absl's level for ``verbosity`` (1 = DEBUG), each line with absl's prefix.
    """
    from absl import flags  # noqa: PLC0415
    from absl import logging as absl_logging  # noqa: PLC0415

    FLAGS = flags.FLAGS
    if verbosity is None:
        verbosity = FLAGS["verbosity"].value if FLAGS.is_parsed() else 0
    verbosity = int(verbosity)
    named = FLAGS["logger_levels"].value if FLAGS.is_parsed() else {}
    root = logging.getLogger()
    for h in list(root.handlers):
        if isinstance(h, ConsoleHandler) or h is absl_logging.get_absl_handler() or (
                type(h) is logging.StreamHandler and getattr(h, "stream", None) in (sys.stderr, sys.__stderr__)):
            root.removeHandler(h)
    handler = ConsoleHandler()
    own = logging.getLogger("jaxdiff")
    if verbosity >= 1:
        handler.setFormatter(absl_logging.PythonFormatter())
        root.setLevel(logging.DEBUG - (verbosity - 1))  # absl's mapping: 1 = DEBUG, more = finer
        own_level = logging.NOTSET
    else:
        handler.setFormatter(ConsoleFormatter())
        root.setLevel(logging.WARNING)
        own_level = logging.INFO if verbosity == 0 else logging.WARNING
    root.addHandler(handler)
    if "absl" not in named:
        absl_logging.get_absl_logger().setLevel(logging.NOTSET)  # absl's records follow the root's level
    if "jaxdiff" not in named:
        own.setLevel(own_level)
