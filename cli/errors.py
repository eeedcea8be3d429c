"""The one place where errors become one line on stderr and an exit code (no traceback).

Library errors (:class:`advdb.errors.AdvdbError`) carry their exit code; Ctrl-C is 130; a
bug is 70 with one line (``ADVDB_DEBUG=1`` shows the traceback). Click's usage errors are
turned into the same one line by :class:`AdvdbGroup`, the root command's class.
"""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import typer
from typer._click import exceptions as click_exceptions  # typer's own Click
from typer.core import TyperGroup

from advdb.errors import AdvdbError

from . import render

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130

F = TypeVar("F", bound=Callable[..., Any])


def handle_errors(fn: F) -> F:
    """Wrap a command: advdb errors, Ctrl-C and bugs become one line on stderr and an exit code."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except AdvdbError as exc:
            warn_plugin_problems()
            render.error(str(exc))
            raise typer.Exit(exc.exit_code) from None
        except KeyboardInterrupt:
            render.error("interrupted")
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except (typer.Exit, typer.Abort):
            raise
        except Exception as exc:  # noqa: BLE001 - a bug: one line unless ADVDB_DEBUG asks for the traceback
            if os.environ.get("ADVDB_DEBUG"):
                raise
            render.error(f"internal error: {type(exc).__name__}: {exc} (set ADVDB_DEBUG=1 for the traceback)")
            raise typer.Exit(EXIT_INTERNAL) from None
        finally:
            warn_plugin_problems()

    return wrapper  # type: ignore[return-value]


_warned: set[str] = set()


def warn_plugin_problems() -> None:
    """Each plugin the library left out (failed to import, clashed with a built-in name), once, as a
    one-line warning on stderr; the command goes on without it."""
    from advdb.plugins import problems

    for line in problems():
        if line not in _warned:
            _warned.add(line)
            render.warning(line)


def command(group: typer.Typer, name: str) -> Callable[[F], F]:
    """Register a command on ``group`` with the shared error handling."""

    def deco(fn: F) -> F:
        group.command(name)(handle_errors(fn))
        return fn

    return deco


class AdvdbGroup(TyperGroup):
    """The root command: Click's usage errors become advdb's one line on stderr, exit code 2."""

    def main(
        self,
        args: Sequence[str] | None = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        windows_expand_args: bool = True,
        **extra: Any,
    ) -> Any:
        if not standalone_mode:
            return super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        try:
            rv = super().main(args, prog_name, complete_var, False, windows_expand_args, **extra)
        except click_exceptions.NoArgsIsHelpError as exc:
            typer.echo(exc.ctx.get_help() if exc.ctx else "")
            sys.exit(0)
        except click_exceptions.ClickException as exc:
            ctx = getattr(exc, "ctx", None)
            where = f" (see `{ctx.command_path} --help`)" if ctx is not None else ""
            message = exc.format_message().strip().replace("\n", " ").replace("Value error, ", "")
            render.error(message[:1].lower() + message[1:] + where)
            sys.exit(exc.exit_code)
        except typer.Abort:
            render.error("aborted")
            sys.exit(1)
        sys.exit(rv if isinstance(rv, int) else 0)
