"""advdb: targeted gradient-based adversarial attacks, recorded iteration by iteration in SQL.

The library never imports the CLI (``advdb.cli``); everything here is usable from Python::

    import advdb

    store = advdb.open("study.db")
    run = advdb.attack(store=store, loss="ce-sign", n=50, iterations=100)
    store.trajectory(run.run_id)                    # a pandas DataFrame

The front (:mod:`advdb.api`, :mod:`advdb.record`) loads on first use, so ``import advdb`` stays
cheap (no torch). ``advdb.transfer`` and ``advdb.record`` are the front's functions; the modules
of the same names are imported by name (``from advdb.transfer import TransferSpec``).
"""

from __future__ import annotations

import importlib
import sys
import types
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from advdb.api import RunInputs as RunInputs
    from advdb.api import Store as Store
    from advdb.api import attack as attack
    from advdb.api import classifier as classifier
    from advdb.api import defend as defend
    from advdb.api import open as open
    from advdb.api import retrain as retrain
    from advdb.api import transfer as transfer
    from advdb.errors import AdvdbError as AdvdbError
    from advdb.errors import ConfigError as ConfigError
    from advdb.errors import ConflictError as ConflictError
    from advdb.errors import DataError as DataError
    from advdb.errors import NotFoundError as NotFoundError
    from advdb.errors import QueryError as QueryError
    from advdb.errors import StoreError as StoreError
    from advdb.record import Recorder as Recorder
    from advdb.record import record as record
    from advdb.store.records import RunRecord as RunRecord

#: What ``advdb.<name>`` gives, and the module it comes from (imported on first use).
_FRONT: dict[str, str] = {
    **dict.fromkeys(
        ("open", "Store", "RunInputs", "attack", "transfer", "defend", "retrain", "classifier"), "advdb.api"
    ),
    **dict.fromkeys(("record", "Recorder"), "advdb.record"),
    "RunRecord": "advdb.store.records",
    **dict.fromkeys(
        ("AdvdbError", "ConfigError", "ConflictError", "DataError", "NotFoundError", "QueryError", "StoreError"),
        "advdb.errors",
    ),
}

__all__ = ["__version__", *_FRONT]


def __getattr__(name: str) -> Any:
    module = _FRONT.get(name)
    if module is None:
        raise AttributeError(f"module 'advdb' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_FRONT})


class _Package(types.ModuleType):
    """The package: importing its submodules ``advdb.transfer`` or ``advdb.record`` (which Python
    binds as package attributes) leaves ``advdb.transfer`` and ``advdb.record`` the front's functions."""

    def __setattr__(self, name: str, value: Any) -> None:
        if name in _FRONT and isinstance(value, types.ModuleType):
            return
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
