"""The model set on disk: sha256 before unpickling, and a manifest that names only files beside it."""

import json

import joblib
import pytest

from app.artifacts import check_manifest, load_training_stats, load_verified, read_manifest, sha256_file
from app.errors import IntegrityError


def test_pickle_is_not_loaded_when_its_hash_differs(models_dir, monkeypatch):
    (models_dir / "model_v2.pkl").write_bytes(b"not the pickle the manifest describes")
    calls = []
    monkeypatch.setattr(joblib, "load", lambda path: calls.append(path))
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        load_verified(models_dir / "model_v2.pkl", read_manifest(models_dir)["versions"]["v2"]["sha256"])
    assert calls == []


def test_verified_bytes_are_the_ones_unpickled(models_dir):
    meta = read_manifest(models_dir)["versions"]["v1"]
    model = load_verified(models_dir / meta["file"], meta["sha256"])
    assert type(model).__name__ == "RandomForestClassifier"
    assert sha256_file(models_dir / meta["file"]) == meta["sha256"]


def test_missing_file_is_an_integrity_error(models_dir):
    with pytest.raises(IntegrityError, match=r"model_v9\.pkl is missing"):
        load_verified(models_dir / "model_v9.pkl", "0" * 64)


@pytest.mark.parametrize("name", ["../model_v1.pkl", "/etc/passwd", "sub/model.pkl", "..", "", 5, "a\\b.pkl"])
@pytest.mark.parametrize("entry", ["version", "training_stats"])
def test_manifest_files_must_be_plain_names(models_dir, entry, name):
    manifest = json.loads((models_dir / "manifest.json").read_text())
    target = manifest["versions"]["v1"] if entry == "version" else manifest["training_stats"]
    target["file"] = name
    with pytest.raises(ValueError, match="plain name inside the models directory"):
        check_manifest(manifest)


def test_training_stats_come_verified_with_names(models_dir):
    stats = load_training_stats(models_dir)
    assert stats["reference"].shape == (120, 4) and stats["class_names"][0] == "setosa"
    with open(models_dir / "training_stats.pkl", "ab") as handle:
        handle.write(b"x")
    with pytest.raises(IntegrityError, match="sha256 mismatch"):
        load_training_stats(models_dir)
