"""A stdlib stand-in for the model API over real HTTP, with canned replies shaped like the real ones.

tests/ui/test_fake_api.py checks that every field sent here is also sent, at the same place and of the
same JSON type, by the real API, so the UI tests cannot pass against fields the server does not have.
"""

from __future__ import annotations

import copy
import json
import random
import threading
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from app.stats.experiment import wilson_interval
from app.stats.sequential import proportion_sequence

FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]

MANIFEST: dict[str, Any] = {
    "feature_names": FEATURES,
    "class_names": CLASSES,
    "features": {
        "sepal_length": {"min": 4.3, "max": 7.9, "mean": 5.84, "std": 0.83, "default": 5.0},
        "sepal_width": {"min": 2.0, "max": 4.4, "mean": 3.06, "std": 0.44, "default": 3.4},
        "petal_length": {"min": 1.0, "max": 6.9, "mean": 3.76, "std": 1.77, "default": 1.5},
        "petal_width": {"min": 0.1, "max": 2.5, "mean": 1.2, "std": 0.76, "default": 0.2},
    },
    "versions": {
        "v1": {
            "file": "model_v1.pkl",
            "sha256": "ab" * 32,
            "params": {"n_estimators": 50, "max_depth": 5},
            "accuracy": 0.9667,
        },
        "v2": {
            "file": "model_v2.pkl",
            "sha256": "cd" * 32,
            "params": {"n_estimators": 100, "max_depth": 10},
            "accuracy": 0.9333,
        },
    },
}

CONFIG: dict[str, Any] = {
    "model_v1_weight": 50,
    "model_v2_weight": 50,
    "total_weight": 100,
    "weights": {"v1": 50, "v2": 50},
    "shares": {"v1": 0.5, "v2": 0.5},
    "experiment": {"id": 3, "started_at": "2026-11-24T03:00:00+00:00", "source": "rollout"},
    "sticky": {"body_field": "user_id", "header": "X-User-ID"},
}

AB_REPORT: dict[str, Any] = {
    "experiment": {
        "id": 3,
        "started_at": "2026-11-24T03:00:00+00:00",
        "weights": {"v1": 50, "v2": 50},
        "source": "rollout",
    },
    "baseline": "v1",
    "alpha": 0.05,
    "variants": {
        "v1": {
            "weight": 50,
            "expected_share": 0.5,
            "requests": 120,
            "observed_share": 0.52,
            "labeled": 40,
            "correct": 40,
            "accuracy": 1.0,
            "accuracy_ci95": [0.912, 1.0],
            "latency_p50_ms": 0.3,
            "latency_p95_ms": 0.6,
        },
        "v2": {
            "weight": 50,
            "expected_share": 0.5,
            "requests": 110,
            "observed_share": 0.48,
            "labeled": 80,
            "correct": 57,
            "accuracy": 0.7125,
            "accuracy_ci95": [0.605, 0.8],
            "latency_p50_ms": 0.4,
            "latency_p95_ms": 0.9,
        },
    },
    "comparison": {
        "baseline": "v1",
        "challenger": "v2",
        "accuracy_diff": -0.2875,
        "p_value": 0.0004,
        "p_value_adjusted": 0.0004,
        "p_value_text": "p < 0.001",
        "significant": True,
        "method": "z-test",
        "samples_needed_per_variant": 30,
        "additional_samples_needed": 0,
        "winner": "v1",
        "sequential": {
            "p_value": 0.012,
            "p_value_text": "p = 0.012",
            "significant": True,
            "confidence_sequence": [-0.45, -0.12],
            "method": "asymptotic confidence sequence (Waudby-Smith et al. 2024), normal mixture",
            "tuning": {"n_star": 1000, "rho": 0.1, "alpha": 0.05},
        },
    },
    "comparisons": [],
    "srm": {
        "statistic": 0.4,
        "p_value": 0.5,
        "mismatch": False,
        "threshold": 0.001,
        "p_value_text": "p = 0.500",
        "observed_share": {"v1": 0.52, "v2": 0.48},
        "expected_share": {"v1": 0.5, "v2": 0.5},
        "applicable": True,
    },
    "recommendation": "v1 is more accurate (100.0% vs 71.3%, p < 0.001): shift traffic to v1",
    "shadow": {
        "v3": {
            "requests": 412,
            "agreement": 0.934,
            "labeled": 160,
            "correct": 150,
            "accuracy": 0.9375,
            "accuracy_ci95": [0.888, 0.966],
            "served_accuracy": 0.85,
            "accuracy_diff": 0.0875,
            "discordant": 20,
            "p_value": 0.0026,
            "p_value_text": "p = 0.003",
            "method": "mcnemar-exact",
            "significant": True,
        }
    },
    "allocation": None,
}

