"""The exception types of advdb.

Every error the library raises on purpose derives from :class:`AdvdbError`; the CLI turns
them into one line on stderr and the ``exit_code`` below. Messages say what is wrong and
what to do about it, and never contain a password.
"""

from __future__ import annotations


class AdvdbError(Exception):
    """Base class of advdb's errors."""

    exit_code: int = 1


class ConfigError(AdvdbError):
    """An option or setting is invalid (unknown loss, bad range, …)."""

    exit_code = 2


class StoreError(AdvdbError):
    """The store cannot be reached or used."""

    exit_code = 3


class StoreUnavailable(StoreError):
    """The database server cannot be reached right now (refused, restarting, connection lost)."""


class SchemaError(StoreError):
    """The store's schema is not at the code's head revision."""


class NotFoundError(AdvdbError):
    """A run, model, dataset or file that was asked for does not exist."""

    exit_code = 4


class DataError(AdvdbError):
    """Input data is missing, corrupt or unusable (image files, weights, too few images)."""

    exit_code = 5


class QueryError(AdvdbError):
    """An SQL query is invalid or tries to write."""

    exit_code = 6


class ConflictError(AdvdbError):
    """The work conflicts with the store's state (run already finished, still running elsewhere)."""

    exit_code = 7


def a(word: str) -> str:
    """``word`` with its indefinite article: "an attack", "a detector"."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def check_seed(seed: int) -> int:
    """A seed numpy and torch both take: 0 … 2³² − 1."""
    if not 0 <= seed < 2**32:
        raise ConfigError(f"--seed must be between 0 and 4294967295, got {seed}")
    return seed


def check_finite(name: str, value: float, *, minimum: float | None = None, positive: bool = False) -> float:
    """A finite float option (NaN and ±inf refused), optionally ≥ ``minimum`` or > 0."""
    import math

    if not math.isfinite(value):
        raise ConfigError(f"--{name} must be a finite number, got {value}")
    if positive and value <= 0:
        raise ConfigError(f"--{name} must be positive, got {value}")
    if minimum is not None and value < minimum:
        raise ConfigError(f"--{name} must be at least {minimum}, got {value}")
    return value


class InterruptedRun(AdvdbError):
    """A run was interrupted (Ctrl-C); its committed batches are kept and it can be resumed."""

    exit_code = 130
