"""Every request's validation, in one place: each hostile input becomes a BadRequest with a clear message.

Pure parsing of bytes and decoded JSON; the blueprints call these and pass the results to the service.
"""

from __future__ import annotations

import itertools
import json
import math
from dataclasses import dataclass
from typing import Any, NoReturn

import numpy as np
import numpy.typing as npt

from app.clock import parse_since
from app.errors import BadRequest
from app.features import FLOAT32_MAX
from app.reports.drift import MAX_HISTORY_POINTS
from app.serving.rollouts import RolloutPlan
from app.serving.router import ConfigUpdate
from app.store.contract import POLICIES

MAX_USER_ID_LENGTH = 256
MAX_WEIGHT = 1_000_000
MAX_PREDICTION_ID_LENGTH = 64
MAX_TOKEN_LENGTH = 64
MAX_VERSION_LENGTH = 64
MAX_SHADOW_VERSIONS = 5
MAX_ROLLOUT_STEPS = 20
DEFAULT_HISTORY_POINTS = 20


@dataclass(frozen=True)
class PredictRequest:
    """A validated /predict body."""

    X: npt.NDArray[np.float64]
    batch: bool
    user_id: str | None


@dataclass(frozen=True)
class FeedbackRequest:
    """A validated /feedback body: (prediction_id, class index, feedback_token) items; ``bulk`` for a list."""

    items: list[tuple[str, int, str | None]]
    bulk: bool


def _reject_constant(name: str) -> NoReturn:
    raise BadRequest(f"{name} is not a valid number in JSON")


# Built once: json.loads(..., parse_constant=...) would build a new decoder on every call.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def parse_json(body: bytes) -> Any:
    """Strict JSON: no NaN/Infinity literals, no absurd nesting, UTF-8 only."""
    if not body:
        raise BadRequest("request body is empty; send a JSON object")
    try:
        return _DECODER.decode(body.decode("utf-8"))
    except BadRequest:
        raise
    except RecursionError:
        raise BadRequest("JSON is nested too deeply") from None
    except UnicodeDecodeError:
        raise BadRequest("body is not valid JSON: it is not UTF-8") from None
    except ValueError as exc:
        # JSONDecodeError, and integers with more digits than Python converts.
        raise BadRequest(f"body is not valid JSON: {str(exc).splitlines()[0][:200]}") from None


def require_object(payload: Any) -> dict[str, Any]:
    """The body must be a JSON object."""
    if not isinstance(payload, dict):
        raise BadRequest(f"body must be a JSON object, got {_kind(payload)}")
    return payload


def parse_predict(
    payload: Any, feature_names: list[str], max_batch: int, header_user: str | None = None
) -> PredictRequest:
    """Validate a {"features": ...} or {"instances": [...]} body."""
    body = require_object(payload)
    unknown = set(body) - {"features", "instances", "user_id"}
    if unknown:
        raise BadRequest(f"unknown field(s): {quote_some(sorted(unknown))}; expected 'features' or 'instances'")
    if ("features" in body) == ("instances" in body):
        raise BadRequest("send exactly one of 'features' (one row) or 'instances' (a batch)")
    user_id = parse_user_id(body["user_id"]) if "user_id" in body else parse_user_id(header_user, "X-User-ID header")
    if "features" in body:
        row = parse_row(body["features"], feature_names, "features")
        return PredictRequest(np.array([row], dtype=np.float64), batch=False, user_id=user_id)
    instances = body["instances"]
    if not isinstance(instances, list):
        raise BadRequest(f"'instances' must be a list of rows, got {_kind(instances)}")
    if not instances:
        raise BadRequest("'instances' is empty; send at least one row")
    if len(instances) > max_batch:
        raise BadRequest(f"'instances' has {len(instances)} rows; the limit is {max_batch}")
    rows = [parse_row(row, feature_names, f"instances[{i}]") for i, row in enumerate(instances)]
    return PredictRequest(np.array(rows, dtype=np.float64), batch=True, user_id=user_id)


