"""Where the time of one POST /predict goes, in-process: whole requests, cProfile, and each step.

Builds the real app with ``create_app(models_dir=..., database_url=...)`` in a temp dir, with
PROMETHEUS_MULTIPROC_DIR set as in production (so metric updates take the multiprocess path), and
the bare Flask floor from benchmarks/bare_flask.py. Prints:

1. microseconds per request through WSGI (a prebuilt environ, no HTTP) and through the Flask test
   client, for the service and the bare app, and the difference (our work per request);
2. a cProfile of ``--requests`` test-client POSTs to the service (top functions by own time);
3. per-call microseconds of each step the /predict handler takes, timed in isolation with
   timeit (best of 5), plus the background prediction-log write cost per row;
4. what-if: whole-request microseconds with one piece at a time replaced by a free stand-in
   (monkeypatched in this process only; app/ is not changed), in interleaved rounds so machine
   noise hits every variant alike. "as is" minus a variant is that piece's in-situ cost, which
   is higher than its isolated timing (cold caches, the log writer thread sharing the GIL).

Run from the repository root::

    .venv/bin/python benchmarks/profile_predict.py [--requests 5000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
import timeit
from pathlib import Path
from typing import Any, Callable

REPO_DIR = Path(__file__).resolve().parents[1]
BODY = b'{"features": [5.1, 3.5, 1.4, 0.2]}'


def per_call_us(fn: Callable[[], Any], number: int = 2000, repeat: int = 5) -> float:
    """Best-of-``repeat`` microseconds per call of ``fn``."""
    return min(timeit.repeat(fn, number=number, repeat=repeat)) / number * 1e6


def wsgi_caller(app: Any) -> Callable[[], bytes]:
    """A function that runs one POST /predict through ``app`` as a WSGI server would."""
    base = {
        "REQUEST_METHOD": "POST", "PATH_INFO": "/predict", "SCRIPT_NAME": "", "QUERY_STRING": "",
        "SERVER_NAME": "127.0.0.1", "SERVER_PORT": "5000", "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1", "CONTENT_TYPE": "application/json", "CONTENT_LENGTH": str(len(BODY)),
        "HTTP_HOST": "127.0.0.1:5000", "wsgi.version": (1, 0), "wsgi.url_scheme": "http",
        "wsgi.errors": sys.stderr, "wsgi.multithread": True, "wsgi.multiprocess": True, "wsgi.run_once": False,
    }
    statuses: list[str] = []

    def start_response(status: str, headers: list, exc_info: Any = None) -> None:
        statuses.append(status)

    def call() -> bytes:
        environ = dict(base)
        environ["wsgi.input"] = io.BytesIO(BODY)
        out = b"".join(app(environ, start_response))
        if not statuses.pop().startswith("200"):
            raise RuntimeError(out.decode())
        return out

    return call


def main(argv: list[str] | None = None) -> int:
    """Profile the service's /predict against the bare Flask floor."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000, help="test-client POSTs under cProfile (default 5000)")
    parser.add_argument("--top", type=int, default=25, help="functions to list from the profile (default 25)")
    parser.add_argument("--rounds", type=int, default=10, help="interleaved rounds of the what-if blocks (default 10)")
    parser.add_argument("--block", type=int, default=500, help="requests per what-if block (default 500)")
    args = parser.parse_args(argv)

    with tempfile.TemporaryDirectory(prefix="profile-predict-") as tmp_name:
        tmp = Path(tmp_name)
        multiproc = tmp / "multiproc"
        multiproc.mkdir()
        # As production: set before prometheus_client is imported, so values live in mmap files.
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = str(multiproc)
        sys.path.insert(0, str(REPO_DIR))
        subprocess.run([sys.executable, "-m", "app.train_model", "--models-dir", str(tmp / "models")],
                       cwd=REPO_DIR, check=True, stdout=subprocess.DEVNULL)

        from app.flask_app import create_app, service_of  # noqa: PLC0415 - after the env is set
        from benchmarks.bare_flask import create_app as create_bare  # noqa: PLC0415

        app = create_app(models_dir=tmp / "models", database_url=f"sqlite:///{tmp / 'state.db'}", log_level="warning")
        bare = create_bare()
        try:
            whole_requests(app, bare)
            profile(app, args.requests, args.top)
            steps(service_of(app), tmp)
            ablations(app, bare, args.rounds, args.block)
        finally:
            service_of(app).close()
    return 0


