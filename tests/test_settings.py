"""One settings object, read from the environment once."""

from pathlib import Path

import pytest

from app.settings import Settings


def test_defaults_match_the_seed():
    s = Settings.from_env({})
    assert s.api_port == 5000 and s.drift_threshold == 0.3 and s.drift_window == 100
    assert s.database_url == "sqlite:///data/mlops.db" and s.max_batch == 1000
    assert s.admin_token is None and not s.admin_enabled
    assert s.weights_for(["v1", "v2"]) == {"v1": 50, "v2": 50}


def test_environment_overrides_and_types():
    s = Settings.from_env({
        "API_PORT": "6000", "MODELS_DIR": "/tmp/x", "DRIFT_THRESHOLD": "0.4", "ADMIN_TOKEN": "t",
        "MODEL_V1_WEIGHT": "90", "MODEL_V2_WEIGHT": "10", "MODEL_V3_WEIGHT": "0",
    })
    assert s.api_port == 6000 and s.models_dir == Path("/tmp/x") and s.drift_threshold == 0.4
    assert s.admin_enabled
    assert s.weights_for(["v1", "v2", "v3", "v4"]) == {"v1": 90, "v2": 10, "v3": 0, "v4": 50}


def test_overrides_win_over_environment():
    assert Settings.from_env({"API_PORT": "6000"}, api_port=7000).api_port == 7000


@pytest.mark.parametrize(
    "env",
    [
        {"API_PORT": "abc"},
        {"MODEL_V1_WEIGHT": "ten"},
        {"MODEL_V1_WEIGHT": "-5"},
        {"PREDICT_BACKEND": "gpu"},
        {"MAX_BATCH": "0"},
        {"DRIFT_THRESHOLD": "3"},
        {"LOG_FLUSH_SECONDS": "0"},
        {"STATE_POLL_SECONDS": "-1"},
        {"API_WORKERS": "0"},
        {"LOG_QUEUE_SIZE": "0"},
    ],
)
def test_invalid_environment_fails_at_start(env):
    with pytest.raises(ValueError):
        Settings.from_env(env)