def parse_row(row: Any, feature_names: list[str], where: str) -> list[float]:
    """One row as a list of numbers in model order, or an object keyed by feature name."""
    n = len(feature_names)
    if isinstance(row, list):
        if len(row) != n:
            raise BadRequest(f"{where} has {len(row)} values; expected {n} ({', '.join(feature_names)})")
        return [parse_number(v, f"{where}[{i}]") for i, v in enumerate(row)]
    if isinstance(row, dict):
        missing = [name for name in feature_names if name not in row]
        unknown = [key for key in row if key not in feature_names]
        if missing or unknown:
            parts = []
            if missing:
                parts.append(f"missing feature(s) {', '.join(missing)}")
            if unknown:
                parts.append(f"unknown feature(s) {quote_some(unknown)}")
            raise BadRequest(f"{where}: {'; '.join(parts)}; expected {', '.join(feature_names)}")
        return [parse_number(row[name], f"{where}.{name}") for name in feature_names]
    raise BadRequest(f"{where} must be a list of {n} numbers or an object keyed by feature name, got {_kind(row)}")


def parse_number(value: Any, where: str) -> float:
    """A finite JSON number within float32 range; strings, booleans and null are refused."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise BadRequest(f"{where} must be a number, got {_kind(value)}")
    try:
        number = float(value)
    except OverflowError:
        raise BadRequest(f"{where} is too large") from None
    if not math.isfinite(number):
        raise BadRequest(f"{where} must be finite")
    if abs(number) > FLOAT32_MAX:
        raise BadRequest(f"{where} is too large (limit ±{FLOAT32_MAX:.3g})")
    return number


def parse_user_id(value: Any, where: str = "user_id") -> str | None:
    """An optional user id for sticky assignment: a non-empty string or an integer."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (str, int)):
        raise BadRequest(f"{where} must be a string or an integer, got {_kind(value)}")
    text = str(value)
    if not text or len(text) > MAX_USER_ID_LENGTH:
        raise BadRequest(f"{where} must have 1 to {MAX_USER_ID_LENGTH} characters")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:  # a lone surrogate from a \ud800 escape
        raise BadRequest(f"{where} is not valid Unicode") from None
    return text


def parse_label(value: Any, class_names: list[str], where: str = "label") -> int:
    """A class index or a class name → class index."""
    if isinstance(value, bool) or value is None:
        raise BadRequest(f"{where} must be a class index or a class name, got {_kind(value)}")
    if isinstance(value, int):
        if not 0 <= value < len(class_names):
            raise BadRequest(f"{where} {value} is out of range; classes are 0..{len(class_names) - 1}")
        return value
    if isinstance(value, str):
        lowered = {name.lower(): i for i, name in enumerate(class_names)}
        if value.lower() in lowered:
            return lowered[value.lower()]
        raise BadRequest(f"{where} {value[:64]!r} is not a class; classes: {', '.join(class_names)}")
    raise BadRequest(f"{where} must be a class index or a class name, got {_kind(value)}")


def parse_feedback(payload: Any, class_names: list[str], max_items: int) -> FeedbackRequest:
    """One {"prediction_id", "label"} or a bulk {"feedback": [...]} body."""
    body = require_object(payload)
    if "feedback" not in body:
        return FeedbackRequest([_feedback_item(body, class_names, "body")], bulk=False)
    items = body["feedback"]
    if set(body) != {"feedback"} or not isinstance(items, list) or not items:
        raise BadRequest('send {"feedback": [{"prediction_id": "...", "label": 2}, ...]}')
    if len(items) > max_items:
        raise BadRequest(f"'feedback' has {len(items)} items; the limit is {max_items}")
    return FeedbackRequest(
        [_feedback_item(item, class_names, f"feedback[{i}]") for i, item in enumerate(items)], bulk=True
    )


