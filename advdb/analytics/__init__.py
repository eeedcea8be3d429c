"""Analytics over the store with DuckDB: ad hoc read-only SQL and the paper's reports."""

from advdb.analytics.query import QuerySession, run_sql

__all__ = ["QuerySession", "run_sql"]
