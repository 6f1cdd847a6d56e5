"""What the nginx front door costs and what it buys: /predict direct to gunicorn vs through nginx, side by side.

Starts, on free 127.0.0.1 ports, the service and the bare Flask floor under docker/gunicorn.conf.py
(2 workers), each behind its own nginx rendered from docker/nginx/frontdoor.conf.template by
``python -m app.cli.configs nginx`` exactly as run_demo.sh renders it. Then, in alternating rounds:

1. throughput (wrk -t2 -c16 --latency, benchmarks/post_predict.lua) of the four paths: service direct,
   service through nginx, bare direct, bare through nginx; and a single keep-alive connection on the
   two service paths;
2. slow clients: 64 connections dripping headers and 64 dripping bodies one byte every 0.5 s
   (benchmarks/slow_clients.py), while wrk -t1 -c4 measures /predict through nginx; then the same
   drip aimed at gunicorn directly (what the front door protects against), with a 2 s wrk timeout;
3. idle then one request (``--idle``): each worker left idle, then one /predict on a fresh
   connection, timed by the client and by the server (``latency_ms``).

Prints the figures and the ratios against the targets (front door costs at most 15% of /predict
throughput; /predict p99 under 64 + 64 slow connections below 50 ms). A measurement, not a test:
always exits 0 once it has figures. Run from the repository root::

    .venv/bin/python benchmarks/bench_frontdoor.py [--rounds 3] [--duration 10] [--api-threads N] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench_predict import (
    BODY,
    HEADERS,
    LUA_SCRIPT,
    REPO_DIR,
    LoadResult,
    Server,
    free_port,
    http_request,
    loadavg,
    median_run,
    parse_wrk,
    poll,
    start_server,
    train_models,
)
from slow_clients import Drippers

TARGET_PROXY_COST = 0.15  # the front door may cost at most 15% of /predict throughput
TARGET_SLOW_P99_MS = 50.0


@dataclass
class FrontDoor:
    """An nginx we started in front of one gunicorn."""

    name: str
    port: int
    process: subprocess.Popen
    directory: Path

    @property
    def url(self) -> str:
        """Base URL of the proxy."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self) -> None:
        """Fast shutdown (SIGTERM), wait."""
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


def start_frontdoor(name: str, upstream: Server, tmp: Path, ready_path: str) -> FrontDoor:
    """Render the front door for ``upstream`` with the project's renderer, start nginx, wait until it proxies."""
    nginx = shutil.which("nginx") or "/usr/sbin/nginx"
    if not Path(nginx).exists():
        raise SystemExit("nginx is not installed (Debian: apt-get install nginx, or ./install.sh)")
    port = free_port()
    directory = Path(tempfile.mkdtemp(prefix=f"bench-{name}-", dir="/tmp"))  # workers (nobody) can reach /tmp
    directory.chmod(0o755)
    (directory / "nginx").mkdir()
    (directory / "temp").mkdir()
    config = directory / "frontdoor.conf"
    subprocess.run(
        [
            sys.executable,
            "-m",
            "app.cli.configs",
            "nginx",
            "--listen-port",
            str(port),
            "--upstream-port",
            str(upstream.port),
            "--run-dir",
            str(directory),
            "--temp-dir",
            str(directory / "temp"),
            "--output",
            str(config),
        ],
        cwd=REPO_DIR,
        check=True,
    )
    with open(directory / "error.log", "ab") as log:
        process = subprocess.Popen([nginx, "-c", str(config)], cwd=REPO_DIR, stdout=log, stderr=subprocess.STDOUT)
    door = FrontDoor(name, port, process, directory)
    try:
        if ready_path == "/health":
            poll(lambda: http_request(port, "GET", "/health")[0] == 200, 30, f"{name} GET /health", process)
        else:
            poll(lambda: http_request(port, "POST", "/predict", BODY)[0] == 200, 30, f"{name} POST /predict", process)
    except BaseException:
        door.stop()
        raise
    return door


