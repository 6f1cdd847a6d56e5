"""End to end: Streamlit UI in Chromium against a real API (the `live_api` fixture from conftest)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, expect, sync_playwright

from app.settings import REPO_DIR
from tests.helpers import free_port

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REPO = REPO_DIR
CHROMIUM = Path("/usr/bin/chromium")
# The README's picture; refreshed only on request so a test run leaves the tree clean.
DOCS_SCREENSHOT = REPO / "docs" / "ui.png"
STARTUP_SECONDS = 60.0
POLL_SECONDS = 0.1
UI_TIMEOUT_MS = 20_000


def _streamlit_command() -> list[str]:
    # The `streamlit` script next to this interpreter is what docker runs;
    # `python -m streamlit` would also put the repo root on sys.path and hide
    # an import that only works from there.
    script = Path(sys.executable).parent / "streamlit"
    return [str(script)] if script.exists() else [sys.executable, "-m", "streamlit"]


def _wait_until_healthy(url: str, process: subprocess.Popen[bytes], log: Path) -> None:
    """Poll Streamlit's health endpoint; fail at once, with its log, if the process exits."""
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"streamlit exited with {process.returncode}:\n{log.read_text(errors='replace')[-2000:]}")
        try:
            if requests.get(url, timeout=1).ok:
                return
        except requests.RequestException:
            pass
        # Polling interval, not a wait for something to happen.
        time.sleep(POLL_SECONDS)
    pytest.fail(f"streamlit not healthy after {STARTUP_SECONDS:g} s:\n{log.read_text(errors='replace')[-2000:]}")


@pytest.fixture
def streamlit_url(live_api: Any, tmp_path: Path) -> Iterator[str]:
    """Run the Streamlit app against the live API and yield its URL."""
    port = free_port()
    log = tmp_path / "streamlit.log"
    env = {**os.environ, "API_URL": live_api.url}
    command = [
        *_streamlit_command(),
        "run",
        "app/streamlit_app.py",
        "--server.port",
        str(port),
        "--server.address",
        "127.0.0.1",
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        "--client.toolbarMode",
        "viewer",
    ]
    with log.open("wb") as out:
        process = subprocess.Popen(command, cwd=REPO, env=env, stdout=out, stderr=subprocess.STDOUT)
        try:
            _wait_until_healthy(f"http://127.0.0.1:{port}/_stcore/health", process, log)
            yield f"http://127.0.0.1:{port}"
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


@pytest.fixture
def ui_page(streamlit_url: str) -> Iterator[Page]:
    """A Chromium page (Debian's binary, never a downloaded one) on the app."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is not installed: run ./install.sh --dev (Debian's chromium package)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": 1000})
            # First script runs on a cold CI box take longer than the 5 s default.
            context.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page = context.new_page()
            page.goto(streamlit_url)
            yield page
        finally:
            browser.close()


def _metric(page: Page, label: str) -> Locator:
    """The st.metric whose label contains this text."""
    return page.get_by_test_id("stMetric").filter(has_text=label)


def _metric_value(page: Page, label: str) -> Locator:
    """The value of the st.metric whose label contains this text."""
    return _metric(page, label).get_by_test_id("stMetricValue")


def _slide_to_max(page: Page, label: str, expected: str) -> None:
    """Move a slider to its maximum with the keyboard, as a person would."""
    slider = page.get_by_role("slider", name=label)
    slider.focus()
    slider.press("End")
    expect(slider).to_have_attribute("aria-valuetext", expected)


def test_predict_in_the_browser(ui_page: Page, tmp_path: Path) -> None:
    page = ui_page
    predict = page.get_by_role("button", name="Get Prediction")
    predict.click()
    species = _metric_value(page, "Species")
    expect(species).to_have_text("Setosa")
    expect(_metric_value(page, "Model version")).to_have_text(re.compile(r"^v[12]$"))
    # The sticky A/B id lands in the URL so a reload keeps the assignment.
    expect(page).to_have_url(re.compile(r"[?&]uid=[0-9a-f-]{36}"))

    _slide_to_max(page, "Petal Length", "6.9")
    _slide_to_max(page, "Petal Width", "2.5")
    predict.click()
    expect(species).to_have_text(re.compile(r"^(Versicolor|Virginica)$"))
    panel = page.get_by_role("tabpanel", name="Predict")
    expect(panel.get_by_test_id("stVegaLiteChart")).to_be_visible()
    expect(panel.get_by_test_id("stDataFrame")).to_be_visible()

    shot = DOCS_SCREENSHOT if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / "ui.png"
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty canvas

    # The numbers the page does not judge itself come from the live server: its shares and its threshold.
    page.get_by_role("tab", name="Admin").click()
    admin = page.get_by_role("tabpanel", name="Admin")
    expect(admin.get_by_test_id("stMetricDelta")).to_have_text(["50% of traffic", "50% of traffic"])
    page.get_by_role("tab", name="Drift").click()
    expect(_metric_value(page, "Alarm threshold")).to_have_text("0.30")
