"""The Open Inference Protocol (KServe's "V2" protocol) over REST: request tensors in, response tensors out.

Specification: kserve/open-inference-protocol, ``specification/protocol/inference_rest.md`` (and its
``open_inference_rest.yaml``), with Triton's binary tensor data extension: a JSON header of
``Inference-Header-Content-Length`` bytes, followed by the raw little-endian bytes of every tensor
whose ``parameters.binary_data_size`` is set, in the order they are listed; BYTES elements are each
a 4-byte little-endian length and the bytes.

Pure: the body, two headers and the manifest's schema in, numpy arrays and bytes out. Tensors are
checked whole (dtype, count, finiteness, float32 range) with numpy, never number by number in
Python. Every hostile input becomes a ``BadRequest`` naming what is wrong, as for /predict.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from app.api.validation import parse_json, parse_user_id, quote_some, require_object
from app.errors import BadRequest
from app.features import first_bad_value

HEADER_LENGTH = "Inference-Header-Content-Length"
EXTENSIONS = ("binary_tensor_data",)
DATATYPES: dict[str, np.dtype[Any]] = {
    "FP32": np.dtype("<f4"),
    "FP64": np.dtype("<f8"),
    "INT32": np.dtype("<i4"),
    "INT64": np.dtype("<i8"),
}
INPUT_NAME = "features"
"""The one [-1, n_features] input tensor of the model metadata (any name is accepted for a 2-D tensor)."""
INPUT_DATATYPE = "FP32"
OUTPUTS = ("predict", "predict_proba", "prediction_id", "feedback_token")
"""Every output, in answer order: class index, class probabilities, the id and token /feedback takes."""
MAX_ID_LENGTH = 256

_BYTE_COUNT = re.compile(r"[0-9]{1,12}")
_REQUEST_KEYS = frozenset({"id", "parameters", "inputs", "outputs"})
_INPUT_KEYS = frozenset({"name", "shape", "datatype", "parameters", "data"})
_OUTPUT_KEYS = frozenset({"name", "parameters"})
_JSON_TYPES = {"float": frozenset({int, float}), "int": frozenset({int})}


@dataclass(frozen=True)
class InferRequest:
    """A validated infer request: the rows in model feature order, and what to answer with."""

    X: npt.NDArray[np.float64]
    request_id: str | None
    user_id: str | None
    outputs: tuple[tuple[str, bool], ...]
    """(output name, as binary data) in the order to answer them."""


@dataclass(frozen=True)
class Tensor:
    """One response tensor: a numeric array, or strings for BYTES."""

    name: str
    datatype: str
    shape: list[int]
    values: npt.NDArray[Any] | Sequence[str]


def parse_infer(
    body: bytes,
    header_length: str | None,
    feature_names: Sequence[str],
    max_batch: int,
    header_user: str | None = None,
) -> InferRequest:
    """Validate an infer request body (JSON, or JSON and binary tensors) against the model's features."""
    header, binary = _split_body(body, header_length)
    payload = require_object(parse_json(header))
    unknown = set(payload) - _REQUEST_KEYS
    if unknown:
        raise BadRequest(f"unknown field(s): {quote_some(sorted(unknown))}; expected id, parameters, inputs, outputs")
    request_id = payload.get("id")
    if request_id is not None and not _is_text(request_id):
        raise BadRequest(f"'id' must be a string of at most {MAX_ID_LENGTH} characters")
    parameters = _parameters(payload.get("parameters"), "parameters")
    if "user_id" in parameters:
        user_id = parse_user_id(parameters["user_id"], "parameters.user_id")
    else:
        user_id = parse_user_id(header_user, "X-User-ID header")
    binary_default = parameters.get("binary_data_output", False)
    if not isinstance(binary_default, bool):
        raise BadRequest("parameters.binary_data_output must be true or false")
    inputs = payload.get("inputs")
    if not isinstance(inputs, list) or not inputs:
        raise BadRequest("'inputs' must be a non-empty list of tensors")
    if len(inputs) > max(len(feature_names), 1):
        raise BadRequest(f"{len(inputs)} inputs; send one [N, {len(feature_names)}] tensor or one [N] per feature")
    limit = max_batch * len(feature_names)
    tensors, offset = [], 0
    for i, item in enumerate(inputs):
        name, array, offset = _parse_input(item, f"inputs[{i}]", binary, offset, limit)
        tensors.append((name, array))
    if offset != len(binary):
        raise BadRequest(f"{len(binary) - offset} bytes of binary data after the last tensor; check binary_data_size")
    X = _rows(tensors, feature_names, max_batch)
    return InferRequest(X, request_id, user_id, _parse_outputs(payload.get("outputs"), binary_default))


def _split_body(body: bytes, header_length: str | None) -> tuple[bytes, bytes]:
    """The JSON header and the binary part after it."""
    if header_length is None:
        return body, b""
    if not _BYTE_COUNT.fullmatch(header_length):
        raise BadRequest(f"{HEADER_LENGTH} must be a byte count")
    n = int(header_length)
    if not 0 < n <= len(body):
        raise BadRequest(f"{HEADER_LENGTH} is {n} but the body has {len(body)} bytes")
    return body[:n], body[n:]


