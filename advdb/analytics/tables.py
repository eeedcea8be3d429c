"""Writing report tables: Markdown, CSV and LaTeX (booktabs)."""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any


def fmt(v: Any, digits: int = 2) -> str:
    """A cell: ``–`` for missing values, floats with ``digits`` decimals."""
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "–"
    if isinstance(v, float):
        return f"{v:.{digits}f}"
    return str(v)


def to_markdown(columns: Sequence[str], rows: Sequence[Sequence[str]], title: str | None = None) -> str:
    out = [f"**{title}**", ""] if title else []
    out.append("| " + " | ".join(columns) + " |")
    out.append("|" + "|".join("---" if i == 0 else "---:" for i in range(len(columns))) + "|")
    out.extend("| " + " | ".join(r) + " |" for r in rows)
    return "\n".join(out) + "\n"


_LATEX = {
    "&": r"\&",
    "%": r"\%",
    "$": r"\$",
    "#": r"\#",
    "_": r"\_",
    "{": r"\{",
    "}": r"\}",
    "~": r"\textasciitilde{}",
    "^": r"\textasciicircum{}",
    "\\": r"\textbackslash{}",
    "±": r"$\pm$",
    "≥": r"$\geq$",
    "→": r"$\to$",
}


def latex_escape(s: str) -> str:
    return "".join(_LATEX.get(ch, ch) for ch in s)


def to_latex(
    columns: Sequence[str], rows: Sequence[Sequence[str]], caption: str | None = None, label: str | None = None
) -> str:
    spec = "l" + "r" * (len(columns) - 1)
    lines = [r"\begin{table}[t]", r"\centering"]
    if caption:
        lines.append(rf"\caption{{{latex_escape(caption)}}}")
    if label:
        lines.append(rf"\label{{{label}}}")
    lines += [
        rf"\begin{{tabular}}{{{spec}}}",
        r"\toprule",
        " & ".join(latex_escape(c) for c in columns) + r" \\",
        r"\midrule",
    ]
    lines += [" & ".join(latex_escape(c) for c in r) + r" \\" for r in rows]
    lines += [r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    return "\n".join(lines) + "\n"


def write_table(
    out_dir: Path, name: str, columns: Sequence[str], rows: Sequence[Sequence[str]], title: str
) -> list[Path]:
    """``name.md``, ``name.csv`` and ``name.tex`` in ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    md, cs, tex = out_dir / f"{name}.md", out_dir / f"{name}.csv", out_dir / f"{name}.tex"
    md.write_text(to_markdown(columns, rows, title))
    with open(cs, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(columns)
        w.writerows(rows)
    tex.write_text(to_latex(columns, rows, caption=title, label=f"tab:{name}"))
    return [md, cs, tex]
