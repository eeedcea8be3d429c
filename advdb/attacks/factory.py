"""The attack registry (like timm's): ``create_attack(name, **hyperparameters)``, ``list_attacks()``.

It imports no attack: each attack module registers its class with :func:`register_attack`
when :mod:`advdb.attacks` imports it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from advdb.attacks.base import Attack
from advdb.registry import Registry

A = TypeVar("A", bound=type[Attack])


def _adapt(name: str, obj: object) -> Callable[..., Attack]:
    """A plugin's entry point (``advdb.attacks``): an :class:`Attack` subclass, under the entry point's name."""
    if not (isinstance(obj, type) and issubclass(obj, Attack)):
        raise TypeError("an advdb.attacks entry point must name a subclass of advdb.attacks.base.Attack")
    obj.name = name
    return obj.from_options


ATTACKS: Registry[Callable[..., Attack]] = Registry("attack", _adapt)


def register_attack(name: str, help: str) -> Callable[[A], A]:
    """Class decorator: register an :class:`Attack` subclass under ``name``."""

    def deco(cls: A) -> A:
        cls.name = name
        ATTACKS.register(name, help)(cls.from_options)
        return cls

    return deco


def create_attack(name: str, **options: Any) -> Attack:
    """Create an attack by name from keyword-only hyperparameters (validated by the attack)."""
    return ATTACKS.get(name)(options)


def attack_class(name: str) -> type[Attack]:
    """The class of attack ``name`` (its dataclass fields are its hyperparameters)."""
    cls: type[Attack] = ATTACKS.get(name).__self__  # type: ignore[attr-defined]
    return cls


def list_attacks() -> dict[str, str]:
    """Registered attack names and their one-line descriptions."""
    return ATTACKS.describe()
