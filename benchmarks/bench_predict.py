"""Throughput and latency of POST /predict: the service, its sklearn path and a bare Flask floor.

Each target runs under docker/gunicorn.conf.py exactly as production starts it (2 workers,
gthread, a fresh PROMETHEUS_MULTIPROC_DIR, a temp model set and SQLite state store):

    (a) service   app.flask_app:create_app()     PREDICT_BACKEND=fast
    (b) sklearn   app.flask_app:create_app()     PREDICT_BACKEND=sklearn
    (c) bare      benchmarks.bare_flask:create_app()  (constant JSON, the framework floor)

For each: a warm-up, a throughput run (wrk -t2 -c<connections> -d<duration>s --latency with
benchmarks/post_predict.lua), then a single keep-alive connection run (wrk -t1 -c1). For the
service, prediction_requests_total on /metrics is compared with the requests wrk sent during the
throughput run. Prints a table and the targets with PASS/MISS; always exits 0 once it has
figures (it is a measurement, not a test). Run from the repository root::

    .venv/bin/python benchmarks/bench_predict.py [--duration 10] [--connections 16] [--json]
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

REPO_DIR = Path(__file__).resolve().parents[1]
LUA_SCRIPT = REPO_DIR / "benchmarks" / "post_predict.lua"
GUNICORN_CONF = "docker/gunicorn.conf.py"
BODY = b'{"features": [5.1, 3.5, 1.4, 0.2]}'
HEADERS = {"Content-Type": "application/json"}

TARGET_THROUGHPUT_VS_BARE = 0.70
TARGET_THROUGHPUT_VS_SKLEARN = 8.0
TARGET_SINGLE_P50_MS = 0.5


@dataclass
class LoadResult:
    """What one load run measured."""

    tool: str
    threads: int
    connections: int
    duration_s: float
    completed: int
    sent: int | None
    rps: float
    p50_ms: float
    p75_ms: float
    p90_ms: float
    p99_ms: float
    non_2xx: int
    socket_errors: int
    command: str = ""
    load_1m_before: float = 0.0
    load_1m_after: float = 0.0


@dataclass
class TargetResult:
    """Every run against one server; the reported figures are the median runs."""

    name: str
    app: str
    backend: str | None
    throughput_runs: list[LoadResult] = field(default_factory=list)
    single_runs: list[LoadResult] = field(default_factory=list)
    metrics_checks: list[dict] = field(default_factory=list)

    @property
    def throughput(self) -> LoadResult | None:
        """The throughput run with the median requests/sec."""
        return median_run(self.throughput_runs, lambda r: r.rps)

    @property
    def single(self) -> LoadResult | None:
        """The single-connection run with the median p50."""
        return median_run(self.single_runs, lambda r: r.p50_ms)


def median_run(runs: list[LoadResult], key: Callable[[LoadResult], float]) -> LoadResult | None:
    """The run whose ``key`` is the median (the lower middle one for an even count)."""
    if not runs:
        return None
    return sorted(runs, key=key)[(len(runs) - 1) // 2]


@dataclass
class Server:
    """A gunicorn master we started, with its port and log."""

    name: str
    port: int
    process: subprocess.Popen
    log_path: Path
    workers: int
    extra: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        """Base URL of the server."""
        return f"http://127.0.0.1:{self.port}"

    def stop(self, timeout: float = 30.0) -> None:
        """SIGTERM the master and wait for it (SIGKILL only if it will not go)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(10)


# -- servers ------------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def venv_tool(name: str) -> str:
    """A console script next to this interpreter (the venv's), else from PATH."""
    candidate = Path(sys.executable).parent / name
    if candidate.exists():
        return str(candidate)
    found = shutil.which(name)
    if not found:
        raise SystemExit(f"{name} not found next to {sys.executable} or on PATH")
    return found


def train_models(models_dir: Path) -> None:
    """Train the v1/v2 Iris model set into ``models_dir`` with the project's trainer."""
    subprocess.run(
        [sys.executable, "-m", "app.train_model", "--models-dir", str(models_dir)],
        cwd=REPO_DIR,
        check=True,
        stdout=subprocess.DEVNULL,
    )


def http_request(
    port: int, method: str, path: str, body: bytes | None = None, timeout: float = 5.0
) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=HEADERS if body is not None else {})
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