def whole_requests(app: Any, bare: Any) -> None:
    """Microseconds per whole request, service vs bare, through WSGI and the test client."""
    rows = []
    for how, make in (("WSGI call", lambda a: wsgi_caller(a.wsgi_app)),
                      ("Flask test client", lambda a: (lambda c=a.test_client(): c.post(
                          "/predict", data=BODY, content_type="application/json")))):
        service_us = per_call_us(make(app), number=1000)
        bare_us = per_call_us(make(bare), number=1000)
        rows.append((how, service_us, bare_us))
    print("== 1. whole request (us per POST /predict, best of 5 x 1000)")
    print(f"{'path':<20}{'service':>10}{'bare':>10}{'ours':>10}")
    for how, service_us, bare_us in rows:
        print(f"{how:<20}{service_us:>10.1f}{bare_us:>10.1f}{service_us - bare_us:>10.1f}")
    print()


def profile(app: Any, requests: int, top: int) -> None:
    """cProfile over ``requests`` test-client POSTs (profiler overhead inflates small calls)."""
    client = app.test_client()
    for _ in range(200):
        client.post("/predict", data=BODY, content_type="application/json")
    profiler = cProfile.Profile()
    profiler.enable()
    for _ in range(requests):
        client.post("/predict", data=BODY, content_type="application/json")
    profiler.disable()
    stats = pstats.Stats(profiler)
    print(f"== 2. cProfile of {requests} test-client POSTs (request thread only), top {top} by own time")
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip())[:12000])
    print()
    print(f"cumulative us per request of the handler's callees ({requests} requests):")
    wanted = ("parse_json", "parse_predict", "predict", "predict_proba", "_predict_row", "record", "choose",
              "inc", "observe", "labels", "unique", "uuid4", "iso", "dumps", "_json", "name_the_worker")
    for (filename, line, name), (cc, nc, tt, ct, callers) in sorted(stats.stats.items(), key=lambda kv: -kv[1][3]):
        if name in wanted and ("app/" in filename or "prometheus_client" in filename or name in ("unique", "uuid4", "dumps")):
            print(f"  {ct / requests * 1e6:8.1f} us  {nc / requests:5.1f} calls  {name}  ({Path(filename).name}:{line})")
    print()


