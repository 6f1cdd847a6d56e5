"""Every knob of the service, read from the environment once.

Nothing else in the project reads ``os.environ`` for configuration: the app factory builds a
``Settings`` (defaults, then the environment, then what a test passes in) and hands it down.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Mapping

APP_DIR = Path(__file__).resolve().parent
REPO_DIR = APP_DIR.parent

_WEIGHT_VAR = re.compile(r"^MODEL_([A-Z0-9_]+)_WEIGHT$")


@dataclass(frozen=True)
class Settings:
    """Typed configuration; each field maps to the upper-case environment variable of its name."""

    models_dir: Path = APP_DIR / "models"
    """Where train_model.py writes and the API loads model_v*.pkl, training_stats.pkl, manifest.json."""
    database_url: str = "sqlite:///data/mlops.db"
    """State store (weights history, prediction log, feedback). Relative sqlite paths are from the cwd."""
    admin_token: str | None = None
    """Bearer token for admin endpoints (PUT /config, POST /models/reload). Unset: admin is disabled (403)."""
    predict_backend: str = "fast"
    """'fast' (vectorised numpy forest compiled at load) or 'sklearn' (the pickled estimator's predict_proba)."""
    max_batch: int = 1000
    """Largest number of rows accepted in one {"instances": [...]} request."""
    max_body_bytes: int = 1024 * 1024
    """Request bodies above this size are answered 413."""
    experiment_salt: str = "mlops-ab"
    """Salt for sticky assignment: hash(salt, user_id) picks the variant."""
    default_weight: int = 50
    """Weight of a manifest version with no MODEL_<VERSION>_WEIGHT variable (the seed's 50/50)."""
    env_weights: Mapping[str, int] = field(default_factory=dict)
    """Weights given by MODEL_<VERSION>_WEIGHT variables, keyed by lower-case version ('v1')."""
    store_busy_timeout: float = 5.0
    """How long a store write waits for a lock before it counts as failed."""
    state_poll_seconds: float = 0.5
    """How often each worker re-reads weights and the model generation from the store."""
    log_flush_seconds: float = 0.2
    """Prediction-log writes are batched off the request path and flushed at least this often."""
    log_queue_size: int = 50_000
    """Bound of the in-memory prediction-log queue; beyond it rows are dropped and counted."""
    log_retention_rows: int = 1_000_000
    """The prediction log keeps at most this many rows (oldest dropped)."""
    drift_window: int = 100
    """Drift compares the last DRIFT_WINDOW logged rows with the training reference."""
    drift_min_samples: int = 30
    """Below this many rows in the window drift is INSUFFICIENT_DATA."""
    drift_threshold: float = 0.3
    """drift_score >= this means drift (the seed's threshold)."""
    feedback_wait_seconds: float = 0.5
    """A /feedback for an id not yet flushed by its worker waits at most this long before 404."""
    api_host: str = "127.0.0.1"
    """Address gunicorn binds (run_demo.sh and gunicorn.conf.py). Containers use 0.0.0.0."""
    api_port: int = 5000
    """API port."""
    api_workers: int = max(os.cpu_count() or 1, 1)
    """gunicorn worker processes."""
    api_threads: int = 1
    """Threads per gunicorn worker (gthread)."""
    api_access_log: str | None = None
    """gunicorn access log target ('-' for stdout); unset: no access log."""
    log_level: str = "info"
    """Python logging level for the service."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> "Settings":
        """Build settings from defaults, then ``env`` (default: os.environ), then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "env_weights":
                continue
            raw = env.get(f.name.upper())
            if raw is None or raw == "":
                continue
            values[f.name] = _coerce(f.name, f.type, raw)
        values["env_weights"] = _weights_from_env(env)
        values.update(overrides)
        if isinstance(values.get("models_dir"), str):
            values["models_dir"] = Path(values["models_dir"])
        settings = cls(**values)
        settings.validate()
        return settings

    def with_overrides(self, **overrides: Any) -> "Settings":
        """A copy with some fields replaced."""
        return replace(self, **overrides)

    def validate(self) -> None:
        """Reject settings that cannot work, at start-up rather than on the first request."""
        if self.predict_backend not in ("fast", "sklearn"):
            raise ValueError(f"PREDICT_BACKEND must be 'fast' or 'sklearn', not {self.predict_backend!r}")
        if self.max_batch < 1:
            raise ValueError("MAX_BATCH must be >= 1")
        if not 0 < self.drift_threshold <= 1:
            raise ValueError("DRIFT_THRESHOLD must be in (0, 1]")
        if self.drift_window < 1 or self.drift_min_samples < 1:
            raise ValueError("DRIFT_WINDOW and DRIFT_MIN_SAMPLES must be >= 1")
        positive = {
            "LOG_FLUSH_SECONDS": self.log_flush_seconds, "STATE_POLL_SECONDS": self.state_poll_seconds,
            "LOG_QUEUE_SIZE": self.log_queue_size, "LOG_RETENTION_ROWS": self.log_retention_rows,
            "API_WORKERS": self.api_workers, "API_THREADS": self.api_threads, "MAX_BODY_BYTES": self.max_body_bytes,
            "STORE_BUSY_TIMEOUT": self.store_busy_timeout, "API_PORT": self.api_port,
        }
        for name, value in positive.items():
            if value <= 0:
                raise ValueError(f"{name} must be above 0 (got {value})")
        if self.feedback_wait_seconds < 0:
            raise ValueError("FEEDBACK_WAIT_SECONDS must not be negative")
        if any(w < 0 for w in self.env_weights.values()):
            raise ValueError("MODEL_<VERSION>_WEIGHT values must be non-negative integers")

    def weights_for(self, versions: list[str]) -> dict[str, int]:
        """The environment's weights for these versions (default_weight where none is given)."""
        return {v: int(self.env_weights.get(v, self.default_weight)) for v in versions}

    @property
    def admin_enabled(self) -> bool:
        """Whether admin endpoints are available at all."""
        return bool(self.admin_token)


def _coerce(name: str, type_name: Any, raw: str) -> Any:
    """Turn one environment string into the field's type, with a readable error."""
    type_name = str(type_name)
    try:
        if type_name.startswith("int"):
            return int(raw)
        if type_name.startswith("float"):
            return float(raw)
        if type_name == "Path":
            return Path(raw)
    except ValueError as exc:
        raise ValueError(f"{name.upper()}={raw!r} is not a valid {type_name}") from exc
    return raw


def _weights_from_env(env: Mapping[str, str]) -> dict[str, int]:
    """Collect MODEL_<VERSION>_WEIGHT variables into {'v1': 50, ...}."""
    weights: dict[str, int] = {}
    for key, raw in env.items():
        match = _WEIGHT_VAR.match(key)
        if not match or raw == "":
            continue
        try:
            weights[match.group(1).lower()] = int(raw)
        except ValueError as exc:
            raise ValueError(f"{key}={raw!r} must be a non-negative integer") from exc
    return weights
