"""advdb from Python: open a store, query it, run attacks and the commands that build on them.

::

    import advdb

    store = advdb.open("study.db")             # a SQLite path or URL, a PostgreSQL URL; None: the default store
    run = advdb.attack(store=store, loss="ce-sign", n=50, iterations=100)
    df = store.trajectory(run.run_id)           # pandas; as_="arrow" or "polars" for the others
    store.sql("SELECT loss, avg(first_success_iter) FROM samples JOIN runs USING (run_id) GROUP BY loss")
    store.report("table1").data["table1"]

The functions take the options of the commands of the same name (``advdb attack``, ``advdb
transfer``, ``advdb defend``, ``advdb retrain``) and build their specifications with the builders
the commands call (:func:`attack_spec`, :func:`transfer_spec`, :func:`defense_spec`,
:func:`detector_spec`), so they validate them the same way and raise the same :mod:`advdb.errors`
exceptions with the same messages; each returns its run (:class:`advdb.store.records.RunRecord`).
Reading goes through the read-only query layer of ``advdb sql``
(:class:`advdb.analytics.query.QuerySession`): trajectories come from the columnar copy
(:mod:`advdb.analytics.columnar`), so a 10 M-row run loads in seconds.

This module imports no torch: :meth:`Store.sql` and the readers start without it; the
functions that compute load it when called.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING, Any, Literal, TypedDict, overload

import pyarrow as pa

from advdb.analytics.query import QuerySession
from advdb.errors import ConfigError
from advdb.plugins import plugin_names
from advdb.store import open_store
from advdb.store.columns import SAMPLE_COLUMNS, TRAJECTORY_COLUMNS
from advdb.store.engine import Store as SQLStore
from advdb.store.location import StoreLocation
from advdb.store.records import RunRecord
from advdb.vocabulary import (
    ATTACKS,
    DEFAULT_MEMORY_FORMAT,
    DEFAULT_PRECISION,
    DEFAULT_SOURCE,
    IMAGE_FORMATS,
    MEMORY_FORMATS,
    MODES,
    OPTIMIZERS,
    PRECISIONS,
    RUN_KINDS,
    RUN_STATUSES,
    SOURCES,
    TARGET_RULES,
    UNIFIED_ONLY,
    check_choice,
    parse_norm,
)

if TYPE_CHECKING:
    import numpy as np
    import pandas as pd  # type: ignore[import-untyped, unused-ignore]
    from typing_extensions import Unpack

    from advdb.analytics.reports import ReportOutput
    from advdb.defenses import DefenseSpec
    from advdb.detectors import DetectorSpec
    from advdb.models import LoadedClassifier
    from advdb.progress import AttackProgress, EpochProgress
    from advdb.spec import AttackSpec
    from advdb.transfer import TransferSpec

__all__ = [
    "RunInputs",
    "Store",
    "attack",
    "attack_params",
    "attack_spec",
    "classifier",
    "defend",
    "defense_spec",
    "detector_spec",
    "open",
    "retrain",
    "transfer",
    "transfer_spec",
]

As = Literal["pandas", "arrow", "polars"]
Number = float | int | str


def _convert(table: pa.Table, as_: As) -> Any:
    """An Arrow table as pandas (default), Arrow itself, or Polars."""
    if as_ == "arrow":
        return table
    if as_ == "pandas":
        return table.to_pandas()
    if as_ == "polars":
        try:
            import polars  # type: ignore[import-not-found, unused-ignore]
        except ImportError:
            raise ConfigError("as_='polars' needs Polars: pip install polars") from None
        return polars.from_arrow(table)
    raise ConfigError(f"invalid value for 'as_': {as_!r} is not one of 'pandas', 'arrow', 'polars'.")


def _ids(values: int | Iterable[int] | None, what: str) -> list[int] | None:
    """Run or image ids as a list of ints (one id or many); None for all."""
    if values is None:
        return None
    items = [values] if isinstance(values, int) else list(values)
    if not all(isinstance(v, int) and not isinstance(v, bool) for v in items):
        raise ConfigError(f"{what} must be ids (integers), got {items[:5]!r}")
    return [int(v) for v in items]


def _columns(columns: Sequence[str] | None, allowed: Sequence[str], table: str) -> str:
    if columns is None:
        return ", ".join(allowed)
    unknown = [c for c in columns if c not in allowed]
    if unknown or not columns:
        raise ConfigError(f"unknown {table} column(s) {unknown or columns!r}: choose from {', '.join(allowed)}")
    return ", ".join(columns)


def _in(column: str, ids: list[int] | None) -> str:
    """A filter on ids (integers, checked): a literal list lets DuckDB skip row groups."""
    if ids is None:
        return "TRUE"
    return f"{column} IN ({', '.join(map(str, ids))})" if ids else "FALSE"


class _Narrowing(TypedDict, total=False):
    """What narrows the rows :meth:`Store.samples` reads (its overloads take these as they come)."""

    columns: Sequence[str] | None
    images: int | Iterable[int] | None


class _TrajectoryNarrowing(_Narrowing, total=False):
    """What narrows and orders the rows :meth:`Store.trajectory` reads."""

    ordered: bool


@dataclass(frozen=True)
class RunInputs:
    """What an attack run attacked, in attack order: images [N, C, H, W] (float32 tensor), true
    classes, targets, and each image's index in its dataset."""

    images: Any  # torch.Tensor
    labels: Any  # torch.Tensor (int64)
    targets: Any  # torch.Tensor (int64)
    indices: np.ndarray
    dataset: str


