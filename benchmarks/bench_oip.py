"""Big batches and the Open Inference Protocol, measured side by side in one run.

1. Predictor core, in process, v2 on batches of 10,000 rows, one thread: the compiled forest
   (tl2cgen), the numpy array walk, and scikit-learn's ``predict_proba`` on the same rows.
2. Over HTTP against 2 gunicorn workers (docker/gunicorn.conf.py, as production starts them), with
   wrk and benchmarks/post_body.lua: 1,000-row batches as binary V2 tensors (predict and
   predict_proba asked for as binary), as V2 JSON, and as /predict ``instances``; then one row on
   one connection through /predict and through V2 JSON infer. The prediction-log rows the workers
   did not log (``prediction_log_errors_total``: beyond the per-client quota, or the queue full because
   the store falls behind) are reported too; ``--log-every-row`` lifts the quota.
3. How 8 keep-alive client connections spread over the 2 workers (``X-Served-By``).
4. The file CLI: ``mlops-score`` on a 1,000,000-row CSV (parsing included), and ``--backend sklearn``.

Prints every figure and the issue's targets with PASS/MISS; a measurement, not a test (exit 0). Run
from the repository root::

    .venv/bin/python benchmarks/bench_oip.py [--duration 10] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path

import numpy as np
from bench_frontdoor import start_frontdoor
from bench_predict import REPO_DIR, LoadResult, http_request, parse_wrk, start_server, train_models, venv_tool

LUA = REPO_DIR / "benchmarks" / "post_body.lua"
INFER = "/v2/models/iris/infer"
TARGET_CORE_ROWS_S = 1_000_000
TARGET_HTTP_BINARY_ROWS_S = 300_000
TARGET_SINGLE_ROW_RATIO = 1.2
TARGET_FILE_ROWS_S = 500_000


def iris_like(n: int, seed: int = 0) -> np.ndarray:
    """Rows around the Iris feature means, rounded as measurements are."""
    rng = np.random.default_rng(seed)
    return (rng.normal(size=(n, 4)) * [0.8, 0.4, 1.7, 0.7] + [5.8, 3.0, 3.7, 1.2]).clip(0.1).round(1)


def rows_per_second(predict: Callable[[np.ndarray], object], X: np.ndarray, seconds: float = 2.0) -> float:
    predict(X)  # warm
    calls, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        predict(X)
        calls += 1
    return calls * len(X) / (time.perf_counter() - start)


def core(models_dir: Path) -> dict[str, float]:
    """Rows/s of each predictor path for v2 on 10,000-row batches."""
    from app.serving.predictor import FastForest
    from app.serving.registry import load_model_set

    loaded = load_model_set(models_dir, "fast").versions["v2"]
    X = iris_like(10_000, seed=1)
    assert isinstance(loaded.predictor, FastForest) and loaded.predictor.batch_backend == "tl2cgen"
    return {
        "tl2cgen": rows_per_second(loaded.predictor.predict_proba, X),
        "numpy": rows_per_second(loaded.predictor.without_batch().predict_proba, X),
        "sklearn": rows_per_second(loaded.estimator.predict_proba, X),
    }


def bodies(tmp: Path) -> dict[str, tuple[Path, str, str]]:
    """(body file, content type, Inference-Header-Content-Length or '') of every HTTP case."""
    batch = iris_like(1000, seed=2)
    raw = batch.astype("<f4").tobytes()
    header = {
        "inputs": [
            {"name": "features", "shape": [1000, 4], "datatype": "FP32", "parameters": {"binary_data_size": len(raw)}}
        ],
        "outputs": [{"name": n, "parameters": {"binary_data": True}} for n in ("predict", "predict_proba")],
    }
    head = json.dumps(header).encode()
    as_json = {"inputs": [{"name": "features", "shape": [1000, 4], "datatype": "FP64", "data": batch.tolist()}]}
    as_json["outputs"] = [{"name": "predict"}, {"name": "predict_proba"}]
    one = {"inputs": [{"name": "features", "shape": [1, 4], "datatype": "FP64", "data": [[5.1, 3.5, 1.4, 0.2]]}]}
    cases = {
        "v2_binary_1000": (head + raw, "application/octet-stream", str(len(head))),
        "v2_json_1000": (json.dumps(as_json).encode(), "application/json", ""),
        "predict_1000": (json.dumps({"instances": batch.tolist()}).encode(), "application/json", ""),
        "v2_json_1row": (json.dumps(one).encode(), "application/json", ""),
        "predict_1row": (b'{"features": [5.1, 3.5, 1.4, 0.2]}', "application/json", ""),
    }
    out = {}
    for name, (body, content_type, header_length) in cases.items():
        path = tmp / f"{name}.body"
        path.write_bytes(body)
        out[name] = (path, content_type, header_length)
    return out


def wrk(url: str, body: tuple[Path, str, str], threads: int, connections: int, seconds: int) -> LoadResult:
    path, content_type, header_length = body
    env = {**os.environ, "WRK_BODY": str(path), "WRK_CONTENT_TYPE": content_type, "WRK_HEADER_LENGTH": header_length}
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(LUA), url]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=seconds + 60, env=env)
    return parse_wrk(out.stdout, threads, connections, seconds, " ".join(args))


def log_rows_lost(port: int) -> float:
    """Prediction-log rows the workers dropped so far, for any reason (prediction_log_errors_total)."""
    status, body = http_request(port, "GET", "/metrics", timeout=30)
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    text = body.decode()
    return sum(float(v) for v in re.findall(r"^prediction_log_errors_total\{[^}]*\} (\S+)$", text, re.MULTILINE))


def spread(port: int, connections: int = 8, seconds: float = 5.0) -> list[int]:
    """Requests per worker pid from ``connections`` concurrent keep-alive clients, busiest first."""
    seen: Counter[str] = Counter()
    lock = threading.Lock()
    body = b'{"features": [5.1, 3.5, 1.4, 0.2]}'
    deadline = time.monotonic() + seconds

    def client() -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        mine: Counter[str] = Counter()
        while time.monotonic() < deadline:
            conn.request("POST", "/predict", body=body, headers={"Content-Type": "application/json"})
            response = conn.getresponse()
            response.read()
            mine[response.getheader("X-Served-By", "?")] += 1
        conn.close()
        with lock:
            seen.update(mine)

    threads = [threading.Thread(target=client) for _ in range(connections)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return sorted(seen.values(), reverse=True)


def http_phase(models_dir: Path, tmp: Path, seconds: int, log: Callable[[str], None]) -> dict[str, object]:
    server = start_server("oip", "app.flask_app:create_app()", tmp, models_dir, 2, "fast")
    try:
        cases = bodies(tmp)
        results: dict[str, object] = {}
        for name in ("v2_binary_1000", "v2_json_1000", "predict_1000"):
            path = INFER if name.startswith("v2") else "/predict"
            wrk(server.url + path, cases[name], 2, 8, 2)  # warm-up
            dropped = log_rows_lost(server.port)
            log(f"{name}: wrk -t2 -c8 -d{seconds}s")
            run = wrk(server.url + path, cases[name], 2, 8, seconds)
            results[name] = {
                "requests_s": run.rps,
                "rows_s": run.rps * 1000,
                "p50_ms": run.p50_ms,
                "p99_ms": run.p99_ms,
                "errors": run.non_2xx + run.socket_errors,
                "log_rows_dropped": log_rows_lost(server.port) - dropped,
            }
        for name in ("predict_1row", "v2_json_1row"):
            path = INFER if name.startswith("v2") else "/predict"
            wrk(server.url + path, cases[name], 1, 1, 2)
            log(f"{name}: wrk -t1 -c1 -d{seconds}s")
            run = wrk(server.url + path, cases[name], 1, 1, seconds)
            results[name] = {"requests_s": run.rps, "p50_ms": run.p50_ms, "p99_ms": run.p99_ms}
        results["spread_8_connections"] = spread(server.port)
        door = start_frontdoor("oip-door", server, tmp, "/health")
        try:
            results["spread_8_connections_frontdoor"] = spread(door.port)
        finally:
            door.stop()
    finally:
        server.stop()
    # The same binary batches with PREDICT_BACKEND=sklearn: scikit-learn's predict_proba behind the same API.
    server = start_server("oip-sklearn", "app.flask_app:create_app()", tmp, models_dir, 2, "sklearn")
    try:
        url = server.url + INFER
        wrk(url, cases["v2_binary_1000"], 2, 8, 2)
        log(f"v2_binary_1000 with PREDICT_BACKEND=sklearn: wrk -t2 -c8 -d{seconds}s")
        run = wrk(url, cases["v2_binary_1000"], 2, 8, seconds)
        results["v2_binary_1000_sklearn"] = {"requests_s": run.rps, "rows_s": run.rps * 1000, "p50_ms": run.p50_ms}
    finally:
        server.stop()
    return results


def file_phase(models_dir: Path, tmp: Path, log: Callable[[str], None]) -> dict[str, float]:
    csv = tmp / "rows.csv"
    X = iris_like(1_000_000, seed=3)
    header = "sepal_length,sepal_width,petal_length,petal_width\n"
    csv.write_text(header + "\n".join(",".join(f"{v:.1f}" for v in row) for row in X.tolist()) + "\n")
    figures = {}
    for backend in ("fast", "sklearn"):
        out = tmp / f"scored-{backend}.csv"
        log(f"mlops-score 1,000,000-row CSV, backend {backend}")
        start = time.perf_counter()
        command = [venv_tool("mlops-score"), str(csv), str(out), "--models-dir", str(models_dir), "--no-progress"]
        done = subprocess.run(
            [*command, "--backend", backend], check=True, capture_output=True, text=True, cwd=REPO_DIR
        )
        figures[f"{backend}_rows_s_whole_process"] = len(X) / (time.perf_counter() - start)
        own = re.search(r"\(([\d,]+) rows/s", done.stdout)  # its own clock: read, parse, score and write
        figures[f"{backend}_rows_s_parse_score_write"] = float(own.group(1).replace(",", "")) if own else float("nan")
    return figures


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds of each wrk run (default 10)")
    parser.add_argument("--json", action="store_true", help="print the figures as JSON too")
    parser.add_argument(
        "--log-every-row",
        action="store_true",
        help="no per-client log quota (LOG_CLIENT_ROWS_PER_MINUTE=0): every row is offered to the prediction log",
    )
    args = parser.parse_args(argv)
    if args.log_every_row:
        os.environ["LOG_CLIENT_ROWS_PER_MINUTE"] = "0"

    def log(message: str) -> None:
        print(f"[bench_oip] {message}", file=sys.stderr, flush=True)

    with tempfile.TemporaryDirectory(prefix="bench-oip-") as name:
        tmp = Path(name)
        models_dir = tmp / "models"
        train_models(models_dir)
        log("predictor core, 10,000-row batches")
        results = {"core": core(models_dir), "http": http_phase(models_dir, tmp, args.duration, log)}
        results["file"] = file_phase(models_dir, tmp, log)
    report(results)
    if args.json:
        print(json.dumps(results, indent=2))
    return 0


def report(results: dict) -> None:
    c, h, f = results["core"], results["http"], results["file"]
    print(f"\nPredictor core, v2, 10,000-row batches, 1 thread ({os.cpu_count()} CPUs):")
    for name, rows in c.items():
        print(f"  {name:<8} {rows:>13,.0f} rows/s   {rows / c['sklearn']:5.1f}x sklearn")
    print("\nOver HTTP, 2 workers, wrk -t2 -c8, 1,000-row batches:")
    for name in ("v2_binary_1000", "v2_json_1000", "predict_1000"):
        r = h[name]
        print(
            f"  {name:<15} {r['rows_s']:>11,.0f} rows/s  {r['requests_s']:>8,.0f} req/s  p50 {r['p50_ms']:6.2f} ms"
            f"  p99 {r['p99_ms']:6.2f} ms  errors {r['errors']}  log rows lost {r['log_rows_dropped']:,.0f}"
        )
    sk = h["v2_binary_1000_sklearn"]
    print(
        f"  {'same, sklearn':<15} {sk['rows_s']:>11,.0f} rows/s  {sk['requests_s']:>8,.0f} req/s"
        f"  p50 {sk['p50_ms']:6.2f} ms"
        f"  ({h['v2_binary_1000']['rows_s'] / sk['rows_s']:.1f}x for the compiled forest)"
    )
    print("\nOne row, one connection:")
    for name in ("predict_1row", "v2_json_1row"):
        r = h[name]
        print(f"  {name:<15} {r['requests_s']:>8,.0f} req/s  p50 {r['p50_ms']:.3f} ms  p99 {r['p99_ms']:.3f} ms")
    ratio = h["v2_json_1row"]["p50_ms"] / h["predict_1row"]["p50_ms"]
    print(
        f"\n8 concurrent keep-alive clients over 2 workers, requests per worker: direct {h['spread_8_connections']},"
        f" through the nginx front door {h['spread_8_connections_frontdoor']}"
    )
    print("\nmlops-score, 1,000,000-row CSV, whole process includes start-up and loading both versions:")
    for name, rows in f.items():
        print(f"  {name:<28} {rows:>11,.0f} rows/s")
    targets = [
        ("core >= 1,000,000 rows/s", c["tl2cgen"] >= TARGET_CORE_ROWS_S, f"{c['tl2cgen']:,.0f}"),
        (
            "V2 binary over HTTP >= 300,000 rows/s",
            h["v2_binary_1000"]["rows_s"] >= TARGET_HTTP_BINARY_ROWS_S,
            f"{h['v2_binary_1000']['rows_s']:,.0f}",
        ),
        (
            "one row: V2 JSON p50 within 1.2x /predict",
            1 / TARGET_SINGLE_ROW_RATIO <= ratio <= TARGET_SINGLE_ROW_RATIO,
            f"{ratio:.2f}x",
        ),
        (
            "file CLI >= 500,000 rows/s (parse, score, write)",
            f["fast_rows_s_parse_score_write"] >= TARGET_FILE_ROWS_S,
            f"{f['fast_rows_s_parse_score_write']:,.0f}",
        ),
    ]
    print("\nTargets:")
    for what, ok, figure in targets:
        print(f"  {'PASS' if ok else 'MISS'}  {what}: {figure}")


if __name__ == "__main__":
    sys.exit(main())
