"""deploy/pipeline.sh for real: deploy a tag, deploy a new one, deploy a broken one and roll back.

Requests go to the front door the whole time from a thread of their own; how many failed, and for how
long the API was away, is measured (and printed in the run's summary).
"""

from __future__ import annotations

import subprocess
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests

from tests.containers.conftest import IMAGE_TAG, IMAGES, Stack
from tests.containers.engine import docker
from tests.helpers import MEASURED, SETOSA

GOOD = "deploy-good-2"  # the new tag: built by the pipeline from the same source
BROKEN_API = "deploy-broken-api-3"  # its API exits at start: never healthy
BROKEN_UI = "deploy-broken-ui-4"  # a healthy API, a UI that exits: the stack is not healthy after the switch


@dataclass
class Traffic:
    """Predictions sent to the front door, one after another, from a thread; each outcome with its time."""

    url: str
    outcomes: list[tuple[float, bool]] = field(default_factory=list)
    reasons: list[str] = field(default_factory=list)  # what the failed ones got, with the wall-clock time
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                answer = session.post(self.url, json={"features": SETOSA}, timeout=5)
                ok = answer.status_code == 200 and answer.json()["prediction"] == 0
                reason = f"{answer.status_code} {answer.text[:80]}"
            except (requests.RequestException, ValueError) as exc:
                ok, reason = False, type(exc).__name__
                session = requests.Session()
            if not ok:
                self.reasons.append(f"{time.strftime('%H:%M:%S')} {reason}")
            self.outcomes.append((started, ok))
            time.sleep(0.02)  # pacing, not readiness: about 40 requests a second

    def failed(self) -> int:
        return sum(1 for _, ok in self.outcomes if not ok)

    def longest_outage(self) -> float:
        """The longest stretch, in seconds, from a failed request to the next one that succeeded."""
        longest, since = 0.0, None
        for at, ok in self.outcomes:
            if not ok and since is None:
                since = at
            elif ok and since is not None:
                longest, since = max(longest, at - since), None
        if since is not None:
            longest = max(longest, self.outcomes[-1][0] - since)
        return longest


@pytest.fixture
def traffic(stack: Stack) -> Iterator[Traffic]:
    sender = Traffic(f"{stack.api}/predict")
    thread = threading.Thread(target=sender.run, daemon=True)
    thread.start()
    try:
        yield sender
    finally:
        sender.stop.set()
        thread.join(timeout=10)


def running_api_tag() -> str:
    return docker("inspect", "--format", "{{.Config.Image}}", "mlops-flask-api").stdout.strip().split(":", 1)[1]


def build_broken(tmp_path: Path, tag: str, broken: str, working: str) -> None:
    """``broken``:``tag`` exits at once (a release that cannot start); ``working``:``tag`` is the good image."""
    tmp_path.mkdir(parents=True, exist_ok=True)
    (tmp_path / "Dockerfile").write_text(
        f'FROM {broken}:{IMAGE_TAG}\nCMD ["python", "-c", "raise SystemExit(\'a broken release\')"]\n',
        encoding="utf-8",
    )
    docker("build", "-q", "-t", f"{broken}:{tag}", str(tmp_path), timeout=600)
    docker("tag", f"{working}:{IMAGE_TAG}", f"{working}:{tag}")