class Store:
    """A store, opened by :func:`open`: read it (runs, trajectories, samples, SQL, reports) and
    hand it to :func:`attack` and the other functions as ``store=``.

    It holds no connection between calls: each read opens a read-only DuckDB session (bringing
    the columnar copy up to date) and closes it, as each ``advdb sql`` does, so every read sees
    what other processes committed and no other process waits for this one. For many queries
    in a row, open one session: ``with store.session() as q: q.query(…)``.
    """

    def __init__(self, location: StoreLocation) -> None:
        self.location = location

    @property
    def url(self) -> str:
        """The database URL (with its password: do not print it; ``repr`` masks it)."""
        return self.location.url.render_as_string(hide_password=False)

    def __repr__(self) -> str:
        return f"advdb.Store({self.location.masked!r})"

    @contextmanager
    def sql_store(self) -> Iterator[SQLStore]:
        """The store's SQL connection (:class:`advdb.store.Store`), for advdb's library functions."""
        with open_store(self.url) as store:
            yield store

    def session(self, *, allow_files: bool = False) -> QuerySession:
        """A read-only DuckDB session over the store (what ``advdb sql`` uses), for many queries in a
        row: ``with store.session() as q: q.query("SELECT …")`` (an Arrow table each)."""
        return QuerySession(self.location, allow_files=allow_files)

    # --- reading -------------------------------------------------------------------------------

    @overload
    def sql(self, query: str, params: list[Any] | dict[str, Any] | None = None) -> pd.DataFrame: ...
    @overload
    def sql(
        self, query: str, params: list[Any] | dict[str, Any] | None = None, *, as_: Literal["pandas"]
    ) -> pd.DataFrame: ...
    @overload
    def sql(
        self, query: str, params: list[Any] | dict[str, Any] | None = None, *, as_: Literal["arrow"]
    ) -> pa.Table: ...
    @overload
    def sql(self, query: str, params: list[Any] | dict[str, Any] | None = None, *, as_: As) -> Any: ...

    def sql(
        self,
        query: str,
        params: list[Any] | dict[str, Any] | None = None,
        *,
        as_: As = "pandas",
        allow_files: bool = False,
    ) -> Any:
        """Read-only SQL (DuckDB dialect) over the store, as ``advdb sql`` runs it; ``params`` bind
        ``?`` or ``$name``. Statements that write are a :class:`advdb.errors.QueryError`."""
        with self.session(allow_files=allow_files) as q:
            return _convert(q.query(query, params), as_)

    @overload
    def runs(self, *, as_: Literal["pandas"] = ..., **filters: str | None) -> pd.DataFrame: ...
    @overload
    def runs(self, *, as_: Literal["arrow"], **filters: str | None) -> pa.Table: ...
    @overload
    def runs(self, *, as_: As, **filters: str | None) -> Any: ...

    def runs(self, *, as_: As = "pandas", **filters: str | None) -> Any:
        """The runs, oldest first, with their classifier's (``model``) and dataset's names.

        ``filters``: ``kind``, ``status``, ``attack``, ``loss``, ``mode``, ``model``, ``dataset``
        (None: any), e.g. ``store.runs(kind="attack", loss="ce")``.
        """
        where, params = _run_filters(filters)
        sql = (
            "SELECT r.*, c.name AS model, d.name AS dataset FROM runs r LEFT JOIN classifiers c USING (classifier_id) "
            f"LEFT JOIN datasets d USING (dataset_id) WHERE {where} ORDER BY r.run_id"
        )
        return self.sql(sql, params, as_=as_)

    def run(self, run_id: int) -> RunRecord:
        """One run (:class:`advdb.store.records.RunRecord`); a :class:`advdb.errors.NotFoundError` if there is none."""
        from advdb.store.runs import get_run

        with self.sql_store() as store:
            return get_run(store, run_id)

    @overload
    def trajectory(
        self, runs: int | Iterable[int], *, as_: Literal["pandas"] = ..., **narrowing: Unpack[_TrajectoryNarrowing]
    ) -> pd.DataFrame: ...
    @overload
    def trajectory(
        self, runs: int | Iterable[int], *, as_: Literal["arrow"], **narrowing: Unpack[_TrajectoryNarrowing]
    ) -> pa.Table: ...
    @overload
    def trajectory(self, runs: int | Iterable[int], *, as_: As, **narrowing: Unpack[_TrajectoryNarrowing]) -> Any: ...

    def trajectory(
        self,
        runs: int | Iterable[int],
        *,
        columns: Sequence[str] | None = None,
        images: int | Iterable[int] | None = None,
        ordered: bool = True,
        as_: As = "pandas",
    ) -> Any:
        """The trajectory rows of ``runs`` (one id or several), ordered by run, image and
        iteration (``ordered=False``: in storage order, which saves a sort: about a second on
        10 M rows); ``columns`` (default: every column of the trajectory table) and ``images``
        (image ids) narrow them. Read from the columnar copy, as ``advdb sql`` reads it."""
        cols = _columns(columns, TRAJECTORY_COLUMNS, "trajectory")
        where = f"{_in('run_id', _ids(runs, 'runs'))} AND {_in('image_id', _ids(images, 'images'))}"
        order = " ORDER BY run_id, image_id, iteration" if ordered else ""
        return self.sql(f"SELECT {cols} FROM trajectory WHERE {where}{order}", as_=as_)

    @overload
    def samples(
        self, runs: int | Iterable[int] | None = ..., *, as_: Literal["pandas"] = ..., **narrowing: Unpack[_Narrowing]
    ) -> pd.DataFrame: ...
    @overload
    def samples(
        self, runs: int | Iterable[int] | None = ..., *, as_: Literal["arrow"], **narrowing: Unpack[_Narrowing]
    ) -> pa.Table: ...
    @overload
    def samples(self, runs: int | Iterable[int] | None = ..., *, as_: As, **narrowing: Unpack[_Narrowing]) -> Any: ...

    def samples(
        self,
        runs: int | Iterable[int] | None = None,
        *,
        columns: Sequence[str] | None = None,
        images: int | Iterable[int] | None = None,
        as_: As = "pandas",
    ) -> Any:
        """Per-image summaries (``first_success_iter``, final and at-success sizes, …) of ``runs``
        (None: every run), ordered by run and image."""
        cols = _columns(columns, ("run_id", *SAMPLE_COLUMNS), "samples")
        where = f"{_in('run_id', _ids(runs, 'runs'))} AND {_in('image_id', _ids(images, 'images'))}"
        return self.sql(f"SELECT {cols} FROM samples WHERE {where} ORDER BY run_id, image_id", as_=as_)

    def report(
        self,
        name: str,
        *,
        runs: Sequence[int] | None = None,
        model: str | None = None,
        confidence: float = 0.9,
        examples: int = 4,
        figure: bool = False,
    ) -> ReportOutput:
        """A report of ``advdb report`` (table1, fig1, margins, …): its data (``.data``, Arrow
        tables by name), its table (``.display``), its notes and, with ``figure=True``, its
        matplotlib figure (``.figure``; otherwise None)."""
        from advdb.analytics.reports import build

        with self.session() as q:
            out = build(
                q,
                name,
                runs=list(runs) if runs else None,
                model=model,
                confidence=confidence,
                examples=examples,
            )
        if out.figure is not None and not figure:
            import matplotlib.pyplot as plt

            plt.close(out.figure)
            out.figure = None
        return out

    def inputs(self, run_id: int) -> RunInputs:
        """The images, labels and targets attack run ``run_id`` attacked (its stored plan, the genuine
        images reloaded from its dataset): to attack the same images with another library."""
        import numpy as np
        import torch

        from advdb.evaluation import load_dataset
        from advdb.store.runs import get_run, stored_plan

        with self.sql_store() as store:
            run = get_run(store, run_id)
            plan = np.asarray(stored_plan(store, run_id), dtype=np.int64).reshape(-1, 4)
            if run.dataset_id is None or not len(plan):
                raise ConfigError(f"run {run_id} has no stored plan: inputs() needs an attack run")
            ds = load_dataset(store, run.dataset_id)
        images = torch.from_numpy(np.ascontiguousarray(ds.load_array(plan[:, 3]), dtype=np.float32))
        labels, targets = torch.from_numpy(plan[:, 1].copy()), torch.from_numpy(plan[:, 2].copy())
        return RunInputs(images, labels, targets, plan[:, 3].copy(), ds.name)