def poll(check: Callable[[], bool], timeout: float, what: str, process: subprocess.Popen | None = None) -> None:
    """Call ``check`` every 50 ms until it is true; fail after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{what}: the server exited with status {process.returncode}")
        try:
            if check():
                return
        except OSError:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"timed out after {timeout:.0f}s waiting for {what}")


def worker_count(pid: int) -> int:
    """How many child processes (gunicorn workers) ``pid`` has."""
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True, check=False)
    return len(out.stdout.split())


def start_server(name: str, app: str, tmp: Path, models_dir: Path, workers: int, backend: str | None) -> Server:
    """Start gunicorn with the production config and wait until it answers."""
    port = free_port()
    multiproc = tmp / f"{name}-multiproc"
    shutil.rmtree(multiproc, ignore_errors=True)
    multiproc.mkdir(parents=True)
    env = {
        k: v
        for k, v in os.environ.items()
        if not (k.startswith("MODEL_") and k.endswith("_WEIGHT")) and k != "PREDICT_BACKEND"
    }
    env.update(
        {
            "PROMETHEUS_MULTIPROC_DIR": str(multiproc),
            "API_HOST": "127.0.0.1",
            "API_PORT": str(port),
            "API_WORKERS": str(workers),
            "MODELS_DIR": str(models_dir),
            "DATABASE_URL": f"sqlite:///{tmp / f'{name}-state.db'}",
            "LOG_LEVEL": "warning",
        }
    )
    if backend:
        env["PREDICT_BACKEND"] = backend
    log_path = tmp / f"{name}.log"
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(
            [venv_tool("gunicorn"), "-c", GUNICORN_CONF, app],
            cwd=REPO_DIR,
            env=env,
            stdout=log_file,
            stderr=subprocess.STDOUT,
        )
    server = Server(name, port, process, log_path, workers)
    try:
        if app.startswith("app."):
            poll(lambda: http_request(port, "GET", "/health")[0] == 200, 60, f"{name} GET /health", process)
        else:  # the bare app has no /health: its only route answering 200 is the readiness signal
            poll(lambda: http_request(port, "POST", "/predict", BODY)[0] == 200, 60, f"{name} POST /predict", process)
        poll(lambda: worker_count(process.pid) == workers, 30, f"{name}: {workers} workers", process)
    except BaseException:
        server.stop()
        sys.stderr.write(log_path.read_text(errors="replace")[-4000:])
        raise
    return server


# -- load generators ----------------------------------------------------------------------------


_UNIT_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}


def _wrk_time_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s|m|h)", text)
    if not match:
        raise ValueError(f"cannot read wrk time {text!r}")
    return float(match.group(1)) * _UNIT_MS[match.group(2)]


def parse_wrk(output: str, threads: int, connections: int, duration: float, command: str) -> LoadResult:
    """Requests/sec, completed and sent counts, latency percentiles and errors from wrk's output."""

    def number(pattern: str, default: float | None = None) -> float:
        match = re.search(pattern, output, re.MULTILINE)
        if match:
            return float(match.group(1))
        if default is None:
            raise ValueError(f"wrk output has no match for {pattern!r}:\n{output}")
        return default

    percentiles = {int(p): _wrk_time_ms(t) for p, t in re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", output, re.MULTILINE)}
    socket_errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output)
    sent = re.search(r"^sent: (\d+)$", output, re.MULTILINE)
    return LoadResult(
        tool="wrk",
        threads=threads,
        connections=connections,
        duration_s=duration,
        completed=int(number(r"^\s*(\d+) requests in ")),
        sent=int(sent.group(1)) if sent else None,
        rps=number(r"^Requests/sec:\s+([\d.]+)"),
        p50_ms=percentiles[50],
        p75_ms=percentiles[75],
        p90_ms=percentiles[90],
        p99_ms=percentiles[99],
        non_2xx=int(number(r"Non-2xx or 3xx responses: (\d+)", 0)),
        socket_errors=sum(int(g) for g in socket_errors.groups()) if socket_errors else 0,
        command=command,
    )


def run_wrk(url: str, threads: int, connections: int, duration: float) -> LoadResult:
    """One wrk run with the POST script."""
    seconds = max(1, round(duration))
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "-s", str(LUA_SCRIPT), url]
    out = subprocess.run(args, capture_output=True, text=True, check=True, timeout=seconds + 60)
    return parse_wrk(out.stdout, threads, connections, seconds, " ".join(args))


def _percentile(sorted_ms: list[float], q: float) -> float:
    if not sorted_ms:
        return float("nan")
    return sorted_ms[min(len(sorted_ms) - 1, max(0, round(q / 100 * len(sorted_ms)) - 1))]


