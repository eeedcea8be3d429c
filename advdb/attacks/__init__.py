"""Attacks as pure tensor code: the four perturbation sources, the unified iteration and the
three full attacks (IFGS, CW-L2, L-BFGS). Never imports the store, the CLI or DuckDB; results
are column arrays handed to whoever records them.

Importing this package registers every attack (``create_attack``/``list_attacks``) and source
(``create_source``/``list_sources``).
"""

from advdb.attacks import cw, ifgs, lbfgs, unified
from advdb.attacks.base import Attack, BatchOutcome
from advdb.attacks.cw import CarliniWagnerL2
from advdb.attacks.factory import create_attack, list_attacks
from advdb.attacks.ifgs import IFGS
from advdb.attacks.lbfgs import LBFGS
from advdb.attacks.sources import Source, create_source, list_sources
from advdb.attacks.stats import STAT_COLUMNS
from advdb.attacks.unified import UnifiedAttack

__all__ = [
    "IFGS",
    "LBFGS",
    "STAT_COLUMNS",
    "Attack",
    "BatchOutcome",
    "CarliniWagnerL2",
    "Source",
    "UnifiedAttack",
    "create_attack",
    "create_source",
    "cw",
    "ifgs",
    "lbfgs",
    "list_attacks",
    "list_sources",
    "unified",
]
