"""Train the model versions and write a complete, integrity-stamped model set.

Training is deterministic (fixed split and seeds) and atomic: everything is written to a temporary
directory beside the target and swapped in at the end, so a failed or interrupted run never leaves a
half-written model set.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
from collections.abc import Callable
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import joblib
import numpy as np
import numpy.typing as npt
import sklearn
from sklearn.ensemble import RandomForestClassifier
from sklearn.metrics import accuracy_score, f1_score
from sklearn.model_selection import train_test_split

from app.artifacts import MANIFEST_NAME, STATS_NAME, sha256_file
from app.training.datasets import Dataset, DataError, fingerprint

SPLIT_SEED = 42
TEST_SIZE = 0.2
VERSIONS: dict[str, dict[str, Any]] = {
    "v1": {"n_estimators": 50, "max_depth": 5, "random_state": SPLIT_SEED},
    "v2": {"n_estimators": 100, "max_depth": 7, "random_state": SPLIT_SEED},
}


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
