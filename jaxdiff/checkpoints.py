"""The on-disk checkpoint format that training writes and loading reads: layout, metadata, integrity manifest.

Layout of a workdir's checkpoints (one orbax step directory per saved step)::

    <workdir>/checkpoints/<step>/state                  the TrainState's arrays (orbax, tensorstore)
    <workdir>/checkpoints/<step>/config/metadata        JSON: the ConfigDict
    <workdir>/checkpoints/<step>/meta/metadata          JSON: what a sampler needs (:func:`make_meta`)
    <workdir>/checkpoints/<step>/jaxdiff_manifest.json  size and SHA-256 of every file above

A step is complete when its manifest is there and every file matches it (:func:`verify_checkpoint`);
:class:`CheckpointError` names the step and the file otherwise. Reading the JSON items and listing the steps
import neither orbax nor the training package: the writer (orbax's CheckpointManager, retention, resume)
is :mod:`jaxdiff.train.checkpoints`; why a step is complete or invisible: docs/RELIABILITY.md ("How").
"""
from __future__ import annotations

import json
import os
from typing import Optional

from jaxdiff.files import file_digest

__all__ = [
    "CheckpointError",
    "ITEMS",
    "JSON_ITEMS",
    "MANIFEST",
    "make_meta",
    "write_manifest",
    "verify_checkpoint",
    "read_json_items",
    "checkpoint_dir",
    "list_checkpoint_steps",
]

#: the items of a step, each a sub-directory written by its orbax handler
ITEMS = ("state", "config", "meta")
#: the items stored as JSON, each in ``<step>/<item>/JSON_FILE`` (orbax's JsonCheckpointHandler's file name)
JSON_ITEMS = ("config", "meta")
JSON_FILE = "metadata"
MANIFEST = "jaxdiff_manifest.json"
MANIFEST_FORMAT = "jaxdiff-manifest-1"
#: top-level files orbax writes (or rewrites) after the manifest, at the rename; they hold no loaded value
UNCOVERED = ("_CHECKPOINT_METADATA", "commit_success.txt")


class CheckpointError(RuntimeError):
    """A checkpoint step that cannot be loaded (missing, truncated, altered, or of other shapes)."""

    def __init__(self, step: Optional[int], message: str):
        self.step = step
        super().__init__(f"checkpoint step {step}: {message}" if step is not None else message)


def make_meta(config, **extra) -> dict:
    """What a sampler needs without re-reading the training code: data shape and the process; ``extra`` adds
    keys (the training loop: ``plugins``, the user's modules that loading imports again, :mod:`jaxdiff.plugins`)."""
    d, f = config.data, config.diffusion
    meta = {
        "format": "jaxdiff-checkpoint-1",
        "image_size": int(d.image_size),
        "channels": int(d.channels),
        "T": int(f.T),
        "prediction": str(f.prediction),
        "degradation": str(f.degradation),
        "schedule": str(f.schedule),
        "source": str(d.source),
    }
    meta.update(extra)
    return meta


def short_error(e: Exception, n: int = 400) -> str:
    """``"Type: message"`` of ``e``, cut at ``n`` characters."""
    s = f"{type(e).__name__}: {e}"
    return s if len(s) <= n else s[:n] + "…"


# ----------------------------------------------------------------------------------------------------
# where the steps are


def checkpoint_dir(workdir) -> str:
    """``<workdir>/checkpoints`` (absolute)."""
    return os.path.join(os.path.abspath(os.fspath(workdir)), "checkpoints")


def list_checkpoint_steps(workdir) -> list[int]:
    """The saved steps under <workdir>/checkpoints (orbax step directories), without importing orbax."""
    d = checkpoint_dir(workdir)
    if not os.path.isdir(d):
        return []
    return sorted(int(n) for n in os.listdir(d) if n.isdigit() and os.path.isdir(os.path.join(d, n)))


# ----------------------------------------------------------------------------------------------------
# the integrity manifest


def _files(root: str) -> list[str]:
    """Relative POSIX paths of every regular file under ``root`` (sorted)."""
    out = []
    for dirpath, dirnames, filenames in os.walk(root):
        dirnames.sort()
        for f in filenames:
            out.append(os.path.relpath(os.path.join(dirpath, f), root).replace(os.sep, "/"))
    return sorted(out)


