"""Which attack runs a report uses: by default the latest finished run of each source × mode
on one classifier and dataset; or the runs a user names."""

from __future__ import annotations

from dataclasses import dataclass, field

from advdb.analytics.query import QuerySession
from advdb.analytics.sqlfiles import sql_text
from advdb.errors import NotFoundError
from advdb.vocabulary import SOURCES


class MissingDataError(NotFoundError):
    """A report's data is not in the store; the message names the command that makes it."""


@dataclass
class RunSelection:
    """(loss, mode) → run id, with the classifier and dataset they share."""

    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    classifier: str | None = None
    dataset: str | None = None
    info: dict[int, dict] = field(default_factory=dict)

    def ids(self, mode: str | None = None) -> list[int]:
        return [
            r
            for (loss, m), r in sorted(
                self.runs.items(), key=lambda kv: (kv[0][1], SOURCES.index(kv[0][0]) if kv[0][0] in SOURCES else 9)
            )
            if mode in (None, m)
        ]

    def by_mode(self, mode: str) -> dict[str, int]:
        """loss → run id for one mode, in the paper's source order."""
        return {loss: self.runs[(loss, mode)] for loss in SOURCES if (loss, mode) in self.runs}

    def hint(self, loss: str, mode: str) -> str:
        model = f" --model {self.classifier}" if self.classifier and self.classifier != "digits-cnn" else ""
        data = f" --dataset {self.dataset}" if self.dataset and self.dataset != "digits" and model else ""
        return f"advdb attack --loss {loss} --mode {mode}{model}{data}"

    def require(self, mode: str, what: str) -> dict[str, int]:
        """The runs of ``mode``; raises MissingDataError naming the commands if there are none."""
        runs = self.by_mode(mode)
        if not runs:
            cmds = "; ".join(self.hint(loss, mode) for loss in SOURCES)
            raise MissingDataError(f"{what} needs {mode} attack runs and the store has none: run {cmds}")
        return runs

    def missing(self, mode: str) -> list[str]:
        return [self.hint(loss, mode) for loss in SOURCES if (loss, mode) not in self.runs]


def select_runs(session: QuerySession, runs: list[int] | None = None, *, model: str | None = None) -> RunSelection:
    """Pick the runs reports use (see the module docstring); ``model``: the newest runs on that
    classifier (a store that attacked several, such as the mnist study's two LeNets)."""
    rows = session.query(sql_text("runs_catalogue")).to_pylist()
    # the 2-D experiment's runs (dataset kind "circles") belong to fig6, not to the image reports
    unified = [r for r in rows if r["loss"] is not None and r["mode"] is not None and r["dataset_kind"] != "circles"]
    if model is not None and not runs:
        unified = [r for r in unified if r["classifier"] == model]
        if not unified:
            raise NotFoundError(f"the store has no finished unified attack runs on model {model!r}")
    sel = RunSelection()
    if runs:
        known = {r["run_id"]: r for r in rows}
        for run_id in runs:
            if run_id not in known:
                raise NotFoundError(f"run {run_id} is not a finished attack run: see `advdb runs list`")
        chosen = sorted((known[r] for r in runs), key=lambda r: r["run_id"])
        for r in chosen:
            if r["loss"] is None or r["mode"] is None:
                raise NotFoundError(
                    f"run {r['run_id']} ({r['attack']}) has no loss source × mode: reports compare --attack unified "
                    "runs"
                )
            sel.runs[(r["loss"], r["mode"])] = r["run_id"]
            sel.info[r["run_id"]] = r
        sel.classifier, sel.dataset = chosen[-1]["classifier"], chosen[-1]["dataset"]
        return sel
    if not unified:
        return sel
    newest = unified[0]
    sel.classifier, sel.dataset = newest["classifier"], newest["dataset"]
    for r in unified:  # newest first
        if (r["classifier_id"], r["dataset_id"]) != (newest["classifier_id"], newest["dataset_id"]):
            continue
        key = (r["loss"], r["mode"])
        if key not in sel.runs:
            sel.runs[key] = r["run_id"]
            sel.info[r["run_id"]] = r
    return sel
