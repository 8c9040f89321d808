"""Writing a training run's checkpoints with orbax: the state, the config as JSON, the metadata, the manifest.

The format (layout, metadata, integrity manifest, reading the JSON items) is :mod:`jaxdiff.checkpoints`, which
loading a run uses without this module. Layout (one orbax step directory per saved step, the last
``max_to_keep`` kept)::

    <directory>/<step>/state                  the TrainState's arrays (step, params, ema_params, opt_state, counters)
    <directory>/<step>/config, meta           JSON: the ConfigDict, and what a sampler needs (:func:`make_meta`)
    <directory>/<step>/jaxdiff_manifest.json  size and SHA-256 of every file above, written before orbax's rename
    <directory>/rejected/<step>-<time>/       steps refused at a resume, moved aside (never deleted)

Saving is asynchronous (settle with ``wait``/``close``). Loading checks the manifest, then the stored shapes
against an abstract target (:func:`abstract_like`), and raises :class:`CheckpointError` naming the step and the
file or leaf. No pickle anywhere. Why a step is complete or invisible: docs/RELIABILITY.md ("How").
"""
from __future__ import annotations

import glob
import logging
import os
import shutil
import time
from typing import Any, Optional

import jax
import numpy as np

from jaxdiff.checkpoints import (MANIFEST, CheckpointError, read_json_items, short_error, verify_checkpoint,
                                 write_manifest)

__all__ = ["CheckpointSaveError", "Checkpointer", "Loaded", "abstract_like"]

log = logging.getLogger(__name__)

TMP_SUFFIX = ".orbax-checkpoint-tmp"  # orbax's temporary step directories: "<step>.orbax-checkpoint-tmp[-…]"
DELETING_PREFIX = ".jaxdiff-deleting-"
REJECTED_DIR = "rejected"


class CheckpointSaveError(CheckpointError):
    """A checkpoint step that could not be written (the older steps are kept)."""


class Loaded(tuple):
    """(step, state_tree, config_dict, meta_dict) as returned by the load methods."""

    __slots__ = ()

    def __new__(cls, step, state, config, meta):
        return super().__new__(cls, (step, state, config, meta))

    step = property(lambda self: self[0])
    state = property(lambda self: self[1])
    config = property(lambda self: self[2])
    meta = property(lambda self: self[3])


def abstract_like(tree: Any, sharding: Any = None) -> Any:
    """ShapeDtypeStructs of every leaf of ``tree``; ``sharding`` (one for all leaves) or each leaf's own."""

    def one(x):
        sh = sharding if sharding is not None else getattr(x, "sharding", None)
        dtype = x.dtype if hasattr(x, "dtype") else np.asarray(x).dtype
        return jax.ShapeDtypeStruct(np.shape(x), dtype, sharding=sh)

    return jax.tree.map(one, tree)


def _keystr(path) -> str:
    """A key path as "a/b/0/c", the same whether a node is a dict, a namedtuple or a list (orbax's
    metadata turns namedtuples into dicts)."""
    parts = []
    for k in path:
        for attr in ("key", "name", "idx"):
            if hasattr(k, attr):
                parts.append(str(getattr(k, attr)))
                break
        else:
            parts.append(str(k))
    return "/".join(parts) or "<root>"


_WHOLE_ARRAYS = False  # set once orbax writes whole arrays in this process


def _write_whole_arrays_on_one_host(ocp) -> None:
    """On one process, has orbax write each jax.Array whole rather than replica-parallel.

    Replica-parallel writing (orbax's default off GPU) splits a replicated array into one slice per replica so
    that each replica writes a part: useful when replicas live on different hosts. On one host it only adds
    work: each slice is an eager ``lax.slice`` compiled for its array and bounds, about 200 compilations
    (20 s on a CPU) at a small UNet's first save over 8 devices. What is written is the same array; several
    processes (``jax.distributed``) keep orbax's default.
    """
    global _WHOLE_ARRAYS
    if _WHOLE_ARRAYS or jax.process_count() != 1:
        return
    try:  # orbax's own registry and metadata store (private paths): no "overriding" warning, same metadata
        from orbax.checkpoint._src.metadata.array_metadata_store import Store
        from orbax.checkpoint._src.serialization.type_handler_registry import GLOBAL_TYPE_HANDLER_REGISTRY

        handler = ocp.type_handlers.ArrayHandler(use_replica_parallel=False, array_metadata_store=Store())
        GLOBAL_TYPE_HANDLER_REGISTRY.add(jax.Array, handler, override=True, ignore_warnings=True)
    except (ImportError, TypeError):  # moved in another orbax: the public call (it logs one warning)
        ocp.type_handlers.register_type_handler(
            jax.Array, ocp.type_handlers.ArrayHandler(use_replica_parallel=False), override=True)
    _WHOLE_ARRAYS = True