def run_python(port: int, connections: int, duration: float) -> LoadResult:
    """Fallback load: ``connections`` threads, each looping POSTs on its own keep-alive connection."""
    deadline = time.perf_counter() + duration
    latencies: list[list[float]] = [[] for _ in range(connections)]
    sent = [0] * connections
    non_2xx = [0] * connections
    errors = [0] * connections

    def client(i: int) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
        while time.perf_counter() < deadline:
            start = time.perf_counter()
            sent[i] += 1
            try:
                conn.request("POST", "/predict", body=BODY, headers=HEADERS)
                response = conn.getresponse()
                response.read()
            except (OSError, http.client.HTTPException):
                errors[i] += 1
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=10)
                continue
            latencies[i].append((time.perf_counter() - start) * 1000.0)
            if not 200 <= response.status < 400:
                non_2xx[i] += 1
        conn.close()

    started = time.perf_counter()
    workers = [threading.Thread(target=client, args=(i,)) for i in range(connections)]
    for t in workers:
        t.start()
    for t in workers:
        t.join()
    elapsed = time.perf_counter() - started
    flat = sorted(x for per in latencies for x in per)
    return LoadResult(
        tool="python-threads",
        threads=connections,
        connections=connections,
        duration_s=round(elapsed, 2),
        completed=len(flat),
        sent=sum(sent),
        rps=len(flat) / elapsed,
        p50_ms=_percentile(flat, 50),
        p75_ms=_percentile(flat, 75),
        p90_ms=_percentile(flat, 90),
        p99_ms=_percentile(flat, 99),
        non_2xx=sum(non_2xx),
        socket_errors=sum(errors),
        command=f"python threads x{connections}, {duration:g}s",
    )


# -- metrics ------------------------------------------------------------------------------------


def prediction_requests_total(port: int) -> float:
    """prediction_requests_total as /metrics reports it (summed over every worker)."""
    status, body = http_request(port, "GET", "/metrics", timeout=30)
    if status != 200:
        raise RuntimeError(f"GET /metrics answered {status}")
    match = re.search(r"^prediction_requests_total(?:\{\})? ([0-9.e+]+)$", body.decode(), re.MULTILINE)
    if not match:
        raise RuntimeError("prediction_requests_total is not on /metrics")
    return float(match.group(1))


def settled_total(port: int, timeout: float = 10.0) -> float:
    """The counter once two reads 100 ms apart agree (requests in flight at wrk's stop have landed)."""
    previous = prediction_requests_total(port)
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        time.sleep(0.1)
        current = prediction_requests_total(port)
        if current == previous:
            return current
        previous = current
    return previous


# -- the run ------------------------------------------------------------------------------------


def loadavg() -> tuple[float, float, float]:
    """The 1, 5 and 15 minute load averages."""
    one, five, fifteen = os.getloadavg()
    return round(one, 2), round(five, 2), round(fifteen, 2)


def load_run(server: Server, connections: int, threads: int, duration: float, use_wrk: bool) -> LoadResult:
    """One load run against a server, with the 1-minute load average before and after."""
    before = loadavg()[0]
    if use_wrk:
        result = run_wrk(f"{server.url}/predict", threads, connections, duration)
    else:
        result = run_python(server.port, connections, duration)
    result.load_1m_before, result.load_1m_after = before, loadavg()[0]
    return result


def measure(
    results: dict[str, TargetResult],
    tmp: Path,
    models_dir: Path,
    args: argparse.Namespace,
    use_wrk: bool,
    log: Callable[[str], None],
) -> None:
    """Start every target, warm them up, then alternate throughput and single-connection runs."""
    servers: dict[str, Server] = {}
    try:
        for name, target in results.items():
            servers[name] = start_server(name, target.app, tmp, models_dir, args.workers, target.backend)
            log(f"{name}: up on port {servers[name].port}")
        for name, server in servers.items():
            log(f"{name}: warm-up {args.warmup:g}s")
            load_run(server, args.connections, args.threads, args.warmup, use_wrk)
        for round_no in range(1, args.rounds + 1):
            for name, server in servers.items():
                target = results[name]
                is_service = target.app.startswith("app.")
                before = settled_total(server.port) if is_service else 0.0
                log(
                    f"round {round_no}/{args.rounds}: {name} throughput, "
                    f"{args.connections} connections, {args.duration:g}s"
                )
                run = load_run(server, args.connections, args.threads, args.duration, use_wrk)
                target.throughput_runs.append(run)
                if is_service:
                    delta = int(settled_total(server.port) - before)
                    target.metrics_checks.append(
                        {
                            "round": round_no,
                            "prediction_requests_total_delta": delta,
                            "client_sent": run.sent,
                            "client_completed": run.completed,
                            "in_flight_at_stop": None if run.sent is None else run.sent - run.completed,
                            "exact": delta == run.sent,
                        }
                    )
        for round_no in range(1, args.rounds + 1):
            for name, server in servers.items():
                log(f"round {round_no}/{args.rounds}: {name} single connection, {args.latency_duration:g}s")
                results[name].single_runs.append(load_run(server, 1, 1, args.latency_duration, use_wrk))
    finally:
        for server in servers.values():
            server.stop()


