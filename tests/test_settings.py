"""One settings object, read from the environment once."""

import re
from pathlib import Path

import pytest
from pydantic import ValidationError

from app.settings import Settings, SettingsError


def test_defaults_match_the_seed():
    s = Settings.from_env({})
    assert s.api_port == 5000 and s.drift_threshold == 0.3 and s.drift_window == 100
    assert s.database_url == "sqlite:///data/mlops.db" and s.max_batch == 1000
    assert s.admin_token is None and not s.admin_enabled
    assert s.weights_for(["v1", "v2"]) == {"v1": 50, "v2": 50}


def test_environment_overrides_and_types():
    s = Settings.from_env(
        {
            "API_PORT": "6000",
            "MODELS_DIR": "/tmp/x",
            "DRIFT_THRESHOLD": "0.4",
            "ADMIN_TOKEN": "a-long-enough-admin-token",
            "MODEL_V1_WEIGHT": "90",
            "MODEL_V2_WEIGHT": "10",
            "MODEL_V3_WEIGHT": "0",
        }
    )
    assert s.api_port == 6000 and s.models_dir == Path("/tmp/x") and s.drift_threshold == 0.4
    assert s.admin_enabled
    assert s.weights_for(["v1", "v2", "v3", "v4"]) == {"v1": 90, "v2": 10, "v3": 0, "v4": 50}


def test_overrides_win_over_environment():
    assert Settings.from_env({"API_PORT": "6000"}, api_port=7000).api_port == 7000


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"API_PORT": "abc"}, "API_PORT='abc'"),
        ({"API_PORT": "70000"}, "API_PORT='70000'"),
        ({"MODEL_V1_WEIGHT": "ten"}, "MODEL_V1_WEIGHT='ten' must be a non-negative integer"),
        ({"MODEL_V1_WEIGHT": "-5"}, "MODEL_V1_WEIGHT=-5: Input should be greater than or equal to 0"),
        ({"PREDICT_BACKEND": "gpu"}, "PREDICT_BACKEND='gpu'"),
        ({"MAX_BATCH": "0"}, "MAX_BATCH='0'"),
        ({"MAX_BATCH": "1.5"}, "MAX_BATCH='1.5'"),
        ({"DRIFT_THRESHOLD": "3"}, "DRIFT_THRESHOLD='3'"),
        ({"LOG_FLUSH_SECONDS": "0"}, "LOG_FLUSH_SECONDS='0'"),
        ({"STATE_POLL_SECONDS": "-1"}, "STATE_POLL_SECONDS='-1'"),
        ({"API_WORKERS": "0"}, "API_WORKERS='0'"),
        ({"LOG_QUEUE_SIZE": "0"}, "LOG_QUEUE_SIZE='0'"),
        ({"LOG_LEVEL": "loud"}, "LOG_LEVEL='loud'"),
    ],
)
def test_invalid_environment_fails_at_start_naming_the_variable(env, message):
    with pytest.raises(SettingsError, match=re.escape(message)):
        Settings.from_env(env)


@pytest.mark.parametrize("overrides", [{"max_batch": 0}, {"predict_backend": "gpu"}, {"drift_window": -1}])
def test_every_construction_path_is_validated(overrides):
    variable = re.escape(next(iter(overrides)).upper())
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({}).with_overrides(**overrides)
    with pytest.raises(SettingsError, match=variable):
        Settings.from_env({}, **overrides)
    with pytest.raises(SettingsError, match=variable):
        Settings.build(overrides)


def test_strings_are_cast_by_field_type_not_by_annotation_text():
    s = Settings.from_env({"STORE_BUSY_TIMEOUT": "2", "API_THREADS": "4", "LOG_LEVEL": "WARNING"})
    assert s.store_busy_timeout == 2.0 and isinstance(s.store_busy_timeout, float)
    assert s.api_threads == 4 and s.log_level == "warning"
    assert Settings.from_env({}, models_dir="/tmp/m").models_dir == Path("/tmp/m")


def test_unknown_fields_are_refused():
    with pytest.raises(SettingsError, match="MAX_BATCHES"):
        Settings.build({"max_batches": 5})


def test_settings_are_immutable():
    s = Settings.from_env({})
    with pytest.raises(ValidationError, match="frozen"):
        s.api_port = 1  # type: ignore[misc]
