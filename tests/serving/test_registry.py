"""Integrity before unpickling, and reloads that never drop a working model."""

import dataclasses
import json

import joblib

from app.artifacts import sha256_file
from app.serving.registry import load_model_set
from app.training.datasets import load_iris_dataset
from app.training.trainer import train


def test_loads_every_version_healthy(models_dir):
    model_set = load_model_set(models_dir)
    assert model_set.status == "healthy"
    assert sorted(model_set.versions) == ["v1", "v2"]
    assert model_set.reference.shape == (120, 4)


def test_tampered_version_is_refused_and_others_serve(models_dir, caplog):
    with open(models_dir / "model_v2.pkl", "ab") as handle:
        handle.write(b"\x00")
    model_set = load_model_set(models_dir)
    assert sorted(model_set.versions) == ["v1"]
    assert "sha256 mismatch" in model_set.failed["v2"]
    assert model_set.status == "degraded"
    assert "model v2 refused" in caplog.text


def test_no_manifest_means_nothing_serves(tmp_path):
    model_set = load_model_set(tmp_path)
    assert model_set.status == "unhealthy" and not model_set.versions
    assert "manifest.json not found" in model_set.failed["manifest"]


def test_reload_keeps_previous_model_when_new_files_fail(models_dir):
    first = load_model_set(models_dir)
    manifest = json.loads((models_dir / "manifest.json").read_text())
    manifest["versions"]["v1"]["sha256"] = "0" * 64  # the new set claims a file that is not there
    (models_dir / "manifest.json").write_text(json.dumps(manifest))
    second = load_model_set(models_dir, previous=first)
    assert second.versions["v1"] is first.versions["v1"]
    assert "sha256 mismatch" in second.failed["v1"] and second.status == "degraded"
    assert second.versions["v2"].predictor is first.versions["v2"].predictor  # unchanged: reused


def test_reload_picks_up_a_retrained_version(models_dir):
    first = load_model_set(models_dir)
    # Iris in reverse row order: the same features and classes, another training split, other forests.
    iris = load_iris_dataset()
    train(dataclasses.replace(iris, X=iris.X[::-1].copy(), y=iris.y[::-1].copy()), models_dir, log=lambda *_: None)
    manifest = json.loads((models_dir / "manifest.json").read_text())
    second = load_model_set(models_dir, previous=first)
    assert second.status == "healthy" and not second.failed
    for version in ("v1", "v2"):
        new_sha = sha256_file(models_dir / f"model_{version}.pkl")
        assert manifest["versions"][version]["sha256"] == new_sha != first.versions[version].sha256
        assert second.versions[version].sha256 == new_sha
        assert second.versions[version].estimator is not first.versions[version].estimator
        assert second.versions[version].predictor is not first.versions[version].predictor


def test_training_stats_tampering_disables_drift_only(models_dir):
    with open(models_dir / "training_stats.pkl", "ab") as handle:
        handle.write(b"\x00")
    model_set = load_model_set(models_dir)
    assert sorted(model_set.versions) == ["v1", "v2"]
    assert model_set.reference is None and "training_stats" in model_set.failed


def test_wrong_object_in_a_verified_pickle_is_refused(models_dir):
    joblib.dump({"not": "a model"}, models_dir / "model_v1.pkl")
    manifest = json.loads((models_dir / "manifest.json").read_text())
    manifest["versions"]["v1"]["sha256"] = sha256_file(models_dir / "model_v1.pkl")
    (models_dir / "manifest.json").write_text(json.dumps(manifest))
    model_set = load_model_set(models_dir)
    assert "v1" not in model_set.versions and "not a fitted forest" in model_set.failed["v1"]
