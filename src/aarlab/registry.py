"""The one typed registry: named, pluggable things of one kind (tasks, methods, encoders, backends, ...).

A :class:`Registry` holds items of one type ``T`` under unique names. Each pluggable variant is registered
beside its implementation (a decorator or a ``register`` call in the module that defines it), and the
module that owns the registry names the module(s) holding the built-in variants, imported once on first
lookup so that importing the owner stays light::

    METHODS: Registry[MethodSpec] = Registry("method", builtins=("aarlab.testbed.methods.baselines",))

    @METHODS.decorator("my-method")
    def build() -> MethodSpec: ...

Lookups of an unknown name raise :class:`~aarlab.testbed.errors.UnknownNameError` listing the valid names;
registering a name twice raises ``ValueError`` (a programming error, not user input).

Bottom layer: imports nothing from aarlab but ``testbed.errors``.
"""

from __future__ import annotations

import importlib
import threading
from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from aarlab.testbed.errors import unknown

T = TypeVar("T")


class Registry(Generic[T]):
    """Items of one kind by unique name; built-ins are imported lazily (once, thread-safe) on first use.

    ``kind`` names the kind in error messages ("task", "encoder", ...). ``builtins`` are module paths
    imported before the first lookup; importing them registers the built-in items.
    """

    def __init__(self, kind: str, *, builtins: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._builtins = builtins
        self._items: dict[str, T] = {}
        self._loaded = not builtins
        self._loading = False
        self._lock = threading.RLock()

    # -- registration -------------------------------------------------------------------------------------
    def register(self, name: str, item: T) -> T:
        """Add ``item`` under ``name`` and return it; raises ``ValueError`` when ``name`` is taken."""
        with self._lock:
            if name in self._items:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
        return item

    def decorator(self, name: str) -> Callable[[T], T]:
        """``@registry.decorator(name)``: register the decorated object under ``name``, unchanged."""

        def deco(item: T) -> T:
            return self.register(name, item)

        return deco

    # -- lookup -------------------------------------------------------------------------------------------
    def get(self, name: str) -> T:
        """The item called ``name``; raises ``UnknownNameError`` listing the registered names."""
        self._ensure_loaded()
        try:
            return self._items[name]
        except KeyError:
            raise unknown(self.kind, name, list(self._items)) from None

    def names(self) -> list[str]:
        """Every registered name, sorted."""
        self._ensure_loaded()
        return sorted(self._items)

    def values(self) -> list[T]:
        """Every registered item, in registration order."""
        self._ensure_loaded()
        return list(self._items.values())

    def items(self) -> list[tuple[str, T]]:
        """``(name, item)`` pairs, in registration order."""
        self._ensure_loaded()
        return list(self._items.items())

    def __contains__(self, name: object) -> bool:
        self._ensure_loaded()
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        """The registered names, sorted (so ``list(registry)`` is ``registry.names()``)."""
        return iter(self.names())

    def __len__(self) -> int:
        self._ensure_loaded()
        return len(self._items)

    def __repr__(self) -> str:
        return f"Registry({self.kind!r}, {len(self._items)} registered)"

    def _ensure_loaded(self) -> None:
        if self._loaded:
            return
        with self._lock:  # other threads (verification workers) wait here: never a half-filled registry
            if self._loaded or self._loading:  # _loading: a built-in module looking up while it registers
                return
            self._loading = True
            try:
                for module in self._builtins:
                    importlib.import_module(module)
            finally:
                self._loading = False
            self._loaded = True
