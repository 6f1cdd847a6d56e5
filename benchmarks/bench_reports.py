"""What a report costs as the prediction log grows: /ab/report from the running counters against a scan of the log.

    .venv/bin/python benchmarks/bench_reports.py                 # 10,000,000 rows (a few minutes to fill)
    .venv/bin/python benchmarks/bench_reports.py --rows 1000000
    .venv/bin/python benchmarks/bench_reports.py --rows 1000000 --database-url postgresql://user@127.0.0.1:5432/bench

Fills a fresh SQLite store through ``write_predictions`` (the path the service uses: rows, counters and
latency histograms in one transaction per batch), printing the write throughput, then times, side by side
in the same run: the report as the API builds it (``app.reports.ab.ab_report``, O(periods x hours)), the
same report with ``since``, and the aggregate the previous release ran on every call (a GROUP BY over
the whole log). Target: the report answers in under 20 ms on a 10M-row log.
"""

from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from app.reports.ab import ab_report
from app.store import LabelItem, PredictionRecord, Store, open_store

BATCH = 50_000
TARGET_MS = 20.0


def fill(store: Store, rows: int, experiment_id: int, batch_size: int = BATCH) -> float:
    """Write ``rows`` predictions over the last day in batches of ``batch_size``; returns rows per second."""
    rng = np.random.default_rng(0)
    start_ts = time.time() - 86_400
    written, started = 0, time.perf_counter()
    while written < rows:
        n = min(batch_size, rows - written)
        ts = start_ts + (np.arange(written, written + n) / rows) * 86_400
        versions = rng.choice(["v1", "v2"], size=n)
        latency = rng.lognormal(-1.5, 0.5, size=n)
        batch = [
            PredictionRecord(
                f"p{written + i:010d}",
                float(ts[i]),
                experiment_id,
                str(versions[i]),
                [5.1, 3.5, 1.4, 0.2],
                int(i % 3),
                [1.0, 0.0, 0.0],
                float(latency[i]),
                None,
                f"c{i % 97}",
            )
            for i in range(n)
        ]
        store.write_predictions(batch)
        written += n
        if written % (BATCH * 20) < n:
            print(f"  {written:>11,} rows, {written / (time.perf_counter() - started):,.0f} rows/s", flush=True)
    return rows / (time.perf_counter() - started)


def timed(action, repeat: int) -> float:  # type: ignore[no-untyped-def]
    """Median milliseconds of ``action()``."""
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        action()
        times.append((time.perf_counter() - start) * 1000.0)
    return statistics.median(times)


def main() -> int:
    """Fill, measure and print."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=10_000_000)
    parser.add_argument("--repeat", type=int, default=21)
    parser.add_argument(
        "--batch", type=int, default=BATCH, help="rows per write (a worker writes one batch per LOG_FLUSH_SECONDS)"
    )
    parser.add_argument("--database-url", help="an empty database to fill (default: a SQLite file in a temp dir)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-reports-") as folder:
        url = args.database_url or f"sqlite:///{Path(folder) / 'bench.db'}"
        store = open_store(url, create=True)
        backend = url.split(":", 1)[0]
        period = store.ensure_experiment({"v1": 50, "v2": 50}, {"v1": 50, "v2": 50})
        print(f"filling {args.rows:,} rows ...")
        rate = fill(store, args.rows, period.id, args.batch)
        store.set_labels([LabelItem(f"p{i:010d}", i % 3) for i in range(0, min(args.rows, 20_000), 2)])
        print(f"write throughput: {rate:,.0f} prediction-log rows/s ({backend}, batches of {args.batch:,})")

        report_ms = timed(lambda: ab_report(store, period), args.repeat)
        since_ms = timed(lambda: ab_report(store, period, since=time.time() - 6 * 3600), args.repeat)
        scan = (
            "SELECT experiment_id, model_version, COUNT(*), COUNT(label), "
            "SUM(CASE WHEN label = prediction THEN 1 ELSE 0 END) FROM predictions "
            "WHERE experiment_id = ? GROUP BY experiment_id, model_version"
        )
        scan_ms = timed(lambda: store._read(scan, (period.id,)), max(3, args.repeat // 7))  # type: ignore[attr-defined]
        report = ab_report(store, period)
        assert sum(v["requests"] for v in report["variants"].values()) == args.rows
        print(f"/ab/report from the counters:          {report_ms:8.2f} ms (median of {args.repeat})")
        print(f"/ab/report since 6 hours ago:          {since_ms:8.2f} ms")
        print(f"the previous release's scan of the log: {scan_ms:8.1f} ms  ({scan_ms / report_ms:,.0f}x slower)")
        verdict = "PASS" if report_ms < TARGET_MS else "MISS"
        print(f"target: /ab/report under {TARGET_MS:.0f} ms on {args.rows:,} rows: {verdict}")
        store.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
