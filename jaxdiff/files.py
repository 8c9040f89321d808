"""Writing files so that a reader never sees half of one: every picture, report, prior and array file goes here."""
from __future__ import annotations

import contextlib
import hashlib
import os
import tempfile
from typing import Callable

import numpy as np

__all__ = ["atomic_write", "save_npz", "file_digest"]


def atomic_write(path, write: Callable[[object], None]) -> str:
    """Calls ``write(fileobj)`` on a temporary file next to ``path`` and renames it over ``path``.

    The temporary file (``.<name>.*.tmp`` in the same directory, so the rename is atomic) is removed if
    ``write`` raises; ``path`` then keeps its previous content. Parent directories are created.
    """
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)  # mkstemp creates 0600; outputs are meant to be shared
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    return path


def file_digest(path, algorithm: str = "sha256") -> str:
    """The hex digest of a file's bytes (``hashlib`` ``algorithm``: sha256, sha1, …), read in 4 MiB blocks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def save_npz(path, **arrays) -> str:
    """``np.savez`` of the arrays that are not None, atomically (no pickle: plain arrays only)."""
    return atomic_write(path, lambda f: np.savez(f, **{k: np.asarray(v) for k, v in arrays.items() if v is not None}))
