"""`advdb ui` end to end in headless Chromium (Debian's chromium + chromium-driver, Selenium):
the runs list, a run page and the trajectory explorer render, with the expected Plotly traces.
Screenshots go to $ADVDB_TEST_ARTIFACTS (default test-artifacts/ at the top of the checkout)."""

from __future__ import annotations

import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
CHROMEDRIVER = shutil.which("chromedriver") or "/usr/bin/chromedriver"
ARTIFACTS = Path(os.environ.get("ADVDB_TEST_ARTIFACTS") or Path(__file__).resolve().parent.parent / "test-artifacts")


def _browser_or_skip() -> None:
    """Skip without a browser or Selenium, unless CI requires them (ADVDB_REQUIRE_BROWSER=1): then fail."""
    required = os.environ.get("ADVDB_REQUIRE_BROWSER") == "1"
    try:
        import selenium  # noqa: F401
    except ImportError:
        if required:
            pytest.fail("ADVDB_REQUIRE_BROWSER=1 but selenium is not installed: pip install -e '.[test]'")
        pytest.skip("selenium is not installed")
    if not (Path(CHROMIUM).exists() and Path(CHROMEDRIVER).exists()):
        if required:
            pytest.fail(
                "ADVDB_REQUIRE_BROWSER=1 but chromium/chromedriver are missing: "
                "apt-get install chromium chromium-driver"
            )
        pytest.skip("no chromium/chromedriver (Debian packages chromium, chromium-driver)")


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, list[int]]]:
    _browser_or_skip()
    import uvicorn

    from advdb.analytics.query import checked_location
    from advdb.web import create_app
    from conftest import small_attack as attack

    url = f"sqlite:///{tmp_path_factory.mktemp('ui-browser') / 'store.db'}"
    runs = [attack(url, "ce-sign"), attack(url, "m-logit")]
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(
        uvicorn.Config(create_app(checked_location(url)), host="127.0.0.1", port=port, log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started and time.monotonic() < deadline:
        time.sleep(0.05)
    yield f"http://127.0.0.1:{port}", runs
    server.should_exit = True
    thread.join(timeout=10)


@pytest.fixture(scope="module")
def browser(tmp_path_factory: pytest.TempPathFactory) -> Iterator[object]:
    _browser_or_skip()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-quic",
        "--no-first-run",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-dev-shm-usage",
        "--window-size=1400,1000",
        f"--user-data-dir={tmp_path_factory.mktemp('chromium-profile')}",
    ):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(CHROMEDRIVER), options=options)
    driver.set_page_load_timeout(60)
    yield driver
    driver.quit()


def traces(driver: object, element_id: str) -> int:
    """How many traces Plotly drew into the element (waits for the plot)."""
    from selenium.webdriver.support.ui import WebDriverWait

    script = f"var e = document.getElementById('{element_id}'); return e && e.data ? e.data.length : -1;"
    WebDriverWait(driver, 30).until(lambda d: d.execute_script(script) >= 0)
    return int(driver.execute_script(script))  # type: ignore[attr-defined]


def shot(driver: object, name: str) -> None:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    driver.save_screenshot(str(ARTIFACTS / f"{name}.png"))  # type: ignore[attr-defined]


def test_runs_list_run_page_and_explorer_render(server: tuple[str, list[int]], browser: object) -> None:
    from selenium.webdriver.common.by import By

    base, (a, b) = server
    d = browser
    d.get(base + "/")  # type: ignore[attr-defined]
    rows = d.find_elements(By.CSS_SELECTOR, "table#runs tbody tr")  # type: ignore[attr-defined]
    assert len(rows) == 2
    shot(d, "runs-list")

    d.get(f"{base}/runs/{a}")  # type: ignore[attr-defined]
    assert traces(d, "hist-first") == 1 and traces(d, "hist-l2") == 1
    shot(d, "run-page")

    d.get(f"{base}/explore?runs={a},{b}")  # type: ignore[attr-defined]
    assert traces(d, "means") == 2 * 2 * 2  # per run: softmax and logit panels, initial and target
    assert traces(d, "shares") == 2 * 3  # per run: S1, S2, S3
    assert traces(d, "image") == 6  # p and z of the initial, target and other class
    images = d.find_elements(By.CSS_SELECTOR, ".images img")  # type: ignore[attr-defined]
    assert len(images) == 3
    assert all(d.execute_script("return arguments[0].naturalWidth", img) > 0 for img in images)  # type: ignore[attr-defined]
    shot(d, "trajectory-explorer")
