"""`advdb ui`'s routes on a small digits store, through a real HTTP client: every page answers,
and no request can change the store."""

from __future__ import annotations

import contextlib
import hashlib
import http.client
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

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


# --- the SQL box's row limit, images' fingerprints, what the compare page plots (in process) ---


def test_sql_box_stops_at_the_row_limit(client: TestClient) -> None:
    page = client.get("/sql", params={"q": "SELECT range AS i FROM range(5000) ORDER BY i DESC"}).text
    assert page.count("<tr>") == 1 + 1000 and 'id="more"' in page and "<td>4999</td>" in page
    t0 = time.monotonic()  # a trillion rows: DuckDB stops after 1,001 (LIMIT inside the query), never fetches them
    huge = client.get(
        "/sql", params={"q": "SELECT a.range * 10 + b.range AS i FROM range(100000000000) a, range(10) b"}
    )
    assert huge.status_code == 200 and huge.text.count("<tr>") == 1001 and time.monotonic() - t0 < 5
    small = client.get("/sql", params={"q": "SELECT 1 AS one; SELECT 2 AS two"}).text
    assert "<th>two</th>" in small and 'id="more"' not in small


def test_an_image_whose_file_changed_is_refused(client: TestClient, ui_store: tuple[str, list[int]]) -> None:
    import sqlite3

    url, (run, _) = ui_store
    image = first_image(client, run)
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    ((rel,),) = con.execute("SELECT path FROM artifacts WHERE run_id = ? AND image_id = ?", (run, image))
    con.close()
    path = checked_location(url).artifacts_dir / rel
    cache = client.app.state.images  # type: ignore[attr-defined]
    first = client.get(f"/image/{run}/{image}/adversarial.png")
    hits = cache.hits
    assert client.get(f"/image/{run}/{image}/adversarial.png").content == first.content and cache.hits == hits + 1
    original = path.read_bytes()
    try:
        path.write_bytes(original[:-1] + bytes([original[-1] ^ 1]))
        for which in ("adversarial", "difference"):
            r = client.get(f"/image/{run}/{image}/{which}.png")
            assert r.status_code == 409 and "sha256 mismatch" in r.text and "\n" not in r.text.strip(), which
        assert client.get(f"/image/{run}/{image}/genuine.png").status_code == 200
    finally:
        path.write_bytes(original)
    assert client.get(f"/image/{run}/{image}/adversarial.png").content == first.content


def test_compare_page_plots_what_the_store_holds(client: TestClient, ui_store: tuple[str, list[int]]) -> None:
    import sqlite3

    url, (a, b) = ui_store
    page = client.get(f"/compare?runs={a},{b}").text
    means, first = _figure(page, "means"), _figure(page, "first")
    con = sqlite3.connect(url.removeprefix("sqlite:///"))
    for run, loss in ((a, "ce-sign"), (b, "logit")):
        label = f"run {run} ({loss}, equal-perturbation)"
        rows = con.execute(
            "SELECT iteration, avg(p_target), avg(p_init), avg(z_target), avg(z_init) FROM trajectory "
            "WHERE run_id = ? GROUP BY 1 ORDER BY 1",
            (run,),
        ).fetchall()
        traces = [t for t in means["data"] if t["name"].startswith(label + ":")]
        # softmax panel (x, y) then logit panel (x2, y2); target solid, initial dashed
        assert [(t["name"], t.get("xaxis", "x"), t["line"].get("dash")) for t in traces] == [
            (f"{label}: target", "x", None),
            (f"{label}: initial", "x", "dash"),
            (f"{label}: target", "x2", None),
            (f"{label}: initial", "x2", "dash"),
        ]
        for trace, col in zip(traces, (1, 2, 3, 4), strict=True):
            assert trace["x"] == [r[0] for r in rows]
            assert trace["y"] == pytest.approx([r[col] for r in rows], rel=1e-9, abs=1e-12)
        (hist,) = [t for t in first["data"] if t["name"] == label]
        firsts = [r[0] for r in con.execute("SELECT first_success_iter FROM samples WHERE run_id = ?", (run,))]
        assert sorted(hist["x"]) == sorted(v for v in firsts if v is not None) and hist["type"] == "histogram"
    con.close()
    assert len(means["data"]) == 8 and len(first["data"]) == 2


