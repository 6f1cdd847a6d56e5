"""What a shadow version costs the requests it shadows: the same API with and without one, side by side.

Two measurements, in one run:

* **In process**: what a request adds, the queue append (``ShadowScorer.submit``) timed alone; and
  ``Service.predict`` on one row with no shadow version and with one whose scorer runs on its own thread, as in
  a worker (that difference includes the scorer's share of the GIL).
* **Through a live 2-worker API** (gunicorn, ``/predict`` with one row, wrk): rounds alternate between no shadow
  and ``"shadow": ["v2"]`` (v1 serving everything in both), so drift in the machine's speed hits both alike.
  One connection gives the latency a single client sees; eight give throughput with the scorer competing for
  the same two cores. Every row is logged (``LOG_CLIENT_ROWS_PER_MINUTE=0``): only logged rows are shadowed.

    .venv/bin/python benchmarks/bench_shadow.py [--rounds 3] [--seconds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from bench_predict import run_wrk, start_server, train_models

from app.serving.router import ConfigUpdate
from app.serving.service import Service
from app.serving.shadow import Served, ShadowScorer
from app.settings import Settings

ADMIN_TOKEN = "bench-admin-token-0123456789"
ROW = np.array([[5.8, 3.0, 4.4, 1.4]])


def in_process(models_dir: Path, tmp: Path, calls: int) -> dict[str, float]:
    """Microseconds: what a request adds (``ShadowScorer.submit`` alone), and ``Service.predict`` per call (median
    of 5 batches) without and with a shadow version, its scorer running on its thread as in a worker."""
    settings = Settings.from_env(
        {},
        models_dir=models_dir,
        database_url=f"sqlite:///{tmp / 'inproc.db'}",
        log_client_rows_per_minute=0,
        log_queue_size=10 * calls,
    )
    service = Service(settings)
    service.start()
    result = {}
    try:
        for label, shadow in (("none", []), ("shadow", ["v2"])):
            service.set_config(ConfigUpdate(weights={"v1": 100, "v2": 0}, shadow=shadow))
            timings = []
            for _ in range(5):
                started = time.perf_counter()
                for _ in range(calls // 5):
                    service.predict(ROW, None, time.perf_counter(), service.state)
                timings.append((time.perf_counter() - started) / (calls // 5) * 1e6)
            result[label] = statistics.median(timings)
        state = service.state
        served = Served(state.models, ("v2",), state.experiment.id, time.time(), ROW, ["id"], [1], None, None)
        scorer = ShadowScorer(service.prediction_log, max_rows=10 * calls)  # not started: only the append is timed
        appends = []
        for _ in range(5):
            started = time.perf_counter()
            for _ in range(calls // 5):
                scorer.submit(served)
            appends.append((time.perf_counter() - started) / (calls // 5) * 1e6)
            scorer._queue.clear()
            scorer._queued_rows = 0
        result["append_us"] = statistics.median(appends)
    finally:
        service.stop()
    result["added_us"] = result["shadow"] - result["none"]
    return result


def live(models_dir: Path, tmp: Path, rounds: int, seconds: float) -> dict[str, dict[str, list[float]]]:
    """wrk figures per configuration, every round."""
    server = start_server("shadow", "app.flask_app:create_app()", tmp, models_dir, 2, "fast")
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    figures: dict[str, dict[str, list[float]]] = {
        c: {"p50_c1": [], "p99_c1": [], "rps_c8": [], "p99_c8": []} for c in ("none", "shadow")
    }
    shadowed = 0.0
    try:
        for _ in range(rounds):
            for label, shadow in (("none", []), ("shadow", ["v2"])):
                body = {"weights": {"v1": 100, "v2": 0}, "shadow": shadow}
                requests.put(f"{server.url}/config", json=body, headers=admin, timeout=10).raise_for_status()
                _until_every_worker(server.url, shadow)
                one = run_wrk(f"{server.url}/predict", 1, 1, seconds)
                eight = run_wrk(f"{server.url}/predict", 2, 8, seconds)
                figures[label]["p50_c1"].append(one.p50_ms)
                figures[label]["p99_c1"].append(one.p99_ms)
                figures[label]["rps_c8"].append(eight.rps)
                figures[label]["p99_c8"].append(eight.p99_ms)
        shadowed = _shadow_rows(server.url)
    finally:
        server.stop()
    figures["shadow"]["rows_scored"] = [shadowed]
    return figures


def _until_every_worker(url: str, shadow: list[str], workers: int = 2) -> None:
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while len(seen) < workers:
        response = requests.get(f"{url}/config", headers={"Connection": "close"}, timeout=10)
        if response.json()["shadow"] == shadow:
            seen.add(response.headers["X-Served-By"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"only workers {seen} have shadow {shadow}")


def _shadow_rows(url: str) -> float:
    text = requests.get(f"{url}/metrics", timeout=10).text
    return sum(
        float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith("shadow_predictions_total{")
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--calls", type=int, default=20_000, help="in-process predict() calls per configuration")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    os.environ.update({"ADMIN_TOKEN": ADMIN_TOKEN, "LOG_CLIENT_ROWS_PER_MINUTE": "0"})
    with tempfile.TemporaryDirectory(prefix="bench-shadow-") as name:
        tmp = Path(name)
        train_models(tmp / "models")
        local = in_process(tmp / "models", tmp, args.calls)
        served = live(tmp / "models", tmp, args.rounds, args.seconds)
    if args.json:
        print(json.dumps({"in_process": local, "live": served}, indent=2))
        return 0
    print("In process, one row (median of 5 batches):")
    print(f"  the request's queue append (ShadowScorer.submit): {local['append_us']:.2f} us")
    ratio = local["shadow"] / local["none"]
    print(f"  Service.predict: no shadow {local['none']:.1f} us, with a shadow version and its scorer running "
          f"{local['shadow']:.1f} us ({local['added_us']:+.1f} us, {ratio:.2f}x)")  # fmt: skip
    print(f"Live 2-worker API, POST /predict one row, {args.rounds} alternating rounds of {args.seconds:g} s each:")
    print(f"  {'':10} {'p50 ms (1 conn)':>16} {'p99 ms (1 conn)':>16} {'req/s (8 conn)':>15} {'p99 ms (8 conn)':>16}")
    for label in ("none", "shadow"):
        f = served[label]
        print(
            f"  {label:10} {statistics.median(f['p50_c1']):16.3f} {statistics.median(f['p99_c1']):16.3f} "
            f"{statistics.median(f['rps_c8']):15.0f} {statistics.median(f['p99_c8']):16.3f}"
        )
    none, shadow = served["none"], served["shadow"]
    print(
        f"  shadow / none: p50 {statistics.median(shadow['p50_c1']) / statistics.median(none['p50_c1']):.2f}x, "
        f"throughput {statistics.median(shadow['rps_c8']) / statistics.median(none['rps_c8']):.2f}x; "
        f"rows the shadow version scored: {shadow['rows_scored'][0]:.0f}"
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
