"""Train the model versions and write a complete, integrity-stamped model set.

    python app/train_model.py                       # Iris (embedded), v1 and v2
    python -m app.train_model --data my.csv --target label --models-dir /tmp/models

Training is deterministic (fixed split and seeds) and atomic: everything is written to a
temporary directory beside the target and swapped in at the end, so a failed or interrupted
run never leaves a half-written model set.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import sys
import tempfile
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

if __package__ in (None, ""):  # run as a script: python app/train_model.py
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

import joblib
import numpy as np
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from app.registry import MANIFEST_NAME, STATS_NAME, sha256_file
from app.settings import Settings

SPLIT_SEED = 42
TEST_SIZE = 0.2
VERSIONS: dict[str, dict] = {
    "v1": {"n_estimators": 50, "max_depth": 5, "random_state": SPLIT_SEED},
    "v2": {"n_estimators": 100, "max_depth": 7, "random_state": SPLIT_SEED},
}
IRIS_FEATURES = ["sepal_length", "sepal_width", "petal_length", "petal_width"]


class DataError(ValueError):
    """The training data cannot be used; the message is one line for the user."""


@dataclass(frozen=True)
class Dataset:
    """Numeric features, integer-encoded target, and where they came from."""

    X: np.ndarray
    y: np.ndarray
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
        values = column.to_numpy(dtype=np.float64)
        if not np.isfinite(values).all():
            raise DataError(f"{path}: feature column {name!r} has missing or infinite values")
        if np.abs(values).max() > np.finfo(np.float32).max:
            raise DataError(f"{path}: feature column {name!r} has values beyond float32 range")
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


def feature_summary(X_train: np.ndarray, y_train: np.ndarray, names: list[str]) -> dict:
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


def train(data: Dataset, models_dir: Path, log=print) -> dict:
    """Train every version on ``data`` and swap a new model set into ``models_dir``; returns the manifest."""
    try:
        X_train, X_test, y_train, y_test = train_test_split(
            data.X, data.y, test_size=TEST_SIZE, random_state=SPLIT_SEED, stratify=data.y
        )
    except ValueError as exc:
        raise DataError(f"cannot split the data 80/20 by class: {exc}") from exc
    created_at = datetime.now(timezone.utc).isoformat()
    data_id = fingerprint(data)
    models_dir = Path(models_dir)
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".models-staging-", dir=models_dir.parent))
    try:
        versions = {}
        for version, params in VERSIONS.items():
            log(f"Training Model {version} (Random Forest with {params['n_estimators']} estimators)...")
            model = RandomForestClassifier(**params, n_jobs=1)
            model.fit(X_train, y_train)
            predicted = model.predict(X_test)
            accuracy = float(accuracy_score(y_test, predicted))
            f1 = f1_score(y_test, predicted, average=None, labels=list(range(len(data.class_names))), zero_division=0)
            log(f"Model {version} Accuracy: {accuracy:.4f}")
            filename = f"model_{version}.pkl"
            joblib.dump(model, staging / filename)
            versions[version] = {
                "file": filename,
                "sha256": sha256_file(staging / filename),
                "algorithm": "RandomForestClassifier",
                "sklearn_version": sklearn.__version__,
                "params": dict(params),
                "accuracy": round(accuracy, 6),
                "f1_per_class": {c: round(float(s), 6) for c, s in zip(data.class_names, f1)},
                "feature_names": list(data.feature_names),
                "class_names": list(data.class_names),
                "data_fingerprint": data_id,
                "created_at": created_at,
            }
        stats = {
            "feature_names": list(data.feature_names),
            "class_names": list(data.class_names),
            "mean": X_train.mean(axis=0),
            "std": X_train.std(axis=0),
            "min": X_train.min(axis=0),
            "max": X_train.max(axis=0),
            "reference": np.array(X_train, dtype=np.float64),
            "reference_labels": np.array(y_train, dtype=np.int64),
        }
        joblib.dump(stats, staging / STATS_NAME)
        manifest = {
            "schema_version": 1,
            "created_at": created_at,
            "dataset": {
                "name": data.name,
                "source": data.source,
                "target": data.target,
                "fingerprint": data_id,
                "rows": int(len(data.y)),
                "train_rows": int(len(y_train)),
                "test_rows": int(len(y_test)),
                "split": {"test_size": TEST_SIZE, "random_state": SPLIT_SEED, "stratified": True},
            },
            "feature_names": list(data.feature_names),
            "class_names": list(data.class_names),
            "features": feature_summary(X_train, y_train, data.feature_names),
            "training_stats": {"file": STATS_NAME, "sha256": sha256_file(staging / STATS_NAME)},
            "versions": versions,
        }
        (staging / MANIFEST_NAME).write_text(json.dumps(manifest, indent=2) + "\n")
        _swap_into_place(staging, models_dir)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return manifest


def _swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with two renames, so readers see the old set or the new one."""
    os.chmod(staging, 0o755)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=".models-old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    os.rename(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point; returns the process exit status."""
    parser = argparse.ArgumentParser(description="Train the model versions (v1: 50 trees, v2: 100 trees).")
    parser.add_argument("--data", type=Path, help="CSV of numeric features and a categorical target (default: Iris)")
    parser.add_argument("--target", help="name of the target column in --data")
    parser.add_argument("--models-dir", type=Path, help="where to write the model set (default: MODELS_DIR or app/models)")
    args = parser.parse_args(argv)
    models_dir = args.models_dir or Settings.from_env().models_dir
    try:
        if args.data is not None:
            if not args.target:
                raise DataError("--data needs --target <column>")
            print(f"Loading {args.data}...")
            data = load_csv_dataset(args.data, args.target)
        else:
            print("Loading Iris dataset...")
            data = load_iris_dataset()
        print(f"{len(data.y)} rows, {len(data.feature_names)} features, classes: {', '.join(data.class_names)}")
        train(data, models_dir)
    except DataError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print("Training complete!")
    print(f"Model set written to {models_dir}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
