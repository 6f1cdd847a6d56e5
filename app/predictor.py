"""Inference: a fast numpy forest compiled from the pickled estimator, and the sklearn reference.

The pickle stays the source of truth. ``FastForest`` flattens every tree of a fitted
RandomForestClassifier into a few contiguous arrays at load time and walks all trees at once,
level by level, with vectorised gathers. It reproduces sklearn exactly: inputs are rounded to
float32 before comparing (as sklearn's tree code does), leaf values are normalised the same way,
and per-tree probabilities are summed in tree order before dividing by the number of trees.
"""

from __future__ import annotations

from typing import Any, Protocol

import numpy as np


class Predictor(Protocol):
    """Anything that maps a (rows, features) float64 array to class probabilities."""

    backend: str

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities, shape (rows, classes)."""
        ...


class SklearnPredictor:
    """The estimator's own ``predict_proba``: the reference path (PREDICT_BACKEND=sklearn)."""

    backend = "sklearn"

    def __init__(self, estimator: Any) -> None:
        self._estimator = estimator

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Delegate to scikit-learn."""
        return self._estimator.predict_proba(X)


class FastForest:
    """A RandomForestClassifier flattened into arrays for vectorised traversal of all trees."""

    backend = "fast"

    def __init__(self, estimator: Any) -> None:
        trees = [est.tree_ for est in estimator.estimators_]
        if any(t.n_outputs != 1 for t in trees):
            raise ValueError("FastForest supports single-output classifiers only")
        sizes = np.array([t.node_count for t in trees])
        offsets = np.concatenate([[0], np.cumsum(sizes)[:-1]])
        n_nodes = int(sizes.sum())
        n_classes = int(trees[0].value.shape[2])
        feature = np.zeros(n_nodes, dtype=np.intp)
        threshold = np.full(n_nodes, np.inf)
        # children[2 * node + went_left]: one gather per level instead of two plus a select.
        children = np.empty(2 * n_nodes, dtype=np.intp)
        leaf_proba = np.zeros((n_nodes, n_classes))
        for tree, base in zip(trees, offsets):
            nodes = np.arange(tree.node_count) + base
            left, right = tree.children_left, tree.children_right
            is_leaf = left == -1
            feature[nodes] = np.where(is_leaf, 0, tree.feature)
            threshold[nodes] = np.where(is_leaf, np.inf, tree.threshold)
            # A leaf points at itself on both sides, so walking past it is harmless.
            children[2 * nodes] = np.where(is_leaf, nodes, right + base)
            children[2 * nodes + 1] = np.where(is_leaf, nodes, left + base)
            value = tree.value[:, 0, :].astype(np.float64)
            normalizer = value.sum(axis=1, keepdims=True)
            normalizer[normalizer == 0.0] = 1.0
            leaf_proba[nodes] = value / normalizer
        self._feature = feature
        self._threshold = threshold
        self._children = children
        self._leaf_proba = leaf_proba
        self._roots = offsets.astype(np.intp)
        self._depth = max(int(t.max_depth) for t in trees)
        self._n_trees = len(trees)
        self.n_features = int(estimator.n_features_in_)
        self.n_classes = n_classes

    def predict_proba(self, X: np.ndarray) -> np.ndarray:
        """Class probabilities for every row, matching sklearn's ``predict_proba``."""
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        if X.shape[0] == 1:
            return self._predict_row(X[0])[None, :]
        n = X.shape[0]
        flat = X.ravel()
        row_base = (np.arange(n, dtype=np.intp) * X.shape[1])[:, None]
        node = np.broadcast_to(self._roots, (n, self._n_trees)).copy()
        for _ in range(self._depth):
            went_left = flat[row_base + self._feature[node]] <= self._threshold[node]
            node = self._children[2 * node + went_left]
        # Summing over the tree axis accumulates in tree order, as sklearn's forest does.
        return self._leaf_proba[node].sum(axis=1) / self._n_trees

    def _predict_row(self, x: np.ndarray) -> np.ndarray:
        """The single-row path: the same walk without the row dimension."""
        node = self._roots
        feature, threshold, children = self._feature, self._threshold, self._children
        for _ in range(self._depth):
            node = children[2 * node + (x[feature[node]] <= threshold[node])]
        return self._leaf_proba[node].sum(axis=0) / self._n_trees


def build_predictor(estimator: Any, backend: str) -> Predictor:
    """The predictor for ``backend`` ('fast' or 'sklearn')."""
    if backend == "sklearn":
        return SklearnPredictor(estimator)
    if backend == "fast":
        return FastForest(estimator)
    raise ValueError(f"unknown backend {backend!r}")
