"""Where the time of one POST /predict goes, in-process: whole requests, cProfile, and each step.

Builds the real app with ``create_app(models_dir=..., database_url=...)`` in a temp dir, with
PROMETHEUS_MULTIPROC_DIR set as in production (so metric updates take the multiprocess path), and
the bare Flask floor from benchmarks/bare_flask.py. Nothing in app/ is changed; the in-situ
timers and stand-ins below are patched into this process only. Prints:

1. microseconds per request through WSGI (a prebuilt environ, no HTTP) and through the Flask test
   client, for the service and the bare app; the CPU the service's other threads (the
   prediction-log writer) spend per request; and the garbage collections seen;
2. a cProfile of ``--requests`` test-client POSTs to the service (top functions by own time;
   the profiler inflates small calls, so read it for shape, not for microseconds);
3. in situ: each step of the handler timed by wrappers while whole requests run, median over
   blocks (what a step costs among everything else: colder caches, a second thread on the GIL);
4. what-if for the prediction log: request-thread and other-thread CPU per request as it is,
   with prototypes that append to a deque and flush on a timer (no wake-up per request) through
   the same executemany or through one INSERT ... SELECT FROM json_each(?) per batch, and with
   no log at all;
5. isolated: each step timed alone with timeit (best of 7, hot caches), next to cheaper
   alternatives that give the same output, as figures for the service owner.

Run from the repository root::

    .venv/bin/python benchmarks/profile_predict.py [--requests 5000] [--top 25] [--blocks 10]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import os
import pstats
import subprocess
import sys
import tempfile
import time
import timeit
from collections import defaultdict
from contextlib import ExitStack
from pathlib import Path
from typing import Any, Callable
from unittest import mock

REPO_DIR = Path(__file__).resolve().parents[1]
BODY = b'{"features": [5.1, 3.5, 1.4, 0.2]}'


def per_call_us(fn: Callable[[], Any], number: int = 2000, repeat: int = 7) -> float:
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
    parser.add_argument("--blocks", type=int, default=10, help="blocks of 500 requests for the in-situ timers (default 10)")
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
        print(f"load average {os.getloadavg()[0]:.2f} (1 min), {os.cpu_count()} CPUs\n")
        try:
            whole_requests(app, bare)
            profile(app, args.requests, args.top)
            in_situ(app, bare, args.blocks)
            log_what_if(app)
            isolated(service_of(app), tmp)
        finally:
            service_of(app).close()
    return 0


def whole_requests(app: Any, bare: Any) -> None:
    """Microseconds per whole request, service vs bare; the service's thread CPU split and GC."""
    service_wsgi, bare_wsgi = wsgi_caller(app.wsgi_app), wsgi_caller(bare.wsgi_app)
    service_client, bare_client = app.test_client(), bare.test_client()
    rows = [
        ("WSGI call", per_call_us(service_wsgi, 1000, 5), per_call_us(bare_wsgi, 1000, 5)),
        ("Flask test client",
         per_call_us(lambda: service_client.post("/predict", data=BODY, content_type="application/json"), 1000, 5),
         per_call_us(lambda: bare_client.post("/predict", data=BODY, content_type="application/json"), 1000, 5)),
    ]
    print("== 1. whole request (us per POST /predict, best of 5 x 1000, gc off as timeit does)")
    print(f"{'path':<20}{'service':>10}{'bare':>10}{'ours':>10}")
    for how, service_us, bare_us in rows:
        print(f"{how:<20}{service_us:>10.1f}{bare_us:>10.1f}{service_us - bare_us:>10.1f}")

    collections: dict[int, list[float]] = defaultdict(lambda: [0, 0.0])
    started: list[float] = []

    def on_gc(phase: str, info: dict) -> None:
        if phase == "start":
            started.append(time.perf_counter())
        elif started:
            entry = collections[info["generation"]]
            entry[0] += 1
            entry[1] += time.perf_counter() - started.pop()

    n = 10_000
    gc.callbacks.append(on_gc)
    try:
        wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
        for _ in range(n):
            service_wsgi()
        time.sleep(0.5)  # the writer's last flush lands in the process CPU figure
        wall, cpu, own = time.perf_counter() - wall - 0.5, time.process_time() - cpu, time.thread_time() - own
    finally:
        gc.callbacks.remove(on_gc)
    print(f"service, {n} WSGI requests with gc on: {wall / n * 1e6:.1f} us wall per request; CPU per request: "
          f"request thread {own / n * 1e6:.1f} us, other threads (prediction-log writer, state sync) "
          f"{(cpu - own) / n * 1e6:.1f} us")
    print("garbage collections during them: " + (", ".join(
        f"gen{g} x{c} ({t * 1e3:.1f} ms, {t / c * 1e3:.2f} ms each)" for g, (c, t) in sorted(collections.items()))
        or "none"))
    full = time.perf_counter()
    gc.collect()
    print(f"one full gc.collect() of this worker's heap ({len(gc.get_objects())} tracked objects): "
          f"{(time.perf_counter() - full) * 1e3:.1f} ms")
    gc.freeze()
    try:
        full = time.perf_counter()
        gc.collect()
        print(f"the same after gc.freeze() ({gc.get_freeze_count()} objects frozen): {(time.perf_counter() - full) * 1e3:.1f} ms")
    finally:
        gc.unfreeze()
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
    print(f"== 2. cProfile of {requests} test-client POSTs (request thread only), top {top} by own time")
    stream = io.StringIO()
    pstats.Stats(profiler, stream=stream).sort_stats("tottime").print_stats(top)
    print("\n".join(line for line in stream.getvalue().splitlines() if line.strip()))
    print()