# --- `advdb ui` as a real process: time limits, shutdown, tokens and Host headers, a lost database ---

RUNAWAY = "SELECT count(*) FROM range(100000000000) a, range(10) b"


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Answer:
    status_code: int
    text: str
    headers: dict[str, str]


class Ui:
    """``advdb --db URL ui …`` started as a process on a free port; ``get`` talks to it over HTTP."""

    def __init__(self, url: str, *args: str, host: str = "127.0.0.1") -> None:
        self.port = _free_port()
        self.base = f"http://127.0.0.1:{self.port}"
        cmd = [sys.executable, "-m", "advdb", "--db", url, "ui", "--host", host, "--port", str(self.port), *args]
        base = {k: v for k, v in os.environ.items() if k != "ADVDB_UI_TOKEN"}
        self.proc = subprocess.Popen(cmd, stderr=subprocess.PIPE, text=True, env={**base, "OMP_NUM_THREADS": "1"})
        self.banner = self.proc.stderr.readline() if self.proc.stderr else ""
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                assert self.proc.poll() is None, self.banner + (self.proc.stderr.read() if self.proc.stderr else "")
                time.sleep(0.1)
        raise AssertionError(f"advdb ui did not listen within 30 s: {self.banner}")

    def get(
        self,
        path: str,
        *,
        timeout: float = 30,
        params: dict[str, str] | None = None,
        headers: dict[str, str] | None = None,
        cookies: dict[str, str] | None = None,
    ) -> Answer:
        """GET ``path`` as it is (no redirect followed), with the Host header ``localhost:PORT`` unless given."""
        headers = {"Host": f"localhost:{self.port}", **(headers or {})}
        if cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in cookies.items())
        con = http.client.HTTPConnection("127.0.0.1", self.port, timeout=timeout)
        try:
            con.request("GET", path + (f"?{urllib.parse.urlencode(params)}" if params else ""), headers=headers)
            r = con.getresponse()
            return Answer(r.status, r.read().decode(), {k.lower(): v for k, v in r.getheaders()})
        finally:
            con.close()

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture(scope="module")
def served(ui_store: tuple[str, list[int]]) -> Iterator[Ui]:
    ui = Ui(ui_store[0], "--query-timeout", "2")
    yield ui
    ui.stop()


def test_a_runaway_query_is_cut_while_pages_answer(served: Ui) -> None:
    answer: dict[str, Any] = {}

    def runaway() -> None:
        t0 = time.monotonic()
        answer["r"] = served.get("/sql", params={"q": RUNAWAY})
        answer["s"] = time.monotonic() - t0

    thread = threading.Thread(target=runaway)
    thread.start()
    time.sleep(0.5)
    for page in ("/", "/sql?q=SELECT+count(*)+AS+n+FROM+runs"):
        t0 = time.monotonic()
        r = served.get(page, timeout=10)
        assert r.status_code == 200 and time.monotonic() - t0 < 2.0, (page, time.monotonic() - t0)
    assert thread.is_alive()  # the runaway still ran meanwhile
    thread.join(timeout=20)
    r = answer["r"]
    message = r.text.split('id="error">')[1].split("</p>")[0]
    assert r.status_code == 400 and "ran past the 2 s limit" in message and "\n" not in message
    assert 1.5 < answer["s"] < 6
    assert served.get("/sql", params={"q": "SELECT 41 + 1 AS x"}).text.count("<td>42</td>") == 1  # the box works on


def test_sigterm_stops_the_server_while_a_query_runs(ui_store: tuple[str, list[int]]) -> None:
    ui = Ui(ui_store[0], "--query-timeout", "120")
    try:
        thread = threading.Thread(target=lambda: ui.get("/sql", params={"q": RUNAWAY}, timeout=130), daemon=True)
        thread.start()
        time.sleep(1.0)
        assert ui.proc.poll() is None
        t0 = time.monotonic()
        ui.proc.send_signal(signal.SIGTERM)
        ui.proc.wait(timeout=8)
        assert time.monotonic() - t0 < 5
    finally:
        ui.stop()


def test_a_foreign_host_header_is_refused(served: Ui) -> None:
    for host in ("evil.example.com", f"evil.example.com:{served.port}", "127.0.0.1.nip.io"):
        r = served.get("/", headers={"Host": host})
        assert r.status_code == 403 and "Host header" in r.text, host
    for host in (f"127.0.0.1:{served.port}", "localhost", f"[::1]:{served.port}"):
        assert served.get("/api/version", headers={"Host": host}).status_code == 200, host


