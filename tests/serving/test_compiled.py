"""The compiled batch path: exact to scikit-learn, built once per process, and dropped (never served
wrong) when it cannot be built or disagrees."""

from pathlib import Path

import numpy as np
import pytest
from sklearn.ensemble import RandomForestClassifier

import app.serving.compiled as compiled
from app.serving.compiled import CompiledForest, compile_forest
from app.serving.predictor import FastForest
from app.serving.registry import load_model_set
from tests.helpers import wait_until
from tests.serving.test_predictor import random_rows


@pytest.fixture(scope="module")
def model_set(trained_models):
    return load_model_set(trained_models, "fast")


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_the_served_forests_score_batches_compiled_and_exactly(model_set, version):
    loaded = model_set.versions[version]
    assert loaded.predictor.batch_backend == "tl2cgen"
    X = random_rows(20_000, seed=3)
    expected = loaded.estimator.predict_proba(X)
    actual = loaded.predictor.predict_proba(X)
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-12)
    np.testing.assert_array_equal(actual.argmax(axis=1), loaded.estimator.predict(X))


def test_a_weighted_forest_with_five_classes_compiles_exactly():
    rng = np.random.default_rng(4)
    X = rng.normal(size=(600, 6))
    y = (X[:, 0] > 0).astype(int) + (X[:, 1] > 0.3).astype(int) * 2 + (X[:, 4] > 1).astype(int)
    estimator = RandomForestClassifier(
        n_estimators=25, max_depth=8, class_weight="balanced_subsample", random_state=0
    ).fit(X, y)
    forest = compile_forest(estimator)
    assert isinstance(forest, CompiledForest)
    probe = rng.normal(scale=2, size=(5000, 6))
    np.testing.assert_allclose(forest.predict_proba(probe), estimator.predict_proba(probe), rtol=0, atol=1e-12)


def test_a_forest_is_compiled_once_per_process(model_set, monkeypatch):
    estimator = model_set.versions["v1"].estimator
    first = compile_forest(estimator)
    builds = []
    monkeypatch.setattr(compiled, "_build", lambda *args: builds.append(args))
    assert isinstance(first, CompiledForest) and compile_forest(estimator) is first and builds == []


def test_without_a_compiler_the_served_set_takes_the_numpy_walk(trained_models, monkeypatch, caplog):
    monkeypatch.setattr(compiled.shutil, "which", lambda name: None)
    loaded = load_model_set(trained_models, "fast").versions["v2"]
    assert loaded.predictor.batch_backend == "numpy" and "no C compiler (gcc) on PATH" in caplog.text
    X = random_rows(500, seed=2)
    np.testing.assert_allclose(loaded.predictor.predict_proba(X), loaded.estimator.predict_proba(X), rtol=0, atol=1e-12)


def test_a_failed_compile_is_logged_not_retried_and_leaves_no_files(model_set, monkeypatch, tmp_path, caplog):
    monkeypatch.setattr(compiled.tempfile, "tempdir", str(tmp_path))
    monkeypatch.setattr(compiled, "_CACHE", compiled.OrderedDict())
    monkeypatch.setattr(compiled, "_FAILED", set())
    monkeypatch.setattr(compiled, "TOOLCHAIN", "true")  # a program that is not a C compiler
    estimator = model_set.versions["v1"].estimator
    assert compile_forest(estimator) is None
    assert "compiling the forest failed (" in caplog.text
    assert list(tmp_path.iterdir()) == []
    builds = []
    monkeypatch.setattr(compiled, "_build", lambda *args: builds.append(args))
    assert compile_forest(estimator) is None and builds == []  # not tried again on the next reload


def test_a_slow_compile_is_killed_with_everything_it_started(model_set, monkeypatch, tmp_path, caplog):
    """The compiler runs through shells started by tl2cgen: a timeout ends them all, and their files go."""
    work, pids = tmp_path / "work", tmp_path / "compiler-pids"
    work.mkdir()
    slow = tmp_path / "slow-cc"
    slow.write_text(f'#!/bin/sh\necho $$ >> "{pids}"\ntouch "$TMPDIR/leftover"\nexec sleep 600\n')
    slow.chmod(0o755)
    monkeypatch.setattr(compiled.tempfile, "tempdir", str(work))
    monkeypatch.setattr(compiled, "_CACHE", compiled.OrderedDict())
    monkeypatch.setattr(compiled, "_FAILED", set())
    monkeypatch.setattr(compiled, "TOOLCHAIN", str(slow))
    monkeypatch.setattr(compiled, "COMPILE_TIMEOUT_SECONDS", 8.0)
    assert compile_forest(model_set.versions["v2"].estimator) is None
    assert "compiling the forest took over 8 s" in caplog.text
    started = pids.read_text().split()
    assert started  # the fake compiler ran
    # Killed at once; a killed process stays in /proc until init has reaped it.
    wait_until(
        lambda: not any(Path(f"/proc/{pid}").exists() for pid in started), timeout=10, message="no compiler left"
    )
    assert list(work.iterdir()) == []


def test_the_server_streams_are_left_alone_while_compiling(model_set, monkeypatch, capfd):
    """The compile runs in a child: what tl2cgen and treelite print never reaches this process's stdout or stderr."""
    monkeypatch.setattr(compiled, "_CACHE", compiled.OrderedDict())
    assert compile_forest(model_set.versions["v2"].estimator) is not None
    out, err = capfd.readouterr()
    assert out == "" and err == ""


def test_a_compiled_path_that_disagrees_is_replaced_by_the_numpy_walk(trained_models, monkeypatch, caplog):
    def off_by_a_little(self, X):
        return np.full((len(X), 3), 1 / 3)

    monkeypatch.setattr(CompiledForest, "predict_proba", off_by_a_little)
    loaded = load_model_set(trained_models, "fast").versions["v2"]
    assert isinstance(loaded.predictor, FastForest) and loaded.predictor.batch_backend == "numpy"
    assert "compiled batch path disagrees with scikit-learn" in caplog.text
    X = random_rows(100, seed=8)
    np.testing.assert_allclose(loaded.predictor.predict_proba(X), loaded.estimator.predict_proba(X), atol=1e-12)
