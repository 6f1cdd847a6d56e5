"""Training data: the Iris set that ships with scikit-learn, or a CSV of numeric features and a target."""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import numpy.typing as npt

from app.features import first_bad_value

IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class DataError(ValueError):
    """The training data cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Dataset:
    """Numeric features, integer-encoded target, and where they came from."""

    X: npt.NDArray[np.float64]
    y: npt.NDArray[np.int64]
    feature_names: list[str]
    class_names: list[str]
    name: str
    source: str
    target: str


def load_iris_dataset() -> Dataset:
    """The Iris data that ships inside scikit-learn (no download)."""
    from sklearn.datasets import load_iris

    iris = load_iris()
    return Dataset(
        X=np.asarray(iris.data, dtype=np.float64),
        y=np.asarray(iris.target, dtype=np.int64),
        feature_names=list(IRIS_FEATURES),
        class_names=[str(c) for c in iris.target_names],
        name="iris",
        source="sklearn.datasets.load_iris",
        target="species",
    )


def load_csv_dataset(path: Path, target: str) -> Dataset:
    """A CSV of numeric feature columns and one categorical target column."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except FileNotFoundError as exc:
        raise DataError(f"{path}: no such file") from exc
    except (pd.errors.EmptyDataError, pd.errors.ParserError, UnicodeDecodeError) as exc:
        raise DataError(f"{path}: not a readable CSV ({str(exc).splitlines()[0]})") from exc
    if frame.empty:
        raise DataError(f"{path}: the CSV has no rows")
    if target not in frame.columns:
        raise DataError(f"{path}: target column {target!r} not found (columns: {', '.join(map(str, frame.columns))})")
    features = [str(c) for c in frame.columns if c != target]
    if not features:
        raise DataError(f"{path}: no feature columns besides the target {target!r}")
    for name in features:
        column = frame[name]
        if pd.api.types.is_bool_dtype(column) or not pd.api.types.is_numeric_dtype(column):
            raise DataError(f"{path}: feature column {name!r} is not numeric")
        bad = first_bad_value(column.to_numpy(dtype=np.float64))
        if bad is not None:
            (row,), reason = bad
            raise DataError(f"{path}: feature column {name!r}: row {row + 1} {reason}")
    labels = frame[target]
    if labels.isna().any():
        raise DataError(f"{path}: target column {target!r} has missing values")
    label_text = labels.astype(str)
    class_names = sorted(label_text.unique())
    if len(class_names) < 2:
        raise DataError(f"{path}: target {target!r} has only one class; need at least two")
    counts = label_text.value_counts()
    if counts.min() < 2:
        raise DataError(f"{path}: class {counts.idxmin()!r} has fewer than 2 rows; cannot hold out a test split")
    index = {name: i for i, name in enumerate(class_names)}
    return Dataset(
        X=frame[features].to_numpy(dtype=np.float64),
        y=label_text.map(index).to_numpy(dtype=np.int64),
        feature_names=features,
        class_names=class_names,
        name=path.stem,
        source=str(path),
        target=target,
    )


def fingerprint(data: Dataset) -> str:
    """sha256 of the training data's values, names and classes: the same data gives the same id."""
    digest = hashlib.sha256()
    digest.update(json.dumps([data.feature_names, data.class_names]).encode())
    digest.update(np.ascontiguousarray(data.X, dtype="<f8").tobytes())
    digest.update(np.ascontiguousarray(data.y, dtype="<i8").tobytes())
    return digest.hexdigest()