_RUN_FILTERS = {
    "kind": ("r.kind", RUN_KINDS, "run kind"),
    "status": ("r.status", RUN_STATUSES, "run status"),
    "attack": ("r.attack", None, ""),
    "loss": ("r.loss", plugin_names("loss", SOURCES), "loss"),
    "mode": ("r.mode", MODES, "mode"),
    "model": ("c.name", None, ""),
    "dataset": ("d.name", None, ""),
}


def _run_filters(filters: dict[str, str | None]) -> tuple[str, list[Any]]:
    unknown = sorted(set(filters) - set(_RUN_FILTERS))
    if unknown:
        raise ConfigError(f"unknown run filter(s) {', '.join(unknown)}: use {', '.join(_RUN_FILTERS)}")
    where, params = ["TRUE"], []
    for key, value in filters.items():
        if value is None:
            continue
        column, choices, what = _RUN_FILTERS[key]
        if choices is not None:
            check_choice(value, choices, what)
        where.append(f"{column} = ?")
        params.append(value)
    return " AND ".join(where), params


def open(url_or_path: str | os.PathLike[str] | None = None, *, create: bool = True) -> Store:
    """Open a store: a SQLite file path or ``sqlite:///`` URL, a ``postgresql://`` URL, or None for
    the default (``ADVDB_DATABASE_URL``, else ``./advdb.db``: what the CLI uses without ``--db``).

    The schema is checked (and created at head on first use, unless ``create=False``): a store
    behind the code's head is a :class:`advdb.errors.SchemaError` naming ``advdb db upgrade``.
    """
    url = os.fspath(url_or_path) if url_or_path is not None else None
    with open_store(url, create=create) as store:  # closed before DuckDB opens the file
        return Store(store.location)