def test_tokens_beyond_localhost_and_with_token(ui_store: tuple[str, list[int]]) -> None:
    url = ui_store[0]
    wide = Ui(url, host="0.0.0.0")
    given = Ui(url, "--token", "s3cret-token")
    try:
        made_up = wide.banner.split("?token=")[1].split()[0]
        assert len(made_up) >= 24 and made_up not in given.banner
        for ui, token in ((wide, made_up), (given, "s3cret-token")):
            host = {"Host": f"localhost:{ui.port}"}
            assert ui.get("/").status_code == 403
            assert ui.get("/api/version", headers={**host, "Authorization": "Bearer wrong"}).status_code == 403
            assert ui.get("/?token=wrong").status_code == 403
            assert ui.get("/", headers={**host, "Authorization": f"Bearer {token}"}).status_code == 200
            once = ui.get(f"/runs?x=1&token={token}")
            cookie = once.headers["set-cookie"]
            assert once.status_code == 303 and once.headers["location"] == "/runs?x=1"
            assert "HttpOnly" in cookie and "SameSite=Strict" in cookie
            jar = {"advdb_ui_token": cookie.split(";")[0].split("=", 1)[1]}
            assert ui.get("/", cookies=jar).status_code == 200
            assert ui.get("/", headers={"Host": "evil.example.com"}, cookies=jar).status_code == 403
    finally:
        wide.stop()
        given.stop()


def _pg_bin() -> str | None:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    return os.environ.get("ADVDB_PG_BIN") or (str(found[-1].parent) if found else None)


def _as_postgres(*cmd: str) -> None:
    prefix = ["runuser", "-u", "postgres", "--"] if os.getuid() == 0 else []
    subprocess.run([*prefix, *cmd], check=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, timeout=60)


@pytest.fixture
def own_pg(tmp_path: Path) -> Iterator[tuple[str, Any]]:
    """A throwaway PostgreSQL server of this test's own (the shared test server is never restarted);
    yields its URL and ``pg_ctl(*args)``."""
    pg_bin = _pg_bin()
    if not pg_bin or not Path(pg_bin, "initdb").exists():
        pytest.skip("no PostgreSQL server binaries (Debian's postgresql package; see .ci/pg.sh)")
    home = Path(tempfile.mkdtemp(prefix="advdb-ui-pg-"))
    if os.getuid() == 0:
        shutil.chown(home, "postgres")
    port = _free_port()
    opts = f"-p {port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={home} -c fsync=off"

    def pg_ctl(*args: str) -> None:
        _as_postgres(f"{pg_bin}/pg_ctl", "-D", f"{home}/data", "-w", "-l", f"{home}/log", "-o", opts, *args)

    _as_postgres(f"{pg_bin}/initdb", "-D", f"{home}/data", "-U", "postgres", "-A", "trust", "--no-sync")
    pg_ctl("start")
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres", pg_ctl
    finally:
        with contextlib.suppress(subprocess.SubprocessError):
            pg_ctl("-m", "immediate", "stop")
        shutil.rmtree(home, ignore_errors=True)


def test_a_postgresql_store_survives_a_server_restart(own_pg: tuple[str, Any]) -> None:
    url, pg_ctl = own_pg
    checked_location(url)  # the schema
    ui = Ui(url)
    try:
        assert ui.get("/").status_code == 200
        pg_ctl("-m", "fast", "restart")
        t0 = time.monotonic()
        assert ui.get("/").status_code == 200 and ui.get("/sql", params={"q": "SELECT 1 AS x"}).status_code == 200
        print(f"first pages after the restart: {time.monotonic() - t0:.2f} s")
        pg_ctl("-m", "fast", "stop")
        t0 = time.monotonic()
        down = ui.get("/")
        print(f"a page while the server is down: {time.monotonic() - t0:.2f} s")
        message = down.text.split('id="error">')[1].split("</p>")[0]
        assert down.status_code == 503 and "cannot" in message and "Connection refused" in message
        assert "\n" not in message
        pg_ctl("start")
        assert ui.get("/").status_code == 200 and "advdb" in ui.get("/reports").text
    finally:
        ui.stop()