def run_wrk(url: str, threads: int, connections: int, duration: float, timeout: float = 5.0) -> LoadResult:
    """One wrk run with the POST script (a request slower than ``timeout`` counts as a socket timeout)."""
    seconds = max(1, round(duration))
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", f"--timeout={timeout:g}s", "--latency"]
    args += ["-s", str(LUA_SCRIPT), f"{url}/predict"]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=seconds + 60)
    result = parse_wrk(out.stdout, threads, connections, seconds, " ".join(args))
    result.load_1m_before = loadavg()[0]
    return result


@dataclass
class Route:
    """One way to reach /predict, and what each round measured on it."""

    name: str
    label: str
    url: str
    throughput_runs: list[LoadResult] = field(default_factory=list)
    single_runs: list[LoadResult] = field(default_factory=list)

    @property
    def throughput(self) -> LoadResult | None:
        """The median throughput run."""
        return median_run(self.throughput_runs, lambda r: r.rps)

    @property
    def single(self) -> LoadResult | None:
        """The median single-connection run."""
        return median_run(self.single_runs, lambda r: r.p50_ms)


def idle_then_one(port: int, idle_s: float, probes: int) -> list[dict[str, float]]:
    """Leave the server idle ``idle_s`` seconds, then time one /predict; ``probes`` times."""
    results = []
    for _ in range(probes):
        time.sleep(idle_s)  # the idleness is what is measured, not a stand-in for readiness
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        started = time.perf_counter()
        conn.request("POST", "/predict", body=BODY, headers=HEADERS)
        response = conn.getresponse()
        body = json.loads(response.read())
        client_ms = (time.perf_counter() - started) * 1000
        conn.close()
        # A second request at once: the warm figure to compare with.
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        started = time.perf_counter()
        conn.request("POST", "/predict", body=BODY, headers=HEADERS)
        warm = json.loads(conn.getresponse().read())
        warm_ms = (time.perf_counter() - started) * 1000
        conn.close()
        results.append(
            {
                "client_ms": round(client_ms, 3),
                "server_ms": body["latency_ms"],
                "warm_client_ms": round(warm_ms, 3),
                "warm_server_ms": warm["latency_ms"],
            }
        )
    return results


def measure(args: argparse.Namespace, tmp: Path, log) -> dict:
    """Start everything, run the rounds, stop everything."""
    models_dir = tmp / "models"
    log(f"training models into {models_dir}")
    train_models(models_dir)
    if args.api_threads:
        os.environ["API_THREADS"] = str(args.api_threads)
    servers: dict[str, Server] = {}
    doors: dict[str, FrontDoor] = {}
    results: dict = {}
    try:
        servers["service"] = start_server("service", "app.flask_app:create_app()", tmp, models_dir, args.workers, None)
        servers["bare"] = start_server(
            "bare", "benchmarks.bare_flask:create_app()", tmp, models_dir, args.workers, None
        )
        doors["service"] = start_frontdoor("service", servers["service"], tmp, "/health")
        doors["bare"] = start_frontdoor("bare", servers["bare"], tmp, "/predict")
        paths = {
            "service_direct": Route("service_direct", "service, direct to gunicorn", servers["service"].url),
            "service_proxied": Route("service_proxied", "service, through nginx", doors["service"].url),
            "bare_direct": Route("bare_direct", "bare Flask, direct to gunicorn", servers["bare"].url),
            "bare_proxied": Route("bare_proxied", "bare Flask, through nginx", doors["bare"].url),
        }
        for path in paths.values():
            log(f"warm-up {path.name} {args.warmup:g}s")
            run_wrk(path.url, args.threads, args.connections, args.warmup)
        for round_no in range(1, args.rounds + 1):
            for path in paths.values():
                log(f"round {round_no}/{args.rounds}: {path.name} throughput")
                path.throughput_runs.append(run_wrk(path.url, args.threads, args.connections, args.duration))
            for name in ("service_direct", "service_proxied"):
                log(f"round {round_no}/{args.rounds}: {name} single connection")
                paths[name].single_runs.append(run_wrk(paths[name].url, 1, 1, args.latency_duration))
        results["paths"] = paths
        results["slow"] = slow_phase(args, servers["service"], doors["service"], log)
        if args.idle:
            results["idle"] = {}
            for name, port in (("direct", servers["service"].port), ("proxied", doors["service"].port)):
                log(f"idle then one request, {args.idle_probes} x {args.idle:g}s idle, {name}")
                results["idle"][name] = idle_then_one(port, args.idle, args.idle_probes)
    finally:
        for door in doors.values():
            door.stop()
        for server in servers.values():
            server.stop()
    return results


