"""Every knob of the service: one typed, validated object, read from the environment once.

Nothing else in the project reads ``os.environ`` for configuration: the app factory, the CLIs and
gunicorn's config build a ``Settings`` (defaults, then the environment, then what the caller passes)
and hand it down. pydantic does the casting and the checks, on every construction path. The one
exception is PROMETHEUS_MULTIPROC_DIR: prometheus_client's own switch, which the metrics module and
gunicorn's config only test for.
"""

from __future__ import annotations

import os
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

APP_DIR = Path(__file__).resolve().parent
REPO_DIR = APP_DIR.parent

_WEIGHT_VAR = re.compile(r"^MODEL_([A-Z0-9_]+)_WEIGHT$")

Positive = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Weight = Annotated[int, Field(ge=0, le=1_000_000)]


class SettingsError(ValueError):
    """A setting cannot be used; the message names the environment variable."""


class Settings(BaseModel):
    """Typed configuration; each field maps to the upper-case environment variable of its name."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, validate_default=True)

    models_dir: Path = APP_DIR / "models"
    """Where train_model.py writes and the API loads model_v*.pkl, training_stats.pkl, manifest.json."""
    database_url: str = "sqlite:///data/mlops.db"
    """State store (weights history, prediction log, feedback). Relative sqlite paths are from the cwd."""
    admin_token: str | None = None
    """Bearer token for admin endpoints (PUT /config, POST /models/reload). Unset: admin is disabled (403)."""
    predict_backend: Literal["fast", "sklearn"] = "fast"
    """'fast' (forest compiled at load) or 'sklearn' (the pickled estimator's predict_proba)."""
    max_batch: Positive = 1000
    """Largest number of rows accepted in one {"instances": [...]} request (and feedback items in one bulk)."""
    max_body_bytes: Positive = 1024 * 1024
    """Request bodies above this size are answered 413."""
    experiment_salt: str = "mlops-ab"
    """Salt for sticky assignment: hash(salt, user_id) picks the variant."""
    default_weight: Weight = 50
    """Weight of a manifest version with no MODEL_<VERSION>_WEIGHT variable (the seed's 50/50)."""
    env_weights: dict[str, Weight] = Field(default_factory=dict)
    """Weights given by MODEL_<VERSION>_WEIGHT variables, keyed by lower-case version ('v1')."""
    store_busy_timeout: PositiveFloat = 5.0
    """How long a store write waits for a lock before it counts as failed."""
    state_poll_seconds: PositiveFloat = 0.5
    """How often each worker re-reads weights and the model generation from the store."""
    log_flush_seconds: PositiveFloat = 0.2
    """Prediction-log writes are batched off the request path and flushed at least this often."""
    log_queue_size: Positive = 50_000
    """Bound of the in-memory prediction-log queue; beyond it rows are dropped and counted."""
    log_retention_rows: Positive = 1_000_000
    """The prediction log keeps at most this many rows (oldest dropped)."""
    drift_window: Positive = 100
    """Drift compares the last DRIFT_WINDOW logged rows with the training reference."""
    drift_min_samples: Positive = 30
    """Below this many rows in the window drift is INSUFFICIENT_DATA."""
    drift_threshold: Annotated[float, Field(gt=0, le=1)] = 0.3
    """drift_score >= this means drift (the seed's threshold); the alert reads model_drift_detected."""
    feedback_wait_seconds: Annotated[float, Field(ge=0)] = 0.5
    """A /feedback for an id not yet flushed by its worker waits at most this long before 404."""
    api_host: str = "127.0.0.1"
    """Address gunicorn binds (run_demo.sh and gunicorn.conf.py). Containers use 0.0.0.0."""
    api_port: Annotated[int, Field(gt=0, lt=65536)] = 5000
    """API port."""
    api_workers: Positive = Field(default_factory=lambda: max(os.cpu_count() or 1, 1))
    """gunicorn worker processes (default: CPU cores)."""
    api_threads: Positive = 1
    """Threads per gunicorn worker (gthread)."""
    api_access_log: str | None = None
    """gunicorn access log target ('-' for stdout); unset: no access log."""
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    """Python logging level for the service."""
    api_url: str = "http://localhost:5000"
    """Where the UI finds the API; compose sets http://flask-api:5000."""
    api_timeout_seconds: PositiveFloat = 3.0
    """How long the UI waits for one API call."""

    @classmethod
    def from_env(cls, env: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
        """Build settings from defaults, then ``env`` (default: os.environ), then ``overrides``."""
        env = os.environ if env is None else env
        values: dict[str, Any] = {}
        for name in cls.model_fields:
            raw = env.get(name.upper())
            if raw is not None and raw != "" and name != "env_weights":
                values[name] = raw.lower() if name == "log_level" else raw
        values["env_weights"] = _weights_from_env(env)
        values.update(overrides)
        return cls.build(values)

    @classmethod
    def build(cls, values: Mapping[str, Any]) -> Settings:
        """Validate ``values`` into settings; a bad value raises SettingsError naming its variable."""
        try:
            return cls.model_validate(dict(values))
        except ValidationError as exc:
            first = exc.errors()[0]
            loc = [str(part) for part in first["loc"]]
            field = loc[0] if loc else ""
            given = values.get(field)
            name = field.upper() or "settings"
            if field == "env_weights" and len(loc) > 1:
                name, given = f"MODEL_{loc[1].upper()}_WEIGHT", dict(given or {}).get(loc[1])
            raise SettingsError(f"{name}={given!r}: {first['msg']}") from None

    def with_overrides(self, **overrides: Any) -> Settings:
        """A copy with some fields replaced, validated like any other construction."""
        return type(self).build({**self.model_dump(), **overrides})

    def weights_for(self, versions: list[str]) -> dict[str, int]:
        """The environment's weights for these versions (default_weight where none is given)."""
        return {v: int(self.env_weights.get(v, self.default_weight)) for v in versions}

    @property
    def admin_enabled(self) -> bool:
        """Whether admin endpoints are available at all."""
        return bool(self.admin_token)


def _weights_from_env(env: Mapping[str, str]) -> dict[str, int]:
    """Collect MODEL_<VERSION>_WEIGHT variables into {'v1': 50, ...}."""
    weights: dict[str, int] = {}
    for key, raw in env.items():
        match = _WEIGHT_VAR.match(key)
        if not match or raw == "":
            continue
        try:
            weights[match.group(1).lower()] = int(raw)
        except ValueError:
            raise SettingsError(f"{key}={raw!r} must be a non-negative integer") from None
    return weights
