"""Inference: a fast forest compiled from the pickled estimator, and the sklearn reference.

The pickle stays the source of truth. At load, ``FastForest`` turns a fitted
RandomForestClassifier into two equivalent forms:

- for a few rows (the usual request), Python source with every tree as nested ``if``s on
  constant thresholds, accumulating constant leaf probabilities, compiled once with ``compile``;
  a prediction is a few hundred comparisons in bytecode, with no numpy call overhead;
- for batches, the forest compiled to machine code by tl2cgen (``app.serving.compiled``) where a C
  compiler is present, else flat numpy arrays walked level by level for all trees and rows at once.

Both reproduce sklearn exactly: inputs are rounded to float32 first (as sklearn's tree code
does), leaf values are normalised the same way, and per-tree probabilities are summed in tree
order before dividing by the number of trees. The generated source holds only numbers taken
from the integrity-checked pickle (``repr`` of floats, integer feature indices).
"""

from __future__ import annotations

import copy
from collections.abc import Callable
from typing import Any, Literal, Protocol

import numpy as np
import numpy.typing as npt

from app.serving.compiled import compile_forest


class Predictor(Protocol):
    """Anything that maps a (rows, features) float64 array to class probabilities."""

    backend: str

    @property
    def batch_backend(self) -> str:
        """What scores batches of more than a few rows (shown by /health)."""
        ...

    def predict_proba(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Class probabilities, shape (rows, classes)."""
        ...


class SklearnPredictor:
    """The estimator's own ``predict_proba``: the reference path (PREDICT_BACKEND=sklearn)."""

    backend = "sklearn"
    batch_backend = "sklearn"

    def __init__(self, estimator: Any) -> None:
        self._estimator = estimator

    def predict_proba(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Delegate to scikit-learn."""
        proba: npt.NDArray[np.float64] = self._estimator.predict_proba(X)
        return proba


class FastForest:
    """A RandomForestClassifier flattened into arrays for vectorised traversal of all trees."""

    backend = "fast"

    def __init__(self, estimator: Any, batch: Predictor | None = None) -> None:
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
        for tree, base in zip(trees, offsets, strict=True):
            nodes = np.arange(tree.node_count) + base
            left, right = tree.children_left, tree.children_right
            is_leaf = left == -1
            feature[nodes] = np.where(is_leaf, 0, tree.feature)
            threshold[nodes] = np.where(is_leaf, np.inf, tree.threshold)
            # A leaf points at itself on both sides, so walking past it is harmless.
            children[2 * nodes] = np.where(is_leaf, nodes, right + base)
            children[2 * nodes + 1] = np.where(is_leaf, nodes, left + base)
            leaf_proba[nodes] = _leaf_probabilities(tree)
        self._feature = feature
        self._threshold = threshold
        self._children = children
        self._leaf_proba = leaf_proba
        self._roots = offsets.astype(np.intp)
        self._depth = max(int(t.max_depth) for t in trees)
        self._n_trees = len(trees)
        self.n_features = int(estimator.n_features_in_)
        self.n_classes = n_classes
        compiled = self._depth <= _MAX_COMPILED_DEPTH and n_nodes <= _MAX_COMPILED_NODES
        self._row = _compile_rows(trees, offsets, leaf_proba) if compiled else None
        self._batch = batch

    @property
    def batch_backend(self) -> str:
        """What scores batches: 'tl2cgen' (compiled) or 'numpy' (the array walk)."""
        return self._batch.backend if self._batch is not None else "numpy"

    def without_batch(self) -> FastForest:
        """The same forest with the numpy array walk for batches (when the compiled one cannot be used)."""
        plain = copy.copy(self)
        plain._batch = None
        return plain

    def predict_proba(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Class probabilities for every row, matching sklearn's ``predict_proba``."""
        rows = X.shape[0]
        if self._row is not None and rows <= _COMPILED_MAX_ROWS:
            # tolist() of float32 gives the exact float32 values as Python floats.
            return np.array([self._row(*row) for row in np.asarray(X, dtype=np.float32).tolist()], dtype=np.float64)
        if self._batch is not None:
            return self._batch.predict_proba(X)
        X = np.asarray(X, dtype=np.float32).astype(np.float64)
        n = X.shape[0]
        flat = X.ravel()
        row_base = (np.arange(n, dtype=np.intp) * X.shape[1])[:, None]
        node = np.broadcast_to(self._roots, (n, self._n_trees)).copy()
        for _ in range(self._depth):
            went_left = flat[row_base + self._feature[node]] <= self._threshold[node]
            node = self._children[2 * node + went_left]
        # Summing over the tree axis accumulates in tree order, as sklearn's forest does.
        proba: npt.NDArray[np.float64] = self._leaf_proba[node].sum(axis=1) / self._n_trees
        return proba


# Python allows about 100 nested blocks, and compiling costs time and memory per node: deeper or
# bigger forests use the array walk for every input.
_MAX_COMPILED_DEPTH = 90
_MAX_COMPILED_NODES = 200_000
# Up to this many rows, calling the compiled function per row beats the array walk.
_COMPILED_MAX_ROWS = 8


def _leaf_probabilities(tree: Any) -> npt.NDArray[np.float64]:
    """Per-node class probabilities exactly as this scikit-learn's ``predict_proba`` returns them.

    Since scikit-learn 1.4 ``tree_.value`` holds the class fractions and ``predict_proba``
    returns them unchanged; earlier versions stored counts and divided by their sum.
    """
    value: npt.NDArray[np.float64] = tree.value[:, 0, :].astype(np.float64)
    if np.all(np.abs(value.sum(axis=1) - 1.0) < 1e-6):
        return value
    normalizer: npt.NDArray[np.float64] = value.sum(axis=1, keepdims=True)
    normalizer[normalizer == 0.0] = 1.0
    return value / normalizer


def _compile_rows(
    trees: list[Any], offsets: npt.NDArray[np.intp], leaf_proba: npt.NDArray[np.float64]
) -> Callable[..., tuple[float, ...]]:
    """Compile the forest into ``f(x0, x1, ...) -> (p0, p1, ...)`` with every tree inlined."""
    n_features = int(trees[0].n_features)
    n_classes = leaf_proba.shape[1]
    accumulators = [f"a{c}" for c in range(n_classes)]
    lines = [f"def forest({', '.join(f'x{i}' for i in range(n_features))}):", f"    {' = '.join(accumulators)} = 0.0"]
    for tree, base in zip(trees, offsets, strict=True):
        left, right = tree.children_left, tree.children_right
        # (node, indentation level); right children are pushed under their "else:"
        stack: list[tuple[int | Literal["else"], int]] = [(0, 1)]
        while stack:
            node, level = stack.pop()
            pad = "    " * level
            if isinstance(node, str):  # the "else" marker
                lines.append(f"{pad}else:")
                continue
            if left[node] == -1:
                # Adding 0.0 changes nothing, so pure leaves add only their class.
                adds = [f"a{c} += {float(p)!r}" for c, p in enumerate(leaf_proba[base + node]) if p != 0.0]
                lines.append(pad + ("; ".join(adds) if adds else "pass"))
                continue
            lines.append(f"{pad}if x{int(tree.feature[node])} <= {float(tree.threshold[node])!r}:")
            stack.append((int(right[node]), level + 1))
            stack.append(("else", level))
            stack.append((int(left[node]), level + 1))
    n = len(trees)
    lines.append(f"    return ({', '.join(f'{a} / {n}' for a in accumulators)},)")
    # repr() of an infinite threshold (trees grown with missing values) is the name "inf".
    namespace: dict[str, Any] = {"inf": float("inf")}
    # exec is safe here: the source holds only numbers from the integrity-checked pickle.
    exec(compile("\n".join(lines), "<compiled forest>", "exec"), namespace)
    forest: Callable[..., tuple[float, ...]] = namespace["forest"]
    return forest


def build_predictor(estimator: Any, backend: str) -> Predictor:
    """The predictor for ``backend`` ('fast' or 'sklearn')."""
    if backend == "sklearn":
        return SklearnPredictor(estimator)
    if backend == "fast":
        return FastForest(estimator, batch=compile_forest(estimator))
    raise ValueError(f"unknown backend {backend!r}")