def _store_of(store: Store | str | os.PathLike[str] | None) -> Store:
    return store if isinstance(store, Store) else open(store)


# --- the commands --------------------------------------------------------------------------------
#
# Each command has one builder of its specification (attack_spec, transfer_spec, defense_spec,
# detector_spec), called by the function of the same name below and by the command line alike, so
# both check the options the same way and raise the same errors.

#: The options that take one of a few values, in the order they are checked: (name, choices,
#: the option that names them in an error, whether None means "not given").
_CHOICES: tuple[tuple[str, Sequence[str], str, bool], ...] = (
    ("attack", plugin_names("attack", ATTACKS), "--attack", False),
    ("loss", plugin_names("loss", SOURCES), "--loss", True),
    ("mode", MODES, "--mode", True),
    ("targets", TARGET_RULES, "--targets", False),
    ("image_format", IMAGE_FORMATS, "--image-format", False),
    ("optimizer", OPTIMIZERS, "--optimizer", False),
    ("precision", PRECISIONS, "--precision", False),
    ("memory_format", MEMORY_FORMATS, "--memory-format", False),
)
#: An attack's hyperparameters (``AttackSpec.params``), in the order they are stored.
_HYPERPARAMETERS: tuple[str, ...] = (
    "loss",
    "mode",
    "iterations",
    "alpha",
    "tau",
    "norm",
    "epsilon",
    "kappa",
    "c_init",
    "search_steps",
    "lr",
    "abort_early",
    "early_stop",
    "check_every",
)
#: The hyperparameters that are numbers, also written as fractions, and their options.
_NUMBERS = {"alpha": "--alpha", "tau": "--tau", "epsilon": "--epsilon", "c_init": "--c-init", "lr": "--lr"}
#: Parameters of the functions below that are not fields of their specifications.
_NOT_FIELDS = ("sources", "store", "progress", "sweep")
#: Where ``params`` (``--param key=value``) go for the unified iteration: to its source.
_SOURCE_PARAMS = "loss_params"


