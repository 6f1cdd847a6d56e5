"""The fast forest must agree with scikit-learn: same class, probabilities within 1e-6."""

import numpy as np
import pytest
from sklearn.datasets import load_iris
from sklearn.ensemble import RandomForestClassifier

import app.serving.predictor as predictor_module
from app.serving.predictor import FastForest, SklearnPredictor, build_predictor
from app.serving.registry import load_model_set


@pytest.fixture(scope="module")
def model_set(trained_models):
    return load_model_set(trained_models, "fast")


def random_rows(n: int = 10_000, seed: int = 7) -> np.ndarray:
    """Rows spanning 1.5x the Iris training range on every feature."""
    X = load_iris().data
    low, high = X.min(axis=0), X.max(axis=0)
    span = high - low
    rng = np.random.default_rng(seed)
    return rng.uniform(low - 0.25 * span, high + 0.25 * span, size=(n, X.shape[1]))


@pytest.mark.parametrize("version", ["v1", "v2"])
@pytest.mark.parametrize("dataset", ["iris", "random"])
def test_fast_forest_agrees_with_sklearn(model_set, version, dataset):
    X = load_iris().data if dataset == "iris" else random_rows()
    loaded = model_set.versions[version]
    expected = loaded.estimator.predict_proba(X)
    actual = loaded.predictor.predict_proba(X)
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, rtol=0, atol=1e-6)
    np.testing.assert_array_equal(actual.argmax(axis=1), loaded.estimator.predict(X))


@pytest.mark.parametrize("version", ["v1", "v2"])
def test_single_row_path_matches_batch_path(model_set, version):
    X = random_rows(500, seed=11)
    predictor = model_set.versions[version].predictor
    batch = predictor.predict_proba(X)
    single = np.vstack([predictor.predict_proba(row[None, :]) for row in X])
    np.testing.assert_array_equal(single, batch)


def test_float32_rounding_matches_sklearn_at_thresholds(model_set):
    """Values straddling a split threshold fall on the same side as in sklearn (float32 inputs)."""
    loaded = model_set.versions["v2"]
    tree = loaded.estimator.estimators_[0].tree_
    internal = np.flatnonzero(tree.children_left != -1)
    rows = []
    for node in internal[:20]:
        threshold = tree.threshold[node]
        for value in (threshold, np.nextafter(threshold, np.inf), np.nextafter(threshold, -np.inf)):
            row = load_iris().data[0].copy()
            row[tree.feature[node]] = value
            rows.append(row)
    X = np.array(rows)
    np.testing.assert_allclose(loaded.predictor.predict_proba(X), loaded.estimator.predict_proba(X), atol=1e-6)


def test_build_predictor_backends(model_set):
    estimator = model_set.versions["v1"].estimator
    assert isinstance(build_predictor(estimator, "fast"), FastForest)
    assert isinstance(build_predictor(estimator, "sklearn"), SklearnPredictor)
    with pytest.raises(ValueError, match="unknown backend 'onnx'"):
        build_predictor(estimator, "onnx")


@pytest.mark.parametrize("rows", [1, 2, 8, 9, 50])
def test_compiled_and_array_paths_agree_at_every_batch_size(model_set, rows):
    """Up to 8 rows go through the compiled trees, more through the array walk: same answers."""
    X = random_rows(rows, seed=rows)
    loaded = model_set.versions["v2"]
    np.testing.assert_allclose(loaded.predictor.predict_proba(X), loaded.estimator.predict_proba(X), rtol=0, atol=1e-12)


def test_deep_forests_fall_back_to_the_array_walk(model_set, monkeypatch):
    monkeypatch.setattr(predictor_module, "_MAX_COMPILED_DEPTH", 0)
    estimator = model_set.versions["v1"].estimator
    forest = FastForest(estimator)
    assert forest._row is None
    X = random_rows(3, seed=5)
    np.testing.assert_allclose(forest.predict_proba(X), estimator.predict_proba(X), rtol=0, atol=1e-12)


def test_many_classes_and_features():
    """A forest on other data (7 features, 5 classes) compiles and agrees too."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(400, 7))
    y = (X[:, 0] * 2 + X[:, 3] > 0).astype(int) + (X[:, 5] > 0.5).astype(int) * 2 + (X[:, 6] > 1.2).astype(int)
    estimator = RandomForestClassifier(n_estimators=30, max_depth=9, random_state=0).fit(X, y)
    forest = FastForest(estimator)
    probe = rng.normal(scale=2, size=(300, 7))
    single = np.vstack([forest.predict_proba(row[None, :]) for row in probe])
    np.testing.assert_allclose(single, estimator.predict_proba(probe), rtol=0, atol=1e-12)


def test_weighted_forest_matches_bit_for_bit():
    """Leaf values are used exactly as this scikit-learn returns them (class weights make them uneven)."""
    X, y = load_iris(return_X_y=True)
    estimator = RandomForestClassifier(
        n_estimators=40, max_depth=6, class_weight="balanced_subsample", random_state=1
    ).fit(X, y)
    forest = FastForest(estimator)
    probe = random_rows(2000, seed=9)
    np.testing.assert_array_equal(forest.predict_proba(probe), estimator.predict_proba(probe))
    single = np.vstack([forest.predict_proba(row[None, :]) for row in probe[:300]])
    np.testing.assert_array_equal(single, estimator.predict_proba(probe[:300]))


def test_infinite_thresholds_compile():
    """Trees grown on data with missing values split at +inf; the compiled code must handle it."""
    X, y = load_iris(return_X_y=True)
    X = X.copy()
    X[::7, 2] = np.nan
    estimator = RandomForestClassifier(n_estimators=20, max_depth=5, random_state=0).fit(X, y)
    forest = FastForest(estimator)
    probe = load_iris().data
    np.testing.assert_allclose(forest.predict_proba(probe[:1]), estimator.predict_proba(probe[:1]), atol=1e-12)
