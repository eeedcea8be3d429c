"""A small name → factory registry, used for datasets, classifiers and attacks (like timm)."""

from __future__ import annotations

from collections.abc import Callable
from difflib import get_close_matches
from typing import Generic, TypeVar

from advdb.errors import ConfigError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Factories by name, with a helpful error for unknown names."""

    def __init__(self, what: str) -> None:
        self.what = what
        self._items: dict[str, F] = {}
        self._help: dict[str, str] = {}

    def register(self, name: str, help: str = "") -> Callable[[F], F]:
        def deco(fn: F) -> F:
            self._items[name] = fn
            doc = (fn.__doc__ or "").strip()
            self._help[name] = help or (doc.splitlines()[0] if doc else "")
            return fn

        return deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def describe(self) -> dict[str, str]:
        return {n: self._help[n] for n in self.names()}

    def get(self, name: str) -> F:
        try:
            return self._items[name]
        except KeyError:
            close = get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {self.what} {name!r}{hint}; choose one of: {', '.join(self.names())}") from None

    def __contains__(self, name: str) -> bool:
        return name in self._items
