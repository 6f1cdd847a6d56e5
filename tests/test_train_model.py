"""Training: deterministic, atomic, bring-your-own CSV, clear failures."""

import json
import subprocess
import sys

import numpy as np
import pytest

from app.registry import load_model_set
from app.settings import REPO_DIR
from app.train_model import DataError, load_iris_dataset, main, train


def test_manifest_describes_every_version(trained_models):
    manifest = json.loads((trained_models / "manifest.json").read_text())
    assert manifest["feature_names"] == ["sepal_length", "sepal_width", "petal_length", "petal_width"]
    assert manifest["class_names"] == ["setosa", "versicolor", "virginica"]
    v1, v2 = manifest["versions"]["v1"], manifest["versions"]["v2"]
    assert (v1["params"]["n_estimators"], v1["params"]["max_depth"]) == (50, 5)
    assert (v2["params"]["n_estimators"], v2["params"]["max_depth"]) == (100, 7)
    for meta in (v1, v2):
        assert set(meta) >= {"file", "sha256", "sklearn_version", "params", "accuracy", "f1_per_class",
                             "feature_names", "class_names", "data_fingerprint", "created_at"}
        assert 0.8 <= meta["accuracy"] <= 1.0
        assert set(meta["f1_per_class"]) == {"setosa", "versicolor", "virginica"}
    assert manifest["dataset"]["train_rows"] == 120 and manifest["dataset"]["test_rows"] == 30
    assert manifest["features"]["petal_length"]["default"] < 2.5  # a setosa: the UI's default


def test_training_stats_hold_the_reference_sample(trained_models):
    import joblib

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
    import shutil

    import app.train_model as tm

    target = tmp_path / "models"
    shutil.copytree(trained_models, target)
    before = {p.name: p.read_bytes() for p in target.iterdir()}

    def broken_dump(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(tm.joblib, "dump", broken_dump)
    with pytest.raises(OSError):
        train(load_iris_dataset(), target, log=lambda *_: None)
    assert {p.name: p.read_bytes() for p in target.iterdir()} == before
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".models-")]


def test_script_entry_points_print_progress(tmp_path):
    for command in ([sys.executable, "app/train_model.py"], [sys.executable, "-m", "app.train_model"]):
        out = subprocess.run([*command, "--models-dir", str(tmp_path / "m")], cwd=REPO_DIR,
                             capture_output=True, text=True, check=True).stdout
        assert "Loading Iris dataset..." in out
        assert "Training Model v1 (Random Forest with 50 estimators)..." in out
        assert "Model v2 Accuracy: " in out and "Training complete!" in out


def write_csv(path, text):
    path.write_text(text)
    return path


def test_bring_your_own_csv(tmp_path):
    rng = np.random.default_rng(0)
    lines = ["height,weight,label"]
    for i in range(90):
        kind = ["cat", "dog", "horse"][i % 3]
        base = {"cat": 25, "dog": 60, "horse": 160}[kind]
        lines.append(f"{base + rng.normal(0, 3):.2f},{base / 5 + rng.normal(0, 1):.2f},{kind}")
    csv = write_csv(tmp_path / "animals.csv", "\n".join(lines) + "\n")
    assert main(["--data", str(csv), "--target", "label", "--models-dir", str(tmp_path / "m")]) == 0
    model_set = load_model_set(tmp_path / "m")
    assert model_set.status == "healthy"
    assert model_set.feature_names == ["height", "weight"]
    assert model_set.class_names == ["cat", "dog", "horse"]
    proba = model_set.versions["v2"].predictor.predict_proba(np.array([[160.0, 32.0]]))
    assert model_set.class_names[int(proba.argmax())] == "horse"


@pytest.mark.parametrize(
    "content, target, reason",
    [
        ("a,b,label\n1,2,x\n3,4,y\n", "missing", "target column 'missing' not found"),
        ("a,b,label\n1,oops,x\n3,4,y\n1,2,x\n3,4,y\n", "label", "'b' is not numeric"),
        ("a,b,label\n1,2,x\n3,4,x\n5,6,x\n", "label", "only one class"),
        ("", "label", "not a readable CSV"),
        ("a,b,label\n", "label", "no rows"),
        ("a,b,label\n1,,x\n3,4,y\n1,2,x\n3,4,y\n", "label", "missing or infinite"),
        ("a,label\n1,x\n2,y\n3,y\n", "label", "fewer than 2 rows"),
        ("a,b,label\n1,1e300,x\n3,4,y\n1,2,x\n3,4,y\n", "label", "beyond float32"),
    ],
)
def test_bad_csv_exits_nonzero_with_one_line_and_touches_nothing(tmp_path, capsys, content, target, reason):
    csv = write_csv(tmp_path / "bad.csv", content)
    models = tmp_path / "models"
    assert main(["--data", str(csv), "--target", target, "--models-dir", str(models)]) == 2
    err = capsys.readouterr().err.strip()
    assert reason in err and len(err.splitlines()) == 1
    assert not models.exists()
    assert [p.name for p in tmp_path.iterdir()] == ["bad.csv"]


def test_data_error_for_missing_file(tmp_path):
    with pytest.raises(DataError):
        from app.train_model import load_csv_dataset

        load_csv_dataset(tmp_path / "nope.csv", "x")
