"""The Prometheus config and alert rules: promtool's checks and unit tests, and the config run_demo.sh writes."""

from __future__ import annotations

import os
import re

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.deploy.helpers import (
    ALERT_RULES,
    ALERT_RULES_TEST,
    ALERTS,
    PROMETHEUS_CONFIG,
    ROOT,
    assert_ok,
    load_yaml,
    require_tool,
    run,
)
from tests.helpers import SETOSA


def test_promtool_check_config():
    tool = require_tool("promtool")
    assert_ok(run([tool, "check", "config", str(PROMETHEUS_CONFIG)]), "promtool check config")


def test_promtool_check_rules():
    tool = require_tool("promtool")
    result = run([tool, "check", "rules", str(ALERT_RULES)])
    assert_ok(result, "promtool check rules")
    assert f"{len(ALERTS)} rules found" in result.stdout, result.stdout


def test_promtool_unit_tests():
    tool = require_tool("promtool")
    assert_ok(run([tool, "test", "rules", str(ALERT_RULES_TEST)]), "promtool test rules")


def test_prometheus_scrape_config():
    config = load_yaml(PROMETHEUS_CONFIG)
    assert config["rule_files"] == ["alert_rules.yml"]
    jobs = {job["job_name"]: job for job in config["scrape_configs"]}
    assert set(jobs) == {"flask-api", "prometheus"}
    api = jobs["flask-api"]
    assert api["scrape_interval"] == "5s"
    assert api.get("metrics_path", "/metrics") == "/metrics"
    assert api["static_configs"] == [{"targets": ["flask-api:5000"]}]
    assert jobs["prometheus"]["static_configs"] == [{"targets": ["localhost:9090"]}]


def test_prometheus_target_lines_are_rewritable(tmp_path):
    """The config `./run_demo.sh prometheus-config` writes for the native stack scrapes gunicorn on its loopback
    port (API_UPSTREAM_PORT, behind the front door) and Prometheus on its own, keeps the job names and rules,
    and is still valid."""
    tool = require_tool("promtool")
    run_dir = tmp_path / "run"
    env = {**os.environ, "RUN_DIR": str(run_dir), "API_PORT": "15000", "PROMETHEUS_PORT": "19090"}
    env.pop("BIND_HOST", None)
    env.pop("API_UPSTREAM_PORT", None)
    for upstream, extra in (("25000", {}), ("31234", {"API_UPSTREAM_PORT": "31234"})):
        result = run([str(ROOT / "run_demo.sh"), "prometheus-config"], env={**env, **extra})
        assert_ok(result, "run_demo.sh prometheus-config")
        written = run_dir / "prometheus.yml"
        assert result.stdout.strip() == str(written)
        assert (run_dir / "alert_rules.yml").read_bytes() == ALERT_RULES.read_bytes()
        assert_ok(run([tool, "check", "config", str(written)]), "promtool check config (native)")
        config = load_yaml(written)
        targets = {job["job_name"]: job["static_configs"][0]["targets"] for job in config["scrape_configs"]}
        # Job names survive the rewrite: PredictionApiDown selects job="flask-api". The default upstream
        # port is API_PORT + 10000.
        assert targets == {"flask-api": [f"127.0.0.1:{upstream}"], "prometheus": ["127.0.0.1:19090"]}
        # Nothing else changed.
        original = load_yaml(PROMETHEUS_CONFIG)
        for job in (*original["scrape_configs"], *config["scrape_configs"]):
            job.pop("static_configs")
        assert config == original


