"""Orbax checkpoints of a training run: the state, the config as JSON and what a sampler needs.

Layout (one orbax step directory per saved step, the last ``max_to_keep`` kept)::

    <directory>/<step>/state   the TrainState's arrays (step, params, ema_params, opt_state, counters)
    <directory>/<step>/config  the ConfigDict as JSON (``config.to_dict()``)
    <directory>/<step>/meta    JSON: image size, channels, T, process kind, … (see :func:`make_meta`)

No pickle anywhere: arrays go through orbax/tensorstore, the rest through JSON.

Saving is asynchronous (orbax writes in a background thread); call :meth:`Checkpointer.wait` (or
``close``) before the process exits. Restoring needs an *abstract target*: the tree of
``jax.ShapeDtypeStruct`` (with shardings) that the arrays are restored into, built from a template
state by :func:`abstract_like`. :meth:`Checkpointer.restore` checks the stored shapes and dtypes
against the target first and raises :class:`CheckpointError` naming the step and the first mismatching
leaf; :meth:`Checkpointer.restore_latest_valid` walks the saved steps newest → oldest and returns the
first one that restores, reporting the ones it skipped.
"""
from __future__ import annotations

import logging
import os
from typing import Any, Optional

import jax
import numpy as np

__all__ = [
    "CheckpointError",
    "Checkpointer",
    "Restored",
    "abstract_like",
    "make_meta",
]

log = logging.getLogger(__name__)

ITEMS = ("state", "config", "meta")


class CheckpointError(RuntimeError):
    """A checkpoint step that cannot be restored (missing, truncated, altered, or of other shapes)."""

    def __init__(self, step: Optional[int], message: str):
        self.step = step
        super().__init__(f"checkpoint step {step}: {message}" if step is not None else message)


class Restored(tuple):
    """(step, state_tree, config_dict, meta_dict) as returned by the restore methods."""

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


def make_meta(config, **extra) -> dict:
    """What a sampler needs without re-reading the training code: data shape and the process."""
    d, f = config.data, config.diffusion
    meta = {
        "format": "jaxdiff-checkpoint-1",
        "image_size": int(d.image_size),
        "channels": int(d.channels),
        "T": int(f.T),
        "process": str(f.kind),
        "prediction": str(f.prediction),
        "degradation": str(f.degradation) if f.kind == "cold" else None,
        "schedule": str(f.schedule) if f.kind == "gaussian" else None,
        "source": str(d.source),
    }
    meta.update(extra)
    return meta


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


class Checkpointer:
    """A thin wrapper around ``ocp.CheckpointManager`` for jaxdiff's three items.

    directory: where the step directories live (created if missing).
    max_to_keep: keep the newest K steps (None: all).
    async_save: save in the background (wait with :meth:`wait`).
    """

    def __init__(self, directory: str, *, max_to_keep: Optional[int] = 3, async_save: bool = True):
        import orbax.checkpoint as ocp  # heavy: imported lazily so CLIs start fast

        self._ocp = ocp
        self.directory = os.path.abspath(os.fspath(directory))
        options = ocp.CheckpointManagerOptions(
            max_to_keep=max_to_keep,
            create=True,
            enable_async_checkpointing=async_save,
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

    # --- save ----------------------------------------------------------------------------
    def save(self, step: int, state_tree: Any, *, config: Any, meta: dict, force: bool = True) -> bool:
        """Starts saving ``state_tree`` (a pytree of arrays) with the config and metadata at ``step``.

        Every process must call this (orbax coordinates who writes). Returns whether a save started.
        """
        ocp = self._ocp
        cfg = config.to_dict() if hasattr(config, "to_dict") else dict(config)
        args = ocp.args.Composite(
            state=ocp.args.StandardSave(state_tree),
            config=ocp.args.JsonSave(_jsonable(cfg)),
            meta=ocp.args.JsonSave(_jsonable(dict(meta, step=int(step)))),
        )
        return bool(self._mngr.save(int(step), args=args, force=force))

    def wait(self) -> None:
        """Blocks until every pending (asynchronous) save is on disk."""
        self._mngr.wait_until_finished()

    def close(self) -> None:
        self._mngr.wait_until_finished()
        self._mngr.close()

    # --- restore -------------------------------------------------------------------------
    def read_json(self, step: int) -> tuple[dict, dict]:
        """(config dict, meta dict) of ``step`` (no arrays are read)."""
        ocp = self._ocp
        try:
            r = self._mngr.restore(
                int(step), args=ocp.args.Composite(config=ocp.args.JsonRestore(), meta=ocp.args.JsonRestore())
            )
        except Exception as e:  # noqa: BLE001 - orbax/tensorstore raise many types
            raise CheckpointError(step, f"cannot read config/meta in {self.directory}: {_short(e)}") from e
        return dict(r.config), dict(r.meta)

    def check_compatible(self, step: int, abstract_state: Any) -> None:
        """Raises CheckpointError naming the first leaf whose stored structure/shape/dtype differs."""
        try:
            md = self._mngr.item_metadata(int(step))["state"]
        except Exception as e:  # noqa: BLE001
            raise CheckpointError(step, f"cannot read the state metadata: {_short(e)}") from e
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

    def restore(self, step: int, abstract_state: Any) -> Restored:
        """Restores ``step`` into ``abstract_state`` (a tree of ShapeDtypeStruct with shardings)."""
        ocp = self._ocp
        if int(step) not in self.all_steps():
            raise CheckpointError(step, f"not found in {self.directory} (have {self.all_steps()})")
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
            raise CheckpointError(step, f"restore failed (truncated or altered files?): {_short(e)}") from e
        return Restored(int(step), r.state, dict(r.config), dict(r.meta))

    def restore_latest_valid(self, abstract_state: Any) -> Optional[Restored]:
        """The newest step that restores, trying older ones after a failure; None if there is none.

        Raises CheckpointError (listing every failure) if steps exist but none restores.
        """
        failures = []
        for step in reversed(self.all_steps()):
            try:
                out = self.restore(step, abstract_state)
            except CheckpointError as e:
                log.warning("%s; trying an older checkpoint", e)
                failures.append(str(e))
                continue
            if failures:
                log.warning("restored step %d after skipping %d unusable checkpoint(s)", step, len(failures))
            return out
        if failures:
            raise CheckpointError(None, "no checkpoint in %s restores:\n  " % self.directory + "\n  ".join(failures))
        return None


def _short(e: Exception, n: int = 400) -> str:
    s = f"{type(e).__name__}: {e}"
    return s if len(s) <= n else s[:n] + "…"


def _jsonable(x):
    """Tuples → lists, NumPy scalars → Python (JSON has neither)."""
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, np.generic):
        return x.item()
    return x