def slow_phase(args: argparse.Namespace, server: Server, door: FrontDoor, log) -> dict:
    """/predict under 64 + 64 dripping connections: through nginx, then straight at gunicorn."""
    out: dict = {}
    for name, port, url in (("proxied", door.port, door.url), ("direct", server.port, server.url)):
        drip = Drippers(port, headers=args.slow, bodies=args.slow, interval=0.5).start()
        try:
            log(f"slow clients ({drip.alive()} open) -> {name}; wrk -t1 -c4 {args.duration:g}s")
            run = run_wrk(url, 1, 4, args.duration, timeout=2.0)
            out[name] = {
                "run": run,
                "slow_open_at_end": drip.alive(),
                "slow_opened": drip.opened,
                "slow_closed_by_server": len(drip.ended),
                "slow_connect_errors": drip.connect_errors,
                "closed_how": sorted({e.how for e in drip.ended}),
            }
        finally:
            drip.stop()
    return out


def report(results: dict, args: argparse.Namespace) -> dict:
    """Print the table and return the summary."""
    paths: dict[str, Route] = results["paths"]
    rps = {k: p.throughput.rps if p.throughput else None for k, p in paths.items()}

    def ratio(a: str, b: str) -> float | None:
        return rps[a] / rps[b] if rps[a] and rps[b] else None

    slow = results["slow"]
    summary = {
        "service_proxied_vs_direct": ratio("service_proxied", "service_direct"),
        "bare_proxied_vs_direct": ratio("bare_proxied", "bare_direct"),
        "service_proxied_vs_bare_proxied": ratio("service_proxied", "bare_proxied"),
        "slow_p99_ms_proxied": slow["proxied"]["run"].p99_ms,
    }
    if args.json:
        return summary
    print(
        f"POST /predict, {args.workers} gunicorn workers x API_THREADS={os.environ.get('API_THREADS', 'default')}"
        f" (docker/gunicorn.conf.py), nginx from docker/nginx/frontdoor.conf.template, {os.cpu_count()} CPUs, wrk"
    )
    print(
        f"throughput: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s; single: wrk -t1 -c1 "
        f"-d{args.latency_duration:g}s; {args.rounds} round(s), median shown"
    )
    print()
    head = f"{'path':<34}{'req/s':>8}{'p50':>8}{'p90':>8}{'p99':>8}  |{'1-conn p50':>11}{'p99':>7}  | errors"
    print(head)
    print("-" * len(head))
    for path in paths.values():
        t, s = path.throughput, path.single
        if t is None:
            continue
        single = f"{s.p50_ms:>11.3f}{s.p99_ms:>7.2f}" if s else f"{'':>18}"
        errors = sum(r.non_2xx + r.socket_errors for r in path.throughput_runs)
        print(f"{path.label:<34}{t.rps:>8.0f}{t.p50_ms:>8.2f}{t.p90_ms:>8.2f}{t.p99_ms:>8.2f}  |{single}  | {errors}")
    if args.rounds > 1:
        for path in paths.values():
            print(f"  {path.name} req/s per round: " + ", ".join(f"{r.rps:.0f}" for r in path.throughput_runs))
    print()
    print(f"slow clients: {args.slow} dripping headers + {args.slow} dripping bodies (1 byte / 0.5 s, replaced when")
    print("closed), /predict measured with wrk -t1 -c4 (2 s timeout):")
    for name, item in slow.items():
        r: LoadResult = item["run"]
        figures = (
            f"{r.rps:>7.0f} req/s  p50 {r.p50_ms:7.2f}  p90 {r.p90_ms:7.2f}  p99 {r.p99_ms:7.2f} ms"
            if r.completed
            else f"{'no /predict answered at all (starved)':<58}"
        )
        print(
            f"  {name:<9} {figures}  completed {r.completed}, non-2xx {r.non_2xx}, socket errors/timeouts "
            f"{r.socket_errors}; slow connections opened {item['slow_opened']}, closed by the server "
            f"{item['slow_closed_by_server']} ({', '.join(item['closed_how']) or '-'}), open at the end "
            f"{item['slow_open_at_end']}"
        )
    print()
    checks = [
        (
            "front door cost: service through nginx / direct",
            summary["service_proxied_vs_direct"],
            f">= {1 - TARGET_PROXY_COST:.0%}",
            (summary["service_proxied_vs_direct"] or 0) >= 1 - TARGET_PROXY_COST,
        ),
        ("bare Flask through nginx / direct", summary["bare_proxied_vs_direct"], "(for reference)", None),
        ("service / bare Flask, both through nginx", summary["service_proxied_vs_bare_proxied"], "(reference)", None),
    ]
    for name, value, target, ok in checks:
        shown = "n/a" if value is None else f"{value:.1%}"
        verdict = "" if ok is None else ("PASS" if ok else "MISS")
        print(f"{name:<48}{shown:>8}   target {target:<16}{verdict}")
    p99 = summary["slow_p99_ms_proxied"]
    run = slow["proxied"]["run"]
    verdict = (
        "PASS" if p99 < TARGET_SLOW_P99_MS and run.completed and not (run.socket_errors or run.non_2xx) else "MISS"
    )
    print(
        f"{'/predict p99 through nginx under slow clients':<48}{p99:>6.2f}ms   target < {TARGET_SLOW_P99_MS:g} ms"
        f"       {verdict}"
    )
    if "idle" in results:
        print()
        print(f"idle then one request ({args.idle:g}s idle each time, fresh connection, Python client):")
        for name, items in results["idle"].items():
            for item in items:
                print(
                    f"  {name:<8} first: client {item['client_ms']:7.2f} ms, server {item['server_ms']:6.2f} ms; "
                    f"right after: client {item['warm_client_ms']:6.2f} ms, server {item['warm_server_ms']:6.2f} ms"
                )
            firsts = [i["client_ms"] for i in items]
            print(f"  {name:<8} median first-after-idle: {statistics.median(firsts):.2f} ms client side")
    return summary


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each throughput run (default 10)")
    parser.add_argument("--connections", type=int, default=16, help="connections of the throughput runs (default 16)")
    parser.add_argument("--threads", type=int, default=2, help="wrk threads of the throughput runs (default 2)")
    parser.add_argument("--latency-duration", type=float, default=5.0, help="seconds of each 1-connection run")
    parser.add_argument("--warmup", type=float, default=2.0, help="seconds of warm-up per path (default 2)")
    parser.add_argument("--rounds", type=int, default=1, help="alternate the paths this many times (default 1)")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers (default 2)")
    parser.add_argument("--api-threads", type=int, default=0, help="API_THREADS for gunicorn (default: the setting)")
    parser.add_argument("--slow", type=int, default=64, help="slow connections of each kind (default 64)")
    parser.add_argument("--idle", type=float, default=0.0, help="seconds of idleness before a timed request (0: skip)")
    parser.add_argument("--idle-probes", type=int, default=3, help="idle-then-one measurements (default 3)")
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args(argv)
    if min(args.duration, args.latency_duration, args.warmup, args.rounds) < 1:
        parser.error("--duration, --latency-duration, --warmup and --rounds must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the measurement and print it."""
    args = parse_args(argv)
    if shutil.which("wrk") is None:
        raise SystemExit("wrk is not on PATH (Debian: apt-get install wrk, or ./install.sh --dev)")

    def log(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    start_load = loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-frontdoor-") as tmp_name:
        results = measure(args, Path(tmp_name), log)
    summary = report(results, args)
    if args.json:
        paths: dict[str, Route] = results["paths"]
        document = {
            "cpus": os.cpu_count(),
            "options": vars(args),
            "load_average": {"start": start_load, "end": loadavg()},
            "paths": {
                k: {**asdict(p), "throughput": asdict(p.throughput) if p.throughput else None} for k, p in paths.items()
            },
            "slow": {k: {**v, "run": asdict(v["run"])} for k, v in results["slow"].items()},
            "idle": results.get("idle"),
            "summary": summary,
        }
        print(json.dumps(document, indent=2))
    else:
        print(f"\nload average (1, 5, 15 min): {start_load} at start, {loadavg()} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