DRIFT: dict[str, Any] = {
    "drift_score": 0.12,
    "threshold": 0.3,
    "drift_detected": False,
    "status": "OK",
    "samples": 87,
    "alpha": 0.05,
    "method": "cramer-von-mises 2-sample per feature, holm-adjusted",
    "window_size": 100,
    "features": {
        name: {
            "test": "cramer-von-mises",
            "statistic": 0.1,
            "p_value": 0.5,
            "p_value_adjusted": 1.0,
            "psi": 0.02,
            "mean_shift_sd": 0.1,
            "drifted": False,
        }
        for name in FEATURES
    },
    "timestamp": "2026-11-24T03:00:00+00:00",
}


# The story the timeline, the drift history and the rollout tell together (and the README's screenshots
# show): v1 served alone; v2 rolled out as a canary at 10%, then 50% from 03:00 on 24 Nov (the report's
# period), where it does worse; v3, retrained, scored in the shadow from the canary on; an upstream feed
# moved petal length overnight, and drift came back down by morning.
_SINCE = datetime(2026, 11, 21, 12, tzinfo=UTC)
_NOW = datetime(2026, 11, 24, 15, tzinfo=UTC)
_PERIODS: list[tuple[int, datetime, dict[str, int], str, list[str]]] = [
    (1, _SINCE, {"v1": 100, "v2": 0}, "env", []),
    (2, datetime(2026, 11, 22, 15, tzinfo=UTC), {"v1": 90, "v2": 10}, "rollout", ["v3"]),
    (3, datetime(2026, 11, 24, 3, tzinfo=UTC), {"v1": 50, "v2": 50}, "rollout", ["v3"]),
]


def _accuracy(version: str, period: int) -> float:
    """How often each version is right in each period of the story."""
    if version == "v2":
        return 0.96 if period < 3 else 0.71
    return {"v1": 0.94, "v3": 0.96}[version]


def _count(rng: random.Random, n: int, p: float) -> int:
    """A binomial draw."""
    return sum(rng.random() < p for _ in range(n))


def _timeline_point(at: datetime, period: int, requests: int, share: float | None, labeled: int, correct: int) -> Any:
    """One point shaped like the API's, its intervals computed as the API computes them."""
    return {
        "at": at.isoformat(),
        "experiment_id": period,
        "requests": requests,
        "labeled": labeled,
        "correct": correct,
        "share": share,
        "accuracy": correct / labeled if labeled else None,
        "ci95": list(wilson_interval(correct, labeled)) if labeled else None,
        "cs": list(proportion_sequence(correct, labeled)) if labeled else None,
    }