class _Timers:
    """Accumulated nanoseconds per named step."""

    def __init__(self) -> None:
        self.ns: dict[str, int] = defaultdict(int)

    def wrap(self, name: str, fn: Callable) -> Callable:
        """``fn`` with its time added to ``name``."""
        clock, ns = time.perf_counter_ns, self.ns

        def timed(*args: Any, **kwargs: Any) -> Any:
            start = clock()
            try:
                return fn(*args, **kwargs)
            finally:
                ns[name] += clock() - start

        return timed


class _Proxy:
    """A module or metric stand-in: some attributes replaced, the rest delegated."""

    def __init__(self, target: Any, **replaced: Any) -> None:
        self._target = target
        self.__dict__.update(replaced)

    def __getattr__(self, name: str) -> Any:
        return getattr(self._target, name)


def _timed_metric(metric: Any, timers: _Timers, name: str) -> _Proxy:
    """A metric whose labels() lookup and every update are timed under ``name``."""
    children: dict[tuple, _Proxy] = {}
    timed_labels = timers.wrap(name, metric.labels)

    def labels(*values: Any) -> _Proxy:
        child = timed_labels(*values)
        proxy = children.get(values)
        if proxy is None:  # one wrapper per label set, so wrapping costs nothing per request
            updates = {m: timers.wrap(name, getattr(child, m)) for m in ("inc", "observe") if hasattr(child, m)}
            proxy = children[values] = _Proxy(child, **updates)
        return proxy

    updates = {m: timers.wrap(name, getattr(metric, m)) for m in ("inc", "observe") if hasattr(metric, m)}
    return _Proxy(metric, labels=labels, **updates)