def _feedback_item(item: Any, class_names: list[str], where: str) -> tuple[str, int, str | None]:
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be an object with prediction_id, label and feedback_token")
    unknown = set(item) - {"prediction_id", "label", "feedback_token"}
    if unknown:
        raise BadRequest(f"{where}: unknown field(s) {quote_some(sorted(unknown))}")
    pid = item.get("prediction_id")
    if not isinstance(pid, str) or not 0 < len(pid) <= MAX_PREDICTION_ID_LENGTH:
        raise BadRequest(f"{where}: prediction_id must be the id string returned by /predict")
    if "label" not in item:
        raise BadRequest(f"{where}: label is missing")
    token = item.get("feedback_token")
    if token is not None and (not isinstance(token, str) or not 0 < len(token) <= MAX_TOKEN_LENGTH):
        raise BadRequest(f"{where}: feedback_token must be the token string returned by /predict")
    return pid, parse_label(item["label"], class_names, f"{where}: label"), token


def parse_config_update(payload: Any) -> ConfigUpdate:
    """A PUT /config body: any of {"weights": {"v1": 90, "v2": 10}}, {"shadow": ["v3"]} and
    {"policy": "thompson", "min_share": 0.1} (or "fixed"), in one object."""
    body = require_object(payload)
    unknown = sorted(set(body) - {"weights", "shadow", "policy", "min_share"})
    if not body or unknown:
        raise BadRequest(
            'send {"weights": {"v1": 90, "v2": 10}}, {"shadow": ["v3"]} or {"policy": "thompson", "min_share": 0.1}, '
            + (f"not {quote_some(unknown)}" if unknown else "or several of them in one object")
        )
    policy = body.get("policy")
    if "policy" in body and policy not in POLICIES:
        raise BadRequest(f'"policy" must be one of {", ".join(POLICIES)}, got {_kind(policy)}')
    min_share = body.get("min_share")
    if "min_share" in body:
        if policy != "thompson":
            raise BadRequest('"min_share" goes with "policy": "thompson"')
        if isinstance(min_share, bool) or not isinstance(min_share, (int, float)) or not 0 <= min_share <= 0.5:
            raise BadRequest('"min_share" must be a number from 0 to 0.5 (each version\'s least share of traffic)')
    return ConfigUpdate(
        weights=_weights(body["weights"]) if "weights" in body else None,
        shadow=_shadow_versions(body["shadow"]) if "shadow" in body else None,
        policy=policy,
        min_share=None if min_share is None else float(min_share),
    )


def _weights(raw: Any) -> dict[str, int]:
    if not isinstance(raw, dict) or not raw:
        raise BadRequest('"weights" must be a non-empty object like {"v1": 90, "v2": 10}')
    for version, weight in raw.items():
        if isinstance(weight, bool) or not isinstance(weight, int):
            raise BadRequest(f"weight of {quote_some([version])} must be a non-negative integer, got {_kind(weight)}")
        if not 0 <= weight <= MAX_WEIGHT:
            raise BadRequest(f"weight of {quote_some([version])} must be between 0 and {MAX_WEIGHT}")
    return dict(raw)


def _shadow_versions(raw: Any) -> list[str]:
    if not isinstance(raw, list) or len(raw) > MAX_SHADOW_VERSIONS:
        raise BadRequest(f'"shadow" must be a list of at most {MAX_SHADOW_VERSIONS} version names, like ["v3"]')
    if not all(isinstance(v, str) and 0 < len(v) <= MAX_VERSION_LENGTH for v in raw):
        raise BadRequest('"shadow" must list version names (strings), like ["v3"]')
    if len(set(raw)) != len(raw):
        raise BadRequest(f'"shadow" names a version twice: {quote_some(raw)}')
    return list(raw)