def ratio(a: float | None, b: float | None) -> float | None:
    """a / b, or None when either is missing or b is 0."""
    return a / b if a is not None and b else None


def summarize(results: dict[str, TargetResult]) -> dict:
    """Ratios against the targets, each with PASS/MISS."""
    rps = {k: (r.throughput.rps if r.throughput else None) for k, r in results.items()}
    vs_bare = ratio(rps.get("service"), rps.get("bare"))
    vs_sklearn = ratio(rps.get("service"), rps.get("sklearn"))
    single = results["service"].single
    p50 = single.p50_ms if single else None
    return {
        "service_vs_bare": {
            "value": vs_bare,
            "target": f">= {TARGET_THROUGHPUT_VS_BARE:.0%}",
            "pass": vs_bare is not None and vs_bare >= TARGET_THROUGHPUT_VS_BARE,
        },
        "service_vs_sklearn": {
            "value": vs_sklearn,
            "target": f">= {TARGET_THROUGHPUT_VS_SKLEARN:g}x",
            "pass": vs_sklearn is not None and vs_sklearn >= TARGET_THROUGHPUT_VS_SKLEARN,
        },
        "service_single_p50_ms": {
            "value": p50,
            "target": f"<= {TARGET_SINGLE_P50_MS} ms",
            "pass": p50 is not None and p50 <= TARGET_SINGLE_P50_MS,
        },
    }


def print_report(results: dict[str, TargetResult], summary: dict, args: argparse.Namespace, tool: str) -> None:
    """The human-readable table."""
    print(
        f"POST /predict, {args.workers} gunicorn workers (docker/gunicorn.conf.py), {os.cpu_count()} CPUs, load: {tool}"
    )
    if tool != "wrk":
        print(
            "NOTE: figures come from the Python-threads load generator, not wrk (wrk missing or --generator "
            "python); it is GIL-bound, so throughput is lower and latency higher than with wrk"
        )
    clients = f"{args.threads} wrk threads x" if tool == "wrk" else "one client thread per connection,"
    print(
        f"throughput: {clients} {args.connections} connections for {args.duration:g}s after "
        f"{args.warmup:g}s warm-up; single connection: 1 keep-alive connection for {args.latency_duration:g}s; "
        f"{args.rounds} round(s), median shown"
    )
    print()
    head = (
        f"{'target':<34}{'req/s':>8}{'p50':>8}{'p90':>8}{'p99':>8}  |{'1-conn p50':>11}{'p90':>7}{'p99':>7}"
        f"{'req/s':>7}  | load 1m"
    )
    print(head)
    print("-" * len(head))
    for r in results.values():
        t, s = r.throughput, r.single
        if t is None or s is None:
            print(f"{label(r):<34}(not measured)")
            continue
        print(
            f"{label(r):<34}{t.rps:>8.0f}{t.p50_ms:>8.2f}{t.p90_ms:>8.2f}{t.p99_ms:>8.2f}  |"
            f"{s.p50_ms:>11.3f}{s.p90_ms:>7.2f}{s.p99_ms:>7.2f}{s.rps:>7.0f}  | "
            f"{t.load_1m_before:.2f}->{t.load_1m_after:.2f}"
        )
    errors = [
        f"{r.name} {sum(x.non_2xx for x in r.throughput_runs)} non-2xx, "
        f"{sum(x.socket_errors for x in r.throughput_runs)} socket"
        for r in results.values()
    ]
    print("latencies in ms; load 1m = 1-minute load average before->after the throughput run")
    print("errors in throughput runs: " + "; ".join(errors))
    if args.rounds > 1:
        for r in results.values():
            print(
                f"  {r.name} req/s per round: "
                + ", ".join(f"{x.rps:.0f}" for x in r.throughput_runs)
                + "; 1-conn p50 ms per round: "
                + ", ".join(f"{x.p50_ms:.3f}" for x in r.single_runs)
            )
    print()
    names = {
        "service_vs_bare": "service / bare Flask throughput",
        "service_vs_sklearn": "service / sklearn-path throughput",
        "service_single_p50_ms": "service single-connection p50",
    }
    for key, item in summary.items():
        value = item["value"]
        if value is None:
            shown = "n/a"
        elif key == "service_vs_bare":
            shown = f"{value:.1%}"
        elif key == "service_vs_sklearn":
            shown = f"{value:.2f}x"
        else:
            shown = f"{value:.3f} ms"
        verdict = "PASS" if item["pass"] else "MISS"
        print(f"{names[key]:<36}{shown:>10}   target {item['target']:<10} {verdict}")
    print()
    for check in results["service"].metrics_checks:
        print(
            f"metrics exactness, service throughput round {check['round']}: prediction_requests_total rose by "
            f"{check['prediction_requests_total_delta']}; the client sent {check['client_sent']} "
            f"({check['client_completed']} completed + {check['in_flight_at_stop']} in flight at the stop): "
            f"{'EXACT' if check['exact'] else 'MISMATCH'}"
        )


