"""One trainer per workdir: an OS lock on ``<workdir>/.jaxdiff.lock`` that dies with its holder.

``fcntl.flock`` (exclusive, non-blocking) on the file, with the holder's pid written inside. The kernel
drops the lock when the holding process ends in any way (SIGKILL included), so a stale lock never blocks a
restart; the file itself stays (removing it would let two processes lock two different files). Readers
(sample.py) never take it.
"""
from __future__ import annotations

import fcntl
import os
from typing import Optional

__all__ = ["LOCK_FILE", "WorkdirBusyError", "WorkdirLock"]

LOCK_FILE = ".jaxdiff.lock"


class WorkdirBusyError(ValueError):
    """Another live process trains in this workdir."""


class WorkdirLock:
    """``with WorkdirLock(workdir):`` holds the workdir's lock, or raises :class:`WorkdirBusyError` at once."""

    def __init__(self, workdir: str):
        self.workdir = os.path.abspath(os.fspath(workdir))
        self.path = os.path.join(self.workdir, LOCK_FILE)
        self._fd: Optional[int] = None

    def acquire(self) -> "WorkdirLock":
        os.makedirs(self.workdir, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)  # not inherited by child processes
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read_pid(fd)
            os.close(fd)
            raise WorkdirBusyError(
                f"workdir {self.workdir} is in use by another training process (pid {holder}, lock "
                f"{self.path}); wait for it to finish, stop it, or choose another --workdir") from None
        except BaseException:
            os.close(fd)
            raise
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        os.fsync(fd)
        self._fd = fd
        return self

    def release(self) -> None:
        if self._fd is not None:
            fd, self._fd = self._fd, None
            fcntl.flock(fd, fcntl.LOCK_UN)
            os.close(fd)

    @property
    def held(self) -> bool:
        return self._fd is not None

    def __enter__(self) -> "WorkdirLock":
        return self.acquire()

    def __exit__(self, *exc) -> None:
        self.release()


def _read_pid(fd: int) -> str:
    """The pid the holder wrote ('unknown' if it is still writing it)."""
    try:
        text = os.pread(fd, 64, 0).decode(errors="replace").strip()
    except OSError:
        text = ""
    return text if text.isdigit() else "unknown"
