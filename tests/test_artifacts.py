"""The model set on disk: sha256 before unpickling, a manifest naming only files beside it, its signature."""

import hashlib
import hmac
import json
from pathlib import Path

import joblib
import pytest

from app.artifacts import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    check_manifest,
    is_plain_name,
    load_training_stats,
    load_verified,
    read_manifest,
    sha256_file,
    verify_signature,
    write_signature,
)
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


def test_unreadable_file_is_an_integrity_error_naming_only_the_file(models_dir, monkeypatch):
    real = Path.read_bytes

    def read_bytes(self):
        if self.name == "model_v1.pkl":
            raise PermissionError(13, "Permission denied", str(self))
        return real(self)

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    with pytest.raises(IntegrityError) as caught:
        load_verified(models_dir / "model_v1.pkl", "0" * 64)
    assert str(caught.value) == "model_v1.pkl cannot be read: Permission denied"


KEY = b"k" * 32


def sign_set(models_dir, key=KEY):
    write_signature(models_dir, (models_dir / MANIFEST_NAME).read_bytes(), key)


def test_signature_is_the_hmac_of_the_manifest_bytes(models_dir):
    sign_set(models_dir)
    data = (models_dir / MANIFEST_NAME).read_bytes()
    assert (models_dir / SIGNATURE_NAME).read_text().strip() == hmac.new(KEY, data, hashlib.sha256).hexdigest()
    verify_signature(models_dir, data, KEY)
    assert read_manifest(models_dir, KEY)["versions"]["v1"]["file"] == "model_v1.pkl"


def edit_manifest(models_dir):
    manifest = json.loads((models_dir / MANIFEST_NAME).read_text())
    manifest["versions"]["v1"]["accuracy"] = 1.0
    (models_dir / MANIFEST_NAME).write_text(json.dumps(manifest))


def garbage_signed_by_another_key(models_dir):
    (models_dir / MANIFEST_NAME).write_bytes(b"not even JSON")
    sign_set(models_dir, b"another key, 32 characters long!")


@pytest.mark.parametrize(
    ("tamper", "message"),
    [
        (edit_manifest, "does not match"),
        (lambda d: (d / SIGNATURE_NAME).write_text("0" * 64), "does not match"),
        (lambda d: (d / SIGNATURE_NAME).unlink(), "not signed"),
        (lambda d: sign_set(d, b"another key, 32 characters long!"), "does not match"),
        (garbage_signed_by_another_key, "does not match"),
    ],
    ids=["manifest-edited", "signature-edited", "signature-missing", "other-key", "garbage-signed-by-other-key"],
)
def test_a_manifest_that_fails_its_signature_is_refused_before_it_is_parsed(models_dir, tamper, message):
    sign_set(models_dir)
    tamper(models_dir)
    with pytest.raises(IntegrityError, match=message):
        read_manifest(models_dir, KEY)


def test_training_stats_are_refused_with_the_key_before_unpickling(models_dir, monkeypatch):
    sign_set(models_dir)
    assert load_training_stats(models_dir, KEY)["reference"].shape == (120, 4)
    manifest = json.loads((models_dir / MANIFEST_NAME).read_text())
    manifest["created_at"] = "tampered"
    (models_dir / MANIFEST_NAME).write_text(json.dumps(manifest))
    calls = []
    real_load = joblib.load

    def recording_load(*args):
        calls.append(args)
        return real_load(*args)

    monkeypatch.setattr(joblib, "load", recording_load)
    with pytest.raises(IntegrityError, match="signature"):
        load_training_stats(models_dir, KEY)
    assert calls == []
    load_training_stats(models_dir)  # without a key: sha256 only, as before
    assert len(calls) == 1


def test_names_with_a_nul_byte_are_not_plain():
    assert not is_plain_name("model\x00.pkl") and is_plain_name("model_v1.pkl")


@pytest.mark.parametrize("name", ["", "a/b", "x" * 65, 7, None])
def test_a_model_name_must_be_a_path_segment(models_dir, name):
    manifest = json.loads((models_dir / "manifest.json").read_text())
    check_manifest({**manifest, "model_name": "iris-2.v_1"})
    with pytest.raises(ValueError, match="model_name must be 1-64 letters"):
        check_manifest({**manifest, "model_name": name})