def steps(service: Any, tmp: Path) -> None:
    """Per-call cost of each step of the /predict handler, timed alone."""
    import queue  # noqa: PLC0415
    import uuid  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    from flask import Response  # noqa: PLC0415

    from app import metrics  # noqa: PLC0415
    from app.flask_app import _json  # noqa: PLC0415
    from app.router import Router  # noqa: PLC0415
    from app.service import iso  # noqa: PLC0415
    from app.store import PredictionRecord, open_store  # noqa: PLC0415
    from app.validation import parse_json, parse_predict  # noqa: PLC0415

    models = service.models
    version = sorted(models.versions)[0]
    predictor = models.versions[version].predictor
    payload = parse_json(BODY)
    req = parse_predict(payload, models.feature_names, 1000, None)
    X = req.X
    proba = predictor.predict_proba(X)
    classes = proba.argmax(axis=1)
    names = models.class_names
    salt = service.settings.experiment_salt
    bounded: queue.Queue = queue.Queue(maxsize=50_000)
    ids = [str(uuid.uuid4())]
    now = time.time()
    records = [PredictionRecord(pid, now, 1, version, row, int(c), p, 0.3, None)
               for pid, row, c, p in zip(ids, X.tolist(), classes.tolist(), proba.tolist())]
    body = {"prediction": 0, "class_name": "setosa", "probabilities": proba.tolist()[0], "model_version": version,
            "prediction_id": ids[0], "timestamp": iso(now), "latency_ms": 0.321}
    child_counter = metrics.MODEL_VERSION_REQUESTS.labels(version)
    child_hist = metrics.PREDICTION_LATENCY.labels(version)
    x32 = np.asarray(X, dtype=np.float32).astype(np.float64)[0]
    router = Router({"v1": 50, "v2": 50})

    def put_get() -> None:
        bounded.put_nowait(records)
        bounded.get_nowait()

    def unique_loop() -> None:
        for c, count in zip(*np.unique(classes, return_counts=True)):
            metrics.PREDICTIONS.labels(version, names[int(c)]).inc(int(count))

    def full_service_predict() -> None:
        service.predict(req, time.perf_counter())

    timings: list[tuple[str, float]] = [
        ("handler: PREDICTION_REQUESTS.inc()", per_call_us(metrics.PREDICTION_REQUESTS.inc)),
        ("parse_json(body)", per_call_us(lambda: parse_json(BODY))),
        ("parse_predict(...) incl. np.array", per_call_us(lambda: parse_predict(payload, models.feature_names, 1000, None))),
        ("router.choose() (random)", per_call_us(lambda: router.choose(None, salt=salt))),
        (f"predict_proba 1 row ({predictor.backend}, {predictor._n_trees} trees, depth {predictor._depth})",
         per_call_us(lambda: predictor.predict_proba(X))),
        ("  of which float32 round + astype", per_call_us(lambda: np.asarray(X, dtype=np.float32).astype(np.float64))),
        ("  of which _predict_row walk", per_call_us(lambda: predictor._predict_row(x32))),
        ("proba.argmax(axis=1)", per_call_us(lambda: proba.argmax(axis=1))),
        ("str(uuid.uuid4())", per_call_us(lambda: str(uuid.uuid4()))),
        ("records: tolist() x3 + PredictionRecord", per_call_us(lambda: [
            PredictionRecord(pid, now, 1, version, row, int(c), p, 0.3, None)
            for pid, row, c, p in zip(ids, X.tolist(), classes.tolist(), proba.tolist())])),
        ("prediction_log.record: Queue put (+get)", per_call_us(put_get)),
        ("MODEL_VERSION_REQUESTS.labels(v).inc()", per_call_us(lambda: metrics.MODEL_VERSION_REQUESTS.labels(version).inc())),
        ("  same with a cached child .inc()", per_call_us(child_counter.inc)),
        ("PREDICTION_LATENCY.labels(v).observe()", per_call_us(lambda: metrics.PREDICTION_LATENCY.labels(version).observe(0.0003))),
        ("  same with a cached child .observe()", per_call_us(lambda: child_hist.observe(0.0003))),
        ("np.unique loop + PREDICTIONS.labels().inc()", per_call_us(unique_loop)),
        ("  of which np.unique(return_counts)", per_call_us(lambda: np.unique(classes, return_counts=True))),
        ("  alternative: labels(v, names[int(classes[0])]).inc()",
         per_call_us(lambda: metrics.PREDICTIONS.labels(version, names[int(classes[0])]).inc())),
        ("iso(time.time())", per_call_us(lambda: iso(time.time()))),
        ("proba.tolist() + classes.tolist()", per_call_us(lambda: (proba.tolist(), classes.tolist()))),
        ("json.dumps body + Response (_json)", per_call_us(lambda: _json(body, headers={"X-Model-Version": version}))),
        ("  Response(bytes) without headers dict", per_call_us(lambda: Response(b"{}", mimetype="application/json"))),
        ("service.predict() whole (route..metrics)", per_call_us(full_service_predict, number=1000)),
    ]
    print("== 3. per-call cost of each step (us, best of 5, timed alone; multiprocess metrics)")
    for name, us in timings:
        print(f"  {us:8.2f}  {name}")

    # The writer thread's cost: off the request path, but on the same GIL and CPU.
    store = open_store(f"sqlite:///{tmp / 'write-cost.db'}")
    batch_size = 200

    def write_batch() -> None:
        store.write_predictions([
            PredictionRecord(str(uuid.uuid4()), now, 1, version, [5.1, 3.5, 1.4, 0.2], 0, [1.0, 0.0, 0.0], 0.3, None)
            for _ in range(batch_size)
        ])

    per_batch = per_call_us(write_batch, number=20, repeat=3)
    print(f"  {per_batch / batch_size:8.2f}  background: store.write_predictions per row (batches of {batch_size})")
    store.close()
    print()


class _Null:
    """A metric stand-in whose updates do nothing."""

    def labels(self, *args: Any) -> "_Null":
        """Itself."""
        return self

    def inc(self, *args: Any) -> None:
        """Nothing."""

    def observe(self, *args: Any) -> None:
        """Nothing."""


class _Proxy:
    """A module stand-in: one attribute replaced, the rest delegated."""

    def __init__(self, module: Any, **replaced: Any) -> None:
        self._module = module
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._module, name)


