"""One generic registry for every swappable part (backends, retrievers, metrics, tasks, tools…).

Built-ins register exactly as a plugin would: with the :meth:`Registry.register` decorator, or
lazily by an ``"module:attribute"`` string so that heavy imports (torch, llama.cpp) only happen
when the entry is used. Unknown names raise :class:`~medmllm.errors.UnknownNameError` listing
close matches and every registered name.

Example:
    >>> from medmllm.registry import Registry
    >>> COLOURS: Registry[str] = Registry("colour")
    >>> COLOURS.register("red", "#f00")
    '#f00'
    >>> COLOURS.get("red")
    '#f00'
"""

from __future__ import annotations

import difflib
import importlib
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar, cast, overload

from medmllm.errors import UnknownNameError

T = TypeVar("T")


class _Lazy:
    """A not-yet-imported entry: ``"package.module:attribute"``."""

    __slots__ = ("target",)

    def __init__(self, target: str) -> None:
        if ":" not in target:
            raise ValueError(f"lazy registry target must look like 'module:attr', got {target!r}")
        self.target = target

    def load(self) -> object:
        module_name, attr = self.target.split(":", 1)
        return getattr(importlib.import_module(module_name), attr)


class Registry(Generic[T]):
    """A name → object mapping with decorator registration and helpful misses.

    Args:
        kind: what the entries are, used in error messages ("backend", "retriever", …).
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._entries: dict[str, T | _Lazy] = {}

    @overload
    def register(self, name: str) -> Callable[[T], T]: ...

    @overload
    def register(self, name: str, obj: T) -> T: ...

    def register(self, name: str, obj: T | None = None) -> T | Callable[[T], T]:
        """Register ``obj`` under ``name``; without ``obj`` acts as a decorator."""
        if obj is None:

            def decorator(target: T) -> T:
                self._add(name, target)
                return target

            return decorator
        self._add(name, obj)
        return obj

    def register_lazy(self, name: str, target: str) -> None:
        """Register ``"module:attr"``, imported on first :meth:`get`."""
        self._add(name, _Lazy(target))

    def _add(self, name: str, obj: T | _Lazy) -> None:
        existing = self._entries.get(name)
        if existing is not None and not isinstance(existing, _Lazy) and existing is not obj:
            raise ValueError(f"{self.kind} {name!r} is already registered")
        self._entries[name] = obj

    def get(self, name: str) -> T:
        """Return the entry for ``name``, importing lazy entries on first use."""
        try:
            entry = self._entries[name]
        except KeyError:
            raise UnknownNameError(self._unknown_message(name)) from None
        if isinstance(entry, _Lazy):
            # The import may itself have registered the real object via the decorator.
            loaded = cast(T, entry.load())
            current = self._entries.get(name)
            entry = current if current is not None and not isinstance(current, _Lazy) else loaded
            self._entries[name] = entry
        return entry

    def _unknown_message(self, name: str) -> str:
        names = self.names()
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean {' or '.join(repr(c) for c in close)}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Available: {', '.join(names) or '(none)'}"

    def names(self) -> list[str]:
        """Registered names, sorted."""
        return sorted(self._entries)

    def __contains__(self, name: object) -> bool:
        return name in self._entries

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self._entries)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {self.names()})"