def _choice(value: str, choices: Sequence[str], option: str) -> str:
    """``value`` if it is one of ``choices``; else the ConfigError the command line gives for ``option``."""
    if value not in choices:
        listed = ", ".join(repr(c) for c in choices)
        raise ConfigError(f"invalid value for '{option}': {value!r} is not one of {listed}.")
    return value


def _number(value: Number | None, option: str) -> float | None:
    """A float, also written as a fraction (``"1/255"``), as the command line reads it."""
    if value is None or isinstance(value, (int, float)) and not isinstance(value, bool):
        return None if value is None else float(value)
    try:
        s = str(value)
        return float(Fraction(s)) if "/" in s else float(s)
    except (ValueError, ZeroDivisionError):
        raise ConfigError(f"{option} must be a number such as 0.01 or 1/255, got {value!r}") from None


def _checked(options: dict[str, Any]) -> dict[str, Any]:
    """``options`` (a copy), those that take one of a few values checked as the command line checks them."""
    for name, choices, option, optional in _CHOICES:
        if name in options and not (optional and options[name] is None):
            _choice(options[name], choices, option)
    return dict(options)


def _fields(parameters: dict[str, Any]) -> dict[str, Any]:
    """A function's parameters (its ``locals()`` on entry) that are fields of its specification."""
    return {k: v for k, v in parameters.items() if k not in _NOT_FIELDS}


def _sources(sources: int | Iterable[int] | None) -> list[int]:
    return _ids(sources, "sources") or []  # none: the spec says what --sources needs


def _running(
    store: Store | str | os.PathLike[str] | None, run: Callable[..., int], spec: Any, progress: Any
) -> RunRecord:
    """Run ``spec`` with ``run`` (``run_attack``, ``run_transfer``, …) on the store; returns the run."""
    from advdb.store.runs import get_run

    with _store_of(store).sql_store() as sql:
        return get_run(sql, run(sql, spec, progress=progress))


def attack_params(attack: str, given: dict[str, Any], params: Mapping[str, Any] | None = None) -> dict[str, Any]:
    """The hyperparameters given (``None`` = not given), checked against the attack, as ``advdb attack``
    checks them: the unified iteration gets the default source; the others refuse its options.

    ``params`` (``--param key=value``; strings are read as the declared types) are the source's
    hyperparameters for the unified iteration and the attack's own for the others (a plugin's):
    an unknown key, a wrong type or a non-finite number is one ConfigError line.
    """
    params_given = {k: v for k, v in given.items() if v is not None}
    if attack == "unified":
        params_given.setdefault("loss", DEFAULT_SOURCE)
        if "norm" in params_given:
            params_given["norm"] = parse_norm(params_given["norm"])
        if params:
            from advdb.attacks.sources import check_source_params

            params_given[_SOURCE_PARAMS] = check_source_params(params_given["loss"], params)
        return params_given
    wrong = [f"--{k}" for k in UNIFIED_ONLY if k in params_given]
    if wrong:
        raise ConfigError(f"{', '.join(wrong)} {'applies' if len(wrong) == 1 else 'apply'} only to --attack unified")
    if params:
        from advdb.attacks.factory import attack_class
        from advdb.registry import check_params

        params_given.update(check_params(attack_class(attack), params, what="attack", name=attack))
    return params_given


