"""The stack as containers, brought up by ``RUN_MODE=docker ./run_demo.sh`` from the images built here.

The smoke test passes against it; every container is healthy, runs as a non-root user on a read-only
root file system; Prometheus in its container scrapes the API container; each image carries only its
own packages; state on the named volumes survives ``./run_demo.sh stop`` and start, and stop leaves no
container behind.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import requests

from tests.containers.conftest import ADMIN_TOKEN, IMAGE_TAG, IMAGES, Stack
from tests.containers.engine import docker
from tests.helpers import SETOSA, VIRGINICA, scrape, total, wait_until

SERVICES = {
    # container: the command its main process runs
    "mlops-flask-api": "gunicorn",
    "mlops-frontdoor": "nginx",
    "mlops-streamlit-ui": "streamlit",
    "mlops-prometheus": "prometheus",
}
ADMIN = {"Authorization": f"Bearer {ADMIN_TOKEN}"}


def inspect(container: str) -> dict:
    return json.loads(docker("inspect", container).stdout)[0]


def process_uids(pid: int) -> tuple[int, int]:
    """The real and effective uid of a host process (the container's main process, seen from the host)."""
    status = Path(f"/proc/{pid}/status").read_text(encoding="utf-8")
    match = re.search(r"^Uid:\s+(\d+)\s+(\d+)", status, re.M)
    assert match, status
    return int(match.group(1)), int(match.group(2))


def test_smoke_test_passes_against_the_containers(stack: Stack):
    result = stack.must(
        "test_everything.sh",
        API_URL=stack.api,
        UI_URL=stack.ui,
        PROMETHEUS_URL=stack.prometheus,
        PROMETHEUS_TARGET_WAIT="60",
        timeout=300,
    )
    summary = re.search(r"(\d+) passed, (\d+) failed", result.stdout)
    assert summary, result.stdout
    assert int(summary.group(1)) >= 14 and summary.group(2) == "0", result.stdout


def test_every_container_is_healthy_non_root_and_read_only(stack: Stack):
    status = stack.must("run_demo.sh", "status")
    for name, program in SERVICES.items():
        details = inspect(name)
        assert details["State"]["Health"]["Status"] == "healthy", (name, details["State"])
        assert f"{name} healthy" in status.stdout, status.stdout
        assert details["HostConfig"]["ReadonlyRootfs"] is True, name
        real, effective = process_uids(details["State"]["Pid"])
        assert real != 0 and effective != 0, f"{name}'s main process runs as uid {real}/{effective}"
        assert program in Path(f"/proc/{details['State']['Pid']}/cmdline").read_text(errors="replace"), name
        # Its image tag is the build's, never a bare latest.
        if name in ("mlops-flask-api", "mlops-streamlit-ui"):
            assert details["Config"]["Image"].endswith(f":{IMAGE_TAG}"), details["Config"]["Image"]
        # Published on loopback only (BIND_HOST=127.0.0.1), the API only through the front door.
        bindings = [b for ports in (details["HostConfig"]["PortBindings"] or {}).values() for b in ports]
        assert all(b["HostIp"] == "127.0.0.1" for b in bindings), (name, bindings)
        assert bool(bindings) == (name != "mlops-flask-api"), (name, bindings)


def test_api_container_compiles_forests_and_answers_through_the_front_door(stack: Stack):
    health = requests.get(f"{stack.api}/health", timeout=10).json()
    # The compiled batch path needs a writable, executable /tmp on a read-only root: tl2cgen's library loads.
    backends = {version: info.get("batch_backend") for version, info in health["models"].items()}
    assert set(backends.values()) == {"tl2cgen"}, health
    answer = requests.post(f"{stack.api}/predict", json={"features": SETOSA}, timeout=10)
    assert answer.status_code == 200 and answer.json()["prediction"] == 0, answer.text
    assert answer.headers["Server"] == "nginx"
    bad = requests.post(f"{stack.api}/predict", json={"features": [1, 2]}, timeout=10)
    assert bad.status_code == 400 and "error" in bad.json()


def test_prometheus_container_scrapes_the_api_container(stack: Stack):
    for _ in range(7):
        requests.post(f"{stack.api}/predict", json={"features": VIRGINICA}, timeout=10).raise_for_status()
    served = total(scrape(stack.api), "prediction_requests_total")
    assert served >= 7

    def scraped() -> float | None:
        targets = requests.get(f"{stack.prometheus}/api/v1/targets", timeout=10).json()["data"]["activeTargets"]
        api = [t for t in targets if t["labels"]["job"] == "flask-api"]
        if not api or api[0]["health"] != "up":
            return None
        assert api[0]["scrapeUrl"] == "http://flask-api:5000/metrics", api[0]
        query = "sum(prediction_requests_total)"
        data = requests.get(f"{stack.prometheus}/api/v1/query", params={"query": query}, timeout=10).json()
        results = data["data"]["result"]
        return float(results[0]["value"][1]) if results and float(results[0]["value"][1]) >= served else None

    # The API container's counters, as Prometheus in its own container scraped them over the compose network.
    assert wait_until(scraped, timeout=60, interval=1, message="Prometheus to scrape the API container") >= served


def test_each_image_carries_only_its_own_packages(built_images: dict[str, int]):
    probe = "import importlib.util as u, sys; print(*[m for m in sys.argv[1:] if u.find_spec(m)])"
    modules = ["sklearn", "flask", "tl2cgen", "streamlit", "pandas", "requests"]
    found = {}
    for image in IMAGES:
        out = docker("run", "--rm", "--entrypoint", "python", f"{image}:{IMAGE_TAG}", "-c", probe, *modules)
        found[image] = set(out.stdout.split())
    assert {"sklearn", "flask", "tl2cgen"} <= found["mlops-flask-api"], found
    assert not {"streamlit", "pandas"} & found["mlops-flask-api"], "the API image carries the UI's or tools' packages"
    assert "streamlit" in found["mlops-streamlit-ui"] and "requests" in found["mlops-streamlit-ui"], found
    assert not {"sklearn", "flask"} & found["mlops-streamlit-ui"], "the UI image carries the API's packages"
    assert built_images["mlops-streamlit-ui"] < built_images["mlops-flask-api"], built_images


def test_state_survives_stop_and_start_and_stop_leaves_nothing(stack: Stack):
    config = requests.put(f"{stack.api}/config", json={"weights": {"v1": 80, "v2": 20}}, headers=ADMIN, timeout=10)
    assert config.status_code == 200, config.text
    served = requests.post(f"{stack.api}/predict", json={"features": SETOSA, "user_id": "survivor"}, timeout=10)
    label = {"prediction_id": served.json()["prediction_id"], "feedback_token": served.json()["feedback_token"]}
    labelled = requests.post(f"{stack.api}/feedback", json={**label, "label": 0}, timeout=10)
    assert labelled.status_code in (200, 201, 202), labelled.text  # 202: queued until the row is logged

    def labels() -> int:
        report = requests.get(f"{stack.api}/ab/report", timeout=10).json()
        return sum(int(v["labeled"]) for v in report["variants"].values())

    before = wait_until(labels, timeout=30, interval=0.5, message="the label to reach the report")

    stack.must("run_demo.sh", "stop")
    assert stack.project_containers() == [], "./run_demo.sh stop left containers behind"
    assert docker("ps", "-q", "--filter", "name=mlops-").stdout.strip() == ""
    stack.must("run_demo.sh", timeout=600)

    weights = requests.get(f"{stack.api}/config", timeout=10).json()["weights"]
    assert weights == {"v1": 80, "v2": 20}, weights
    assert labels() == before, "the prediction log and feedback did not survive stop and start"
