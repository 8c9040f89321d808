"""One name → object table for everything a config selects by name (degradations, schedules, correctors, …).

    CORRECTORS = Registry("corrector")
    @CORRECTORS.register("ddim")
    def ddim(...): ...
    CORRECTORS.get_or_raise("ddmi", field="sample.corrector")   # ValueError: … did you mean 'ddim'?

A second registration under a name already taken raises, so two modules cannot silently replace each other.
Each entry remembers where it was defined (:class:`Origin`: the module and file of the registered function or
class), and :func:`record_lookups` lists the entries a piece of code looks up: together they tell which user
modules a run needs again when it is loaded (:mod:`jaxdiff.plugins`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import difflib
import functools
import inspect
import os
import weakref
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Generic, Optional, TypeVar

__all__ = ["Registry", "Origin", "origin_of", "record_lookups", "registries", "did_you_mean"]

V = TypeVar("V")

#: every Registry made, so that a loader can find the tables of a kind of entry by its ``what``
_ALL: list[weakref.ref] = []
#: the lists that :func:`record_lookups` is filling (innermost last)
_RECORDERS: list[list] = []


@dataclasses.dataclass(frozen=True)
class Origin:
    """Where a registered entry was defined: ``module`` (its ``__module__``: ``"__main__"`` for a script,
    ``"config_config"`` for an ml_collections config file) and ``file`` (absolute path; None when unknown)."""

    module: Optional[str]
    file: Optional[str]

    @property
    def builtin(self) -> bool:
        """Defined inside the jaxdiff package (imported with it: never recorded for a run)."""
        return self.module is not None and (self.module == "jaxdiff" or self.module.startswith("jaxdiff."))


def _code_file(obj) -> Optional[str]:
    code = getattr(obj, "__code__", None)
    if code is not None:
        return code.co_filename
    if inspect.isclass(obj):
        for member in vars(obj).values():  # a method's code knows the file even when the module is gone
            f = _code_file(getattr(member, "__func__", member))
            if f:
                return f
    return None


def origin_of(obj: Any) -> Origin:
    """The :class:`Origin` of a registered value: of the value itself when it is a function or a class; of the
    first function (or class) among its fields when it is a dataclass wrapping one (a degradation's builder,
    a corrector's function); of its class otherwise."""
    target = obj
    if dataclasses.is_dataclass(obj) and not isinstance(obj, type):
        for f in dataclasses.fields(obj):
            v = getattr(obj, f.name)
            if inspect.isfunction(v) or inspect.isclass(v) or isinstance(v, functools.partial):
                target = v
                break
    while isinstance(target, functools.partial):
        target = target.func
    target = inspect.unwrap(target) if callable(target) else target
    if not (inspect.isfunction(target) or inspect.isclass(target) or inspect.ismethod(target)):
        target = type(target)
    module = getattr(target, "__module__", None)
    file = _code_file(target)
    if file is None and module is not None:
        import sys

        file = getattr(sys.modules.get(module), "__file__", None)
    if file is not None and not (file.startswith("<") and file.endswith(">")):
        file = os.path.abspath(file)  # relative to the directory the module was loaded from: now
    return Origin(module, file)


@contextlib.contextmanager
def record_lookups():
    """``with record_lookups() as used:`` → ``used`` lists ``(registry, name)`` of every entry looked up by name
    inside the block (``registry[name]``, ``get``, ``get_or_raise``), once each, in order."""
    used: list = []
    _RECORDERS.append(used)
    try:
        yield used
    finally:
        _RECORDERS.remove(used)


def registries(what: str) -> list["Registry"]:
    """The live registries whose entries are ``what`` (e.g. "degradation")."""
    out = []
    for ref in _ALL:
        reg = ref()
        if reg is not None and reg.what == what:
            out.append(reg)
    return out


def did_you_mean(name: Any, names) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``names``, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(n) for n in names], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Mapping, Generic[V]):
    """A read-only mapping filled through :meth:`register`; ``what`` names the kind of entry in messages."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, V] = {}
        self._origins: dict[str, Origin] = {}
        _ALL[:] = [r for r in _ALL if r() is not None]
        _ALL.append(weakref.ref(self))

    def register(self, name: str, value: Any = None, *, defined_by: Any = None) -> Callable:
        """``register(name, value)`` adds ``value``; ``@register(name)`` adds the decorated object.

        ``defined_by``: the object whose module and file are the entry's :class:`Origin` (default: the value,
        see :func:`origin_of`). Raises ValueError when ``name`` is already registered (unregister it first to
        replace it).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} name must be a non-empty string, got {name!r}")

        def add(obj):
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is already registered ({self._entries[name]!r}); "
                                 f"unregister it first")
            self._entries[name] = obj
            self._origins[name] = origin_of(obj if defined_by is None else defined_by)
            return obj

        return add if value is None else add(value)

    def unregister(self, name: str) -> Optional[V]:
        """Removes ``name`` (and returns its entry, None if there was none): for tests and plugins."""
        self._origins.pop(name, None)
        return self._entries.pop(name, None)

    def origin(self, name: str) -> Optional[Origin]:
        """Where the entry ``name`` was defined (None when there is no such entry)."""
        return self._origins.get(name)

    def _looked_up(self, name: str) -> None:
        for used in _RECORDERS:
            if not any(r is self and n == name for r, n in used):  # by identity: registries compare as mappings
                used.append((self, name))

    def get_or_raise(self, name: Any, *, field: Optional[str] = None) -> V:
        """The entry of ``name``, or one ValueError naming ``field``, the value and the allowed names."""
        if name in self._entries:
            self._looked_up(name)
            return self._entries[name]
        where = f"{field}={name!r}" if field else f"unknown {self.what} {name!r}"
        raise ValueError(f"{where}: allowed {self.what}s: {sorted(self._entries)}{did_you_mean(name, self._entries)}")

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __getitem__(self, name: str) -> V:
        entry = self._entries[name]
        self._looked_up(name)
        return entry

    def __contains__(self, name: object) -> bool:  # a membership test is not a use: not recorded
        return name in self._entries

    def items(self):
        return self._entries.items()

    def values(self):
        return self._entries.values()

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {sorted(self._entries)})"