def _sha256(path: str) -> str:
    return file_digest(path, "sha256")


def _fsync_dir(path: str) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_manifest(step_dir: str, step: int) -> dict:
    """Hashes every file of ``step_dir`` (except :data:`UNCOVERED`) into ``step_dir``/:data:`MANIFEST`.

    Written atomically: ``MANIFEST.tmp``, fsync, ``os.replace``, fsync of the directory. Returns the record.
    """
    files = {}
    for rel in _files(step_dir):
        if rel in UNCOVERED or rel.startswith(MANIFEST):
            continue
        p = os.path.join(step_dir, rel)
        files[rel] = {"size": os.path.getsize(p), "sha256": _sha256(p)}
    record = {"format": MANIFEST_FORMAT, "step": int(step), "files": files}
    tmp = os.path.join(step_dir, MANIFEST + ".tmp")
    with open(tmp, "w") as fh:
        json.dump(record, fh, indent=0, sort_keys=True)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, os.path.join(step_dir, MANIFEST))
    _fsync_dir(step_dir)
    return record


def verify_checkpoint(step_dir: str, step: Optional[int] = None) -> None:
    """Checks ``step_dir`` against its manifest; raises :class:`CheckpointError` naming the step and the file.

    Refused: no manifest (incomplete write), an unreadable one, a listed file missing, of another size
    (truncated/extended) or of another SHA-256 (altered), a file that is not listed (except :data:`UNCOVERED`).
    """
    if step is None:
        base = os.path.basename(os.path.normpath(step_dir))
        step = int(base) if base.isdigit() else None
    if not os.path.isdir(step_dir):
        raise CheckpointError(step, f"{step_dir} is not a directory")
    path = os.path.join(step_dir, MANIFEST)
    try:
        with open(path) as fh:
            record = json.load(fh)
        files = record["files"]
        if record.get("format") != MANIFEST_FORMAT or not isinstance(files, dict):
            raise ValueError(f"unknown manifest format {record.get('format')!r}")
    except FileNotFoundError:
        raise CheckpointError(step, f"no integrity manifest {MANIFEST} (an incomplete write, or a checkpoint "
                                    "not written by jaxdiff.train.checkpoints)") from None
    except Exception as e:  # noqa: BLE001 - JSON/unicode/key errors all mean "damaged"
        raise CheckpointError(step, f"the integrity manifest {MANIFEST} is damaged ({short_error(e)})") from e
    if record.get("step") != step:
        raise CheckpointError(step, f"the manifest was written for step {record.get('step')!r}, not {step} "
                                    "(a directory renamed or copied over another)")
    for rel, want in sorted(files.items()):
        p = os.path.join(step_dir, rel)
        if not os.path.isfile(p):
            raise CheckpointError(step, f"file {rel} is missing")
        size = os.path.getsize(p)
        if size != want["size"]:
            raise CheckpointError(step, f"file {rel} has {size} bytes, {want['size']} were written "
                                        "(truncated or extended)")
        if _sha256(p) != want["sha256"]:
            raise CheckpointError(step, f"file {rel} was altered after it was written (SHA-256 mismatch)")
    extra = [rel for rel in _files(step_dir) if rel not in files and rel not in UNCOVERED and rel != MANIFEST]
    if extra:
        raise CheckpointError(step, f"files not written with the checkpoint: {extra[:5]}")


# ----------------------------------------------------------------------------------------------------
# the JSON items


def read_json_items(step_dir: str, step: int, *, verify: bool = True) -> tuple[dict, dict]:
    """(config dict, meta dict) of the step in ``step_dir``; no arrays are read, nothing is imported.

    ``verify`` checks the integrity manifest first (:func:`verify_checkpoint`). Raises
    :class:`CheckpointError` naming the step and the directory when an item cannot be read.
    """
    if verify:
        verify_checkpoint(step_dir, int(step))
    out = []
    try:
        for item in JSON_ITEMS:
            with open(os.path.join(step_dir, item, JSON_FILE)) as fh:
                out.append(dict(json.load(fh)))
    except Exception as e:  # noqa: BLE001 - missing file, bad JSON, not a mapping: all "cannot read"
        raise CheckpointError(step, f"cannot read config/meta in {os.path.dirname(os.path.abspath(step_dir))}: "
                                    f"{short_error(e)}") from e
    return out[0], out[1]
