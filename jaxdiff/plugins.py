"""What a user registers in their own module or config file, stored with a run and registered again on loading.

A degradation, noise schedule, corrector or prior kind (any :class:`~jaxdiff.registry.Registry` entry) defined
outside the jaxdiff package exists only in the process that imported its module. Training writes, under
``"plugins"`` in the checkpoint's metadata, one record per module (or config file) that registered a name the
config uses (:func:`plugin_records`)::

    {"module": "my_degradations", "file": "/abs/path/my_degradations.py", "sha256": "…",
     "importable": true, "registers": [["degradation", "invert"]]}

Loading a run (:func:`jaxdiff.experiment.load_run`: sample.py in every mode) calls :func:`import_plugins` first:
a module importable by name at training is imported by name (its file when that fails); any other (a config
file, a module loaded by path) has its file run again, as ``--config`` runs a config file. Nothing is imported
when every name is already registered (the same process, or the user imported it). A module that cannot be
found, fails, or no longer registers the name is one :class:`PluginError` naming it, the name and the workdir.
"""
from __future__ import annotations

import hashlib
import importlib
import importlib.machinery
import importlib.util
import logging
import os
import re
import sys
from typing import Any, Optional

from jaxdiff.registry import Origin, record_lookups, registries

__all__ = ["PluginError", "used_registrations", "plugin_records", "import_plugins"]

log = logging.getLogger(__name__)


class PluginError(RuntimeError):
    """A module (or file) that registered what a stored run uses cannot be imported, run, or no longer registers it."""


# ---------------------------------------------------------------------------------------------------------
# at training: what the config uses, and where it was defined


def used_registrations(config) -> list[tuple[Any, str]]:
    """``(registry, name)`` of every registered entry that building ``config``'s run looks up: its process
    (degradation, schedule), its prediction and t sampling, its corrector (``sample.corrector``), and the prior
    kind and corrector it generates with."""
    from jaxdiff.experiment import build_process
    from jaxdiff.processes.tsampling import T_SAMPLINGS
    from jaxdiff.sampling import make_corrector

    with record_lookups() as used:
        process = build_process(config)
        corrector = config.get("sample", {}).get("corrector")
        if corrector:
            make_corrector(str(corrector), field="sample.corrector")
        diffusion = config.get("diffusion", {})
        if diffusion.get("prediction"):
            process.check_prediction(str(diffusion.get("prediction")))
        T_SAMPLINGS.get_or_raise(str(diffusion.get("t_sampling", "uniform")), field="diffusion.t_sampling")
        if process.can_generate:
            process.generation_corrector(str(corrector or ""))
    return list(used)


def _sha256(path: str) -> Optional[str]:
    try:
        with open(path, "rb") as fh:
            return hashlib.sha256(fh.read()).hexdigest()
    except OSError:
        return None


def _is_file(path: Optional[str]) -> bool:
    return bool(path) and os.path.isfile(path)


def _importable(origin: Origin) -> bool:
    """Whether a fresh interpreter with this sys.path imports ``origin.module`` from ``origin.file`` (a module
    loaded by path, such as a config file, is in sys.modules under a name nothing on sys.path has)."""
    if not origin.module or origin.module == "__main__" or not _is_file(origin.file):
        return False
    top = origin.module.partition(".")[0]
    try:
        if importlib.machinery.PathFinder.find_spec(top) is None:
            return False
        spec = importlib.util.find_spec(origin.module)
    except (ImportError, ValueError):
        return False
    return bool(spec and spec.origin and _is_file(spec.origin)
                and os.path.samefile(spec.origin, origin.file))


def plugin_records(config) -> list[dict]:
    """The records to store with a run of ``config``: one per module or file outside the jaxdiff package that
    registered an entry the config uses (see the module docstring); [] when it uses built-ins only.

    An entry registered by a script run as ``__main__`` or typed interactively is recorded too, with a warning:
    loading cannot run it again, so the run loads only where it is registered first.
    """
    records: dict[tuple, dict] = {}
    for registry, name in used_registrations(config):
        origin = registry.origin(name)
        if origin is None or origin.builtin:
            continue
        rec = records.get((origin.module, origin.file))
        if rec is None:
            rec = records[(origin.module, origin.file)] = {
                "module": origin.module, "file": origin.file,
                "sha256": _sha256(origin.file) if _is_file(origin.file) else None,
                "importable": _importable(origin), "registers": []}
            if origin.module == "__main__" or not _is_file(origin.file):
                log.warning("%s %r is registered in %s, which loading the run cannot import or run again: "
                            "sample.py will not find it. Move the registration into a module (or the config file).",
                            registry.what, name, _describe(rec))
        rec["registers"].append([registry.what, name])
    return list(records.values())


# ---------------------------------------------------------------------------------------------------------
# at loading: register them again


