"""A source, attack or transform beyond the paper's (a plugin's, such as the source ``dlr``) shows by
its own name in every report, the findings and the web view: after the paper's names, in one order
(``advdb.analytics.selection.order_names``). No plugin is needed: one run's loss is renamed in the store."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator

import numpy as np
import pytest

from advdb.analytics import findings as fd
from advdb.analytics.query import QuerySession, checked_location
from advdb.analytics.reports import build
from advdb.analytics.reports.defenses import defense_curves, defense_figure, defense_table
from advdb.analytics.reports.detectors import accuracy_pivot
from advdb.analytics.reports.plotting import close
from advdb.analytics.selection import order_names, select_runs
from advdb.vocabulary import FULL_ATTACKS, SOURCES, TRANSFORMS
from conftest import small_attack


def test_order_names_puts_the_papers_first_then_the_rest_by_name() -> None:
    assert order_names(["dlr", "m-logit", "ce", None, "apgd", "ce"], SOURCES) == ["ce", "m-logit", "apgd", "dlr"]
    assert order_names({"external", "cw", "ifgs"}, FULL_ATTACKS) == ["ifgs", "cw", "external"]
    assert order_names(["posterize2", "tv", "jpeg"], TRANSFORMS) == ["jpeg", "tv", "posterize2"]
    assert order_names([], SOURCES) == []


@pytest.fixture(scope="module")
def dlr_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, dict[str, int]]]:
    """Two 12-image equal-perturbation runs; the second's loss renamed to ``dlr``, as a plugin's source stores it."""
    url = f"sqlite:///{tmp_path_factory.mktemp('names') / 'store.db'}"
    runs = {"ce-sign": small_attack(url, "ce-sign"), "dlr": small_attack(url, "logit")}
    with sqlite3.connect(url.removeprefix("sqlite:///")) as con:
        con.execute("UPDATE runs SET loss = 'dlr' WHERE run_id = ?", (runs["dlr"],))
    yield url, runs


@pytest.fixture(scope="module")
def session(dlr_store: tuple[str, dict[str, int]]) -> Iterator[QuerySession]:
    with QuerySession(checked_location(dlr_store[0])) as s:
        yield s


def test_the_selection_lists_the_new_source_after_the_papers(session: QuerySession, dlr_store) -> None:  # noqa: ANN001
    runs = dlr_store[1]
    sel = select_runs(session)
    assert sel.by_mode("equal-perturbation") == {"ce-sign": runs["ce-sign"], "dlr": runs["dlr"]}
    assert sel.ids() == [runs["ce-sign"], runs["dlr"]]


def test_table1_has_a_row_for_the_new_source(session: QuerySession) -> None:
    out = build(session, "table1", draw=False)
    assert out.display is not None and out.figure is None
    cols, rows = out.display
    assert [r[0] for r in rows] == ["CE", "CE-sign", "Logit", "M-logit", "dlr"]
    dlr = rows[-1]
    assert dlr[cols.index("Equal perturbation: reached")].endswith("%")  # its own numbers, not "–"
    assert dlr[cols.index("Equal multiplier: reached")] == "–"
    assert set(out.data["table1"].column("loss").to_pylist()) == {"ce-sign", "dlr"}


def test_the_per_source_figure_shows_the_new_source(session: QuerySession, dlr_store) -> None:  # noqa: ANN001
    runs = dlr_store[1]
    out = build(session, "fig3")
    try:
        assert set(out.data["trajectory_means"].column("run_id").to_pylist()) == set(runs.values())
        legend = [t.get_text() for ax in out.figure.axes if ax.get_legend() for t in ax.get_legend().get_texts()]
        assert "dlr $s_t$" in legend and "CE-sign $s_t$" in legend
        ticks = [t.get_text() for t in out.figure.axes[2].get_xticklabels()]
        assert ticks == ["CE-sign", "dlr"]
    finally:
        close(out.figure)
    margins = build(session, "margins", draw=False).display
    assert margins is not None and margins[1][-1][0] == "dlr"


def test_the_web_views_run_listing_shows_the_new_source(dlr_store) -> None:  # noqa: ANN001
    pytest.importorskip("starlette")
    from starlette.testclient import TestClient

    from advdb.web import create_app

    url, runs = dlr_store
    with TestClient(create_app(checked_location(url))) as client:
        page = client.get("/", params={"loss": "dlr"})
        assert page.status_code == 200 and f"/runs/{runs['dlr']}" in page.text
        assert f"/runs/{runs['ce-sign']}" not in page.text
        assert ">dlr</option>" in client.get("/").text  # a choice of the loss filter
        assert ">dlr<" in client.get("/reports/table1").text


def test_detector_tables_defenses_and_findings_keep_other_names() -> None:
    rows = [
        dict(arch="small-cnn", source=s, accuracy=0.9, n_images=100, run_id=i, settings=1, setting="adam 0.001")
        for i, s in enumerate(("external", "dlr", "ifgs", "ce"))
    ]
    _, table = accuracy_pivot(rows, "source")
    assert [r[0] for r in table] == ["CE", "ifgs", "dlr", "external"]
    defended = [
        dict(transform=t, mode="equal-perturbation", loss=loss, strength=1.0, still_target=0.5, images=10,
             genuine_correct=0.9)
        for t in ("posterize2", "jpeg") for loss in ("dlr", "ce")
    ]  # fmt: skip
    curves = defense_curves(defended)
    cols, table = defense_table(curves)
    assert cols[3:5] == ["CE", "dlr"] and {r[1] for r in table} == {"jpeg", "posterize2"}
    assert [r[2] for r in table if r[1] == "posterize2"] == ["1 (1)"]  # a transform unknown here: its strength
    figure = defense_figure(curves, {})
    try:
        titles = [ax.get_title() for ax in figure.axes]
        assert titles == ["jpeg · equal perturbation", "posterize2 · equal perturbation"]
    finally:
        close(figure)
    n = 40
    images = fd._Images.from_rows(
        [
            dict(
                loss=loss,
                T=50,
                image_id=i,
                iterations=10.0 + i % 3,
                success_l2=1.0,
                z_t_late=1.0,
                z_t_end=2.0,
                grad_first=1.0,
                grad_last=0.5,
            )
            for loss in ("dlr", *SOURCES)
            for i in range(n)
        ]  # fmt: skip
    )
    seconds = {"equal-perturbation": {loss: np.full(3, 1e-3) for loss in ("dlr", *SOURCES)}}
    m = fd._Measures(ep=images, em=images, seconds=seconds, attacks={}, detectors=[])
    for judge in (fd._fewest_iterations, fd._ce_stalls, fd._cost_per_iteration):
        f = judge(m)
        assert f.verdict != "no data" and f.measured.index("m-logit") < f.measured.index("dlr"), f.measured
        assert not any("dlr" in c for c in f.comparisons), f.comparisons