@pytest.mark.parametrize(
    ("variable", "value"),
    [
        # What the sed-based version ran: the value closed the s command and added sed's `e` (execute) command.
        ("API_PORT", "1'/;1e touch {marker} #"),
        ("PROMETHEUS_PORT", "1'/;1e touch {marker} #"),
        ("API_UPSTREAM_PORT", "1'/;1e touch {marker} #"),
        # bash arithmetic evaluates array subscripts, command substitutions included.
        ("API_PORT", "a[$(touch {marker})]"),
        ("API_UPSTREAM_PORT", "a[$(touch {marker})]"),
        ("START_TIMEOUT", "a[$(touch {marker})]"),
        ("BIND_HOST", "127.0.0.1'/;1e touch {marker} #"),
        ("API_PORT", "70000"),
    ],
)
def test_prometheus_config_refuses_a_hostile_value_and_runs_nothing(tmp_path, variable, value):
    marker = tmp_path / "ran"
    run_dir = tmp_path / "run"
    env = {**os.environ, "RUN_DIR": str(run_dir), variable: value.format(marker=marker)}
    result = run([str(ROOT / "run_demo.sh"), "prometheus-config"], env=env)
    assert result.returncode != 0, result.stdout
    assert variable in result.stderr, result.stderr
    assert not marker.exists(), f"{variable}={value!r} ran a command"
    assert not (run_dir / "prometheus.yml").exists(), "nothing is written for a refused value"


@pytest.fixture(scope="module")
def alert_rules() -> dict:
    groups = load_yaml(ALERT_RULES)["groups"]
    assert [g["name"] for g in groups] == ["mlops"]
    return {rule["alert"]: rule for rule in groups[0]["rules"]}


def test_alert_rules_definitions(alert_rules):
    assert tuple(alert_rules) == ALERTS
    expected = {
        "ModelDriftDetected": ("5m", "warning", ["model_drift_detected", "== 1"]),
        "HighPredictionErrorRate": (
            "5m",
            "warning",
            ["prediction_errors_total", "prediction_requests_total", "> 0.05", "> 0"],
        ),
        "HighPredictionLatencyP95": (
            "5m",
            "warning",
            ["histogram_quantile(0.95", "prediction_latency_seconds_bucket[5m]", "> 0.1"],
        ),
        "PredictionApiDown": ("1m", "critical", ['up{job="flask-api"} == 0']),
        "ABSplitMismatch": (
            "15m",
            "warning",
            ["model_version_requests_total[30m]", "model_traffic_weight", "> 0.1", ">= 100"],
        ),
        "StateStoreUnavailable": ("2m", "critical", ["state_store_available", "== 0"]),
    }
    for name, (duration, severity, fragments) in expected.items():
        rule = alert_rules[name]
        assert rule["for"] == duration, name
        assert rule["labels"]["severity"] == severity, name
        assert rule["annotations"].get("summary") and rule["annotations"].get("description"), name
        for fragment in fragments:
            assert fragment in rule["expr"], f"{name}: expr lacks {fragment!r}"


def test_alert_rules_use_metrics_the_app_exports(alert_rules, client):
    """Each metric an alert reads is in what a freshly started API's /metrics answers."""
    assert client.post("/predict", json={"features": SETOSA}).status_code == 200
    assert client.post("/predict", json={"features": "bad"}).status_code == 400
    text = client.get("/metrics").get_data(as_text=True)
    exported = {s.name for family in text_string_to_metric_families(text) for s in family.samples} | {"up"}
    promql_words = {
        "sum",
        "by",
        "rate",
        "increase",
        "abs",
        "and",
        "on",
        "group_left",
        "max",
        "min",
        "without",
        "histogram_quantile",
        "avg_over_time",
        "max_over_time",
        "unless",
        "le",
        "version",
        "job",
        "pid",
    }
    for name, rule in alert_rules.items():
        expr = re.sub(r'\{[^}]*\}|"[^"]*"|\[[^\]]*\]', " ", rule["expr"])
        used = {w for w in re.findall(r"[a-zA-Z_][a-zA-Z0-9_]*", expr) if w not in promql_words}
        assert used, name
        assert used <= exported, f"{name} reads metrics the API does not export: {used - exported}"


def test_alert_rules_each_have_firing_and_quiet_unit_tests():
    tests = load_yaml(ALERT_RULES_TEST)
    assert tests["rule_files"] == ["alert_rules.yml"]
    firing: set[str] = set()
    quiet: set[str] = set()
    for case in tests["tests"]:
        for check in case.get("alert_rule_test", []):
            (firing if check.get("exp_alerts") else quiet).add(check["alertname"])
    assert firing >= set(ALERTS), f"no firing test for {set(ALERTS) - firing}"
    assert quiet >= set(ALERTS), f"no non-firing test for {set(ALERTS) - quiet}"