def _timeline() -> dict[str, Any]:
    """Hourly slices over three days of the story, each version's counts running on."""
    rng = random.Random(11)
    served: dict[str, list[Any]] = {"v1": [], "v2": []}
    shadow: dict[str, list[Any]] = {"v3": []}
    totals = {v: [0, 0] for v in (*served, *shadow)}  # labeled, correct
    hour = _SINCE
    while hour < _NOW:
        period, _, weights, _, shadowed = next(p for p in reversed(_PERIODS) if p[1] <= hour)
        total = rng.randint(14, 26)
        v2 = _count(rng, total, weights["v2"] / 100)
        labelled_here = 0
        for version, requests in (("v1", total - v2), ("v2", v2)):
            labeled = _count(rng, requests, 0.5)
            labelled_here += labeled
            totals[version][0] += labeled
            totals[version][1] += _count(rng, labeled, _accuracy(version, period))
            point = _timeline_point(hour + timedelta(hours=1), period, requests, requests / total, *totals[version])
            served[version].append(point)
        for version in shadowed:  # scores every request, so every label is one of its own
            totals[version][0] += labelled_here
            totals[version][1] += _count(rng, labelled_here, _accuracy(version, period))
            shadow[version].append(_timeline_point(hour + timedelta(hours=1), period, total, None, *totals[version]))
        hour += timedelta(hours=1)
    return {
        "generated_at": _NOW.isoformat(),
        "since": _SINCE.isoformat(),
        "alpha": 0.05,
        "periods": [
            {
                "id": period,
                "started_at": started.isoformat(),
                "ended_at": _PERIODS[i + 1][1].isoformat() if i + 1 < len(_PERIODS) else None,
                "weights": weights,
                "shares": {v: w / sum(weights.values()) for v, w in weights.items()},
                "source": source,
                "shadow": shadowed,
                "policy": None,
            }
            for i, (period, started, weights, source, shadowed) in enumerate(_PERIODS)
        ],
        "versions": served,
        "shadow": shadow,
    }


TIMELINE: dict[str, Any] = _timeline()

# Twenty hourly windows up to the report: the overnight episode crosses the 0.3 threshold, the newest
# window is the live /drift one.
_DRIFT_SCORES = [0.04, 0.08, 0.03, 0.21, 0.47, 0.93, 1.0, 1.0, 0.66, 0.35, 0.18, 0.06, 0.1, 0.02, 0.07, 0.05]
_DRIFT_SCORES += [0.11, 0.04, 0.09, 0.12]


# How the features that did not move look in every window: (adjusted p-value, PSI, mean shift in SDs).
_STEADY = {"sepal_length": (0.83, 0.031, 0.08), "sepal_width": (1.0, 0.018, -0.12), "petal_width": (0.61, 0.044, 0.15)}


def _drift_window(end: datetime, score: float) -> dict[str, Any]:
    """A window whose petal length moved as far as its score says; the other features stayed put."""
    features = {}
    for name in FEATURES:
        p_adjusted, psi, shift = _STEADY.get(name, (0.05 ** (score / 0.3), 0.02 + 0.6 * score, 0.05 + 1.4 * score))
        features[name] = {
            "test": "cramer-von-mises",
            "statistic": round(0.05 + 2.0 * (1.0 - p_adjusted), 4),
            "p_value": p_adjusted / 4,
            "p_value_adjusted": p_adjusted,
            "psi": round(psi, 4),
            "mean_shift_sd": round(shift, 4),
            "drifted": p_adjusted <= 0.05,
        }
    return {
        "start": (end - timedelta(minutes=58)).isoformat(),
        "end": end.isoformat(),
        "rows": 100,
        "drift_score": score,
        "drift_detected": score >= 0.3,
        "status": "WARNING" if score >= 0.3 else "OK",
        "features": features,
    }


DRIFT_HISTORY: dict[str, Any] = {
    "threshold": 0.3,
    "window_size": 100,
    "windows": [
        _drift_window(_NOW - timedelta(hours=len(_DRIFT_SCORES) - 1 - i), score)
        for i, score in enumerate(_DRIFT_SCORES)
    ],
    "timestamp": _NOW.isoformat(),
}
DRIFT["features"] = copy.deepcopy(DRIFT_HISTORY["windows"][-1]["features"])  # the live window is the newest