def _is_primary() -> bool:
    try:
        return jax.process_index() == 0
    except Exception:  # noqa: BLE001 - no backend yet: a single process
        return True


# ----------------------------------------------------------------------------------------------------


class Checkpointer:
    """A thin wrapper around ``ocp.CheckpointManager`` for jaxdiff's three items.

    directory: where the step directories live (created if missing).
    max_to_keep: keep the newest K steps (None: all); older ones are deleted after a successful save.
    async_save: save in the background (wait with :meth:`wait`); False waits inside :meth:`save`.

    ``failures`` lists ``(step, message)`` of every save of this object that did not complete.
    A Checkpointer that only loads changes nothing on disk (no clean-up, no deletion).
    """

    def __init__(self, directory: str, *, max_to_keep: Optional[int] = 3, async_save: bool = True):
        import orbax.checkpoint as ocp  # heavy: imported lazily so CLIs start fast

        self._ocp = ocp
        _write_whole_arrays_on_one_host(ocp)
        self.directory = os.path.abspath(os.fspath(directory))
        self.max_to_keep = max_to_keep
        self.async_save = async_save
        self.failures: list[tuple[int, str]] = []
        self._inflight: Optional[int] = None  # the step whose write orbax is doing
        self._cleaned = False
        self._verified: dict[int, tuple] = {}
        options = ocp.CheckpointManagerOptions(
            max_to_keep=None,  # retention is done here, only after a save succeeded (see _retain)
            create=True,
            enable_async_checkpointing=True,  # the manifest hook needs orbax's async checkpointer
            async_options=ocp.AsyncOptions(post_finalization_callback=self._write_manifest_hook),
        )
        self._mngr = ocp.CheckpointManager(
            self.directory,
            options=options,
            item_handlers={
                "state": ocp.StandardCheckpointHandler(),
                "config": ocp.JsonCheckpointHandler(),
                "meta": ocp.JsonCheckpointHandler(),
            },
        )

    # --- queries -------------------------------------------------------------------------
    def all_steps(self) -> list[int]:
        return sorted(int(s) for s in self._mngr.all_steps())

    def latest_step(self) -> Optional[int]:
        steps = self.all_steps()
        return steps[-1] if steps else None

    def step_dir(self, step: int) -> str:
        return os.path.join(self.directory, str(int(step)))

    # --- save ----------------------------------------------------------------------------
    def save(self, step: int, state_tree: Any, *, config: Any, meta: dict, force: bool = True) -> bool:
        """Starts saving ``state_tree`` (a pytree of arrays) with the config and metadata at ``step``.

        Every process must call this (orbax coordinates who writes). The previous save is settled first
        (its failure, if any, is logged and listed in ``failures``). Returns whether a save started
        (with ``async_save=False``: whether it completed). Never raises for an I/O failure.
        """
        self._settle()
        if not self._cleaned:
            self._remove_leftovers()
            self._cleaned = True
        ocp = self._ocp
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state_tree),
            config=ocp.args.JsonSave(_jsonable(cfg)),
            meta=ocp.args.JsonSave(_jsonable(dict(meta, step=int(step)))),
        )
        self._inflight = int(step)
        try:
            started = bool(self._mngr.save(int(step), args=args, force=force))
        except Exception as e:  # noqa: BLE001 - e.g. OSError creating the directory
            self._inflight = None
            self._failed(int(step), e)
            return False
        if not started:
            self._inflight = None
            return False
        if not self.async_save:
            return self._settle() is None
        return True

    def wait(self) -> None:
        """Blocks until every pending (asynchronous) save is on disk.

        Raises :class:`CheckpointSaveError` if that save failed (older steps are kept).
        """
        err = self._settle()
        if err is not None:
            raise err

    def close(self) -> None:
        """Waits for the pending save (raising like :meth:`wait`) and releases orbax's resources."""
        try:
            self.wait()
        finally:
            self._mngr.close()

    def _write_manifest_hook(self) -> None:
        # Runs in orbax's background thread after every item is written and before the rename.
        step = self._inflight
        if step is None or not _is_primary():
            return
        tmp = [p for p in glob.glob(os.path.join(self.directory, f"{step}{TMP_SUFFIX}*")) if os.path.isdir(p)]
        target = tmp[0] if len(tmp) == 1 else self.step_dir(step)  # no rename (e.g. commit-file storage)
        write_manifest(target, step)

    def _settle(self) -> Optional[CheckpointSaveError]:
        """Waits for the in-flight save; on failure logs, cleans up and returns the error."""
        step = self._inflight
        try:
            self._mngr.wait_until_finished()
        except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types
            self._inflight = None
            return self._failed(step, e)
        if step is None:
            return None
        self._inflight = None
        if not os.path.isfile(os.path.join(self.step_dir(step), MANIFEST)):
            return self._failed(step, RuntimeError("orbax reported success but the step is not complete"))
        self._retain()
        return None

    def _failed(self, step: Optional[int], e: Exception) -> CheckpointSaveError:
        self._remove_tmp(step)
        try:
            self._mngr.reload()
        except Exception:  # noqa: BLE001
            pass
        kept = self.all_steps()
        msg = (f"could not be written ({short_error(e)}); the checkpoints already on disk are kept (newest: "
               f"{'step %d' % kept[-1] if kept else 'none'}) in {self.directory}")
        err = CheckpointSaveError(step, msg)
        self.failures.append((step, str(err)))
        log.error("%s", err)
        return err

    def _remove_tmp(self, step: Optional[int]) -> None:
        if step is None or not _is_primary():
            return
        for p in glob.glob(os.path.join(self.directory, f"{int(step)}{TMP_SUFFIX}*")):
            shutil.rmtree(p, ignore_errors=True)
        d = self.step_dir(step)
        if os.path.isdir(d) and not os.path.isfile(os.path.join(d, MANIFEST)):
            self._delete_dir(d)  # renamed by orbax but never completed: not a checkpoint

    def _remove_leftovers(self) -> None:
        """Temporary and half-deleted directories of killed processes (only a writer does this)."""
        if not _is_primary() or not os.path.isdir(self.directory):
            return
        for name in os.listdir(self.directory):
            if TMP_SUFFIX in name or name.startswith(DELETING_PREFIX):
                log.info("removing %s (left by an interrupted save or deletion)", name)
                shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)

    def _delete_dir(self, path: str) -> None:
        # Rename first: a process killed inside rmtree leaves a DELETING_PREFIX directory, not a half step.
        gone = os.path.join(self.directory, f"{DELETING_PREFIX}{os.path.basename(path)}-{os.getpid()}-{time.time_ns()}")
        try:
            os.rename(path, gone)
        except OSError as e:
            log.warning("could not delete %s (%s)", path, e)
            return
        shutil.rmtree(gone, ignore_errors=True)

    def _retain(self) -> None:
        if not self.max_to_keep or not _is_primary():
            return
        steps = self.all_steps()
        for s in steps[: max(0, len(steps) - int(self.max_to_keep))]:
            self._delete_dir(self.step_dir(s))
            self._verified.pop(s, None)
        self._mngr.reload()

    # --- load ----------------------------------------------------------------------------
    def verify(self, step: int) -> None:
        """Checks ``step`` against its integrity manifest (see :func:`verify_checkpoint`); cached per mtime."""
        d = self.step_dir(step)
        try:
            st = os.stat(os.path.join(d, MANIFEST))
            stamp = (st.st_mtime_ns, st.st_size, st.st_ino)
        except OSError:
            stamp = None
        if stamp is not None and self._verified.get(int(step)) == stamp:
            return
        verify_checkpoint(d, int(step))
        self._verified[int(step)] = stamp

    def read_json(self, step: int) -> tuple[dict, dict]:
        """(config dict, meta dict) of ``step`` (no arrays are read; the manifest is checked)."""
        self.verify(step)
        return read_json_items(self.step_dir(step), int(step), verify=False)

    def check_compatible(self, step: int, abstract_state: Any) -> None:
        """Raises CheckpointError naming the first leaf whose stored structure/shape/dtype differs."""
        try:
            md = self._mngr.item_metadata(int(step))["state"]
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(step, f"cannot read the state metadata: {short_error(e)}") from e
        if md is None:
            raise CheckpointError(step, "no state metadata (incomplete checkpoint)")
        stored = getattr(md, "tree", md)
        want = dict(jax.tree_util.tree_flatten_with_path(abstract_state)[0])
        got = {}
        for path, leaf in jax.tree_util.tree_flatten_with_path(
            stored, is_leaf=lambda x: hasattr(x, "shape") and hasattr(x, "dtype")
        )[0]:
            if hasattr(leaf, "shape"):
                got[_keystr(path)] = leaf
        want_s = {_keystr(p): v for p, v in want.items()}
        missing = sorted(set(want_s) - set(got))
        extra = sorted(set(got) - set(want_s))
        if missing or extra:
            raise CheckpointError(
                step,
                "the stored state has another structure than the model/optimizer built from the config: "
                f"missing {missing[:5]}{'…' if len(missing) > 5 else ''}, "
                f"unexpected {extra[:5]}{'…' if len(extra) > 5 else ''}",
            )
        for k, w in want_s.items():
            g = got[k]
            if tuple(g.shape) != tuple(w.shape) or np.dtype(g.dtype) != np.dtype(w.dtype):
                raise CheckpointError(
                    step,
                    f"leaf {k} is stored as {np.dtype(g.dtype).name}{tuple(g.shape)} but the config builds "
                    f"{np.dtype(w.dtype).name}{tuple(w.shape)}",
                )

    def load(self, step: int, abstract_state: Any) -> Loaded:
        """Loads ``step`` into ``abstract_state`` (a tree of ShapeDtypeStruct with shardings).

        Order of the checks: the step exists, its files match the manifest, its shapes match the target.
        """
        ocp = self._ocp
        if int(step) not in self.all_steps():
            raise CheckpointError(step, f"not found in {self.directory} (have {self.all_steps()})")
        self.verify(step)
        self.check_compatible(step, abstract_state)
        try:
            r = self._mngr.restore(
                int(step),
                args=ocp.args.Composite(
                    state=ocp.args.StandardRestore(abstract_state),
                    config=ocp.args.JsonRestore(),
                    meta=ocp.args.JsonRestore(),
                ),
            )
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(step, f"load failed (truncated or altered files?): {short_error(e)}") from e
        return Loaded(int(step), r.state, dict(r.config), dict(r.meta))

    def load_latest_valid(self, abstract_state: Any, *, quarantine: bool = False) -> Optional[Loaded]:
        """The newest step that loads, trying older ones after a failure; None if there is none.

        ``quarantine=True`` (a resuming writer) moves the refused steps newer than the loaded one to
        ``<directory>/rejected/<step>-<unix time>/`` so that the run can save those steps again; nothing
        is moved when no step loads. Raises CheckpointError (listing every failure) if steps exist but
        none loads.
        """
        failures, refused = [], []
        for step in reversed(self.all_steps()):
            try:
                out = self.load(step, abstract_state)
            except CheckpointError as e:
                log.warning("%s; trying an older checkpoint", e)
                failures.append(str(e))
                refused.append(step)
                continue
            if failures:
                log.warning("loaded step %d after skipping %d unusable checkpoint(s)", step, len(failures))
                if quarantine:
                    self._quarantine(refused)
            return out
        if failures:
            raise CheckpointError(None, "no checkpoint in %s loads:\n  " % self.directory + "\n  ".join(failures))
        return None

    def _quarantine(self, steps: list[int]) -> None:
        if not _is_primary():
            return
        dest_root = os.path.join(self.directory, REJECTED_DIR)
        for s in steps:
            dest = os.path.join(dest_root, f"{s}-{int(time.time())}")
            try:
                os.makedirs(dest_root, exist_ok=True)
                os.rename(self.step_dir(s), dest)
                log.warning("moved the refused checkpoint step %d to %s", s, dest)
            except OSError as e:
                log.warning("could not move the refused checkpoint step %d aside (%s)", s, e)
            self._verified.pop(s, None)
        self._mngr.reload()


def _jsonable(x):
    """Tuples → lists, NumPy scalars → Python (JSON has neither)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