def _describe(rec: dict) -> str:
    module, file = rec.get("module"), rec.get("file")
    if module == "__main__":
        return f"the script {file} (run as __main__)" if _looks_like_path(file) else "an interactive session"
    if rec.get("importable"):
        return f"module {module!r} ({file})"
    return f"the file {file}" if _looks_like_path(file) else f"module {module!r} (no file)"


def _looks_like_path(file) -> bool:
    return isinstance(file, str) and bool(file) and not (file.startswith("<") and file.endswith(">"))


def _names(rec: dict) -> str:
    return ", ".join(f"{what} {name!r}" for what, name in rec["registers"])


def _registered(what: str, name: str) -> bool:
    return any(name in reg for reg in registries(what))


def _current_files(rec: dict) -> set:
    files = set()
    for what, name in rec["registers"]:
        for reg in registries(what):
            o = reg.origin(name) if name in reg else None
            if o is not None and o.file:
                files.add(o.file)
    return files


def _run_file(path: str, rec: dict) -> None:
    """Runs ``path`` as a module (kept in sys.modules: dataclasses and pickling look modules up there)."""
    module = rec.get("module") or ""
    if not re.fullmatch(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*", module) or module == "__main__" or module in sys.modules:
        module = "_jaxdiff_plugin_" + hashlib.sha256(path.encode()).hexdigest()[:12]
    spec = importlib.util.spec_from_file_location(module, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path} as a Python module")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[module] = mod
    try:
        spec.loader.exec_module(mod)
    except BaseException:
        sys.modules.pop(module, None)
        raise


def _check_record(rec: Any) -> dict:
    ok = (isinstance(rec, dict) and isinstance(rec.get("registers"), list) and rec["registers"]
          and all(isinstance(r, (list, tuple)) and len(r) == 2 and all(isinstance(x, str) for x in r)
                  for r in rec["registers"]))
    if not ok:
        raise PluginError(f"the checkpoint's metadata holds a damaged plugins record: {rec!r}")
    return rec


def import_plugins(records, *, workdir: Optional[str] = None) -> list[str]:
    """Registers again what ``records`` (:func:`plugin_records`, from a checkpoint's metadata) name; returns the
    modules or files imported or run (none when everything is registered already). Raises :class:`PluginError`."""
    done = []
    where = f"the run in {workdir}" if workdir else "the run"
    for rec in [_check_record(r) for r in (records or [])]:
        file, module = rec.get("file"), rec.get("module")
        desc = _describe(rec)
        if all(_registered(what, name) for what, name in rec["registers"]):
            others = _current_files(rec) - {file}
            if others:
                log.warning("%s uses %s, registered when it was trained by %s and in this process by %s",
                            where, _names(rec), desc, ", ".join(sorted(others)))
            continue
        if module == "__main__" or (not _looks_like_path(file) and not rec.get("importable")):
            raise PluginError(f"{where} uses {_names(rec)}, registered by {desc}, which loading cannot run again: "
                              "register it in this process before loading the run, and next time define it in a "
                              "module (or the config file)")
        how, errors = None, []
        if rec.get("importable") and module:
            try:
                importlib.import_module(module)
                how = module
            except ModuleNotFoundError as e:
                if not (e.name and (module == e.name or module.startswith(e.name + "."))):  # another import
                    raise PluginError(f"{where} uses {_names(rec)}: importing {desc} failed: "
                                      f"{type(e).__name__}: {e}") from e
                errors.append(f"{type(e).__name__}: {e}")
            except Exception as e:  # noqa: BLE001 - whatever the user's module raises
                raise PluginError(f"{where} uses {_names(rec)}: importing {desc} failed: "
                                  f"{type(e).__name__}: {e}") from e
        if how is None:
            if not _is_file(file):
                hint = ("put it back at that path" + (f" or module {module!r} on PYTHONPATH" if rec.get("importable")
                        else "") + f" (or, in Python, import what registers {_names(rec)} before load_run)")
                cannot = f"cannot be imported ({errors[0]}) and " if errors else ""
                raise PluginError(f"{where} uses {_names(rec)}, registered by {desc}, which {cannot}is missing: "
                                  f"{hint}")
            try:
                _run_file(file, rec)
            except Exception as e:  # noqa: BLE001 - whatever the user's file raises
                raise PluginError(f"{where} uses {_names(rec)}: running {file} (which registered it) failed: "
                                  f"{type(e).__name__}: {e}") from e
            how = file
        missing = [f"{what} {name!r}" for what, name in rec["registers"] if not _registered(what, name)]
        if missing:
            raise PluginError(f"{where} uses {', '.join(missing)}, registered by {desc} when it was trained, but "
                              f"{how} no longer registers it (renamed or removed?)")
        digest = _sha256(file) if _is_file(file) else None
        if rec.get("sha256") and digest and digest != rec["sha256"]:
            log.warning("%s uses %s from %s, which has changed since the run was trained; using it as it is now",
                        where, _names(rec), file)
        log.info("%s: registered %s from %s", where, _names(rec), how)
        done.append(how)
    return done
