"""Integrity before unpickling (sha256, and the manifest's signature with a key), reloads that never drop a
working model, and failure reasons that name files, not paths."""

import dataclasses
import json
import shutil
import sys
from pathlib import Path

import joblib
import pytest

from app.artifacts import MANIFEST_NAME, SIGNATURE_NAME, sha256_file, write_signature
from app.serving import registry
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


KEY = b"model-signing-key-of-32-bytes!!!"


def sign_set(models_dir, key=KEY):
    write_signature(models_dir, (models_dir / MANIFEST_NAME).read_bytes(), key)


def rewrite_manifest(models_dir, change):
    manifest = json.loads((models_dir / MANIFEST_NAME).read_text())
    change(manifest)
    (models_dir / MANIFEST_NAME).write_text(json.dumps(manifest))


class RunsCode:
    """What an attacker puts in a pickle: loading it calls a function of their choice (here, touch a file)."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (self.marker.touch, ())


def swap_in(models_dir, version, obj):
    """Someone who can write the models directory: a pickle of their own, and the manifest rewritten to match."""
    joblib.dump(obj, models_dir / f"model_{version}.pkl")
    sha = sha256_file(models_dir / f"model_{version}.pkl")
    rewrite_manifest(models_dir, lambda m: m["versions"][version].update(sha256=sha))


def test_a_signed_set_loads_with_its_key(models_dir):
    sign_set(models_dir)
    model_set = load_model_set(models_dir, signing_key=KEY)
    assert model_set.status == "healthy" and sorted(model_set.versions) == ["v1", "v2"]


def test_a_swapped_pickle_with_matching_sha256_is_accepted_without_the_key_and_refused_with_it(
    models_dir, tmp_path, monkeypatch
):
    sign_set(models_dir)
    shutil.copy(models_dir / "model_v2.pkl", tmp_path / "v2.pkl")
    swap_in(models_dir, "v1", joblib.load(tmp_path / "v2.pkl"))  # v2's 100 trees served as v1
    accepted = load_model_set(models_dir)
    assert accepted.status == "healthy" and accepted.versions["v1"].estimator.n_estimators == 100

    calls = []
    monkeypatch.setattr(joblib, "load", lambda *args, **kwargs: calls.append(args))
    refused = load_model_set(models_dir, signing_key=KEY)
    assert calls == []  # nothing was unpickled
    assert not refused.versions and refused.status == "unhealthy"
    assert "signature does not match MODEL_SIGNING_KEY" in refused.failed["manifest"]


def test_without_the_key_a_writable_models_directory_runs_code_and_with_it_does_not(models_dir, tmp_path):
    sign_set(models_dir)
    marker = tmp_path / "code-ran"
    swap_in(models_dir, "v1", RunsCode(marker))
    refused = load_model_set(models_dir, signing_key=KEY)
    assert not marker.exists() and not refused.versions
    load_model_set(models_dir)  # sha256 only: the manifest matches the attacker's pickle
    assert marker.exists()


@pytest.mark.parametrize(
    ("tamper", "reason"),
    [
        (lambda d: (d / SIGNATURE_NAME).unlink(), "manifest.json.sig is missing: the model set is not signed"),
        (lambda d: sign_set(d, b"x" * 32), "signature does not match"),
        (lambda d: rewrite_manifest(d, lambda m: m.update(created_at="now")), "signature does not match"),
    ],
    ids=["unsigned", "other-key", "manifest-edited"],
)
def test_reload_of_a_set_failing_its_signature_keeps_the_previous_set(models_dir, tamper, reason):
    sign_set(models_dir)
    first = load_model_set(models_dir, signing_key=KEY)
    tamper(models_dir)
    second = load_model_set(models_dir, previous=first, signing_key=KEY)
    assert second.versions == first.versions and second.reference is first.reference
    assert second.status == "degraded" and reason in second.failed["manifest"]


_OPENED: list[list[str]] = []


def _record_opens(event: str, args: tuple) -> None:
    if event == "open" and _OPENED and isinstance(args[0], (str, Path)):
        _OPENED[-1].append(str(args[0]))


sys.addaudithook(_record_opens)  # audit hooks cannot be removed: it records only inside ``opened_during``


def opened_during(action) -> list[str]:
    """Every file path opened while ``action`` runs (Python's audit events see every open)."""
    _OPENED.append([])
    try:
        action()
    finally:
        paths = _OPENED.pop()
    return paths


def test_nothing_but_the_manifest_its_signature_and_the_files_it_lists_is_opened(models_dir, tmp_path):
    decoy = tmp_path / "decoy.pkl"
    joblib.dump({"reference": [[0.0] * 4]}, decoy)

    def point_elsewhere(m):
        m["dataset"]["source"] = str(decoy)
        m["features"]["sepal_length"]["file"] = "../decoy.pkl"
        m["versions"]["v1"]["training_stats"] = {"file": str(decoy), "sha256": sha256_file(decoy)}
        m["reference"] = {"file": "../decoy.pkl", "path": str(decoy)}

    rewrite_manifest(models_dir, point_elsewhere)
    sign_set(models_dir)
    model_set = None

    def load():
        nonlocal model_set
        model_set = load_model_set(models_dir, signing_key=KEY)

    opened = {Path(p).resolve() for p in opened_during(load) if Path(p).resolve().is_relative_to(tmp_path.resolve())}
    assert model_set.status == "healthy"
    listed = {MANIFEST_NAME, SIGNATURE_NAME, "model_v1.pkl", "model_v2.pkl", "training_stats.pkl"}
    assert opened == {(models_dir / name).resolve() for name in listed}


def test_failure_reasons_name_files_relative_to_the_models_directory(models_dir, tmp_path, monkeypatch):
    nowhere = load_model_set(tmp_path / "nowhere")
    assert "manifest.json not found in the models directory" in nowhere.failed["manifest"]
    real_read = Path.read_bytes

    def read_bytes(self):
        if self.name == "model_v1.pkl":
            raise PermissionError(13, "Permission denied", str(self))
        return real_read(self)

    def check_estimator(estimator, manifest):
        raise ValueError(f"cannot use {models_dir.resolve() / 'model_v2.pkl'}")  # a library quoting a path

    monkeypatch.setattr(Path, "read_bytes", read_bytes)
    monkeypatch.setattr(registry, "_check_estimator", check_estimator)
    broken = load_model_set(models_dir)
    assert broken.failed["v1"] == "model_v1.pkl cannot be read: Permission denied"
    assert broken.failed["v2"] == "cannot load model_v2.pkl: cannot use model_v2.pkl"
    for failed in (nowhere.failed, broken.failed):
        assert str(tmp_path) not in json.dumps(failed) and str(tmp_path.resolve()) not in json.dumps(failed)
