"""Where the time of one POST /predict goes, in-process (no HTTP, no gunicorn).

Builds the real app (``create_app``) on a freshly trained model set with PROMETHEUS_MULTIPROC_DIR
set as in production, and the bare Flask floor from benchmarks/bare_flask.py, then prints:

1. microseconds per request through a direct WSGI call, service and bare, median of interleaved
   blocks (what our work adds on top of Flask);
2. a cProfile of the service's requests, top functions by own time (the profiler inflates small
   calls: read it for shape, not for microseconds).

    .venv/bin/python benchmarks/profile_predict.py [--requests 5000] [--top 25]
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import importlib.util
import io
import os
import pstats
import statistics
import sys
import tempfile
import time
from pathlib import Path
from types import ModuleType

BODY = b'{"features": [5.1, 3.5, 1.4, 0.2]}'


def load_bare_flask() -> ModuleType:
    """benchmarks/bare_flask.py, by its path: this script runs as a file, not from an installed package."""
    spec = importlib.util.spec_from_file_location("bare_flask", Path(__file__).with_name("bare_flask.py"))
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def environ() -> dict:
    """A POST /predict WSGI environ with the seed's example body."""
    return {
        "REQUEST_METHOD": "POST",
        "PATH_INFO": "/predict",
        "SERVER_NAME": "bench",
        "SERVER_PORT": "80",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.url_scheme": "http",
        "wsgi.input": io.BytesIO(BODY),
        "wsgi.errors": sys.stderr,
        "CONTENT_TYPE": "application/json",
        "CONTENT_LENGTH": str(len(BODY)),
    }


def _start_response(status, headers, exc_info=None):
    return None


def per_request_us(app, n: int) -> float:
    """Median wall time of one WSGI request over n requests."""
    samples = []
    for _ in range(n):
        started = time.perf_counter_ns()
        b"".join(app(environ(), _start_response))
        samples.append(time.perf_counter_ns() - started)
    return statistics.median(samples) / 1000


def main() -> int:
    """Print the in-process figures."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=5000)
    parser.add_argument("--blocks", type=int, default=5)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tmp + "/metrics"
        os.makedirs(os.environ["PROMETHEUS_MULTIPROC_DIR"])
        from app.api import create_app, service_of
        from app.training.datasets import load_iris_dataset
        from app.training.trainer import train

        create_bare = load_bare_flask().create_app

        train(load_iris_dataset(), Path(tmp) / "models", log=lambda *_: None)
        service_app = create_app(
            models_dir=Path(tmp) / "models", database_url=f"sqlite:///{tmp}/state.db", log_level="warning"
        )
        bare_app = create_bare()
        for app in (service_app, bare_app):
            per_request_us(app, 1000)  # warm-up
        gc.freeze()
        service, bare = [], []
        for _ in range(args.blocks):
            service.append(per_request_us(service_app, args.requests))
            bare.append(per_request_us(bare_app, args.requests))
        s, b = statistics.median(service), statistics.median(bare)
        print(f"== 1. one WSGI request, median of {args.blocks} interleaved blocks of {args.requests}")
        print(f"service {s:7.1f} us   bare Flask {b:7.1f} us   our work {s - b:7.1f} us")

        print(f"\n== 2. cProfile of {args.requests} service requests, top {args.top} by own time")
        profiler = cProfile.Profile()
        profiler.enable()
        per_request_us(service_app, args.requests)
        profiler.disable()
        pstats.Stats(profiler).sort_stats("tottime").print_stats(args.top)
        service_of(service_app).stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
