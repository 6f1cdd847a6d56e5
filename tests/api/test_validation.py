"""Request validation as plain functions: what each parser accepts and the message it gives otherwise."""

from __future__ import annotations

import re

import pytest

from app.api.validation import (
    parse_config_update,
    parse_feedback,
    parse_json,
    parse_label,
    parse_predict,
    parse_rollout_plan,
    parse_since_arg,
    parse_user_id,
)
from app.errors import BadRequest
from app.serving.rollouts import RolloutPlan
from app.serving.router import ConfigUpdate

NAMES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]
CLASSES = ["setosa", "versicolor", "virginica"]


def test_parse_predict_one_row_and_a_batch():
    one = parse_predict({"features": [5.1, 3.5, 1.4, 0.2]}, NAMES, 10)
    assert one.X.shape == (1, 4) and not one.batch and one.user_id is None
    batch = parse_predict({"instances": [[1, 2, 3, 4], dict(zip(NAMES, [4, 3, 2, 1], strict=True))]}, NAMES, 10, "7")
    assert batch.X.tolist() == [[1, 2, 3, 4], [4, 3, 2, 1]] and batch.batch and batch.user_id == "7"


def test_body_user_id_wins_over_the_header():
    assert parse_predict({"features": [1, 2, 3, 4], "user_id": 42}, NAMES, 10, "header").user_id == "42"


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({}, 'send {"weights": {"v1": 90, "v2": 10}}'),
        ({"shadow": "v3"}, "list of at most 5"),
        ({"shadow": ["v3", "v3"]}, "names a version twice"),
        ({"shadow": [3]}, "must list version names"),
        ({"policy": "greedy"}, "must be one of fixed, thompson"),
        ({"min_share": 0.1}, "goes with"),
        ({"policy": "thompson", "min_share": 0.9}, "from 0 to 0.5"),
        ({"policy": "thompson", "min_share": True}, "from 0 to 0.5"),
        ({"weights": {}}, "non-empty object"),
        ({"weights": [90, 10]}, "non-empty object"),
        ({"weights": {"v1": -1}}, "between 0 and 1000000"),
        ({"weights": {"v1": 10**9}}, "between 0 and 1000000"),
        ({"weights": {"v1": 1.5}}, "non-negative integer"),
        ({"weights": {"v1": "90"}}, "non-negative integer"),
        ({"weights": {"v1": True}}, "non-negative integer"),
        ({"weights": {"v1": None}}, "non-negative integer"),
        ({"weights": {"v1": 1}, "extra": 1}, "send {"),
    ],
)
def test_parse_config_update_rejects(raw, message):
    with pytest.raises(BadRequest, match=re.escape(message)):
        parse_config_update(raw)


def test_parse_config_update_accepts_any_part():
    assert parse_config_update({"weights": {"v1": 90}}) == ConfigUpdate(weights={"v1": 90})
    assert parse_config_update({"shadow": []}) == ConfigUpdate(shadow=[])
    both = parse_config_update({"shadow": ["v3"], "policy": "thompson", "min_share": 0})
    assert both == ConfigUpdate(shadow=["v3"], policy="thompson", min_share=0.0)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"candidate": "v2", "baseline": "v1"}, "send a plan like"),
        ({"candidate": "v2", "baseline": "v1", "steps": [10], "speed": 1}, "unknown fields 'speed'"),
        ({"candidate": "v2", "baseline": "v2", "steps": [10]}, "must be different"),
        ({"candidate": 2, "baseline": "v1", "steps": [10]}, '"candidate" must be a version name'),
        ({"candidate": "v2", "baseline": "v1", "steps": [50, 10]}, "increasing percentages"),
        ({"candidate": "v2", "baseline": "v1", "steps": [0, 10]}, "increasing percentages"),
        ({"candidate": "v2", "baseline": "v1", "steps": [10, 101]}, "increasing percentages"),
        ({"candidate": "v2", "baseline": "v1", "steps": []}, "increasing percentages"),
        ({"candidate": "v2", "baseline": "v1", "steps": [True]}, "increasing percentages"),
        ({"candidate": "v2", "baseline": "v1", "steps": [100]}, "needs a step below 100"),
        ({"candidate": "v2", "baseline": "v1", "steps": [10], "min_labels": 0}, '"min_labels" must be an integer'),
        ({"candidate": "v2", "baseline": "v1", "steps": [10], "min_labels": 2.5}, '"min_labels" must be an integer'),
        ({"candidate": "v2", "baseline": "v1", "steps": [10], "margin": "0.1"}, '"margin" must be a number'),
        ({"candidate": "v2", "baseline": "v1", "steps": [10], "max_p99_ms": 0}, '"max_p99_ms" must be a number'),
        ({"candidate": "v2", "baseline": "v1", "steps": [10], "alpha": 0.9}, '"alpha" must be a number'),
    ],
)
def test_parse_rollout_plan_rejects(raw, message):
    with pytest.raises(BadRequest, match=re.escape(message)):
        parse_rollout_plan(raw)


def test_parse_rollout_plan_fills_defaults():
    plan = parse_rollout_plan({"candidate": "v2", "baseline": "v1", "steps": [10, 50, 100], "margin": 0})
    assert plan == RolloutPlan("v2", "v1", (10, 50, 100), margin=0.0)
    assert plan.min_labels == 200 and plan.max_error_rate == 0.02 and plan.max_p99_ms == 50.0


def test_parse_feedback_single_and_bulk():
    single = parse_feedback({"prediction_id": "p", "label": "Virginica", "feedback_token": "t"}, CLASSES, 10)
    assert single.items == [("p", 2, "t")] and not single.bulk
    bulk = parse_feedback(
        {"feedback": [{"prediction_id": "a", "label": 0}, {"prediction_id": "b", "label": 1}]}, CLASSES, 10
    )
    assert bulk.items == [("a", 0, None), ("b", 1, None)] and bulk.bulk
    with pytest.raises(BadRequest, match="the limit is 1"):
        parse_feedback({"feedback": [{"prediction_id": "a", "label": 0}] * 2}, CLASSES, 1)
    with pytest.raises(BadRequest, match="prediction_id must be"):
        parse_feedback({"prediction_id": "x" * 65, "label": 0}, CLASSES, 10)


@pytest.mark.parametrize(
    ("value", "message"),
    [(3, "out of range"), (True, "class index or a class name"), ("rose", "is not a class"), (None, "got null")],
)
def test_parse_label_rejects(value, message):
    with pytest.raises(BadRequest, match=message):
        parse_label(value, CLASSES)


@pytest.mark.parametrize("value", ["", "x" * 257, True, 1.5, [1]])
def test_parse_user_id_rejects(value):
    with pytest.raises(BadRequest, match="user_id"):
        parse_user_id(value)


def test_parse_json_is_strict():
    assert parse_json(b'{"a": 1}') == {"a": 1}
    with pytest.raises(BadRequest, match="NaN is not a valid number"):
        parse_json(b'{"a": NaN}')
    with pytest.raises(BadRequest, match="empty"):
        parse_json(b"")


def test_parse_since_arg():
    assert parse_since_arg(None) is None and parse_since_arg("") is None
    assert parse_since_arg("1700000000") == 1_700_000_000.0
    assert parse_since_arg("2026-01-01T00:00:00Z") == 1_767_225_600.0
    with pytest.raises(BadRequest, match="timezone"):
        parse_since_arg("2026-01-01T00:00:00")
