"""One name → object table for everything a config selects by name (degradations, schedules, correctors, …).

    CORRECTORS = Registry("corrector")
    @CORRECTORS.register("ddim")
    def ddim(...): ...
    CORRECTORS.get_or_raise("ddmi", field="sample.corrector")   # ValueError: … did you mean 'ddim'?

A second registration under a name already taken raises, so two modules cannot silently replace each other.
"""
from __future__ import annotations

import difflib
from collections.abc import Iterator, Mapping
from typing import Any, Callable, Generic, Optional, TypeVar

__all__ = ["Registry", "did_you_mean"]

V = TypeVar("V")


def did_you_mean(name: Any, names) -> str:
    """``" (did you mean 'x'?)"`` for the closest of ``names``, or ``""``."""
    close = difflib.get_close_matches(str(name), [str(n) for n in names], n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


class Registry(Mapping, Generic[V]):
    """A read-only mapping filled through :meth:`register`; ``what`` names the kind of entry in messages."""

    def __init__(self, what: str):
        self.what = what
        self._entries: dict[str, V] = {}

    def register(self, name: str, value: Any = None) -> Callable:
        """``register(name, value)`` adds ``value``; ``@register(name)`` adds the decorated object.

        Raises ValueError when ``name`` is already registered (unregister it first to replace it).
        """
        if not isinstance(name, str) or not name:
            raise ValueError(f"a {self.what} name must be a non-empty string, got {name!r}")

        def add(obj):
            if name in self._entries:
                raise ValueError(f"{self.what} {name!r} is already registered ({self._entries[name]!r}); "
                                 f"unregister it first")
            self._entries[name] = obj
            return obj

        return add if value is None else add(value)

    def unregister(self, name: str) -> Optional[V]:
        """Removes ``name`` (and returns its entry, None if there was none): for tests and plugins."""
        return self._entries.pop(name, None)

    def get_or_raise(self, name: Any, *, field: Optional[str] = None) -> V:
        """The entry of ``name``, or one ValueError naming ``field``, the value and the allowed names."""
        if name in self._entries:
            return self._entries[name]
        where = f"{field}={name!r}" if field else f"unknown {self.what} {name!r}"
        raise ValueError(f"{where}: allowed {self.what}s: {sorted(self._entries)}{did_you_mean(name, self._entries)}")

    def names(self) -> tuple[str, ...]:
        return tuple(sorted(self._entries))

    def __getitem__(self, name: str) -> V:
        return self._entries[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.what!r}, {sorted(self._entries)})"
