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
BROKEN = "deploy-broken-3"  # its API exits at start: never healthy


@dataclass
class Traffic:
    """Predictions sent to the front door, one after another, from a thread; each outcome with its time."""

    url: str
    outcomes: list[tuple[float, bool]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)

    def run(self) -> None:
        session = requests.Session()
        while not self.stop.is_set():
            started = time.monotonic()
            try:
                answer = session.post(self.url, json={"features": SETOSA}, timeout=5)
                ok = answer.status_code == 200 and answer.json()["prediction"] == 0
            except (requests.RequestException, ValueError):
                ok = False
                session = requests.Session()
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


def build_broken(tmp_path: Path) -> None:
    """A tag whose API exits at once (a release that cannot start), beside the good UI image."""
    (tmp_path / "Dockerfile").write_text(
        f'FROM mlops-flask-api:{IMAGE_TAG}\nCMD ["python", "-c", "raise SystemExit(\'a broken release\')"]\n',
        encoding="utf-8",
    )
    docker("build", "-q", "-t", f"mlops-flask-api:{BROKEN}", str(tmp_path), timeout=600)
    docker("tag", f"mlops-streamlit-ui:{IMAGE_TAG}", f"mlops-streamlit-ui:{BROKEN}")


def test_deploy_new_tag_then_broken_tag_rolls_back(stack: Stack, traffic: Traffic, tmp_path: Path):
    state = Path(stack.env["DEPLOY_STATE_DIR"])
    # The stack runs IMAGE_TAG; the pipeline builds the new tag (cached layers: the same source).
    sha = subprocess.run(["git", "rev-parse", "--short=12", "HEAD"], capture_output=True, text=True).stdout.strip()
    tag = stack.must("deploy/pipeline.sh", "tag", IMAGE_TAG="", BUILD_NUMBER="41").stdout.strip()
    assert tag == f"41-{sha}", tag
    started = time.monotonic()
    stack.must("deploy/pipeline.sh", "build", IMAGE_TAG=GOOD, timeout=1800)
    MEASURED["pipeline build, cached (s)"] = round(time.monotonic() - started, 1)

    started = time.monotonic()
    stack.must("deploy/pipeline.sh", "deploy", IMAGE_TAG=GOOD)
    MEASURED["deploy of a good tag (s)"] = round(time.monotonic() - started, 1)
    assert running_api_tag() == GOOD
    assert (state / "current").read_text().strip() == GOOD
    assert (state / "previous").read_text().strip() == IMAGE_TAG
    failed_good = traffic.failed()
    outage_good = traffic.longest_outage()
    stack.must("deploy/pipeline.sh", "smoke", PROMETHEUS_TARGET_WAIT="60", timeout=300)

    build_broken(tmp_path)
    started = time.monotonic()
    broken = stack.script("deploy/pipeline.sh", "deploy", IMAGE_TAG=BROKEN, DEPLOY_TIMEOUT="60")
    MEASURED["deploy of a broken tag, then rollback (s)"] = round(time.monotonic() - started, 1)
    assert broken.returncode != 0, broken.stdout
    assert f"deploy of {BROKEN} failed; rolled back to {GOOD}" in broken.stderr, broken.stderr
    # The previous tag serves again, healthy, and passes the smoke test.
    assert running_api_tag() == GOOD
    assert (state / "current").read_text().strip() == GOOD
    stack.must("deploy/pipeline.sh", "smoke", PROMETHEUS_TARGET_WAIT="60", timeout=300)
    time.sleep(0)  # the traffic thread's last outcomes are in; stop counting here
    traffic.stop.set()

    history = (state / "history.log").read_text()
    for line in (
        f"deploy {GOOD} (previous: {IMAGE_TAG})",
        f"deployed {GOOD}: healthy",
        f"deploy {BROKEN} failed: not healthy within 60s",
        f"rollback from {BROKEN} to {GOOD}",
        f"rolled back to {GOOD}: healthy",
    ):
        assert line in history, history
    # Rolled back once, there is nothing left to roll back to: the broken tag never comes back.
    again = stack.script("deploy/pipeline.sh", "rollback")
    assert again.returncode != 0 and "nothing to roll back to" in again.stderr

    total = len(traffic.outcomes)
    MEASURED["deploy exercise requests"] = total
    MEASURED["failed during the good deploy"] = failed_good
    MEASURED["longest outage, good deploy (s)"] = round(outage_good, 2)
    MEASURED["failed in all (good deploy, broken deploy, rollback)"] = traffic.failed()
    MEASURED["longest outage in all (s)"] = round(traffic.longest_outage(), 2)
    assert total > 100, total
    assert traffic.outcomes[-1][1], "the API did not serve again after the rollback"
    for image in IMAGES:
        docker("image", "rm", f"{image}:{BROKEN}", check=False)
