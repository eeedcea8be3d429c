"""Which attack runs a report uses: by default the latest finished run of each source × mode
on one classifier and dataset; or the runs a user names."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

from advdb.analytics.query import QuerySession
from advdb.analytics.sqlfiles import sql_text
from advdb.errors import NotFoundError
from advdb.vocabulary import SOURCES

#: How reports write the paper's four sources; any other name (a plugin's source) is shown as it is stored.
SOURCE_LABELS = {"ce": "CE", "ce-sign": "CE-sign", "logit": "Logit", "m-logit": "M-logit"}


def order_names(present: Iterable[str | None], canon: Sequence[str]) -> list[str]:
    """The one order of names in reports, findings and the web view: the names of ``canon`` (the
    paper's, such as ``vocabulary.SOURCES``) that are ``present``, in ``canon``'s order, then every
    other name present, alphabetically (a plugin's source ``dlr``, attack or transform by its own name)."""
    names = {n for n in present if n is not None}
    return [n for n in canon if n in names] + sorted(names.difference(canon))


def source_label(name: str) -> str:
    """``CE-sign`` for the paper's sources, any other name as it is."""
    return SOURCE_LABELS.get(name, name)


class MissingDataError(NotFoundError):
    """A report's data is not in the store; the message names the command that makes it."""


@dataclass
class RunSelection:
    """(loss, mode) → run id, with the classifier and dataset they share."""

    runs: dict[tuple[str, str], int] = field(default_factory=dict)
    classifier: str | None = None
    dataset: str | None = None
    info: dict[int, dict] = field(default_factory=dict)

    def losses(self) -> list[str]:
        """Every source the selection holds (:func:`order_names`: the paper's four first)."""
        return order_names((loss for loss, _ in self.runs), SOURCES)

    def ids(self, mode: str | None = None) -> list[int]:
        """Run ids by mode, then by source (:func:`order_names`)."""
        order = {loss: i for i, loss in enumerate(self.losses())}
        keys = sorted(self.runs, key=lambda k: (k[1], order[k[0]]))
        return [self.runs[k] for k in keys if mode in (None, k[1])]

    def by_mode(self, mode: str) -> dict[str, int]:
        """loss → run id for one mode: the paper's sources in its order, then any other by name."""
        return {loss: self.runs[(loss, mode)] for loss in self.losses() if (loss, mode) in self.runs}

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
