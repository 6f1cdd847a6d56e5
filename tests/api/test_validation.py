"""Request validation as plain functions: what each parser accepts and the message it gives otherwise."""

from __future__ import annotations

import re

import pytest

from app.api.validation import (
    parse_feedback,
    parse_json,
    parse_label,
    parse_predict,
    parse_since_arg,
    parse_user_id,
    parse_weights_update,
)
from app.errors import BadRequest

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
def test_parse_weights_update_rejects(raw, message):
    with pytest.raises(BadRequest, match=re.escape(message)):
        parse_weights_update(raw)


def test_parse_weights_update_accepts_a_partial_update():
    assert parse_weights_update({"weights": {"v1": 90}}) == {"v1": 90}


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