def test_deploy_new_tag_then_broken_tags_keep_or_roll_back(stack: Stack, traffic: Traffic, tmp_path: Path):
    state = Path(stack.env["DEPLOY_STATE_DIR"])
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    tag = stack.must("deploy/pipeline.sh", "tag", IMAGE_TAG="", BUILD_NUMBER="41").stdout.strip()
    assert tag == f"41-{sha}", tag
    never = stack.script("deploy/pipeline.sh", "deploy", IMAGE_TAG="never-built")
    assert never.returncode == 1 and "mlops-flask-api:never-built does not exist: deploy/pipeline.sh build first" in (
        never.stderr
    )
    # The stack runs IMAGE_TAG; the pipeline builds the new tag (cached layers: the same source).
    started = time.monotonic()
    stack.must("deploy/pipeline.sh", "build", IMAGE_TAG=GOOD, timeout=1800)
    MEASURED["pipeline build, cached (s)"] = round(time.monotonic() - started, 1)

    # A good tag: its API serves beside the old one, then the stack switches.
    started = time.monotonic()
    stack.must("deploy/pipeline.sh", "deploy", IMAGE_TAG=GOOD)
    MEASURED["deploy of a good tag (s)"] = round(time.monotonic() - started, 1)
    assert running_api_tag() == GOOD
    assert (state / "current").read_text().strip() == GOOD
    assert (state / "previous").read_text().strip() == IMAGE_TAG
    assert "mlops-flask-api-surge" not in stack.project_containers()
    stack.must("deploy/pipeline.sh", "smoke", PROMETHEUS_TARGET_WAIT="60", timeout=300)
    good_failed = traffic.failed()
    MEASURED["deploy of a good tag: failed requests"] = good_failed
    MEASURED["deploy of a good tag: longest outage (s)"] = round(traffic.longest_outage(), 2)
    # The surge API takes the traffic while the old one stops: no outage a client would notice.
    assert traffic.failed() <= len(traffic.outcomes) // 200 and traffic.longest_outage() < 2, (
        traffic.failed(),
        traffic.longest_outage(),
    )

    # An API that never gets healthy is refused before anything that serves is touched.
    build_broken(tmp_path / "api", BROKEN_API, "mlops-flask-api", "mlops-streamlit-ui")
    started = time.monotonic()
    refused = stack.script("deploy/pipeline.sh", "deploy", IMAGE_TAG=BROKEN_API, DEPLOY_TIMEOUT="60")
    MEASURED["deploy of a tag whose API never starts (s)"] = round(time.monotonic() - started, 1)
    assert refused.returncode != 0, refused.stdout
    assert f"deploy of {BROKEN_API} failed: its API did not become healthy; {GOOD} kept serving" in refused.stderr
    assert running_api_tag() == GOOD
    assert (state / "current").read_text().strip() == GOOD
    assert (state / "previous").read_text().strip() == IMAGE_TAG
    MEASURED["deploy of a tag whose API never starts: failed requests"] = traffic.failed() - good_failed
    before_rollback = traffic.failed()

    # A stack that is not healthy after the switch is rolled back to the tag that ran before.
    build_broken(tmp_path / "ui", BROKEN_UI, "mlops-streamlit-ui", "mlops-flask-api")
    started = time.monotonic()
    broken = stack.script("deploy/pipeline.sh", "deploy", IMAGE_TAG=BROKEN_UI, DEPLOY_TIMEOUT="60")
    MEASURED["deploy of a tag whose UI never starts, then rollback (s)"] = round(time.monotonic() - started, 1)
    assert broken.returncode != 0, broken.stdout
    assert f"deploy of {BROKEN_UI} failed; rolled back to {GOOD}" in broken.stderr, broken.stderr
    assert running_api_tag() == GOOD
    assert (state / "current").read_text().strip() == GOOD
    stack.must("deploy/pipeline.sh", "smoke", PROMETHEUS_TARGET_WAIT="60", timeout=300)
    traffic.stop.set()
    MEASURED["deploy of a tag whose UI never starts, then rollback: failed requests"] = (
        traffic.failed() - before_rollback
    )

    history = (state / "history.log").read_text()
    for line in (
        f"deploy {GOOD} (previous: {IMAGE_TAG})",
        f"deployed {GOOD}: healthy",
        f"deploy {BROKEN_API} failed: its API was not healthy within 60s; {GOOD} kept serving",
        f"deploy {BROKEN_UI} (previous: {GOOD})",
        f"deploy {BROKEN_UI} failed: not healthy within 60s",
        f"rollback from {BROKEN_UI} to {GOOD}",
        f"rolled back to {GOOD}: healthy",
    ):
        assert line in history, history
    # Rolled back once, there is nothing left to roll back to: the broken tag never comes back.
    again = stack.script("deploy/pipeline.sh", "rollback")
    assert again.returncode != 0 and "nothing to roll back to" in again.stderr

    total = len(traffic.outcomes)
    MEASURED["deploy exercise: requests"] = total
    MEASURED["deploy exercise: failed requests"] = traffic.failed()
    MEASURED["deploy exercise: longest outage (s)"] = round(traffic.longest_outage(), 2)
    MEASURED["deploy exercise: what failed requests got (first, last)"] = traffic.reasons[:1] + traffic.reasons[-1:]
    assert total > 100, total
    # The broken tags: the API may blip while the front door re-learns its addresses, never go away as a plain
    # stop and start does (26 s measured before the surge API).
    assert traffic.longest_outage() < 15, (traffic.longest_outage(), traffic.reasons[:3])
    assert traffic.outcomes[-1][1], "the API did not serve after the rollback"
    for image in IMAGES:
        for broken_tag in (BROKEN_API, BROKEN_UI):
            docker("image", "rm", f"{image}:{broken_tag}", check=False)
