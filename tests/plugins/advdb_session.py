"""Run many ``advdb`` commands, and Python snippets, in one process: what tests/test_plugins.py runs
with the test plugins on ``PYTHONPATH``, paying advdb's and torch's imports once instead of per command.

    python advdb_session.py STEPS.json RESULTS.json

STEPS.json is a list of ``{"key": K, "argv": [...]}`` (the arguments of ``advdb``) or
``{"key": K, "python": CODE}`` (run with :func:`exec`). RESULTS.json maps each key to
``{"code": exit status, "stdout": ..., "stderr": ...}``. Each command runs through the command
line's own entry point (``advdb.cli.app.app``, as ``python -m advdb`` does) with its standard
streams captured; the one piece of process state a fresh ``advdb`` would not have, the set of
plugin warnings already printed, is emptied before each step, so each prints its warnings again.
"""

from __future__ import annotations

import contextlib
import io
import json
import sys
import traceback
from pathlib import Path
from typing import Any


def run_step(step: dict[str, Any]) -> dict[str, Any]:
    """One command or snippet: its exit status and what it wrote to stdout and stderr."""
    from advdb.cli import errors
    from advdb.cli.app import app

    errors._warned.clear()
    out, err = io.StringIO(), io.StringIO()
    code: Any = 0
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            if "argv" in step:
                app(args=step["argv"], prog_name="advdb")
            else:
                exec(compile(step["python"], step["key"], "exec"), {"__name__": "__step__"})
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        except BaseException:  # noqa: BLE001 - a snippet's failure is its step's result
            traceback.print_exc()
            code = 1
    return {"code": code, "stdout": out.getvalue(), "stderr": err.getvalue()}


def main(steps_file: str, results_file: str) -> None:
    steps = json.loads(Path(steps_file).read_text())
    results = {step["key"]: run_step(step) for step in steps}
    Path(results_file).write_text(json.dumps(results))


if __name__ == "__main__":
    main(*sys.argv[1:3])
