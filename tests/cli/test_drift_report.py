"""python app/monitoring.py: the seed's report from the real log, JSON, simulation, exit codes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import numpy as np

from app.settings import REPO_DIR
from app.store import PredictionRecord, SQLiteStore


def run(args: list[str], env: dict) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "app/monitoring.py", *args],
        cwd=REPO_DIR,
        capture_output=True,
        text=True,
        env={**os.environ, **env},
        timeout=120,
    )


def fill(database, rows: np.ndarray) -> None:
    store = SQLiteStore(database, create=True)
    store.write_predictions(
        [PredictionRecord(f"p{i}", time.time(), 1, "v1", row.tolist(), 0, [1, 0, 0], 1.0) for i, row in enumerate(rows)]
    )
    store.close()


def reference_rows(models_dir) -> np.ndarray:
    from app.artifacts import load_training_stats

    return np.asarray(load_training_stats(models_dir)["reference"])


def test_report_ok_then_drift(models_dir, tmp_path):
    env = {"MODELS_DIR": str(models_dir), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    ref = reference_rows(models_dir)
    fill(tmp_path / "db.sqlite", ref[:100])
    ok = run([], env)
    assert ok.returncode == 0, ok.stderr
    assert "Drift Detection Report - " in ok.stdout and "Threshold: 0.30" in ok.stdout and "Status: OK" in ok.stdout
    assert "No significant drift detected" in ok.stdout

    shifted = ref[:100].copy()
    shifted[:, 2] += 2 * ref[:, 2].std()
    drifted_db = tmp_path / "drifted.sqlite"
    fill(drifted_db, shifted)
    bad = run([], {**env, "DATABASE_URL": f"sqlite:///{drifted_db}"})
    assert bad.returncode == 1
    assert "Status: WARNING" in bad.stdout and "Potential model drift detected" in bad.stdout
    as_json = json.loads(run(["--json"], {**env, "DATABASE_URL": f"sqlite:///{drifted_db}"}).stdout)
    assert as_json["drift_detected"] is True and as_json["features"]["petal_length"]["drifted"] is True
    assert as_json["drift_score"] >= as_json["threshold"] == 0.3


def test_insufficient_data_is_no_alarm(models_dir, tmp_path):
    env = {"MODELS_DIR": str(models_dir), "DATABASE_URL": f"sqlite:///{tmp_path / 'db.sqlite'}"}
    fill(tmp_path / "db.sqlite", reference_rows(models_dir)[:10])
    result = run(["--json"], env)
    assert result.returncode == 0 and json.loads(result.stdout)["status"] == "INSUFFICIENT_DATA"


def test_simulate_three_scenarios(models_dir, tmp_path):
    result = run(["--simulate", "--json"], {"MODELS_DIR": str(models_dir)})
    assert result.returncode == 0, result.stderr
    reports = json.loads(result.stdout)
    assert set(reports) == {"no_drift", "moderate", "severe"}
    assert reports["no_drift"]["status"] == "OK"
    assert reports["moderate"]["drift_detected"] and reports["severe"]["drift_score"] == 1.0


def test_missing_models_exit_two(tmp_path):
    result = run([], {"MODELS_DIR": str(tmp_path / "none"), "DATABASE_URL": f"sqlite:///{tmp_path / 'x.db'}"})
    assert result.returncode == 2 and "cannot compute drift" in result.stderr


def test_the_threshold_setting_reaches_the_report(models_dir, tmp_path):
    database = tmp_path / "db.sqlite"
    fill(database, reference_rows(models_dir)[:100])
    env = {"MODELS_DIR": str(models_dir), "DATABASE_URL": f"sqlite:///{database}", "DRIFT_THRESHOLD": "0.5"}
    result = run(["--json"], env)
    assert result.returncode == 0 and json.loads(result.stdout)["threshold"] == 0.5
    assert "Threshold: 0.50" in run([], env).stdout


def test_bad_settings_exit_two_naming_the_variable(tmp_path):
    result = run([], {"DRIFT_WINDOW": "many"})
    assert result.returncode == 2 and result.stderr.startswith("error: DRIFT_WINDOW='many'")
    assert len(result.stderr.strip().splitlines()) == 1


def test_console_script_is_the_same_command(models_dir, tmp_path):
    database = tmp_path / "db.sqlite"
    fill(database, reference_rows(models_dir)[:10])
    env = {**os.environ, "MODELS_DIR": str(models_dir), "DATABASE_URL": f"sqlite:///{database}"}
    script = os.path.join(os.path.dirname(sys.executable), "mlops-drift")
    result = subprocess.run([script, "--json"], capture_output=True, text=True, env=env, timeout=120)
    assert result.returncode == 0 and json.loads(result.stdout)["samples"] == 10