def attack_spec(**options: Any) -> AttackSpec:
    """The specification of an attack run from the options of :func:`attack` (those of ``advdb
    attack`` by their Python names; numbers may be fractions such as ``"1/255"``; ``params`` the
    hyperparameters of the source or attack, as ``--param key=value`` gives them), checked as
    ``advdb attack`` checks them: the one builder of both."""
    from advdb.spec import AttackSpec

    fields = _checked(options)
    attack = fields.pop("attack", "unified")
    params = fields.pop("params", None)
    given = {name: fields.pop(name, None) for name in _HYPERPARAMETERS}
    given.update((name, _number(given[name], option)) for name, option in _NUMBERS.items())
    return AttackSpec(attack=attack, params=attack_params(attack, given, params), **fields)


def attack(
    *,
    store: Store | str | os.PathLike[str] | None = None,
    attack: str = "unified",
    loss: str | None = None,
    mode: str | None = None,
    n: int | Literal["all"] = 500,
    iterations: int | None = None,
    alpha: Number | None = None,
    tau: Number | None = None,
    norm: str | float | None = None,
    epsilon: Number | None = None,
    kappa: float | None = None,
    c_init: Number | None = None,
    search_steps: int | None = None,
    lr: Number | None = None,
    abort_early: bool | None = None,
    early_stop: bool | None = None,
    check_every: int | None = None,
    params: Mapping[str, Any] | None = None,
    model: str = "digits-cnn",
    weights: str | None = None,
    dataset: str | None = None,
    data_dir: str | None = None,
    image_size: int = 224,
    image_shape: tuple[int, int, int] | None = None,
    batch_size: int = 128,
    device: str = "auto",
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
    memory_format: str = DEFAULT_MEMORY_FORMAT,
    seed: int = 0,
    targets: str = "random",
    image_format: str = "png",
    save_images: bool = True,
    name: str | None = None,
    progress: AttackProgress | None = None,
) -> RunRecord:
    """Run a targeted attack and record every image's trajectory (``advdb attack``, same options:
    ``--c-init`` is ``c_init``, …; numbers may be fractions such as ``"1/255"``); returns the run.

    ``loss`` and ``attack`` may name a plugin's (:mod:`advdb.plugins`); ``params`` are the
    hyperparameters of the source (unified) or of the attack (``--param key=value``), e.g.
    ``advdb.attack(loss="m-logit", params={"kappa": 2.0})``."""
    spec = attack_spec(**_fields(locals()))
    from advdb.runner import run_attack

    return _running(store, run_attack, spec, progress)


def transfer_spec(sources: int | Iterable[int] | None = None, **options: Any) -> TransferSpec:
    """The specification of a transfer run from the options of :func:`transfer` (``advdb transfer``'s),
    checked as the command checks them: the one builder of both."""
    from advdb.transfer import TransferSpec

    fields = _checked(options)
    return TransferSpec(sources=_sources(sources), **fields)


def transfer(
    sources: int | Iterable[int] | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    model: str = "digits-cnn-seed1",
    weights: str | None = None,
    n: int | None = None,
    batch_size: int = 256,
    seed: int = 0,
    device: str = "auto",
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
    memory_format: str = DEFAULT_MEMORY_FORMAT,
    progress: AttackProgress | None = None,
) -> RunRecord:
    """Show the stored adversarial images of attack runs ``sources`` to another classifier
    (``advdb transfer``, same options); returns the transfer run."""
    spec = transfer_spec(sources, **_fields(locals()))
    from advdb.transfer import run_transfer

    return _running(store, run_transfer, spec, progress)