def in_situ(app: Any, bare: Any, blocks: int, block: int = 500) -> None:
    """Each step's time while whole requests run (wrapped, median over blocks), next to the bare app."""
    import uuid  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415

    import app.flask_app as flask_app  # noqa: PLC0415
    import app.service as service_mod  # noqa: PLC0415
    from app import metrics  # noqa: PLC0415
    from app.flask_app import service_of  # noqa: PLC0415

    service = service_of(app)
    timers = _Timers()
    steps = {
        "handler: read body + json.loads (_body)": "_body",
        "handler: validate (parse_predict)": "parse_predict",
        "handler: json.dumps + Response (_json)": "_json",
        "handler: PREDICTION_REQUESTS.inc()": "PREDICTION_REQUESTS",
        "after_request: X-Served-By": "hook",
        "service.predict: inference (predict_proba)": "predict_proba",
        "service.predict: prediction_log.record (Queue put)": "record",
        "service.predict: MODEL_VERSION_REQUESTS labels+inc": "MODEL_VERSION_REQUESTS",
        "service.predict: PREDICTION_LATENCY labels+observe": "PREDICTION_LATENCY",
        "service.predict: np.unique for the class counter": "unique",
        "service.predict: PREDICTIONS labels+inc": "PREDICTIONS",
        "service.predict: uuid4": "uuid4",
        "service.predict: iso timestamp": "iso",
    }
    with ExitStack() as stack:
        patch = stack.enter_context
        for name in ("_body", "parse_predict", "_json"):
            patch(mock.patch.object(flask_app, name, timers.wrap(name, getattr(flask_app, name))))
        for name in ("PREDICTION_REQUESTS", "MODEL_VERSION_REQUESTS", "PREDICTION_LATENCY", "PREDICTIONS"):
            patch(mock.patch.object(metrics, name, _timed_metric(getattr(metrics, name), timers, name)))
        patch(mock.patch.dict(app.after_request_funcs, {None: [timers.wrap("hook", f) for f in app.after_request_funcs[None]]}))
        patch(mock.patch.object(service, "predict", timers.wrap("service.predict", service.predict)))
        for lv in service.models.versions.values():
            patch(mock.patch.object(lv.predictor, "predict_proba", timers.wrap("predict_proba", lv.predictor.predict_proba)))
        patch(mock.patch.object(service.prediction_log, "record", timers.wrap("record", service.prediction_log.record)))
        patch(mock.patch.object(service_mod, "uuid", _Proxy(uuid, uuid4=timers.wrap("uuid4", uuid.uuid4))))
        patch(mock.patch.object(service_mod, "np", _Proxy(np, unique=timers.wrap("unique", np.unique))))
        patch(mock.patch.object(service_mod, "iso", timers.wrap("iso", service_mod.iso)))

        service_call, bare_call = wsgi_caller(app.wsgi_app), wsgi_caller(bare.wsgi_app)
        samples: dict[str, list[float]] = defaultdict(list)
        for _ in range(blocks):
            for _ in range(50):
                service_call()
            timers.ns.clear()
            wall, cpu, own = time.perf_counter_ns(), time.process_time_ns(), time.thread_time_ns()
            for _ in range(block):
                service_call()
            wall, cpu, own = time.perf_counter_ns() - wall, time.process_time_ns() - cpu, time.thread_time_ns() - own
            per = {k: v / block / 1000 for k, v in timers.ns.items()}
            for label, key in steps.items():
                samples[label].append(per.get(key, 0.0))
            inside = sum(per.get(steps[k], 0.0) for k in steps if k.startswith("service.predict"))
            samples["service.predict: the rest (route, argmax, tolist, records)"].append(per["service.predict"] - inside)
            handler = sum(per.get(steps[k], 0.0) for k in steps if not k.startswith("service.predict"))
            samples["Flask/werkzeug + handler glue (rest of the request)"].append(
                wall / block / 1000 - handler - per["service.predict"])
            samples["TOTAL service request (wall)"].append(wall / block / 1000)
            samples["other threads' CPU during the block (log writer)"].append((cpu - own) / block / 1000)
            started = time.perf_counter_ns()
            for _ in range(block):
                bare_call()
            samples["TOTAL bare Flask request (wall)"].append((time.perf_counter_ns() - started) / block / 1000)
    print(f"== 3. in situ: us per request, median over {blocks} blocks of {block} WSGI requests (timer overhead ~0.3 us per timed call)")
    for label, values in samples.items():
        values.sort()
        print(f"  {values[len(values) // 2]:8.1f}  {label}")
    print()


_JSON_EACH_INSERT = (
    "INSERT OR IGNORE INTO predictions (prediction_id, ts, experiment_id, model_version, features, prediction, "
    "probabilities, latency_ms, user_hash) SELECT value->>0, value->>1, value->>2, value->>3, value->>4, value->>5, "
    "value->>6, value->>7, value->>8 FROM json_each(?)"
)


