"""Attacks as pure tensor code: the four perturbation sources, the unified iteration and the
three full attacks (IFGS, CW-L2, L-BFGS). Never imports the store, the CLI or DuckDB; results
are column arrays handed to whoever records them."""

from advdb.attacks.sources import LOSSES, perturbation, source_loss
from advdb.attacks.stats import STAT_COLUMNS

__all__ = ["LOSSES", "STAT_COLUMNS", "perturbation", "source_loss"]
