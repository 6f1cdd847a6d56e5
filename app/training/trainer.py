"""Train the model versions and write a complete, integrity-stamped model set.

Training is deterministic (fixed split and seeds) and atomic: everything is written to a temporary
directory beside the target and swapped in at the end, so a failed or interrupted run never leaves a
half-written model set. With a signing key the manifest's signature is written in that same directory,
so a set and its signature always appear together.
"""

from __future__ import annotations

import json
import shutil
import tempfile
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NamedTuple

import joblib
import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from app.artifacts import (
    DEFAULT_MODEL_NAME,
    MANIFEST_NAME,
    MODEL_NAME_RULE,
    STATS_NAME,
    is_model_name,
    sha256_file,
    swap_into_place,
    write_signature,
)
from app.training.datasets import DataError, Dataset, fingerprint

SPLIT_SEED = 42
TEST_SIZE = 0.2
VERSIONS: dict[str, dict[str, Any]] = {
    "v1": {"n_estimators": 50, "max_depth": 5, "random_state": SPLIT_SEED},
    "v2": {"n_estimators": 100, "max_depth": 7, "random_state": SPLIT_SEED},
}


class _Split(NamedTuple):
    """The stratified train/test split every version is trained and scored on."""

    X_train: npt.NDArray[np.float64]
    X_test: npt.NDArray[np.float64]
    y_train: npt.NDArray[np.int64]
    y_test: npt.NDArray[np.int64]


def feature_summary(
    X_train: npt.NDArray[np.float64], y_train: npt.NDArray[np.int64], names: list[str]
) -> dict[str, dict[str, float]]:
    """Per-feature range and a typical value (median of the first class) for UI sliders."""
    first_class = X_train[y_train == 0] if (y_train == 0).any() else X_train
    return {
        name: {
            "min": float(X_train[:, i].min()),
            "max": float(X_train[:, i].max()),
            "mean": float(X_train[:, i].mean()),
            "std": float(X_train[:, i].std()),
            "default": float(np.median(first_class[:, i])),
        }
        for i, name in enumerate(names)
    }


def train(
    data: Dataset,
    models_dir: Path,
    log: Callable[[str], object] = print,
    signing_key: bytes | None = None,
    model_name: str = DEFAULT_MODEL_NAME,
) -> dict[str, Any]:
    """Train every version on ``data`` and swap a new model set into ``models_dir``; returns the manifest.

    With ``signing_key`` (MODEL_SIGNING_KEY) the manifest is signed (manifest.json.sig). ``model_name``
    is the name the Open Inference Protocol serves the set under (``/v2/models/<name>``).
    """
    if not is_model_name(model_name):
        raise DataError(f"model name {model_name[:80]!r} must be {MODEL_NAME_RULE}")
    split = _split(data)
    created_at = datetime.now(UTC).isoformat()
    data_id = fingerprint(data)
    models_dir = Path(models_dir)
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".models-staging-", dir=models_dir.parent))
    try:
        versions = {}
        for version, params in VERSIONS.items():
            model_file = _train_version(version, params, data, split, staging, log)
            versions[version] = {**model_file, "data_fingerprint": data_id, "created_at": created_at}
        joblib.dump(_training_stats(data, split), staging / STATS_NAME)
        manifest = {"model_name": model_name, **_manifest(data, split, created_at, data_id, versions, staging)}
        manifest_bytes = (json.dumps(manifest, indent=2) + "\n").encode()
        (staging / MANIFEST_NAME).write_bytes(manifest_bytes)
        if signing_key is not None:
            write_signature(staging, manifest_bytes, signing_key)
        swap_into_place(staging, models_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _split(data: Dataset) -> _Split:
    """The fixed 80/20 split, stratified by class; DataError when some class is too small for it."""
    try:
        return _Split(*train_test_split(data.X, data.y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=data.y))
    except ValueError as exc:
        raise DataError(f"cannot split the data 80/20 by class: {exc}") from exc


def _train_version(
    version: str, params: dict[str, Any], data: Dataset, split: _Split, staging: Path, log: Callable[[str], object]
) -> dict[str, Any]:
    """Fit, score and pickle one version into ``staging``; returns its manifest entry up to the class names."""
    log(f"Training Model {version} (Random Forest with {params['n_estimators']} estimators)...")
    model = RandomForestClassifier(**params, n_jobs=1)
    model.fit(split.X_train, split.y_train)
    predicted = model.predict(split.X_test)
    accuracy = float(accuracy_score(split.y_test, predicted))
    labels = list(range(len(data.class_names)))
    f1 = f1_score(split.y_test, predicted, average=None, labels=labels, zero_division=0)
    log(f"Model {version} Accuracy: {accuracy:.4f}")
    filename = f"model_{version}.pkl"
    joblib.dump(model, staging / filename)
    return {
        "file": filename,
        "sha256": sha256_file(staging / filename),
        "algorithm": "RandomForestClassifier",
        "sklearn_version": sklearn.__version__,
        "params": dict(params),
        "accuracy": round(accuracy, 6),
        "f1_per_class": {c: round(float(s), 6) for c, s in zip(data.class_names, f1, strict=True)},
        "feature_names": list(data.feature_names),
        "class_names": list(data.class_names),
    }


def _training_stats(data: Dataset, split: _Split) -> dict[str, Any]:
    """What drift detection needs: per-feature statistics and the training rows as the reference sample."""
    X_train = split.X_train
    return {
        "feature_names": list(data.feature_names),
        "class_names": list(data.class_names),
        "mean": X_train.mean(axis=0),
        "std": X_train.std(axis=0),
        "min": X_train.min(axis=0),
        "max": X_train.max(axis=0),
        "reference": np.array(X_train, dtype=np.float64),
        "reference_labels": np.array(split.y_train, dtype=np.int64),
    }


def _manifest(
    data: Dataset,
    split: _Split,
    created_at: str,
    data_id: str,
    versions: dict[str, dict[str, Any]],
    staging: Path,
) -> dict[str, Any]:
    """The manifest of the staged set: the dataset and its split, the features, and every file's sha256."""
    return {
        "schema_version": 1,
        "created_at": created_at,
        "dataset": {
            "name": data.name,
            "source": data.source,
            "target": data.target,
            "fingerprint": data_id,
            "rows": len(data.y),
            "train_rows": len(split.y_train),
            "test_rows": len(split.y_test),
            "split": {"test_size": TEST_SIZE, "random_state": SPLIT_SEED, "stratified": True},
        },
        "feature_names": list(data.feature_names),
        "class_names": list(data.class_names),
        "features": feature_summary(split.X_train, split.y_train, data.feature_names),
        "training_stats": {"file": STATS_NAME, "sha256": sha256_file(staging / STATS_NAME)},
        "versions": versions,
    }
