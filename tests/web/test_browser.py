"""The dashboard in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``) driven by Selenium, against ``pytempest director`` over a real
distributed topology.

Skipped locally when Chromium, its driver or Selenium is missing; required in CI (env
``CI`` set; ``.ci/run`` installs Chromium). Screenshots go to the test's tmp folder;
with ``PYTEMPEST_DOCS_SCREENSHOTS=1`` they are also copied to ``docs/img/``.
"""

from __future__ import annotations

import os
import shutil
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, TypeVar

import pytest

from .helpers import APP, http, setup, wait_for

T = TypeVar("T")
DOCS_IMG = Path(__file__).parents[2] / "docs" / "img"
CHROME_FLAGS = (
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
    "--disable-dev-shm-usage", "--window-size=1400,1000",
)  # fmt: skip


def _missing(what: str) -> None:
    message = f"browser test needs {what}: apt-get install chromium chromium-driver; pip install selenium"
    if os.environ.get("CI"):
        pytest.fail(message + " (required in CI)")
    pytest.skip(message)


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium")
    chromium = shutil.which("chromium") or shutil.which("chromium-browser")
    driver_path = shutil.which("chromedriver")
    if chromium is None or driver_path is None:
        _missing("chromium and chromedriver")
    os.environ["SE_OFFLINE"] = "true"  # Selenium Manager must not download anything
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    try:
        yield driver
    finally:
        driver.quit()


def _shot(driver: Any, tmp: Path, name: str, height: int | None = None) -> None:
    if height is not None:
        driver.set_window_size(1400, height)
    path = tmp / name
    driver.save_screenshot(str(path))
    assert path.stat().st_size > 10_000, f"{name} looks empty"
    if os.environ.get("PYTEMPEST_DOCS_SCREENSHOTS"):
        DOCS_IMG.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(path, DOCS_IMG / name)


def _int(text: str) -> int:
    return int(text.replace(",", "") or 0)


def test_dashboard_in_chromium(browser: Any, tmp_path: Path, redis_url: str, key_prefix: str) -> None:
    from selenium.webdriver.common.by import By

    def css(selector: str) -> list[Any]:
        return browser.find_elements(By.CSS_SELECTOR, selector)

    with setup(tmp_path, redis_url, key_prefix, PT_SLEEP_MS="2") as s:
        director = s.start("director", "--redis", redis_url, "--port", "0")
        base = director.dashboard_url()
        s.start("topology", APP, "--quiet")
        s.start("task", APP, "--all")
        s.prime([b"bad-%d" % i for i in range(3)])
        stop = threading.Event()

        def produce() -> None:  # a steady flow while the page is watched (bounded)
            for round_ in range(600):
                if stop.wait(0.1):
                    return
                s.prime([b"m-%d-%d" % (round_, i) for i in range(20)])

        producer = threading.Thread(target=produce, daemon=True)
        producer.start()
        try:
            # Overview: the topology's row, running, with a link to its page.
            browser.get(base)
            wait_for("the topology's row, running", lambda: [
                r for r in css(f'tr[data-topology="{s.name}"] .badge') if r.text.lower() == "running"], 30)  # fmt: skip
            wait_for("a read rate", lambda: _rate(css(f'tr[data-topology="{s.name}"] .rate-read')), 20)
            _shot(browser, tmp_path, "dashboard-overview.png")
            browser.find_element(By.LINK_TEXT, s.name).click()

            # Topology page: the graph has the right boxes and arrows.
            wait_for("the graph's four tasks", lambda: len(css("svg#graph g.node")) == 4, 20)
            nodes = {n.get_attribute("data-task") for n in css("svg#graph g.node")}
            assert nodes == {"parse", "enrich", "audit", "store"}
            edges = sorted(
                (e.get_attribute("data-from"), e.get_attribute("data-to")) for e in css("svg#graph path.edge")
            )
            assert edges == [("audit", "store"), ("enrich", "store"), ("parse", "audit"), ("parse", "enrich")]

            # A counter rises while messages flow (the page updates without a reload).
            first = wait_for(
                "acked messages", lambda: _int(browser.find_element(By.ID, "total-acked").text), 30
            )
            wait_for("the acked counter to rise",
                     lambda: _int(browser.find_element(By.ID, "total-acked").text) > first, 20)  # fmt: skip
            assert browser.execute_script("return performance.getEntriesByType('navigation').length") == 1

            # The failures and the dead letter: requeue one entry by clicking, with the confirmation.
            wait_for("a failure with its traceback", lambda: css("ol#failures li details"), 20)
            wait_for("three dead-letter entries", lambda: len(css("#deadletters tr[data-entry]")) == 3, 30)
            wait_for("history in the chart", lambda: css("svg#chart-rate path.series"), 20)
            # The table is redrawn only when its entries change; read and click the first one
            # again if that happened in between (StaleElementReferenceException).
            entry_id, body = _retry(lambda: (
                (r := css("#deadletters tr[data-entry]")[0]).get_attribute("data-entry"),
                r.find_element(By.CSS_SELECTOR, "code").text))  # fmt: skip
            assert body.startswith("bad-")
            row = f'#deadletters tr[data-entry="{entry_id}"]'
            _retry(lambda: browser.find_element(By.CSS_SELECTOR, row + " button.requeue").click())
            dialog = browser.find_element(By.ID, "confirm")
            wait_for("the confirmation dialog", lambda: dialog.get_attribute("open") is not None, 5)
            assert entry_id in browser.find_element(By.ID, "confirm-text").text
            browser.find_element(By.ID, "confirm-ok").click()
            wait_for("the requeue notice",
                     lambda: "requeued 1 entry" in browser.find_element(By.ID, "dl-notice").text, 10)  # fmt: skip
            wait_for(
                "the entry gone from the page",
                lambda: not css(f'#deadletters tr[data-entry="{entry_id}"]'),
                10,
            )
            assert s.client.xrange(s.dl_key, entry_id, entry_id) == []
            # Its body went back to the source stream as a new message.
            found = [
                f
                for _, f in s.client.xrevrange(s.source_key, count=20_000)
                if f.get(b"body") == body.encode()
            ]
            assert len(found) == 2
            # For the docs: a chart with some history, then the whole page.
            wait_for("20 s of history", lambda: _history_ms(base, s.name) >= 20_000, 40, 0.5)
            _shot(browser, tmp_path, "dashboard-topology.png", height=2300)
        finally:
            stop.set()
            producer.join(5)
        assert director.stop() == 0, director.log()[-3000:]


def _retry(action: Callable[[], T], attempts: int = 5) -> T:
    from selenium.common.exceptions import StaleElementReferenceException

    for _ in range(attempts - 1):
        try:
            return action()
        except StaleElementReferenceException:
            continue
    return action()


def _history_ms(base: str, name: str) -> int:
    points = http("GET", f"{base}api/topologies/{name}")[2]["history"]["points"]
    return int(points[-1][0] - points[0][0]) if points else 0


def _rate(cells: list[Any]) -> bool:
    return bool(cells) and cells[0].text not in ("", "-", "0")
