"""`advdb ui`'s routes on a small digits store, through a real HTTP client: every page answers,
and no request can change the store."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest

pytest.importorskip("starlette")
from starlette.testclient import TestClient  # noqa: E402

from advdb.analytics.query import checked_location  # noqa: E402
from advdb.web import create_app  # noqa: E402
from conftest import small_attack as attack  # noqa: E402


@pytest.fixture(scope="module")
def ui_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    path = tmp_path_factory.mktemp("ui") / "store.db"
    url = f"sqlite:///{path}"
    yield url, [attack(url, "ce-sign"), attack(url, "logit")]


@pytest.fixture(scope="module")
def client(ui_store: tuple[str, list[int]]) -> Iterator[TestClient]:
    with TestClient(create_app(checked_location(ui_store[0]))) as c:
        yield c


def first_image(client: TestClient, run: int) -> int:
    r = client.get("/sql", params={"q": f"SELECT min(image_id) AS i FROM samples WHERE run_id = {run}"})
    return int(r.text.split('<table id="result">')[1].split("<td>")[1].split("<")[0])


def test_every_page_answers(client: TestClient, ui_store: tuple[str, list[int]]) -> None:
    a, b = ui_store[1]
    image = first_image(client, a)
    pages = [
        "/",
        "/?kind=attack&loss=logit",
        "/?sort=loss&desc=1",
        f"/runs/{a}",
        "/explore",
        f"/explore?runs={a},{b}&h=0.8&image={image}",
        f"/compare?runs={a},{b}",
        "/reports",
        "/reports/table1",
        "/sql",
        "/sql?q=SELECT+loss,+count(*)+AS+n+FROM+runs+GROUP+BY+1",
    ]
    for page in pages:
        r = client.get(page)
        assert r.status_code == 200, (page, r.text[:300])
        assert "read-only" in r.text
    assert client.get("/?loss=logit").text.count('class="pick"') == 1
    assert client.get("/").text.count('class="pick"') == 2


def test_images_are_pngs(client: TestClient, ui_store: tuple[str, list[int]]) -> None:
    run = ui_store[1][0]
    image = first_image(client, run)
    for which in ("genuine", "adversarial", "difference"):
        r = client.get(f"/image/{run}/{image}/{which}.png")
        assert r.status_code == 200 and r.content.startswith(b"\x89PNG"), which
    assert client.get(f"/image/{run}/{image}/other.png").status_code == 404
    assert client.get(f"/image/{run}/999999/genuine.png").status_code == 404


def test_report_pages_and_figures(client: TestClient) -> None:
    assert "<table>" in client.get("/reports/table1").text
    page = client.get("/reports/fig3")
    assert page.status_code == 200 and 'src="/reports/fig3.png"' in page.text
    figure = client.get("/reports/fig3.png")
    assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG")
    assert isinstance(client.get("/reports/fig3/notes").json()["notes"], list)
    missing = client.get("/reports/fig6.png")  # no circles run in this store
    assert missing.status_code == 404 and "circles" in missing.text
    assert "circles" in " ".join(client.get("/reports/fig6/notes").json()["notes"])


def test_plotly_is_served_from_the_package(client: TestClient) -> None:
    r = client.get("/static/plotly.js")
    assert r.status_code == 200 and "plotly" in r.text[:2000].lower() and len(r.text) > 1_000_000
    assert "cdn" not in client.get("/").text.lower()


def test_bad_requests_get_a_clear_page(client: TestClient) -> None:
    assert client.get("/runs/9999").status_code == 404
    assert "compare takes 2 to 8 runs" in client.get("/compare?runs=1").text
    assert client.get("/explore?h=2").status_code == 400
    assert client.get("/reports/table9").status_code == 400


def _fingerprint(url: str) -> tuple[str, int]:
    path = Path(url.removeprefix("sqlite:///"))
    return hashlib.sha256(path.read_bytes()).hexdigest(), path.stat().st_size


WRITES = [
    "DELETE FROM runs",
    "UPDATE store.runs SET status = 'failed'",
    "CREATE TABLE x AS SELECT 1",
    "INSERT INTO runs SELECT * FROM runs",
    "COPY runs TO '/tmp/advdb-ui-leak.csv'",
    "ATTACH '/tmp/advdb-ui-other.db' AS other",
    "SELECT * FROM read_text('/etc/passwd')",
    "SELECT * FROM sqlite_scan('/etc/passwd', 'x')",
    "SET enable_external_access = true",
    "DROP TABLE samples",
]


def test_no_request_can_change_the_store(client: TestClient, ui_store: tuple[str, list[int]]) -> None:
    url, runs = ui_store
    before = _fingerprint(url)
    for q in WRITES:
        r = client.get("/sql", params={"q": q})
        assert r.status_code == 400 and 'id="error"' in r.text, q
    for page in ["/", f"/runs/{runs[0]}", "/explore", "/sql", "/api/version"]:
        for method in ("post", "put", "delete", "patch"):
            assert getattr(client, method)(page).status_code == 405, (method, page)
    assert _fingerprint(url) == before
    assert not Path("/tmp/advdb-ui-leak.csv").exists()


def test_pages_follow_the_store(client: TestClient, ui_store: tuple[str, list[int]]) -> None:
    url, _ = ui_store
    version = client.get("/api/version").json()["version"]
    assert client.get("/api/version").json()["version"] == version
    new = attack(url, "ce")
    assert client.get("/api/version").json()["version"] != version
    assert f'href="/runs/{new}"' in client.get("/").text


def _figure(page: str, element_id: str) -> dict:
    import html
    import json

    start = page.index(f'id="{element_id}" data-figure="') + len(f'id="{element_id}" data-figure="')
    return json.loads(html.unescape(page[start : page.index('"', start)]))


def test_run_page_and_explorer_show_the_curves(client: TestClient, ui_store: tuple[str, list[int]]) -> None:
    import sqlite3

    url, (a, b) = ui_store
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    ((ok, n),) = con.execute("SELECT count(first_success_iter), count(*) FROM samples WHERE run_id = ?", (a,))
    con.close()
    page = client.get(f"/runs/{a}").text
    iterations, epsilon = _figure(page, "curve-iterations"), _figure(page, "curve-epsilon")
    reached = next(t for t in iterations["data"] if t.get("name", "").endswith("reached by k"))
    assert reached["y"][-1] == pytest.approx(ok / n) and reached["x"][-1] == 20  # the success rate at T
    assert all(x <= y for x, y in zip(reached["y"], reached["y"][1:], strict=False))
    assert any(t.get("name", "").endswith("at the target at k") for t in iterations["data"])
    shown = [t for t in epsilon["data"] if t.get("name")]
    assert len(shown) == 3 and all(t["y"][-1] == pytest.approx(ok / n) for t in shown)  # L∞, L2, L1: ever at t
    assert [t.get("fill") for t in epsilon["data"][:3]] == [None, "tonexty", None]  # the Wilson band
    explore = client.get(f"/explore?runs={a},{b}").text
    names = {t.get("name") for t in _figure(explore, "curve-iterations")["data"]}
    assert {f"run {r} (ce-sign, equal-perturbation): reached by k" for r in (a,)} <= names and len(names) > 2


def test_curve_reports_in_the_web_view(client: TestClient) -> None:
    assert "robustness" in client.get("/reports").text
    for name in ("curves", "robustness"):
        figure = client.get(f"/reports/{name}.png")
        assert figure.status_code == 200 and figure.content.startswith(b"\x89PNG"), name
        assert "upper bound" in " ".join(client.get(f"/reports/{name}/notes").json()["notes"])
