"""The state store's contract: what a backend keeps, and what it guarantees.

The serving core, the reports and the CLIs talk to a ``Store``; ``app.store.open_store`` opens it from
DATABASE_URL (SQLite, the only backend so far). The records are plain data so that a backend is only
storage.
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

    def latest_experiment(self) -> Experiment | None:
        """The experiment in force now, or None before the first start."""

    def ensure_experiment(self, weights: dict[str, int], env_weights: dict[str, int]) -> Experiment:
        """Keep the latest experiment while its environment weights equal ``env_weights``, else start one."""

    def start_experiment(self, weights: dict[str, int], env_weights: dict[str, int], source: str) -> Experiment:
        """Record a weights change: a new experiment period starts now."""

    def experiments(self) -> list[Experiment]:
        """Every experiment period, oldest first."""

    def generation(self) -> int:
        """How many times a model reload has been requested (0 before the first)."""

    def bump_generation(self) -> int:
        """Ask every worker to reload its models; returns the new generation."""

    def write_predictions(self, records: Sequence[PredictionRecord]) -> None:
        """Append a batch of predictions atomically; a prediction id already logged is ignored."""

    def trim(self, keep_rows: int) -> int:
        """Drop the oldest logged predictions beyond ``keep_rows``; returns how many were dropped."""

    def recent_features(self, limit: int) -> list[list[float]]:
        """Feature rows of the last ``limit`` logged predictions, newest first."""

    def count_predictions(self) -> int:
        """Rows in the prediction log."""

    def find_prediction(self, prediction_id: str) -> dict[str, Any] | None:
        """One logged prediction by id (its stored fields and label), or None."""

    def set_label(self, prediction_id: str, label: int) -> LabelResult | None:
        """Record (or correct) the true label of a prediction; None if the id is unknown."""

    def set_labels(self, items: Sequence[tuple[str, int]]) -> list[LabelResult | None]:
        """Record (or correct) many labels atomically; None for each unknown id, in input order."""

    def variant_counts(self, *, experiment_id: int | None = None, since: float | None = None) -> list[VariantCounts]:
        """Requests, labelled and correct predictions per (experiment, version) in the period."""

    def latencies(self, *, experiment_id: int | None = None, since: float | None = None) -> dict[str, list[float]]:
        """Per-version latencies (ms) of the most recent predictions in the period."""

    def close(self) -> None:
        """Release every connection the store holds."""
