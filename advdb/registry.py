"""A small name → factory registry, used for sources, attacks, datasets, classifiers and transforms (like timm).

Each registry also holds the plugins of its entry-point group (:mod:`advdb.plugins`): the first
time it is asked for a name it imports them and registers each one that does not clash with a
built-in name. :func:`check_params` validates a factory's hyperparameters (its keyword-only
parameters, with their annotations and defaults, like Foolbox's) before any work.
"""

from __future__ import annotations

import inspect
import math
import typing
from collections.abc import Callable, Mapping
from difflib import get_close_matches
from typing import Any, Generic, TypeVar

from advdb.errors import ConfigError

F = TypeVar("F", bound=Callable)


class Registry(Generic[F]):
    """Factories by name, with a helpful error for unknown names.

    ``adapt`` turns what a plugin's entry point names into the registry's factory (an attack
    class into its ``from_options``, a source class into itself with its ``name`` set, …).
    """

    def __init__(self, what: str, adapt: Callable[[str, Any], F] | None = None) -> None:
        self.what = what
        self.adapt = adapt
        self._items: dict[str, F] = {}
        self._help: dict[str, str] = {}
        self._plugins_loaded = False

    def register(self, name: str, help: str = "") -> Callable[[F], F]:
        def deco(fn: F) -> F:
            self._items[name] = fn
            doc = (fn.__doc__ or "").strip()
            self._help[name] = help or (doc.splitlines()[0] if doc else "")
            return fn

        return deco

    def _load_plugins(self) -> None:
        """Register the plugins of this registry's entry-point group (once; a failure is a problem line)."""
        if self._plugins_loaded:
            return
        self._plugins_loaded = True
        from advdb import plugins

        for plugin, obj in plugins.load(self.what, set(self._items)):
            try:
                fn: F = self.adapt(plugin.name, obj) if self.adapt else obj  # type: ignore[assignment]
            except Exception as exc:  # noqa: BLE001 - a plugin of the wrong kind is one line, like one that fails
                plugins.report(f"{plugin.describe()} is left out: {exc}")
                continue
            self.register(plugin.name, _first_line(obj) or f"from {plugin.distribution} {plugin.version}")(fn)

    def names(self) -> list[str]:
        self._load_plugins()
        return sorted(self._items)

    def describe(self) -> dict[str, str]:
        return {n: self._help[n] for n in self.names()}

    def get(self, name: str) -> F:
        self._load_plugins()
        try:
            return self._items[name]
        except KeyError:
            close = get_close_matches(name, self.names(), n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            raise ConfigError(f"unknown {self.what} {name!r}{hint}; choose one of: {', '.join(self.names())}") from None

    def __contains__(self, name: str) -> bool:
        self._load_plugins()
        return name in self._items


def _first_line(obj: object) -> str:
    doc = (getattr(obj, "__doc__", None) or "").strip()
    return doc.splitlines()[0] if doc else ""


def declared_params(fn: Callable[..., Any]) -> dict[str, inspect.Parameter]:
    """The keyword-only parameters of ``fn`` (a class: its ``__init__``): its hyperparameters."""
    target = fn.__init__ if isinstance(fn, type) else fn  # type: ignore[misc]
    try:
        sig = inspect.signature(target)
    except (TypeError, ValueError):
        return {}
    return {n: p for n, p in sig.parameters.items() if p.kind is inspect.Parameter.KEYWORD_ONLY}


def _hints(fn: Callable[..., Any]) -> dict[str, Any]:
    target = fn.__init__ if isinstance(fn, type) else fn  # type: ignore[misc]
    try:
        return typing.get_type_hints(target)
    except Exception:  # noqa: BLE001 - an annotation that does not resolve: take the value as given
        return {}


def _kinds(hint: Any) -> tuple[type, ...]:
    """The plain types (bool, int, float, str) an annotation allows; empty: any value."""
    args = typing.get_args(hint) if typing.get_origin(hint) is not None else (hint,)
    return tuple(a for a in args if a in (bool, int, float, str))


def _convert(value: Any, kinds: tuple[type, ...], where: str) -> Any:
    """``value`` (a string from the command line, or a Python value) as one of ``kinds``."""
    if value is None or not kinds:
        return value
    if isinstance(value, str) and str not in kinds:
        value = _parse(value, kinds, where)
    if isinstance(value, bool) and bool not in kinds or not isinstance(value, kinds):
        if not (isinstance(value, int) and not isinstance(value, bool) and float in kinds):
            names = " or ".join(k.__name__ for k in kinds)
            raise ConfigError(f"{where} must be {names}, got {value!r}")
        value = float(value)
    if isinstance(value, float) and not math.isfinite(value):
        raise ConfigError(f"{where} must be a finite number, got {value}")
    return value


def _parse(text: str, kinds: tuple[type, ...], where: str) -> Any:
    s = text.strip()
    if bool in kinds and s.lower() in ("true", "false", "yes", "no", "1", "0", "on", "off"):
        return s.lower() in ("true", "yes", "1", "on")
    for kind in (int, float):
        if kind in kinds:
            try:
                return kind(s)
            except ValueError:
                pass
    names = " or ".join(k.__name__ for k in kinds)
    raise ConfigError(f"{where} must be {names}, got {text!r}")


def check_params(fn: Callable[..., Any], params: Mapping[str, Any], *, what: str, name: str) -> dict[str, Any]:
    """``params`` checked against the hyperparameters ``fn`` declares (keyword-only parameters) and
    converted to their annotated types; an unknown key, a value of the wrong type or a non-finite
    number is one ConfigError line naming ``what`` ``name`` (``loss 'dlr'``)."""
    declared, hints = declared_params(fn), _hints(fn)
    unknown = sorted(set(params) - set(declared))
    if unknown:
        takes = ", ".join(declared) if declared else "none"
        raise ConfigError(f"unknown parameter {unknown[0]!r} for {what} {name!r}: it takes {takes}")
    return {
        key: _convert(value, _kinds(hints.get(key, Any)), f"parameter {key!r} of {what} {name!r}")
        for key, value in params.items()
    }