def defense_spec(
    sources: int | Iterable[int] | None = None, *, strengths: Sequence[Number] | None = None, **options: Any
) -> DefenseSpec:
    """The specification of a defense run from the options of :func:`defend` (``advdb defend``'s;
    strengths may be fractions), checked as the command checks them: the one builder of both."""
    from advdb.defenses import DefenseSpec

    fields = _checked(options)
    fields["params"] = dict(fields.get("params") or {})
    return DefenseSpec(
        sources=_sources(sources), strengths=[_number(s, "--strength") or 0.0 for s in strengths or ()], **fields
    )


def defend(
    sources: int | Iterable[int] | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    transform: str = "jpeg",
    strengths: Sequence[Number] | None = None,
    params: Mapping[str, Any] | None = None,
    n: int | None = None,
    batch_size: int = 256,
    device: str = "auto",
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
    memory_format: str = DEFAULT_MEMORY_FORMAT,
    progress: AttackProgress | None = None,
) -> RunRecord:
    """Transform the stored adversarial images of ``sources`` (and their genuine originals) at each
    strength and classify them again (``advdb defend``, same options; ``params`` are the transform's
    hyperparameters, ``--param key=value``, a plugin's); returns the defense run."""
    spec = defense_spec(sources, **_fields(locals()))
    from advdb.defenses import run_defense

    return _running(store, run_defense, spec, progress)


def detector_spec(sources: int | Iterable[int] | None = None, **options: Any) -> DetectorSpec:
    """The specification of a detector run from the options of :func:`retrain` (``advdb retrain``'s;
    ``lr`` may be a fraction), checked as the command checks them: the one builder of both."""
    from advdb.detectors import DetectorSpec

    ids = _sources(sources)
    if not ids:
        raise ConfigError("--sources needs attack run ids, such as --sources 3 or --sources 3,4,5,6")
    fields = _checked(options)
    if "lr" in fields:
        fields["lr"] = _number(fields["lr"], "--lr") or 0.0
    return DetectorSpec(sources=ids, **fields)


def retrain(
    sources: int | Iterable[int] | None = None,
    *,
    store: Store | str | os.PathLike[str] | None = None,
    arch: str = "small-cnn",
    weights: str | None = None,
    epochs: int = 10,
    batch_size: int = 64,
    optimizer: str = "adam",
    lr: Number = "1e-3",
    momentum: float = 0.9,
    weight_decay: float = 5e-4,
    step_size: int | None = None,
    gamma: float = 0.1,
    test_fraction: float = 0.2,
    image_size: int | None = None,
    seed: int = 0,
    device: str = "auto",
    workers: int = 0,
    precision: str = DEFAULT_PRECISION,
    compile: bool = False,
    memory_format: str = DEFAULT_MEMORY_FORMAT,
    sweep: bool = False,
    progress: EpochProgress | None = None,
) -> RunRecord:
    """Train a detector (genuine vs adversarial) on the stored images of ``sources`` (``advdb retrain``,
    same options); returns the detector run (with ``sweep``, the best of the settings trained)."""
    spec = detector_spec(sources, **_fields(locals()))
    from advdb.detectors import train_detector

    return _running(store, _best_of_sweep if sweep else train_detector, spec, progress)


def _best_of_sweep(sql: SQLStore, spec: DetectorSpec, *, progress: EpochProgress | None) -> int:
    """Train the detector once per setting of the sweep; returns the best run."""
    from advdb.detectors import best_detector, sweep_detector

    return best_detector(sql, sweep_detector(sql, spec, progress=progress))


def classifier(name: str = "digits-cnn", *, weights: str | None = None, seed: int = 0) -> LoadedClassifier:
    """An advdb classifier by name (``advdb list models``), as ``advdb attack --model`` loads it: its
    ``.module`` takes pixel-space images and returns logits. Hand it to :func:`advdb.record` and
    the run records it by name, so ``advdb defend`` can rebuild it."""
    from advdb.models import create_classifier

    clf = create_classifier(name, weights=weights, seed=seed)
    clf.module.eval()
    return clf
