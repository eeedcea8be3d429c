"""Plugins: perturbation sources, attacks, classifiers, data sets and transforms from other packages.

A package adds one by declaring an entry point in one of five groups (``pyproject.toml``)::

    [project.entry-points."advdb.sources"]
    sq-margin = "my_plugin.sources:SquaredMargin"      # a Source subclass

    [project.entry-points."advdb.transforms"]
    noise = "my_plugin.transforms:create_noise"        # a function returning a Transform

=================  =========================================================================
group              what the entry point names
=================  =========================================================================
advdb.sources      a :class:`advdb.attacks.sources.Source` subclass (its ``__init__``'s
                   keyword-only parameters are its hyperparameters)
advdb.attacks      an :class:`advdb.attacks.base.Attack` subclass (a frozen ``kw_only`` dataclass)
advdb.models       a function returning a :class:`advdb.models.classifiers.LoadedClassifier`
advdb.datasets     a function ``(**options) -> ImageDataset``, as :func:`advdb.data.create_dataset` calls it
advdb.transforms   a function returning a :class:`advdb.transforms.Transform` (its keyword-only
                   parameters are its hyperparameters)
=================  =========================================================================

advdb's own DLR source registers this way too (its ``pyproject.toml``). Names come from the
entry points' metadata, which needs no import: the command line's choices and ``--help`` list
them without importing a plugin (or torch). A registry imports its group's plugins the first
time it is asked for a name (:meth:`advdb.registry.Registry.get`, ``names``, ``describe``).

A plugin that fails to import, or whose name is a built-in's, is left out and becomes one line
in :func:`problems` naming the entry point and its distribution; advdb never prints it (the
command line shows each as a warning) and goes on. :func:`distribution_of` gives the plugin's
distribution and version, stored among the versions of a run that uses it.
"""

from __future__ import annotations

import importlib.metadata as metadata
from dataclasses import dataclass
from functools import cache

#: The entry-point group of each registry (by the registry's ``what``).
GROUPS: dict[str, str] = {
    "loss": "advdb.sources",
    "attack": "advdb.attacks",
    "model": "advdb.models",
    "dataset": "advdb.datasets",
    "transform": "advdb.transforms",
}


@dataclass(frozen=True)
class Plugin:
    """One entry point: its group, name, ``module:attr`` and the distribution that declares it."""

    group: str
    name: str
    value: str
    distribution: str
    version: str

    def describe(self) -> str:
        return f"plugin {self.name!r} ({self.group} entry point {self.value} of {self.distribution} {self.version})"


_problems: list[str] = []
_loaded: dict[tuple[str, str], Plugin] = {}  # (group, name) → the plugin whose object is registered


@cache
def _entry_points() -> tuple[tuple[Plugin, metadata.EntryPoint], ...]:
    """Every entry point of the five groups, from the installed distributions' metadata (no import)."""
    groups = set(GROUPS.values())
    found: dict[tuple[str, str], tuple[Plugin, metadata.EntryPoint]] = {}
    for dist in metadata.distributions():
        name = dist.metadata["Name"] or "?"
        for ep in dist.entry_points:
            if ep.group in groups and (ep.group, ep.name) not in found:  # the first on sys.path wins, as imports do
                found[ep.group, ep.name] = (Plugin(ep.group, ep.name, ep.value, name, dist.version or "?"), ep)
    return tuple(found.values())


def plugins(group: str) -> list[Plugin]:
    """The entry points declared in ``group`` (``advdb.sources``, …), sorted by name, unimported."""
    return sorted((p for p, _ in _entry_points() if p.group == group), key=lambda p: p.name)


def plugin_names(what: str, builtin: tuple[str, ...] = ()) -> tuple[str, ...]:
    """``builtin`` followed by the names of the registry ``what``'s entry points that are not built in:
    what the command line offers (from metadata alone)."""
    extra = sorted({p.name for p in plugins(GROUPS[what])} - set(builtin))
    return (*builtin, *extra)


def load(what: str, builtin: set[str]) -> list[tuple[Plugin, object]]:
    """Import the entry points of registry ``what`` whose names are not in ``builtin``; each that fails
    to import, or clashes with a built-in name, becomes a line of :func:`problems` instead."""
    out = []
    for plugin, ep in _entry_points():
        if plugin.group != GROUPS[what]:
            continue
        if plugin.name in builtin:
            report(f"{plugin.describe()} is left out: {plugin.name!r} is a built-in {what} name")
            continue
        try:
            obj = ep.load()
        except Exception as exc:  # noqa: BLE001 - a broken plugin is one line, and advdb goes on
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else ""
            report(f"{plugin.describe()} failed to import: {type(exc).__name__}: {first}")
            continue
        _loaded[plugin.group, plugin.name] = plugin
        out.append((plugin, obj))
    return out


def report(line: str) -> None:
    """Add a problem (once)."""
    if line not in _problems:
        _problems.append(line)


def problems() -> list[str]:
    """The plugins left out so far, one line each (what the command line prints as warnings)."""
    return list(_problems)


def distribution_of(what: str, name: str) -> tuple[str, str] | None:
    """The distribution and version that registered ``name`` in registry ``what`` as a plugin (None: built in)."""
    plugin = _loaded.get((GROUPS[what], name))
    return (plugin.distribution, plugin.version) if plugin else None


def versions_of(names: dict[str, str | None]) -> dict[str, str]:
    """The distributions (name → version) of the plugins a run uses; ``names`` maps a registry's
    ``what`` (``loss``, ``attack``, ``transform``, …) to the name it uses there."""
    out = {}
    for what, name in names.items():
        found = distribution_of(what, name) if name else None
        if found:
            out[found[0]] = found[1]
    return out
