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

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, ValidationError, ValidationInfo, field_validator

APP_DIR = Path(__file__).resolve().parent
REPO_DIR = APP_DIR.parent

_WEIGHT_VAR = re.compile(r"^MODEL_([A-Z0-9_]+)_WEIGHT$")

Positive = Annotated[int, Field(gt=0)]
PositiveFloat = Annotated[float, Field(gt=0)]
Weight = Annotated[int, Field(ge=0, le=1_000_000)]

MIN_ADMIN_TOKEN_LENGTH = 16
MIN_SIGNING_KEY_LENGTH = 32
_ADMIN_TOKEN = re.compile(rf"[!-~]{{{MIN_ADMIN_TOKEN_LENGTH},}}")  # printable ASCII, no spaces: sendable in a header
_HOST_NAME = re.compile(r"\[[0-9a-f:.]+\]|[a-z0-9_.-]+")
_SECRET_FIELDS = frozenset({"admin_token", "model_signing_key"})


class SettingsError(ValueError):
    """A setting cannot be used; the message names the environment variable."""


class Settings(BaseModel):
    """Typed configuration; each field maps to the upper-case environment variable of its name."""

    model_config = ConfigDict(frozen=True, extra="forbid", use_attribute_docstrings=True, validate_default=True)

    models_dir: Path = APP_DIR / "models"
    """Where train_model.py writes and the API loads model_v*.pkl, training_stats.pkl, manifest.json."""
    model_signing_key: str | None = Field(default=None, repr=False)
    """HMAC-SHA256 key (at least 32 characters) training signs manifest.json with (manifest.json.sig); the API
    then refuses a model set whose signature does not match before unpickling anything. Unset: sha256 only."""
    model_signing_key_file: Path | None = None
    """A file holding MODEL_SIGNING_KEY instead of the variable; it must be outside MODELS_DIR."""
    database_url: str = "sqlite:///data/mlops.db"
    """State store (weights history, prediction log, feedback). Relative sqlite paths are from the cwd."""
    admin_token: str | None = Field(default=None, repr=False)
    """Bearer token for admin endpoints (PUT /config, POST /models/reload): at least 16 printable ASCII
    characters without spaces. Unset: admin is disabled (403)."""
    admin_max_failures: Positive = 5
    """Wrong or missing admin tokens one client address may send per ADMIN_FAILURE_WINDOW_SECONDS (per worker);
    then its admin calls get 429 until the window ends."""
    admin_failure_window_seconds: PositiveFloat = 60.0
    """The window ADMIN_MAX_FAILURES counts in, from a client's first failure."""
    allowed_hosts: tuple[str, ...] | None = None
    """Comma-separated Host names the API answers for (ports ignored); other Hosts get 400. Unset: any Host."""
    predict_backend: Literal["fast", "sklearn"] = "fast"
    """'fast' (forest compiled at load) or 'sklearn' (the pickled estimator's predict_proba)."""
    max_batch: Positive = 1000
    """Largest number of rows accepted in one {"instances": [...]} request (and feedback items in one bulk)."""
    max_body_bytes: Positive = 1024 * 1024
    """Request bodies above this size are answered 413."""
    experiment_salt: str | None = None
    """Salt for sticky assignment: hash(salt, user_id) picks the variant. Unset: a random per-install salt kept
    in the state store (databases from before it existed keep the old public one, so users stay put)."""
    default_weight: Weight = 50
    """Weight of a manifest version with no MODEL_<VERSION>_WEIGHT variable (the seed's 50/50)."""
    env_weights: dict[str, Weight] = Field(default_factory=dict)
    """Weights given by MODEL_<VERSION>_WEIGHT variables, keyed by lower-case version ('v1')."""
    store_busy_timeout: PositiveFloat = 5.0
    """How long a store write waits for a lock before it counts as failed."""
    state_poll_seconds: PositiveFloat = 0.5
    """How often each worker re-reads weights and the model generation from the store."""
    controller_interval_seconds: PositiveFloat = 2.0
    """How often the worker holding the store's controller lease evaluates a running rollout and rebalances the
    bandit; the lease lasts three intervals, so another worker takes over within that when the holder dies."""
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
    drift_window_seconds: PositiveFloat = 3600.0
    """Only predictions of the last DRIFT_WINDOW_SECONDS count toward the drift window."""
    drift_client_share: Annotated[float, Field(gt=0, le=1)] = 0.25
    """At most this share of the drift window comes from any one client (user id, else address)."""
    feedback_pending_seconds: PositiveFloat = 600.0
    """A label for a prediction not stored yet is kept this long for its row to arrive, then dropped."""
    log_client_rows_per_minute: Annotated[int, Field(ge=0)] = 6000
    """Prediction-log rows one client address may add per minute in each worker (0: no limit); rows
    beyond it are served but not logged (counted in prediction_log_errors_total{reason="client_quota"})."""
    proxy_hops: Annotated[int, Field(ge=0, le=5)] = 0
    """Proxies in front of the API whose X-Forwarded-For is trusted for the client address: 1 behind the
    front door (run_demo.sh and Compose set it); 0 when clients reach gunicorn directly, so they cannot
    choose their own address."""
    store_create: bool = True
    """Create and migrate the database when it is missing. gunicorn's master does it once and starts its
    workers with STORE_CREATE=false, so a worker never silently creates a second database."""
    api_host: str = "127.0.0.1"
    """Address gunicorn binds (run_demo.sh and gunicorn.conf.py). Containers use 0.0.0.0."""
    api_port: Annotated[int, Field(gt=0, lt=65536)] = 5000
    """API port."""
    api_workers: Positive = Field(default_factory=lambda: max(os.cpu_count() or 1, 1))
    """gunicorn worker processes (default: CPU cores)."""
    api_threads: Positive = 4
    """Threads per gunicorn worker (gthread). Behind the nginx front door a thread never waits for a client; the
    threads are for handlers that wait themselves (a store lock, a report): with 1, four such requests pushed
    /predict p99 to 0.8-1.3 s, with 4 it stayed at 6 ms, and /predict alone ran as fast (benchmarks/README.md)."""
    api_access_log: str | None = None
    """gunicorn access log target ('-' for stdout); unset: no access log."""
    log_level: Literal["debug", "info", "warning", "error", "critical"] = "info"
    """Python logging level for the service."""
    api_url: str = "http://localhost:5000"
    """Where the UI finds the API; compose sets http://flask-api:5000."""
    api_timeout_seconds: PositiveFloat = 3.0
    """How long the UI waits for one API call."""

    _signing_key: bytes | None = PrivateAttr(default=None)

    @field_validator("admin_token")
    @classmethod
    def _check_admin_token(cls, value: str | None) -> str | None:
        if value is not None and not _ADMIN_TOKEN.fullmatch(value):
            raise ValueError(
                f"must be at least {MIN_ADMIN_TOKEN_LENGTH} printable ASCII characters without spaces, e.g. "
                "python3 -c 'import secrets; print(secrets.token_urlsafe(32))'"
            )
        return value

    @field_validator("allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: Any) -> Any:
        if isinstance(value, str):
            value = value.split(",")
        if isinstance(value, (list, tuple)):
            hosts = tuple(str(h).strip().lower() for h in value if str(h).strip())
            bad = [h for h in hosts if not _HOST_NAME.fullmatch(h)]
            if bad:
                raise ValueError(f"{bad[0][:64]!r} is not a host name: list names only, without scheme or port")
            return hosts or None
        return value

    @field_validator("model_signing_key")
    @classmethod
    def _check_signing_key(cls, value: str | None) -> str | None:
        if value is not None and len(value) < MIN_SIGNING_KEY_LENGTH:
            raise ValueError(f"must be at least {MIN_SIGNING_KEY_LENGTH} characters")
        return value

    @field_validator("model_signing_key_file")
    @classmethod
    def _check_signing_key_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        if value is None:
            return None
        if info.data.get("model_signing_key"):
            raise ValueError("set MODEL_SIGNING_KEY or MODEL_SIGNING_KEY_FILE, not both")
        models_dir = info.data.get("models_dir")
        if models_dir is not None and value.resolve().is_relative_to(Path(models_dir).resolve()):
            raise ValueError("must be outside MODELS_DIR: whoever can write the models could read or replace it")
        try:
            key = value.read_bytes().strip()
        except OSError as exc:
            raise ValueError(f"cannot be read: {exc.strerror}") from None
        if len(key) < MIN_SIGNING_KEY_LENGTH:
            raise ValueError(f"must hold a key of at least {MIN_SIGNING_KEY_LENGTH} characters")
        return value

    def model_post_init(self, context: Any, /) -> None:
        """Read the signing key once, like every other setting (its file was checked by the validator)."""
        if self.model_signing_key is not None:
            self._signing_key = self.model_signing_key.encode()
        elif self.model_signing_key_file is not None:
            self._signing_key = self.model_signing_key_file.read_bytes().strip()

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
            shown = "(hidden)" if field in _SECRET_FIELDS else repr(given)  # a secret never reaches a log
            raise SettingsError(f"{name}={shown}: {first['msg']}") from None

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

    @property
    def signing_key(self) -> bytes | None:
        """The model-signing key (MODEL_SIGNING_KEY or its file), or None: model files are checked by sha256 only."""
        return self._signing_key


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