def label(r: TargetResult) -> str:
    """Row label of a target."""
    return {
        "service": "service (fast backend)",
        "sklearn": "service (PREDICT_BACKEND=sklearn)",
        "bare": "bare Flask (framework floor)",
    }[r.name]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=10.0, help="seconds of each throughput run (default 10)")
    parser.add_argument(
        "--connections", type=int, default=16, help="keep-alive connections in the throughput run (default 16)"
    )
    parser.add_argument("--threads", type=int, default=2, help="wrk threads in the throughput run (default 2)")
    parser.add_argument(
        "--latency-duration", type=float, default=5.0, help="seconds of each single-connection run (default 5)"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="seconds of warm-up load per server before measuring (default 2)"
    )
    parser.add_argument(
        "--rounds", type=int, default=1, help="alternate the targets this many times and report medians (default 1)"
    )
    parser.add_argument("--workers", type=int, default=2, help="gunicorn workers per server (default 2)")
    parser.add_argument(
        "--generator",
        choices=("auto", "wrk", "python"),
        default="auto",
        help="load generator: wrk, the Python-threads fallback, or auto (wrk when on PATH)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON document instead of the table")
    args = parser.parse_args(argv)
    if args.connections < args.threads:
        parser.error("--connections must be at least --threads (wrk gives each thread its share)")
    if args.rounds < 1 or args.duration < 1 or args.latency_duration < 1 or args.warmup < 1:
        parser.error("--rounds, --duration, --latency-duration and --warmup must be at least 1")
    return args


def main(argv: list[str] | None = None) -> int:
    """Run the three targets and report."""
    args = parse_args(argv)
    have_wrk = shutil.which("wrk") is not None
    if args.generator == "wrk" and not have_wrk:
        raise SystemExit("--generator wrk: wrk is not on PATH (Debian: apt-get install wrk)")
    use_wrk = have_wrk and args.generator != "python"
    tool = "wrk" if use_wrk else "python-threads"

    def log(message: str) -> None:
        print(f"[bench] {message}", file=sys.stderr, flush=True)

    if not use_wrk:
        log(
            f"{'wrk not found on PATH' if not have_wrk else '--generator python'}: using the Python-threads "
            "load generator (GIL-bound: lower throughput and higher latency than wrk)"
        )
    results = {
        "service": TargetResult("service", "app.flask_app:create_app()", "fast"),
        "sklearn": TargetResult("sklearn", "app.flask_app:create_app()", "sklearn"),
        "bare": TargetResult("bare", "benchmarks.bare_flask:create_app()", None),
    }
    start_load = loadavg()
    with tempfile.TemporaryDirectory(prefix="bench-predict-") as tmp_name:
        tmp = Path(tmp_name)
        models_dir = tmp / "models"
        log(f"training models into {models_dir}")
        train_models(models_dir)
        measure(results, tmp, models_dir, args, use_wrk, log)
    summary = summarize(results)
    end_load = loadavg()
    if args.json:
        print(
            json.dumps(
                {
                    "tool": tool,
                    "cpus": os.cpu_count(),
                    "load_average_at_start": start_load,
                    "load_average_at_end": end_load,
                    "options": vars(args),
                    "targets": {
                        k: {
                            **asdict(v),
                            "throughput": asdict(v.throughput) if v.throughput else None,
                            "single": asdict(v.single) if v.single else None,
                        }
                        for k, v in results.items()
                    },
                    "ratios": summary,
                    "metrics_exact": all(c["exact"] for c in results["service"].metrics_checks),
                },
                indent=2,
            )
        )
    else:
        print_report(results, summary, args, tool)
        print(f"\nload average (1, 5, 15 min): {start_load} at start, {end_load} at end")
    return 0


if __name__ == "__main__":
    sys.exit(main())
