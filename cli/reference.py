"""The CLI reference in the README, generated from the CLI's own ``--help``.

    python -m advdb.cli.reference            # print it
    python -m advdb.cli.reference --write    # replace the README's section

A test keeps the README's copy in sync.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path

START, END = "<!-- cli-reference:start -->", "<!-- cli-reference:end -->"
COMMANDS: list[list[str]] = [
    [],
    ["attack"],
    ["report"],
    ["sql"],
    ["ui"],
    ["export"],
    ["runs", "list"],
    ["runs", "show"],
    ["runs", "delete"],
    ["retrain"],
    ["transfer"],
    ["defend"],
    ["circles"],
    ["reproduce"],
    ["db", "upgrade"],
    ["db", "current"],
    ["list"],
]


def help_text(path: list[str]) -> str:
    from typer.testing import CliRunner

    from .app import app

    result = CliRunner().invoke(
        app, [*path, "--help"], env={"COLUMNS": "100", "NO_COLOR": "1", "TERM": "dumb"}, prog_name="advdb"
    )
    return "\n".join(line.rstrip() for line in result.stdout.strip().splitlines())


def reference() -> str:
    parts = [START, "", "Generated from `advdb … --help` (`python -m advdb.cli.reference --write`).", ""]
    for path in COMMANDS:
        name = " ".join(["advdb", *path])
        parts += [f"### `{name}`", "", "```text", help_text(path), "```", ""]
    parts.append(END)
    return "\n".join(parts)


def update_readme(readme: Path) -> bool:
    """Replace the section between the markers; True if the file changed."""
    text = readme.read_text()
    new = re.sub(re.escape(START) + ".*?" + re.escape(END), lambda _: reference(), text, flags=re.S)
    if new != text:
        readme.write_text(new)
        return True
    return False


if __name__ == "__main__":
    if "--write" in sys.argv:
        changed = update_readme(Path(__file__).resolve().parents[1] / "README.md")  # run from a checkout
        print("README.md updated" if changed else "README.md already up to date")
    else:
        print(reference())
