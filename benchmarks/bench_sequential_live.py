"""Peeking at the live API's verdict: A/A and 10-point experiments run through a real 2-worker server.

Each run is a fresh experiment period (``PUT /config`` with 50/50 weights). Rows go through the A/B
router in ``/predict`` batches; every answer is labelled through ``/feedback`` with its token, right
with probability p for the version that served it (else another class), so the versions' true
accuracies are exactly what the scenario says whatever the models are. After every 50 labels per
version, up to ``--max-labels``, ``/ab/report`` is read once its counts include every label sent, and
both p-values it gives are recorded: the fixed-horizon z-test's and the always-valid one
(``comparisons[0].sequential``). Printed: how often each went below 0.05 at some look (A/A: the
always-valid one must stay at or below 5%), how often the fixed one did at the last look only, and
for the 10-point gap how often and after how many labels the always-valid test found it.

    .venv/bin/python benchmarks/bench_sequential_live.py [--runs 100] [--max-labels 2000]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import requests
from bench_predict import start_server, train_models

ADMIN_TOKEN = "bench-admin-token-0123456789"
BATCH = 25
ROW = [5.8, 3.0, 4.4, 1.4]


def one_run(
    url: str, p: dict[str, float], step: int, max_labels: int, rng: np.random.Generator, stop_when_found: bool
) -> dict:
    """One experiment period: returns the first look (labels per version) where each test said p < 0.05."""
    admin = {"Authorization": f"Bearer {ADMIN_TOKEN}"}
    response = requests.put(f"{url}/config", json={"weights": {"v1": 50, "v2": 50}}, headers=admin, timeout=10)
    response.raise_for_status()
    _until_every_worker_is_in(url, response.json()["experiment"]["id"])
    session = requests.Session()
    labeled = {"v1": 0, "v2": 0}
    found: dict[str, int | None] = {"sequential": None, "fixed": None}
    last_fixed = 1.0
    look = step
    while look <= max_labels:
        answer = session.post(f"{url}/predict", json={"instances": [ROW] * BATCH}, timeout=10).json()
        version = answer["model_version"]
        right = rng.random(BATCH) < p[version]
        feedback = [
            {"prediction_id": pid, "label": c if ok else (c + 1) % 3, "feedback_token": token}
            for pid, c, ok, token in zip(
                answer["prediction_ids"], answer["predictions"], right, answer["feedback_tokens"], strict=True
            )
        ]
        session.post(f"{url}/feedback", json={"feedback": feedback}, timeout=10).raise_for_status()
        labeled[version] += BATCH
        if stop_when_found and None not in found.values():
            break  # power: the first finding is what counts
        while min(labeled.values()) >= look and look <= max_labels:
            comparison = _report_with(session, url, labeled)
            if found["sequential"] is None and comparison["sequential"]["p_value"] < 0.05:
                found["sequential"] = look
            if found["fixed"] is None and comparison["p_value"] is not None and comparison["p_value"] < 0.05:
                found["fixed"] = look
            last_fixed = comparison["p_value"] if comparison["p_value"] is not None else 1.0
            look += step
    return {**found, "fixed_at_end": last_fixed < 0.05 and look > max_labels}


def _until_every_worker_is_in(url: str, period: int, workers: int = 2) -> None:
    """A new period reaches the other workers within a second (their state poll): until then they still
    serve, log and report the old one. Wait until every worker answers with the new period."""
    seen: set[str] = set()
    deadline = time.monotonic() + 30
    while len(seen) < workers:
        response = requests.get(f"{url}/config", headers={"Connection": "close"}, timeout=10)
        if response.json()["experiment"]["id"] == period:
            seen.add(response.headers["X-Served-By"])
        if time.monotonic() > deadline:
            raise RuntimeError(f"only workers {seen} are in period {period}")


def _report_with(session: requests.Session, url: str, labeled: dict[str, int]) -> dict:
    """The report's comparison once it counts every label sent (labels for unflushed rows apply at the flush)."""
    deadline = time.monotonic() + 30
    while True:
        report = session.get(f"{url}/ab/report", timeout=10).json()
        counted = {v: report["variants"][v]["labeled"] for v in labeled}
        if counted == labeled:
            comparison: dict = report["comparisons"][0]
            return comparison
        if time.monotonic() > deadline:
            raise RuntimeError(f"the report counts {counted}, {labeled} were sent")
        time.sleep(0.01)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=100, help="experiments per scenario (default 100)")
    parser.add_argument("--step", type=int, default=50)
    parser.add_argument("--max-labels", type=int, default=2000)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args(argv)
    scenarios = [("A/A, both 90% right", {"v1": 0.90, "v2": 0.90}), ("85% vs 95%", {"v1": 0.85, "v2": 0.95})]
    os.environ.update(
        {
            "ADMIN_TOKEN": ADMIN_TOKEN,
            "LOG_CLIENT_ROWS_PER_MINUTE": "0",  # one client sends everything: every row must be logged
            "LOG_FLUSH_SECONDS": "0.02",
            "LOG_RETENTION_ROWS": "100000000",
        }
    )
    results = {}
    with tempfile.TemporaryDirectory(prefix="bench-seq-live-") as name:
        tmp = Path(name)
        train_models(tmp / "models")
        server = start_server("seq", "app.flask_app:create_app()", tmp, tmp / "models", 2, "fast")
        try:
            for seed, (title, p) in enumerate(scenarios):
                rng = np.random.default_rng(seed)
                started = time.perf_counter()
                equal = p["v1"] == p["v2"]  # A/A: every look up to the last; otherwise until both tests found it
                runs = [one_run(server.url, p, args.step, args.max_labels, rng, not equal) for _ in range(args.runs)]
                seq = [r["sequential"] for r in runs if r["sequential"] is not None]
                results[title] = {
                    "runs": args.runs,
                    "always_valid_rate": len(seq) / args.runs,
                    "fixed_peeking_rate": sum(r["fixed"] is not None for r in runs) / args.runs,
                    "fixed_once_at_end_rate": sum(r["fixed_at_end"] for r in runs) / args.runs if equal else None,
                    "always_valid_median_labels": statistics.median(seq) if seq else None,
                    "seconds": time.perf_counter() - started,
                }
                print(f"[bench_sequential_live] {title}: {results[title]}", file=sys.stderr, flush=True)
        finally:
            server.stop()
    print(f"Live API, 2 workers; a look after every {args.step} labels per version up to {args.max_labels}")
    print(f"{'scenario':<22} {'runs':>5} {'always-valid':>13} {'fixed, peeking':>15} {'fixed, once':>12} {'median':>8}")
    for title, r in results.items():
        median = "-" if r["always_valid_median_labels"] is None else f"{r['always_valid_median_labels']:,.0f}"
        once = "-" if r["fixed_once_at_end_rate"] is None else f"{r['fixed_once_at_end_rate']:.1%}"
        print(
            f"{title:<22} {r['runs']:>5} {r['always_valid_rate']:>13.1%} {r['fixed_peeking_rate']:>15.1%}"
            f" {once:>12} {median:>8}"
        )
    aa = results[scenarios[0][0]]["always_valid_rate"]
    print(f"\nTarget: A/A always-valid rate <= 5%: {'PASS' if aa <= 0.05 else 'MISS'} ({aa:.1%})")
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
