"""The training CLI: the seeds' commands, the console script, bring-your-own CSV and its one-line failures."""

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from app.artifacts import MANIFEST_NAME, SIGNATURE_NAME, verify_signature
from app.cli.train import main
from app.serving.registry import load_model_set
from app.settings import REPO_DIR

CONSOLE_SCRIPT = Path(sys.executable).parent / "mlops-train"


@pytest.mark.parametrize(
    "command",
    [[sys.executable, "app/train_model.py"], [sys.executable, "-m", "app.train_model"], [str(CONSOLE_SCRIPT)]],
    ids=["script", "module", "console-script"],
)
def test_entry_points_print_progress(tmp_path, command):
    out = subprocess.run(
        [*command, "--models-dir", str(tmp_path / "m")], cwd=REPO_DIR, capture_output=True, text=True, check=True
    ).stdout
    assert "Loading Iris dataset..." in out
    assert "Training Model v1 (Random Forest with 50 estimators)..." in out
    assert "Model v2 Accuracy: " in out and "Training complete!" in out
    assert load_model_set(tmp_path / "m").status == "healthy"


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
    ("content", "target", "reason"),
    [
        ("a,b,label\n1,2,x\n3,4,y\n", "missing", "target column 'missing' not found"),
        ("a,b,label\n1,oops,x\n3,4,y\n1,2,x\n3,4,y\n", "label", "'b' is not numeric"),
        ("a,b,label\n1,2,x\n3,4,x\n5,6,x\n", "label", "only one class"),
        ("", "label", "not a readable CSV"),
        ("a,b,label\n", "label", "no rows"),
        ("a,b,label\n1,,x\n3,4,y\n1,2,x\n3,4,y\n", "label", "'b': row 1 is missing or NaN"),
        ("a,label\n1,x\n2,y\n3,y\n", "label", "fewer than 2 rows"),
        ("a,b,label\n1,1e300,x\n3,4,y\n1,2,x\n3,4,y\n", "label", "'b': row 1 is too large"),
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


def test_data_without_target_is_refused(tmp_path, capsys):
    assert main(["--data", str(tmp_path / "x.csv"), "--models-dir", str(tmp_path / "m")]) == 2
    assert "--data needs --target" in capsys.readouterr().err


KEY = "model-signing-key-of-32-chars!!!"


def test_the_seed_command_signs_with_the_key_from_the_environment(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith("MODEL_SIGNING_KEY")}
    out = subprocess.run(
        [sys.executable, "app/train_model.py", "--models-dir", str(tmp_path / "m")],
        cwd=REPO_DIR,
        env={**env, "MODEL_SIGNING_KEY": KEY},
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    assert "(signed)" in out
    models = tmp_path / "m"
    verify_signature(models, (models / MANIFEST_NAME).read_bytes(), KEY.encode())
    assert load_model_set(models, signing_key=KEY.encode()).status == "healthy"
    assert load_model_set(models, signing_key=b"another key of thirty-two bytes!").status == "unhealthy"


def test_a_key_file_signs_and_one_inside_the_models_directory_is_refused(tmp_path, monkeypatch, capsys):
    key_file = tmp_path / "signing.key"
    key_file.write_text(KEY + "\n")
    monkeypatch.delenv("MODEL_SIGNING_KEY", raising=False)
    monkeypatch.setenv("MODEL_SIGNING_KEY_FILE", str(key_file))
    assert main(["--models-dir", str(tmp_path / "m")]) == 0
    assert (tmp_path / "m" / SIGNATURE_NAME).exists()
    assert load_model_set(tmp_path / "m", signing_key=KEY.encode()).status == "healthy"

    inside = tmp_path / "m" / "signing.key"
    inside.write_text(KEY)
    monkeypatch.setenv("MODEL_SIGNING_KEY_FILE", str(inside))
    assert main(["--models-dir", str(tmp_path / "m")]) == 2
    err = capsys.readouterr().err
    assert "MODEL_SIGNING_KEY_FILE" in err and "outside MODELS_DIR" in err and KEY not in err


def test_the_model_name_is_stored_for_the_v2_protocol_and_checked(tmp_path, capsys):
    assert main(["--models-dir", str(tmp_path / "m"), "--model-name", "flowers"]) == 0
    manifest = json.loads((tmp_path / "m" / MANIFEST_NAME).read_text())
    assert manifest["model_name"] == "flowers" and load_model_set(tmp_path / "m").model_name == "flowers"
    capsys.readouterr()
    assert main(["--models-dir", str(tmp_path / "n"), "--model-name", "../x"]) == 2
    assert "model name '../x' must be 1-64 letters" in capsys.readouterr().err
    assert not (tmp_path / "n").exists()
