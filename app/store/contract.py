"""The state store's contract: what every backend keeps, and what it guarantees.

The serving core, the reports and the CLIs talk to a ``Store``; ``app.store.open_store`` picks the
backend from DATABASE_URL. The records are plain data so that a backend is only storage.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol

class StoreUnavailable(Exception):
    """The store could not be read or written (locked, read-only, disk full, gone)."""


@dataclass(frozen=True)
class Experiment:
    """One experiment period: the weights in force from ``started_at`` until the next change."""

    id: int
    started_at: float
    weights: dict[str, int]
    env_weights: dict[str, int]
    source: str


class PredictionRecord(NamedTuple):
    """One served prediction (a batch row is one record); a tuple, since every request makes one."""

    prediction_id: str
    ts: float
    experiment_id: int | None
    model_version: str
    features: Sequence[float]
    prediction: int
    probabilities: Sequence[float]
    latency_ms: float
    user_hash: str | None = None


@dataclass(frozen=True)
class LabelResult:
    """What recording a label found and changed."""

    model_version: str
    prediction: int
    previous_label: int | None


@dataclass(frozen=True)
class VariantCounts:
    """Per (experiment, version): requests, labelled and correct predictions."""

    experiment_id: int | None
    version: str
    requests: int
    labeled: int
    correct: int


class Store(Protocol):
    """What the service needs from its state store."""

    def latest_experiment(self) -> Experiment | None: ...
    def ensure_experiment(self, weights: dict[str, int], env_weights: dict[str, int]) -> Experiment: ...
    def start_experiment(self, weights: dict[str, int], env_weights: dict[str, int], source: str) -> Experiment: ...
    def experiments(self) -> list[Experiment]: ...
    def generation(self) -> int: ...
    def bump_generation(self) -> int: ...
    def write_predictions(self, records: Sequence[PredictionRecord]) -> None: ...
    def trim(self, keep_rows: int) -> int: ...
    def recent_features(self, limit: int) -> list[list[float]]: ...
    def count_predictions(self) -> int: ...
    def find_prediction(self, prediction_id: str) -> dict | None: ...
    def set_label(self, prediction_id: str, label: int) -> LabelResult | None: ...
    def set_labels(self, items: Sequence[tuple[str, int]]) -> list[LabelResult | None]: ...
    def variant_counts(self, *, experiment_id: int | None = None, since: float | None = None) -> list[VariantCounts]: ...
    def latencies(self, *, experiment_id: int | None = None, since: float | None = None) -> dict[str, list[float]]: ...
    def close(self) -> None: ...
