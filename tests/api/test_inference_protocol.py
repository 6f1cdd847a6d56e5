"""The V2 codec alone: tensors in (JSON and binary), tensors out, and what it refuses before allocating."""

from __future__ import annotations

import json

import numpy as np
import pytest

from app.api.inference_protocol import OUTPUTS, Tensor, encode_infer, model_metadata, parse_infer
from app.errors import BadRequest

FEATURES = ["a", "b", "c"]


def body(**payload) -> bytes:
    return json.dumps(payload).encode()


def test_per_feature_inputs_become_rows_in_model_order():
    inputs = [
        {"name": "c", "shape": [2], "datatype": "FP64", "data": [3, 30]},
        {"name": "a", "shape": [2], "datatype": "INT32", "data": [1, 10]},
        {"name": "b", "shape": [2], "datatype": "FP32", "data": [2, 20]},
    ]
    req = parse_infer(body(inputs=inputs), None, FEATURES, 10)
    np.testing.assert_array_equal(req.X, [[1, 2, 3], [10, 20, 30]])
    assert req.X.dtype == np.float64 and req.X.flags["C_CONTIGUOUS"]


def test_outputs_default_to_all_and_follow_binary_data_output():
    tensor = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}
    assert parse_infer(body(inputs=[tensor]), None, FEATURES, 10).outputs == tuple((n, False) for n in OUTPUTS)
    req = parse_infer(body(inputs=[tensor], parameters={"binary_data_output": True}), None, FEATURES, 10)
    assert req.outputs == tuple((n, True) for n in OUTPUTS)
    req = parse_infer(
        body(inputs=[tensor], outputs=[{"name": "predict_proba", "parameters": {"binary_data": False}}]),
        None,
        FEATURES,
        10,
    )
    assert req.outputs == (("predict_proba", False),)


def test_the_user_comes_from_parameters_before_the_header():
    tensor = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}
    assert parse_infer(body(inputs=[tensor], parameters={"user_id": 7}), None, FEATURES, 10, "h").user_id == "7"
    assert parse_infer(body(inputs=[tensor]), None, FEATURES, 10, "h").user_id == "h"


def test_a_huge_shape_is_refused_before_anything_is_allocated():
    tensor = {"name": "x", "shape": [10**12, 3], "datatype": "FP64", "parameters": {"binary_data_size": 24}}
    with pytest.raises(BadRequest, match="a dimension of its shape is above the limit of 30"):
        parse_infer(body(inputs=[tensor]), None, FEATURES, 10)
    tensor = {"name": "x", "shape": [11, 3], "datatype": "FP64", "data": [0] * 33}
    with pytest.raises(BadRequest, match="has 33 values; the limit is 30"):
        parse_infer(body(inputs=[tensor]), None, FEATURES, 10)


@pytest.mark.parametrize("flag", ["yes", 1, []])
def test_binary_flags_must_be_booleans(flag):
    tensor = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3]}
    with pytest.raises(BadRequest, match="binary_data_output must be true or false"):
        parse_infer(body(inputs=[tensor], parameters={"binary_data_output": flag}), None, FEATURES, 10)
    with pytest.raises(BadRequest, match=r"outputs\[0\].parameters.binary_data must be true or false"):
        parse_infer(
            body(inputs=[tensor], outputs=[{"name": "predict", "parameters": {"binary_data": flag}}]),
            None,
            FEATURES,
            10,
        )


def test_null_optional_fields_mean_not_given():
    """Some clients send every optional field, unset ones as null."""
    tensor = {"name": "x", "shape": [1, 3], "datatype": "FP64", "data": [1, 2, 3], "parameters": None}
    req = parse_infer(body(inputs=[tensor], parameters=None, outputs=None, id=None), None, FEATURES, 10)
    assert req.request_id is None and req.user_id is None and req.outputs == tuple((n, False) for n in OUTPUTS)


def test_binary_inputs_are_read_in_order_after_the_header():
    """Three per-feature tensors of three datatypes, back to back after the JSON: each at its own offset."""
    columns = {"a": np.array([1, 10], "<f4"), "b": np.array([2, 20], "<i4"), "c": np.array([3, 30], "<f8")}
    kinds = {"a": "FP32", "b": "INT32", "c": "FP64"}
    inputs = [
        {"name": n, "shape": [2], "datatype": kinds[n], "parameters": {"binary_data_size": a.nbytes}}
        for n, a in columns.items()
    ]
    header = body(inputs=inputs)
    raw = b"".join(a.tobytes() for a in columns.values())
    req = parse_infer(header + raw, str(len(header)), FEATURES, 10)
    np.testing.assert_array_equal(req.X, [[1, 2, 3], [10, 20, 30]])


def test_encode_json_and_binary_tensors():
    proba = np.array([[0.25, 0.75], [1.0, 0.0]])
    ids = ["id-1", "id-22"]
    tensors = [
        (Tensor("predict_proba", "FP64", [2, 2], proba), False),
        (Tensor("prediction_id", "BYTES", [2], ids), False),
    ]
    data, header_length = encode_infer("m", "v1", "req", tensors)
    assert header_length is None
    assert json.loads(data) == {
        "model_name": "m",
        "model_version": "v1",
        "id": "req",
        "outputs": [
            {"name": "predict_proba", "datatype": "FP64", "shape": [2, 2], "data": [0.25, 0.75, 1.0, 0.0]},
            {"name": "prediction_id", "datatype": "BYTES", "shape": [2], "data": ids},
        ],
    }
    data, header_length = encode_infer("m", "v1", None, [(t, True) for t, _ in tensors])
    assert header_length is not None
    head = json.loads(data[:header_length])
    assert "id" not in head and [o["parameters"]["binary_data_size"] for o in head["outputs"]] == [32, 17]
    raw = data[header_length:]
    np.testing.assert_array_equal(np.frombuffer(raw[:32], "<f8").reshape(2, 2), proba)
    assert raw[32:] == b"\x04\x00\x00\x00id-1\x05\x00\x00\x00id-22"


def test_model_metadata_shapes():
    meta = model_metadata("iris", ["v1"], FEATURES, 4)
    assert meta["inputs"] == [{"name": "features", "datatype": "FP32", "shape": [-1, 3]}]
    assert {o["name"]: o["shape"] for o in meta["outputs"]}["predict_proba"] == [-1, 4]