def ablations(app: Any, bare: Any, rounds: int, block: int) -> None:
    """Whole-request cost with each piece of /predict replaced by a free stand-in, interleaved."""
    import uuid  # noqa: PLC0415
    from contextlib import ExitStack, contextmanager  # noqa: PLC0415
    from unittest import mock  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    from flask import Response  # noqa: PLC0415

    import app.flask_app as flask_app  # noqa: PLC0415
    import app.service as service_mod  # noqa: PLC0415
    from app import metrics  # noqa: PLC0415
    from app.flask_app import service_of  # noqa: PLC0415
    from app.validation import parse_json, parse_predict  # noqa: PLC0415

    service = service_of(app)
    models = service.models
    payload = parse_json(BODY)
    req = parse_predict(payload, models.feature_names, service.settings.max_batch, None)
    fixed = {v: lv.predictor.predict_proba(req.X) for v, lv in models.versions.items()}
    one = np.ones(1, dtype=np.intp)
    constant_id = uuid.uuid4()
    body = b'{"prediction": 0, "class_name": "setosa", "model_version": "v1"}'

    @contextmanager
    def no_log():
        with mock.patch.object(service.prediction_log, "record", lambda records: None):
            yield

    @contextmanager
    def no_metrics():
        with ExitStack() as stack:
            for name in ("PREDICTION_REQUESTS", "MODEL_VERSION_REQUESTS", "PREDICTION_LATENCY", "PREDICTIONS"):
                stack.enter_context(mock.patch.object(metrics, name, _Null()))
            yield

    @contextmanager
    def no_unique():
        proxy = _Proxy(np, unique=lambda a, return_counts=False: (a, one))
        with mock.patch.object(service_mod, "np", proxy):
            yield

    @contextmanager
    def no_inference():
        with ExitStack() as stack:
            for v, lv in models.versions.items():
                stack.enter_context(mock.patch.object(lv.predictor, "predict_proba", lambda X, p=fixed[v]: p))
            yield

    @contextmanager
    def no_uuid():
        with mock.patch.object(service_mod, "uuid", _Proxy(uuid, uuid4=lambda: constant_id)):
            yield

    @contextmanager
    def no_timestamp():
        with mock.patch.object(service_mod, "iso", lambda ts: "2026-01-01T00:00:00+00:00"):
            yield

    @contextmanager
    def no_parse():
        with mock.patch.object(flask_app, "_body", lambda: payload), \
                mock.patch.object(flask_app, "parse_predict", lambda *args: req):
            yield

    @contextmanager
    def no_encode():
        with mock.patch.object(flask_app, "_json", lambda *a, **k: Response(body, mimetype="application/json")):
            yield

    @contextmanager
    def no_served_by():
        with mock.patch.dict(app.after_request_funcs, {None: []}):
            yield

    pieces: dict[str, Callable[[], Any]] = {
        "prediction log: record() + writer thread": no_log,
        "prometheus: 4 metric updates": no_metrics,
        "np.unique in the per-class counter": no_unique,
        "inference: predict_proba": no_inference,
        "uuid4 ids": no_uuid,
        "iso timestamp": no_timestamp,
        "body read + json.loads + validation": no_parse,
        "json.dumps + Response with headers": no_encode,
        "X-Served-By after_request hook": no_served_by,
    }

    @contextmanager
    def everything():
        with ExitStack() as stack:
            for make in pieces.values():
                stack.enter_context(make())
            yield

    @contextmanager
    def nothing():
        yield

    service_call, bare_call = wsgi_caller(app.wsgi_app), wsgi_caller(bare.wsgi_app)
    variants: dict[str, tuple[Callable[[], bytes], Callable[[], Any]]] = {
        "service as is": (service_call, nothing),
        **{f"without {name}": (service_call, make) for name, make in pieces.items()},
        "without all of the above": (service_call, everything),
        "bare Flask": (bare_call, nothing),
    }
    samples: dict[str, list[float]] = {name: [] for name in variants}
    for _ in range(rounds):
        for name, (call, patch) in variants.items():
            with patch():
                for _ in range(50):
                    call()
                started = time.perf_counter()
                for _ in range(block):
                    call()
                samples[name].append((time.perf_counter() - started) / block * 1e6)
    best = {name: min(values) for name, values in samples.items()}
    median = {name: sorted(values)[len(values) // 2] for name, values in samples.items()}
    base = best["service as is"]
    print(f"== 4. what-if: us per whole request (WSGI), {rounds} interleaved rounds x {block} requests")
    print(f"{'variant':<52}{'best':>8}{'median':>9}{'saves (best)':>14}")
    for name in variants:
        saved = "" if name in ("service as is", "bare Flask") else f"{base - best[name]:>14.1f}"
        print(f"{name:<52}{best[name]:>8.1f}{median[name]:>9.1f}{saved}")
    print(f"{'our work per request (as is - bare)':<52}{base - best['bare Flask']:>8.1f}")
    print()


if __name__ == "__main__":
    sys.exit(main())
