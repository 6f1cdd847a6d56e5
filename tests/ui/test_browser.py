"""End to end: Streamlit UI in Chromium, against a real API (the `live_api` fixture from conftest) and against
the fake API, whose canned story (several periods, a shadow version, drift crossing the threshold, a rollout
under way) is what the README's screenshots of the Experiment, Drift and Rollout tabs show."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
import requests
from playwright.sync_api import Locator, Page, expect, sync_playwright

from app.settings import REPO_DIR
from tests.helpers import free_port, until_every_worker, wait_until
from tests.ui.fake_api import FakeApi

pytestmark = [pytest.mark.integration, pytest.mark.browser]

REPO = REPO_DIR
CHROMIUM = Path("/usr/bin/chromium")
# The README's pictures; refreshed only on request (UPDATE_SCREENSHOT=1) so a test run leaves the tree clean.
DOCS = REPO / "docs"
DOCS_SCREENSHOT = DOCS / "ui.png"
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


@contextmanager
def _streamlit(api_url: str, log: Path) -> Iterator[str]:
    """Run the Streamlit app against the API at ``api_url`` and yield its URL."""
    port = free_port()
    env = {**os.environ, "API_URL": api_url}
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


@contextmanager
def _chromium_page(url: str, height: int = 1000) -> Iterator[Page]:
    """A Chromium page (Debian's binary, never a downloaded one) on ``url``."""
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is not installed: run ./install.sh --dev (Debian's chromium package)")
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=str(CHROMIUM),
            args=["--no-sandbox", "--disable-gpu", "--disable-background-networking"],
        )
        try:
            context = browser.new_context(viewport={"width": 1280, "height": height})
            # First script runs on a cold CI box take longer than the 5 s default.
            context.set_default_timeout(UI_TIMEOUT_MS)
            expect.set_options(timeout=UI_TIMEOUT_MS)
            page = context.new_page()
            page.goto(url)
            yield page
        finally:
            browser.close()


@pytest.fixture
def ui_page(live_api: Any, tmp_path: Path) -> Iterator[Page]:
    """Chromium on the Streamlit app, against the live API."""
    with _streamlit(live_api.url, tmp_path / "streamlit.log") as url, _chromium_page(url) as page:
        yield page


@pytest.fixture
def fake_ui_page(tmp_path: Path) -> Iterator[tuple[Page, FakeApi]]:
    """Chromium on the Streamlit app, against the fake API and its canned story."""
    api = FakeApi()
    api.start()
    try:
        # Tall enough for a whole tab: Streamlit scrolls inside the page, so a screenshot shows the viewport.
        with _streamlit(api.url, tmp_path / "streamlit.log") as url, _chromium_page(url, height=2100) as page:
            yield page, api
    finally:
        api.stop()


def _screenshot(page: Page, name: str, tmp_path: Path) -> None:
    """A picture of the page: into docs/ with UPDATE_SCREENSHOT=1, else a scratch file."""
    shot = DOCS / name if os.environ.get("UPDATE_SCREENSHOT") == "1" else tmp_path / name
    expect(page.get_by_test_id("stSkeleton")).to_have_count(0)  # every element drawn, none still a placeholder
    page.screenshot(path=str(shot), full_page=True)
    assert shot.stat().st_size > 10_000  # a rendered page, not an empty canvas


def _open_tab(page: Page, name: str) -> Locator:
    """Click a tab; its panel."""
    page.get_by_role("tab", name=name).click()
    return page.get_by_role("tabpanel", name=name)


def _tables_laid_out(page: Page, panel: Locator) -> None:
    """Wait until every table of the panel has its width: one drawn in a hidden tab starts out a sliver."""
    for table in panel.get_by_test_id("stDataFrame").all():
        page.wait_for_function("e => e.getBoundingClientRect().width > 300", arg=table.element_handle())


def _charts_drawn(panel: Locator, count: int) -> None:
    """``count`` Vega-Lite charts in the panel, each drawn (an SVG or canvas inside, not an empty frame)."""
    charts = panel.get_by_test_id("stVegaLiteChart")
    expect(charts).to_have_count(count)
    for i in range(count):
        expect(charts.nth(i).locator("canvas, svg").first).to_be_visible()


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

    _screenshot(page, DOCS_SCREENSHOT.name, tmp_path)

    # The numbers the page does not judge itself come from the live server: its shares and its threshold.
    page.get_by_role("tab", name="Admin").click()
    admin = page.get_by_role("tabpanel", name="Admin")
    expect(admin.get_by_test_id("stMetricDelta")).to_have_text(["50% of traffic", "50% of traffic"])
    page.get_by_role("tab", name="Drift").click()
    expect(_metric_value(page, "Alarm threshold")).to_have_text("0.30")

    # The API has run no rollout: the tab says how to start one.
    rollout = _open_tab(page, "Rollout")
    expect(rollout.get_by_text("No rollout has run yet.")).to_be_visible()
    expect(rollout.get_by_text("/rollouts -H")).to_be_visible()


def test_experiment_drift_and_rollout_tabs_in_the_browser(fake_ui_page: tuple[Page, FakeApi], tmp_path: Path) -> None:
    page, api = fake_ui_page
    # The traffic split, the accuracy over time (served and shadow, with both bands and the periods), the shares.
    experiment = _open_tab(page, "Experiment")
    _charts_drawn(experiment, 3)
    expect(experiment.get_by_text("Dashed: shadow versions")).to_be_visible()
    expect(_metric_value(page, "v1 accuracy")).to_have_text("100.0%")
    expect(experiment.get_by_test_id("stDataFrame")).to_have_count(2)  # every version, the shadow versions
    _tables_laid_out(page, experiment)
    _screenshot(page, "ui-experiment.png", tmp_path)

    # The score's history against the threshold; p-values, PSI and mean shift each on an axis of its own.
    drift = _open_tab(page, "Drift")
    _charts_drawn(drift, 4)
    expect(drift.get_by_text("Adjusted p-values on a log scale")).to_be_visible()
    _tables_laid_out(page, drift)
    _screenshot(page, "ui-drift.png", tmp_path)

    rollout = _open_tab(page, "Rollout")
    expect(rollout.get_by_text("Rolling out", exact=False)).to_be_visible()
    expect(_metric_value(page, "Step")).to_have_text("2 of 3")
    expect(rollout.get_by_test_id("stDataFrame")).to_have_count(2)  # the latest evidence, the decisions
    expect(rollout.get_by_text("Enter the admin token in the Admin tab to abort this rollout.")).to_be_visible()
    _tables_laid_out(page, rollout)
    _screenshot(page, "ui-rollout.png", tmp_path)

    # With the admin token typed in the Admin tab, the rollout can be aborted from its own tab.
    _open_tab(page, "Admin").get_by_label("Admin token").fill("s3cret-admin-token")
    page.keyboard.press("Enter")
    _open_tab(page, "Rollout").get_by_role("button", name="Abort rollout").click()
    expect(page.get_by_text("Rollout aborted: it is aborted, with weights v1 100 · v2 0.")).to_be_visible()
    (sent,) = api.sent("DELETE", "/rollouts/current")
    assert sent.headers["Authorization"] == "Bearer s3cret-admin-token"


def test_shadow_and_a_rollout_of_a_real_api_in_the_browser(api_server_factory: Any, tmp_path: Path) -> None:
    api = api_server_factory()
    shadow = {"weights": {"v1": 100, "v2": 0}, "shadow": ["v2"]}
    assert requests.put(f"{api.url}/config", json=shadow, headers=api.admin_headers, timeout=5).status_code == 200
    until_every_worker(api.url, "/config", 2, lambda r: r.json()["shadow"] == ["v2"], timeout=5)
    rows = [[5.1, 3.5, 1.4, 0.2], [6.7, 3.0, 5.2, 2.3], [5.9, 3.0, 4.2, 1.5], [6.3, 2.8, 5.1, 1.5]] * 5
    for _ in range(5):
        answer = requests.post(f"{api.url}/predict", json={"instances": rows}, timeout=5).json()
        feedback = [
            {"prediction_id": pid, "feedback_token": token, "label": label}
            for pid, token, label in zip(
                answer["prediction_ids"], answer["feedback_tokens"], answer["predictions"], strict=True
            )
        ]
        assert requests.post(f"{api.url}/feedback", json={"feedback": feedback}, timeout=5).status_code == 200
    wait_until(
        lambda: requests.get(f"{api.url}/ab/report", timeout=5).json()["shadow"].get("v2", {}).get("labeled") == 100,
        timeout=10,
        message="the shadow version's rows scored and labelled",
    )
    plan = {"candidate": "v2", "baseline": "v1", "steps": [10, 50, 100]}
    assert requests.post(f"{api.url}/rollouts", json=plan, headers=api.admin_headers, timeout=5).status_code == 201

    with _streamlit(api.url, tmp_path / "streamlit.log") as url, _chromium_page(url, height=2100) as page:
        rollout = _open_tab(page, "Rollout")
        expect(rollout.get_by_text("Rolling out", exact=False)).to_be_visible()
        expect(_metric_value(page, "Step")).to_have_text("1 of 3")
        # The accuracy over time shows the shadow period before the rollout's; the split over time beside it.
        experiment = _open_tab(page, "Experiment")
        _charts_drawn(experiment, 3)
        expect(experiment.get_by_text("Dashed: shadow versions", exact=False)).to_be_visible()