def parse_rollout_plan(payload: Any) -> RolloutPlan:
    """A POST /rollouts body: who replaces whom, the steps (percent of traffic) and the guards."""
    body = require_object(payload)
    example = (
        '{"candidate": "v2", "baseline": "v1", "steps": [10, 50, 100], "min_labels": 200, "margin": 0.05, '
        '"max_error_rate": 0.02, "max_p99_ms": 50}'
    )
    unknown = sorted(set(body) - set(RolloutPlan.__dataclass_fields__))
    if unknown or "candidate" not in body or "baseline" not in body or "steps" not in body:
        raise BadRequest(f"send a plan like {example}" + (f"; unknown fields {quote_some(unknown)}" if unknown else ""))
    for field in ("candidate", "baseline"):
        value = body[field]
        if not isinstance(value, str) or not 0 < len(value) <= MAX_VERSION_LENGTH:
            raise BadRequest(f'"{field}" must be a version name, got {_kind(value)}')
    if body["candidate"] == body["baseline"]:
        raise BadRequest('"candidate" and "baseline" must be different versions')
    steps = body["steps"]
    if (
        not isinstance(steps, list)
        or not 0 < len(steps) <= MAX_ROLLOUT_STEPS
        or any(isinstance(x, bool) or not isinstance(x, int) or not 0 < x <= 100 for x in steps)
        or any(a >= b for a, b in itertools.pairwise(steps))
    ):
        raise BadRequest(
            f'"steps" must be 1 to {MAX_ROLLOUT_STEPS} increasing percentages from 1 to 100, like [10, 50, 100]'
        )
    if steps[0] == 100:
        raise BadRequest('"steps" needs a step below 100: a candidate at 100% leaves no baseline to judge it against')
    numbers = {
        "min_labels": (1, 10_000_000, True),
        "margin": (0.0, 1.0, False),
        "max_error_rate": (0.0, 1.0, False),
        "max_p99_ms": (0.001, 600_000.0, False),
        "alpha": (0.0001, 0.5, False),
        "max_step_minutes": (0.1, 525_600.0, False),
    }
    values: dict[str, Any] = {}
    for field, (low, high, integer) in numbers.items():
        if field not in body:
            continue
        value = body[field]
        kind_ok = isinstance(value, int) if integer else isinstance(value, (int, float))
        if isinstance(value, bool) or not kind_ok or not low <= value <= high:
            kind = "an integer" if integer else "a number"
            raise BadRequest(f'"{field}" must be {kind} from {low:g} to {high:g}, got {_kind(value)}')
        values[field] = int(value) if integer else float(value)
    return RolloutPlan(candidate=body["candidate"], baseline=body["baseline"], steps=tuple(steps), **values)


def parse_since_arg(raw: str | None) -> float | None:
    """The optional ``?since=`` of a report, as unix seconds."""
    if not raw:
        return None
    try:
        return parse_since(raw)
    except ValueError as exc:
        raise BadRequest(str(exc)) from None


def parse_points_arg(raw: str | None) -> int:
    """The optional ``?points=`` of the drift history: an integer from 1 to MAX_HISTORY_POINTS (default 20)."""
    if raw is None:
        return DEFAULT_HISTORY_POINTS
    text = raw.strip()
    if not text.isascii() or not text.isdigit() or not 1 <= int(text) <= MAX_HISTORY_POINTS:
        raise BadRequest(f"points must be a whole number from 1 to {MAX_HISTORY_POINTS}, got {quote_some([raw])}")
    return int(text)


def quote_some(names: list[str], most: int = 5, width: int = 40) -> str:
    """A few of the client's names for a message, each quoted and cut short: "'a', 'b' and 70000 more"."""
    shown = ", ".join(repr(n if len(n) <= width else n[:width] + "…") for n in names[:most])
    return f"{shown} and {len(names) - most} more" if len(names) > most else shown


def _kind(value: Any) -> str:
    """A JSON-ish name for a value's type, for error messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, list):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