def _parameters(value: Any, where: str) -> dict[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise BadRequest(f"{where} must be an object")
    return value


def _parse_input(item: Any, where: str, binary: bytes, offset: int, limit: int) -> tuple[str, Any, int]:
    """One input tensor as (name, array of its shape), and the binary offset after it."""
    if not isinstance(item, dict):
        raise BadRequest(f"{where} must be a tensor object with name, shape, datatype and data")
    unknown = set(item) - _INPUT_KEYS
    if unknown:
        raise BadRequest(f"{where}: unknown field(s) {quote_some(sorted(unknown))}")
    name = item.get("name")
    if not _is_text(name) or not name:
        raise BadRequest(f"{where}: 'name' must be a non-empty string of at most {MAX_ID_LENGTH} characters")
    where = f"input {quote_some([name])}"
    shape = item.get("shape")
    if (
        not isinstance(shape, list)
        or not 1 <= len(shape) <= 2
        or not all(isinstance(d, int) and not isinstance(d, bool) and d >= 0 for d in shape)
    ):
        raise BadRequest(f"{where}: 'shape' must be [N] or [N, n_features] with non-negative sizes")
    if max(shape) > limit:  # checked alone too: a zero dimension must not hide an absurd other one
        raise BadRequest(f"{where}: a dimension of its shape is above the limit of {limit} values")
    count = math.prod(shape)
    if count > limit:
        raise BadRequest(f"{where} has {count} values; the limit is {limit}")
    datatype = item.get("datatype")
    if datatype not in DATATYPES:
        shown = quote_some([datatype]) if isinstance(datatype, str) else "missing"
        raise BadRequest(f"{where}: datatype {shown} is not supported; send {', '.join(DATATYPES)}")
    dtype = DATATYPES[datatype]
    parameters = _parameters(item.get("parameters"), f"{where}: parameters")
    size = parameters.get("binary_data_size")
    if size is None:
        if "data" not in item:
            raise BadRequest(f"{where}: 'data' is missing (or set parameters.binary_data_size)")
        array = _json_data(item["data"], dtype, shape, where)
    else:
        if "data" in item:
            raise BadRequest(f"{where}: send either 'data' or parameters.binary_data_size, not both")
        if isinstance(size, bool) or not isinstance(size, int) or size != count * dtype.itemsize:
            raise BadRequest(f"{where}: binary_data_size must be {count * dtype.itemsize} for {datatype} {shape}")
        if offset + size > len(binary):
            raise BadRequest(f"{where}: binary_data_size {size} runs past the end of the body")
        array = np.frombuffer(binary, dtype=dtype, count=count, offset=offset)
        offset += size
    return name, _checked(array.reshape(shape), where), offset


def _json_data(data: Any, dtype: np.dtype[Any], shape: list[int], where: str) -> npt.NDArray[Any]:
    """JSON numbers of one tensor, flat or nested as its shape, type-checked in one pass."""
    if not isinstance(data, list):
        raise BadRequest(f"{where}: 'data' must be a list of numbers")
    try:
        nested = np.asarray(data, dtype=object)
    except ValueError:
        raise BadRequest(f"{where}: 'data' is ragged") from None
    if nested.ndim > 1 and list(nested.shape) != shape:
        raise BadRequest(f"{where}: 'data' is nested as {list(nested.shape)}; the shape is {shape}")
    values = nested.reshape(-1)
    count = math.prod(shape)
    if values.size != count:
        raise BadRequest(f"{where}: 'data' has {values.size} values; the shape needs {count}")
    allowed = _JSON_TYPES["float" if dtype.kind == "f" else "int"]
    found = set(map(type, values.tolist()))
    if not found <= allowed:
        wrong = sorted(t.__name__ for t in found - allowed)
        raise BadRequest(f"{where}: 'data' holds {', '.join(wrong)} values; {dtype.name} needs numbers")
    try:
        array = np.asarray(values, dtype=np.float64 if dtype.kind == "f" else np.int64)
    except OverflowError:
        raise BadRequest(f"{where}: a value is too large") from None
    if dtype.kind == "i" and array.size:
        info = np.iinfo(dtype)
        if array.min() < info.min or array.max() > info.max:
            raise BadRequest(f"{where}: a value is outside the range of {dtype.name}")
    return array


def _checked(array: npt.NDArray[Any], where: str) -> npt.NDArray[np.float64]:
    """As float64, every value a finite number within float32's range (the one rule of ``app.features``)."""
    X = array.astype(np.float64)
    bad = first_bad_value(X)
    if bad is not None:
        raise BadRequest(f"{where}: the value at {list(bad[0])} {bad[1]}")
    return X


def _is_text(value: Any) -> bool:
    """A string of at most MAX_ID_LENGTH characters that is valid Unicode (no lone surrogate)."""
    if not isinstance(value, str) or len(value) > MAX_ID_LENGTH:
        return False
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _rows(
    tensors: list[tuple[str, npt.NDArray[np.float64]]], feature_names: Sequence[str], max_batch: int
) -> npt.NDArray[np.float64]:
    """One [N, n_features] tensor, or one [N] tensor per feature, as rows in model feature order."""
    n_features = len(feature_names)
    expected = f"[N, {n_features}] ({', '.join(feature_names)})"
    if len(tensors) == 1 and tensors[0][1].ndim == 2:
        name, X = tensors[0]
        if X.shape[1] != n_features:
            raise BadRequest(f"input {quote_some([name])} has shape {list(X.shape)}; expected {expected}")
    else:
        by_name = dict(tensors)
        if len(by_name) != len(tensors) or set(by_name) != set(feature_names):
            names = [name for name, _ in tensors]
            raise BadRequest(
                f"inputs {quote_some(names)}: send one tensor of shape {expected}, "
                f"or one [N] tensor named after each feature"
            )
        columns = [by_name[name] for name in feature_names]
        if any(c.ndim != 1 or len(c) != len(columns[0]) for c in columns):
            raise BadRequest("per-feature inputs must all have the same shape [N]")
        X = np.column_stack(columns)
    if not 1 <= len(X) <= max_batch:
        raise BadRequest(f"{len(X)} rows; send 1 to {max_batch}")
    return np.ascontiguousarray(X)


def _parse_outputs(value: Any, binary_default: bool) -> tuple[tuple[str, bool], ...]:
    if value is None:
        return tuple((name, binary_default) for name in OUTPUTS)
    if not isinstance(value, list) or not value:
        raise BadRequest(f"'outputs' must be a non-empty list of {{\"name\": ...}}; outputs: {', '.join(OUTPUTS)}")
    chosen: dict[str, bool] = {}
    for i, item in enumerate(value):
        if not isinstance(item, dict) or not isinstance(item.get("name"), str) or set(item) - _OUTPUT_KEYS:
            raise BadRequest(f'outputs[{i}] must be {{"name": ..., "parameters": {{...}}}}')
        name = item["name"]
        if name not in OUTPUTS:
            raise BadRequest(f"unknown output {quote_some([name])}; outputs: {', '.join(OUTPUTS)}")
        if name in chosen:
            raise BadRequest(f"output {name!r} is asked for twice")
        binary = _parameters(item.get("parameters"), f"outputs[{i}].parameters").get("binary_data", binary_default)
        if not isinstance(binary, bool):
            raise BadRequest(f"outputs[{i}].parameters.binary_data must be true or false")
        chosen[name] = binary
    return tuple(chosen.items())


def encode_infer(
    model_name: str, version: str, request_id: str | None, tensors: Sequence[tuple[Tensor, bool]]
) -> tuple[bytes, int | None]:
    """The response body, and the JSON header's length when binary tensors follow it (else None)."""
    outputs: list[dict[str, Any]] = []
    chunks: list[bytes] = []
    for tensor, binary in tensors:
        out: dict[str, Any] = {"name": tensor.name, "datatype": tensor.datatype, "shape": tensor.shape}
        if binary:
            raw = _binary(tensor)
            out["parameters"] = {"binary_data_size": len(raw)}
            chunks.append(raw)
        elif isinstance(tensor.values, np.ndarray):
            out["data"] = tensor.values.ravel().tolist()
        else:
            out["data"] = list(tensor.values)
        outputs.append(out)
    body: dict[str, Any] = {"model_name": model_name, "model_version": version}
    if request_id is not None:
        body["id"] = request_id
    body["outputs"] = outputs
    header = json.dumps(body, separators=(",", ":"), allow_nan=False).encode()
    if not chunks:
        return header, None
    return b"".join([header, *chunks]), len(header)


def _binary(tensor: Tensor) -> bytes:
    if isinstance(tensor.values, np.ndarray):
        return np.ascontiguousarray(tensor.values, dtype=DATATYPES[tensor.datatype]).tobytes()
    encoded = [s.encode() for s in tensor.values]
    return b"".join(len(e).to_bytes(4, "little") + e for e in encoded)


def model_metadata(
    model_name: str, versions: Sequence[str], feature_names: Sequence[str], n_classes: int
) -> dict[str, Any]:
    """The model metadata response: one [-1, n_features] input; the outputs with their shapes."""
    return {
        "name": model_name,
        "versions": list(versions),
        "platform": "sklearn",
        "inputs": [{"name": INPUT_NAME, "datatype": INPUT_DATATYPE, "shape": [-1, len(feature_names)]}],
        "outputs": [
            {"name": "predict", "datatype": "INT64", "shape": [-1]},
            {"name": "predict_proba", "datatype": "FP64", "shape": [-1, n_classes]},
            {"name": "prediction_id", "datatype": "BYTES", "shape": [-1]},
            {"name": "feedback_token", "datatype": "BYTES", "shape": [-1]},
        ],
        "parameters": {"feature_names": list(feature_names)},
    }