ROLLOUT_PLAN: dict[str, Any] = {
    "candidate": "v2",
    "baseline": "v1",
    "steps": [10, 50, 100],
    "min_labels": 200,
    "margin": 0.05,
    "max_error_rate": 0.02,
    "max_p99_ms": 50,
}


def _side(requests: int, labeled: int, accuracy: float, error_rate: float, p99_ms: float) -> dict[str, Any]:
    return {"requests": requests, "labeled": labeled, "accuracy": accuracy, "error_rate": error_rate, "p99_ms": p99_ms}


ROLLOUT: dict[str, Any] = {
    "id": 2,
    "state": "running",
    "candidate": "v2",
    "baseline": "v1",
    "step": 1,
    "steps": [10, 50, 100],
    "weights": {"v1": 50, "v2": 50},
    "plan": ROLLOUT_PLAN,
    "started_at": "2026-11-22T15:00:00+00:00",
    "updated_at": "2026-11-24T09:00:00+00:00",
    "history": [
        {
            "at": "2026-11-22T15:00:00+00:00",
            "step": 0,
            "weights": {"v1": 90, "v2": 10},
            "decision": "start",
            "reason": "v2 gets 10% of traffic",
            "evidence": None,
        },
        {
            "at": "2026-11-24T03:00:00+00:00",
            "step": 1,
            "weights": {"v1": 50, "v2": 50},
            "decision": "advance",
            "reason": "v2 is no worse than v1 by more than 5 points, errors and p99 within the plan",
            "evidence": {
                "candidate": _side(402, 207, 0.961, 0.0, 12.0),
                "baseline": _side(3590, 1794, 0.94, 0.001, 9.9),
                "accuracy_diff": 0.021,
                "confidence_sequence": [-0.042, 0.084],
                "p_value": 1.0,
            },
        },
    ],
    # While it runs: this step's evidence so far, and what the controller would decide now.
    "evidence": {
        "candidate": _side(64, 31, 0.742, 0.0, 12.4),
        "baseline": _side(61, 30, 0.967, 0.0, 10.1),
        "accuracy_diff": -0.225,
        "confidence_sequence": [-0.52, 0.07],
        "p_value": 0.21,
    },
    "next": {"decision": "hold", "reason": "waiting for labels: v2 has 31 of 200"},
}

HEALTH: dict[str, Any] = {"status": "healthy", "models_loaded": True}

Reply = tuple[int, Any] | Callable[[dict[str, Any]], tuple[int, Any]]


def predict_reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Enough of a model to tell setosa-like from virginica-like measurements."""
    features = body.get("features") or [0, 0, 0, 0]
    index = 2 if features[2] > 4.5 else 0
    probabilities = [0.0, 0.0, 0.0]
    probabilities[index] = 1.0
    return 200, {
        "prediction": index,
        "class_name": CLASSES[index],
        "probabilities": probabilities,
        "model_version": "v1",
        "prediction_id": (pid := str(uuid.uuid4())),
        "feedback_token": f"token-{pid}",
        "timestamp": "2026-11-24T03:00:00.123456+00:00",
        "latency_ms": 0.4,
    }


def feedback_reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """Every prediction of the fake was setosa (0), so only that label is correct; a token must come along."""
    if not body.get("feedback_token"):
        return 403, {"prediction_id": body["prediction_id"], "error": "feedback_token is missing"}
    return 200, {
        "prediction_id": body["prediction_id"],
        "model_version": "v1",
        "prediction": 0,
        "label": body["label"],
        "correct": body["label"] in (0, "setosa"),
        "corrected": False,
    }


def put_config_reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The new config after a weights update: a new experiment period, both versions servable."""
    weights: dict[str, int] = body["weights"]
    total = sum(w for w in weights.values() if w > 0)
    reply = copy.deepcopy(CONFIG)
    reply.update({f"model_{k}_weight": v for k, v in weights.items()})
    reply["weights"] = weights
    reply["total_weight"] = sum(weights.values())
    reply["shares"] = {k: (v / total if total and v > 0 else 0.0) for k, v in weights.items()}
    reply["experiment"] = {"id": 4, "started_at": "2026-11-24T15:30:00+00:00", "source": "api"}
    return 200, reply


