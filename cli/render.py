"""Rendering: rich tables for humans, CSV/JSON/Parquet for scripts, errors on stderr."""

from __future__ import annotations

import datetime as dt
import json
import math
import sys
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
from rich.console import Console
from rich.table import Table

from advdb import formatting
from advdb.errors import ConfigError

console = Console()
err_console = Console(stderr=True, highlight=False, soft_wrap=True)

MAX_TABLE_ROWS = 1000


def _cell(v: Any) -> str:
    if v is None:
        return "∅"
    if isinstance(v, float):
        if math.isnan(v):
            return "NaN"
        return f"{v:.6g}"
    if isinstance(v, dt.datetime):
        return v.strftime("%Y-%m-%d %H:%M:%S")
    return str(v)


MAX_CELL = 32  # the widest a column is planned to be; longer values are cut with an ellipsis
WRAPPED_CELL = 24  # the planning width of a column whose sentences wrap (findings)


def fitted_table(
    columns: Sequence[str],
    rows: Iterable[Sequence[Any]],
    *,
    title: str | None = None,
    humanize: bool = True,
    drop: Sequence[str] = (),
    wrap: Sequence[str] = (),
    width: int | None = None,
) -> tuple[Table, list[str]]:
    """A table that fits ``width`` (the console's): one line per row, long values cut with "…".

    ``humanize`` shows headings and values as people read them (:mod:`advdb.formatting`);
    when the table is too wide, the columns in ``drop`` go first, then the rightmost ones.
    Columns in ``wrap`` hold sentences and wrap instead. Returns the table and the columns
    left out.
    """
    cols = list(columns)
    fmt: Callable[[Any, str], str] = formatting.value if humanize else (lambda v, _c: _cell(v))
    texts = [[fmt(v, c) for v, c in zip(r, cols, strict=True)] for r in rows]
    heads = [formatting.heading(c) if humanize else str(c) for c in cols]
    planned = [
        min(max([len(h), *(len(t[i]) for t in texts)]), WRAPPED_CELL if cols[i] in wrap else MAX_CELL)
        for i, h in enumerate(heads)
    ]
    keep = list(range(len(cols)))
    order = [cols.index(c) for c in drop if c in cols] + list(range(len(cols) - 1, 0, -1))
    limit = width or console.width
    for i in order:
        if sum(planned[k] + 3 for k in keep) + 1 <= limit or len(keep) == 1:
            break
        if i in keep:
            keep.remove(i)
    t = Table(title=title, show_lines=False, header_style="bold")
    for k in keep:
        if cols[k] in wrap:
            t.add_column(heads[k], overflow="fold")
        else:
            t.add_column(heads[k], overflow="ellipsis", no_wrap=True, max_width=MAX_CELL)
    for row in texts:
        t.add_row(*(row[k] for k in keep))
    return t, [heads[i] for i in range(len(cols)) if i not in keep]


def print_table(columns: Sequence[str], rows: Iterable[Sequence[Any]], **options: Any) -> None:
    """Print :func:`fitted_table`, and on stderr which columns did not fit."""
    table, hidden = fitted_table(columns, rows, **options)
    console.print(table)
    if hidden:
        err_console.print(
            f"({len(hidden)} column(s) not shown at {console.width} characters: {', '.join(hidden)}; "
            "widen the terminal or use --json / --format csv)"
        )


def print_arrow(table: pa.Table, fmt: str, out: Path | None) -> None:
    """Write an Arrow table as a rich table, CSV, JSON or Parquet.

    Columns a format cannot hold (nested, interval, DuckDB-specific types) are written as text.
    """
    if out is not None and not out.parent.is_dir():
        raise ConfigError(f"cannot write {out}: folder {out.parent} does not exist")
    if fmt in ("table", "json"):  # text for the reader (Parquet and CSV keep the types they can)
        table = _as_text(table)
    try:
        _print_arrow(table, fmt, out)
    except (pa.ArrowException, TypeError, ValueError):
        _print_arrow(_as_text(table), fmt, out)


def _as_text(table: pa.Table) -> pa.Table:
    """Every column that is not a plain number, text, bool or time, as text."""
    plain = (
        pa.types.is_integer,
        pa.types.is_floating,
        pa.types.is_string,
        pa.types.is_boolean,
        pa.types.is_timestamp,
        pa.types.is_date,
        pa.types.is_decimal,
        pa.types.is_null,
    )
    cols = []
    for name in table.column_names:
        col = table.column(name)
        if any(test(col.type) for test in plain):
            cols.append(col)
        else:
            cols.append(pa.array([None if v is None else str(v) for v in col.to_pylist()], type=pa.string()))
    return pa.table(cols, names=table.column_names)


def _print_arrow(table: pa.Table, fmt: str, out: Path | None) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        assert out is not None
        pq.write_table(table, out)
        err_console.print(f"wrote {table.num_rows} rows to {out}")
        return
    if fmt == "csv":
        import pyarrow.csv as pcsv

        if out:
            pcsv.write_csv(table, out)
        else:
            buf = pa.BufferOutputStream()
            pcsv.write_csv(table, buf)
            sys.stdout.write(buf.getvalue().to_pybytes().decode())
        return
    if fmt == "json":
        text = json.dumps(table.to_pylist(), default=_json_default, indent=None)
        if out:
            out.write_text(text + "\n")
        else:
            sys.stdout.write(text + "\n")
        return
    rows = table.slice(0, MAX_TABLE_ROWS).to_pylist()
    print_table(table.column_names, ([r[c] for c in table.column_names] for r in rows), humanize=False)
    if table.num_rows > MAX_TABLE_ROWS:
        err_console.print(f"({table.num_rows - MAX_TABLE_ROWS} more rows not shown: use --format csv or parquet)")


def _json_default(v: Any) -> Any:
    if isinstance(v, (dt.datetime, dt.date)):
        return v.isoformat()
    if isinstance(v, float) and math.isnan(v):
        return None
    return str(v)


def print_json(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, default=_json_default, indent=2) + "\n")


def error(message: str) -> None:
    """One line on stderr."""
    from rich.text import Text

    err_console.print(Text.assemble(("advdb: error: ", "bold red"), message.replace("\n", " ")))


def warning(message: str) -> None:
    """One line on stderr: ``advdb: warning: …``."""
    from rich.text import Text

    err_console.print(Text.assemble(("advdb: warning: ", "bold yellow"), message.replace("\n", " ")))