def log_what_if(app: Any, rounds: int = 5, block: int = 2000) -> None:
    """CPU per request with the prediction log as is, two timer-flushed prototypes, and switched off."""
    import json  # noqa: PLC0415
    import threading  # noqa: PLC0415
    from collections import deque  # noqa: PLC0415

    from app.flask_app import service_of  # noqa: PLC0415

    service = service_of(app)

    def insert_json_each(records: list) -> None:
        # One statement per batch: sqlite3 releases the GIL once, not once per row as executemany does.
        rows = [list(row) for row in _rows_fast(records)]
        with service.store._transaction() as db:
            db.execute(_JSON_EACH_INSERT, (json.dumps(rows),))

    buffers: dict[str, deque] = {"executemany": deque(), "json_each": deque()}
    writers = {"executemany": service.store.write_predictions, "json_each": insert_json_each}
    stop = threading.Event()
    writing = threading.Lock()

    def timer_writer() -> None:
        # The prototypes: requests only append; this thread wakes every flush interval and drains.
        while not stop.wait(service.settings.log_flush_seconds):
            with writing:
                for kind, buffer in buffers.items():
                    batch = []
                    while buffer:
                        batch.extend(buffer.popleft())
                    if batch:
                        writers[kind](batch)

    def drained() -> None:
        # Each block's CPU includes writing its own rows, and nothing of the block before.
        service.prediction_log.flush()
        while any(buffers.values()):
            time.sleep(0.01)
        with writing:
            pass

    writer = threading.Thread(target=timer_writer, name="prototype-log", daemon=True)
    writer.start()
    variants = {
        "as is (Queue; writer woken per request)": service.prediction_log.record,
        "deque + timer flush, same executemany": buffers["executemany"].append,
        "deque + timer flush, one INSERT..json_each": buffers["json_each"].append,
        "no prediction log": lambda records: None,
    }
    call = wsgi_caller(app.wsgi_app)
    samples: dict[str, list[tuple[float, float, float]]] = defaultdict(list)
    try:
        for _ in range(rounds):
            for name, record in variants.items():
                with mock.patch.object(service.prediction_log, "record", record):
                    for _ in range(100):
                        call()
                    drained()
                    wall, cpu, own = time.perf_counter(), time.process_time(), time.thread_time()
                    for _ in range(block):
                        call()
                    wall, own = time.perf_counter() - wall, time.thread_time() - own
                    drained()
                    cpu = time.process_time() - cpu
                samples[name].append((wall / block * 1e6, own / block * 1e6, (cpu - own) / block * 1e6))
    finally:
        stop.set()
        writer.join(5)
    print(f"== 4. prediction log what-if: us per request, median of {rounds} interleaved blocks of {block} WSGI requests")
    print("(wall and request-thread CPU cover the requests; other threads' CPU lasts until the block's rows are written)")
    print(f"{'variant':<46}{'wall':>8}{'request thread CPU':>20}{'other threads CPU':>19}")
    for name, values in samples.items():
        wall, own, other = (sorted(v[i] for v in values)[len(values) // 2] for i in range(3))
        print(f"{name:<46}{wall:>8.1f}{own:>20.1f}{other:>19.1f}")
    print()


def isolated(service: Any, tmp: Path) -> None:
    """Per-call cost of each step of the /predict handler timed alone, with cheaper equivalents."""
    import json  # noqa: PLC0415
    import queue  # noqa: PLC0415
    import uuid  # noqa: PLC0415
    from collections import deque  # noqa: PLC0415

    import numpy as np  # noqa: PLC0415
    from flask import Response  # noqa: PLC0415

    from app import metrics  # noqa: PLC0415
    from app.flask_app import _json  # noqa: PLC0415
    from app.service import iso  # noqa: PLC0415
    from app.store import PredictionRecord, open_store  # noqa: PLC0415
    from app.validation import _reject_constant, parse_json, parse_predict  # noqa: PLC0415

    models = service.models
    version = sorted(models.versions)[0]
    predictor = models.versions[version].predictor
    payload = parse_json(BODY)
    req = parse_predict(payload, models.feature_names, 1000, None)
    X = req.X
    proba = predictor.predict_proba(X)
    classes = proba.argmax(axis=1)
    names = models.class_names
    ids = [str(uuid.uuid4())]
    now = time.time()
    body = {"prediction": 0, "class_name": "setosa", "probabilities": proba.tolist()[0], "model_version": version,
            "prediction_id": ids[0], "timestamp": iso(now), "latency_ms": 0.321}
    decoder = json.JSONDecoder(parse_constant=_reject_constant)
    encoder = json.JSONEncoder(allow_nan=False)
    counter_child = metrics.MODEL_VERSION_REQUESTS.labels(version)
    histogram_child = metrics.PREDICTION_LATENCY.labels(version)
    class_child = metrics.PREDICTIONS.labels(version, names[int(classes[0])])
    bounded: queue.Queue = queue.Queue(maxsize=50_000)
    buffer: deque = deque()

    lines: list[tuple[str, float]] = []

    def row(name: str, fn: Callable[[], Any], number: int = 2000) -> None:
        lines.append((name, per_call_us(fn, number)))

    row("parse_json(body)  [json.loads with parse_constant= builds a JSONDecoder per call]", lambda: parse_json(BODY))
    row("  alt: module-level JSONDecoder(parse_constant=...).decode(body.decode())",
        lambda: decoder.decode(BODY.decode("utf-8")))
    row("parse_predict(...) incl. np.array", lambda: parse_predict(payload, models.feature_names, 1000, None))
    row(f"predict_proba, 1 row ({predictor.backend}: {predictor._n_trees} trees, depth {predictor._depth})",
        lambda: predictor.predict_proba(X))
    if predictor.backend == "fast":
        single_row = _all_nodes_predictor(predictor)
        x = np.asarray(X, dtype=np.float32).astype(np.float64)[0]
        rng = np.random.default_rng(0)
        for sample in rng.uniform([4.0, 2.0, 1.0, 0.1], [8.0, 4.5, 7.0, 2.5], size=(2000, 4)):
            sample = np.asarray(sample, dtype=np.float32).astype(np.float64)
            if not np.array_equal(single_row(sample), predictor._predict_row(sample)):
                raise AssertionError("the all-nodes single-row walk disagrees with _predict_row")
        row("  of which _predict_row (level walk: ~7 numpy ops per level)", lambda: predictor._predict_row(x))
        row("  alt: split every node once, then one gather per level (same output, 2000 rows checked)",
            lambda: single_row(x))
    row("str(uuid.uuid4())", lambda: str(uuid.uuid4()))
    for _ in range(1000):
        text = _fast_uuid4()
        if str(uuid.UUID(text)) != text or uuid.UUID(text).version != 4:
            raise AssertionError("_fast_uuid4 is not a canonical version-4 UUID")
    row("  alt: urandom(16) with v4 bits set, hex-formatted (same canonical UUID text)", _fast_uuid4)
    row("MODEL_VERSION_REQUESTS.labels(v).inc()", lambda: metrics.MODEL_VERSION_REQUESTS.labels(version).inc())
    row("  alt: child cached per version at load, .inc()", counter_child.inc)
    row("PREDICTION_LATENCY.labels(v).observe()", lambda: metrics.PREDICTION_LATENCY.labels(version).observe(0.0003))
    row("  alt: cached child .observe()", lambda: histogram_child.observe(0.0003))

    def unique_loop() -> None:
        for c, count in zip(*np.unique(classes, return_counts=True)):
            metrics.PREDICTIONS.labels(version, names[int(c)]).inc(int(count))

    row("np.unique(return_counts) loop + PREDICTIONS.labels().inc()", unique_loop)
    row("  of which np.unique(classes, return_counts=True)", lambda: np.unique(classes, return_counts=True))
    row("  alt: np.bincount(classes, minlength=n_classes)", lambda: np.bincount(classes, minlength=len(names)))
    row("  alt: 1 row: cached child for (version, class) .inc()", class_child.inc)
    row("iso(time.time())", lambda: iso(time.time()))
    row("prediction_log.record: Queue.put_nowait (+get_nowait)", lambda: (bounded.put_nowait(ids), bounded.get_nowait()))
    row("  alt: deque.append (+popleft), writer polls on a timer", lambda: (buffer.append(ids), buffer.popleft()))
    row("_json(body): json.dumps(allow_nan=False) + Response(headers=...)",
        lambda: _json(body, headers={"X-Model-Version": version}))
    row("  of which json.dumps(body, allow_nan=False)  [builds a JSONEncoder per call]",
        lambda: json.dumps(body, allow_nan=False))
    row("  alt: module-level JSONEncoder(allow_nan=False).encode(body)", lambda: encoder.encode(body))
    row("  bare app's Response(bytes, mimetype=...)", lambda: Response(b"{}", mimetype="application/json"))
    row("service.predict() whole (incl. waking the log writer)", lambda: service.predict(req, time.perf_counter()), 1000)

    store = open_store(f"sqlite:///{tmp / 'write-cost.db'}")
    batch_size = 200

    def make_batch() -> list[PredictionRecord]:
        return [PredictionRecord(str(uuid.uuid4()), now, 1, version, [5.1, 3.5, 1.4, 0.2], 0, [1.0, 0.0, 0.0], 0.3, None)
                for _ in range(batch_size)]

    batch = make_batch()
    build = per_call_us(make_batch, number=20, repeat=3)
    write = per_call_us(lambda: store.write_predictions(make_batch()), number=20, repeat=3)
    lines.append((f"background: store.write_predictions per row (batches of {batch_size})", (write - build) / batch_size))
    encode = per_call_us(lambda: _rows_as_store_encodes(batch), number=50, repeat=5)
    fast_encode = per_call_us(lambda: _rows_fast(batch), number=50, repeat=5)
    if _rows_as_store_encodes(batch) != _rows_fast(batch):
        raise AssertionError("the cheaper row encoding differs from the store's")
    lines.append(("  of which encoding the row (2 json.dumps + float()/round() per value)", encode / batch_size))
    lines.append(("  alt: same text by %-formatting / repr (identical rows checked)", fast_encode / batch_size))
    store.close()

    print("== 5. isolated: us per call, best of 7, hot caches, multiprocess metrics")
    for name, us in lines:
        print(f"  {us:8.2f}  {name}")
    print()


def _all_nodes_predictor(predictor: Any) -> Callable[[Any], Any]:
    """A single-row walk equivalent to FastForest._predict_row: every split once, then gathers."""
    import numpy as np  # noqa: PLC0415

    feature, threshold, children = predictor._feature, predictor._threshold, predictor._children
    pair_base = np.arange(feature.shape[0], dtype=np.intp) * 2
    roots, depth, leaf, n_trees = predictor._roots, predictor._depth, predictor._leaf_proba, predictor._n_trees

    def predict_row(x: Any) -> Any:
        successor = children[pair_base + (x[feature] <= threshold)]
        node = roots
        for _ in range(depth):
            node = successor[node]
        return leaf[node].sum(axis=0) / n_trees

    return predict_row


def _fast_uuid4() -> str:
    """A random version-4 UUID as canonical text, without building a uuid.UUID."""
    raw = bytearray(os.urandom(16))
    raw[6] = raw[6] & 0x0F | 0x40
    raw[8] = raw[8] & 0x3F | 0x80
    h = raw.hex()
    return f"{h[:8]}-{h[8:12]}-{h[12:16]}-{h[16:20]}-{h[20:]}"


def _rows_as_store_encodes(records: list) -> list[tuple]:
    """The row tuples SQLiteStore.write_predictions builds (copied to time them alone)."""
    import json  # noqa: PLC0415

    return [
        (r.prediction_id, r.ts, r.experiment_id, r.model_version, json.dumps([float(v) for v in r.features]),
         int(r.prediction), json.dumps([round(float(p), 6) for p in r.probabilities]), float(r.latency_ms), r.user_hash)
        for r in records
    ]


def _rows_fast(records: list) -> list[tuple]:
    """The same row tuples without json.dumps (floats print with repr, as json does)."""
    return [
        (r.prediction_id, r.ts, r.experiment_id, r.model_version, "[" + ", ".join(map(repr, r.features)) + "]",
         r.prediction, "[" + ", ".join([repr(round(p, 6)) for p in r.probabilities]) + "]", r.latency_ms, r.user_hash)
        for r in records
    ]


if __name__ == "__main__":
    sys.exit(main())