def abort_rollout_reply(body: dict[str, Any]) -> tuple[int, dict[str, Any]]:
    """The rollout stopped where it was: the baseline gets all traffic back."""
    reply = copy.deepcopy(ROLLOUT)
    reply.update(state="aborted", weights={"v1": 100, "v2": 0}, updated_at="2026-11-24T15:30:00+00:00")
    abort = {"at": "2026-11-24T15:30:00+00:00", "step": 1, "weights": {"v1": 100, "v2": 0}}
    reply["history"].append(abort | {"decision": "abort", "reason": "aborted by an admin", "evidence": None})
    return 200, reply


@dataclass
class Recorded:
    """One request the fake API received."""

    method: str
    path: str
    headers: dict[str, str]
    body: Any


class FakeApi:
    """Canned-JSON stand-in for the model API that records what it was sent."""

    def __init__(self) -> None:
        self.routes: dict[tuple[str, str], Reply] = {
            ("GET", "/health"): (200, HEALTH),
            ("GET", "/models"): (200, MANIFEST),
            ("POST", "/predict"): predict_reply,
            ("POST", "/feedback"): feedback_reply,
            ("GET", "/config"): (200, CONFIG),
            ("PUT", "/config"): put_config_reply,
            ("GET", "/drift"): (200, DRIFT),
            ("GET", "/ab/report"): (200, AB_REPORT),
            ("GET", "/ab/timeline"): (200, TIMELINE),
            ("GET", "/drift/history?points=20"): (200, DRIFT_HISTORY),
            ("GET", "/rollouts/current"): (200, ROLLOUT),
            ("DELETE", "/rollouts/current"): abort_rollout_reply,
        }
        self.requests: list[Recorded] = []
        self.delay = 0.0
        self.stopping = threading.Event()
        # Bound and listening from here on: connections queue until serve_forever picks them up.
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _make_handler(self))
        self._server.daemon_threads = True
        self._thread = threading.Thread(target=self._server.serve_forever, args=(0.05,), daemon=True)

    @property
    def url(self) -> str:
        """Base URL of the fake API."""
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def reply(self, method: str, path: str, status: int, body: Any) -> None:
        """Make the fake answer method+path with this status and JSON body (bytes are sent as they are)."""
        self.routes[(method, path)] = (status, body)

    def sent(self, method: str, path: str) -> list[Recorded]:
        """The requests received for method+path, in order."""
        return [r for r in self.requests if (r.method, r.path) == (method, path)]

    def answer(self, method: str, path: str, body: dict[str, Any]) -> tuple[int, Any]:
        """The status and payload this fake sends for a request."""
        route = self.routes.get((method, path), (404, {"error": "not found"}))
        return route(body) if callable(route) else route

    def start(self) -> None:
        """Serve in a background thread."""
        self._thread.start()

    def stop(self) -> None:
        """Wake sleeping handlers and shut the server down."""
        self.stopping.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _make_handler(api: FakeApi) -> type[BaseHTTPRequestHandler]:
    """A request handler class bound to ``api``."""

    class Handler(BaseHTTPRequestHandler):
        """Record each request, then answer it from ``api.routes``."""

        def do_GET(self) -> None:
            self._serve()

        def do_POST(self) -> None:
            self._serve()

        def do_PUT(self) -> None:
            self._serve()

        def do_DELETE(self) -> None:
            self._serve()

        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            body = json.loads(raw) if raw else None
            api.requests.append(Recorded(self.command, self.path, dict(self.headers), body))
            if api.delay:
                # An Event instead of sleep so teardown does not wait it out.
                api.stopping.wait(api.delay)
            status, payload = api.answer(self.command, self.path, body or {})
            data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
            try:
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up after its timeout

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
