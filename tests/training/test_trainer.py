"""Training: a deterministic, atomic, integrity-stamped model set."""

import json
import shutil

import joblib
import numpy as np
import pytest

from app.artifacts import MANIFEST_NAME, SIGNATURE_NAME, sha256_file, verify_signature
from app.training import trainer
from app.training.datasets import load_iris_dataset
from app.training.trainer import train


def test_manifest_describes_every_version(trained_models):
    manifest = json.loads((trained_models / "manifest.json").read_text())
    assert manifest["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert manifest["class_names"] == ["setosa", "versicolor", "virginica"]
    v1, v2 = manifest["versions"]["v1"], manifest["versions"]["v2"]
    assert (v1["params"]["n_estimators"], v1["params"]["max_depth"]) == (50, 5)
    assert (v2["params"]["n_estimators"], v2["params"]["max_depth"]) == (100, 7)
    for meta in (v1, v2):
        assert set(meta) >= {
            "file",
            "sha256",
            "sklearn_version",
            "params",
            "accuracy",
            "f1_per_class",
            "feature_names",
            "class_names",
            "data_fingerprint",
            "created_at",
        }
        assert 0.8 <= meta["accuracy"] <= 1.0
        assert set(meta["f1_per_class"]) == {"setosa", "versicolor", "virginica"}
    assert manifest["dataset"]["train_rows"] == 120 and manifest["dataset"]["test_rows"] == 30
    assert manifest["features"]["petal_length"]["default"] < 2.5  # a setosa: the UI's default


def test_training_stats_hold_the_reference_sample(trained_models):
    stats = joblib.load(trained_models / "training_stats.pkl")
    assert stats["reference"].shape == (120, 4)
    for key in ("mean", "std", "min", "max"):
        assert stats[key].shape == (4,)
    np.testing.assert_allclose(stats["mean"], stats["reference"].mean(axis=0))


def test_training_is_deterministic(trained_models, tmp_path):
    train(load_iris_dataset(), tmp_path / "again", log=lambda *_: None)
    first = json.loads((trained_models / "manifest.json").read_text())
    second = json.loads((tmp_path / "again" / "manifest.json").read_text())
    for version in ("v1", "v2"):
        assert first["versions"][version]["sha256"] == second["versions"][version]["sha256"]
    assert first["training_stats"]["sha256"] == second["training_stats"]["sha256"]


def test_failed_training_leaves_the_previous_set_untouched(trained_models, tmp_path, monkeypatch):
    target = tmp_path / "models"
    shutil.copytree(trained_models, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(trainer.joblib, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        train(load_iris_dataset(), target, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".models-")]


def test_every_file_is_stamped_with_its_sha256(trained_models):
    manifest = json.loads((trained_models / "manifest.json").read_text())
    for meta in [*manifest["versions"].values(), manifest["training_stats"]]:
        assert sha256_file(trained_models / meta["file"]) == meta["sha256"]


KEY = b"model-signing-key-of-32-bytes!!!"


def test_signed_training_writes_the_signature_inside_the_swap(tmp_path, monkeypatch):
    staged: list[set[str]] = []
    swap = trainer.swap_into_place

    def watched_swap(staging, target):
        staged.append({p.name for p in staging.iterdir()})
        swap(staging, target)

    monkeypatch.setattr(trainer, "swap_into_place", watched_swap)
    target = tmp_path / "models"
    train(load_iris_dataset(), target, log=lambda *_: None, signing_key=KEY)
    assert SIGNATURE_NAME in staged[0] and MANIFEST_NAME in staged[0]  # the set and its signature appear together
    verify_signature(target, (target / MANIFEST_NAME).read_bytes(), KEY)


def test_unsigned_training_leaves_no_signature_of_an_older_set(tmp_path):
    target = tmp_path / "models"
    train(load_iris_dataset(), target, log=lambda *_: None, signing_key=KEY)
    train(load_iris_dataset(), target, log=lambda *_: None)
    assert not (target / SIGNATURE_NAME).exists()
