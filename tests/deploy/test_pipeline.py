"""deploy/pipeline.sh without an engine: its tag, its refusals. Deploy and rollback run for real in tests/containers."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.deploy.helpers import ROOT, assert_ok, run

PIPELINE = ROOT / "deploy" / "pipeline.sh"


def pipeline(tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if k not in ("IMAGE_TAG", "BUILD_NUMBER", "DOCKER_HOST")}
    # An engine nobody listens on: nothing here may reach a real one.
    base |= {"DEPLOY_STATE_DIR": str(tmp_path / "state"), "DOCKER_HOST": f"unix://{tmp_path}/no-engine.sock"}
    return run([str(PIPELINE), *args], env={**base, **env})


def test_tag_names_the_build_and_the_commit(tmp_path):
    sha = run(["git", "rev-parse", "--short=12", "HEAD"]).stdout.strip()
    assert len(sha) == 12
    result = pipeline(tmp_path, "tag", BUILD_NUMBER="57")
    assert_ok(result, "pipeline.sh tag")
    assert result.stdout.strip() == f"57-{sha}"
    assert pipeline(tmp_path, "tag").stdout.strip() == f"local-{sha}", "outside Jenkins: local-<sha>"
    assert pipeline(tmp_path, "tag", IMAGE_TAG="v1.2.3").stdout.strip() == "v1.2.3", "IMAGE_TAG wins"


@pytest.mark.parametrize(
    ("env", "message"),
    [
        ({"IMAGE_TAG": "bad tag;rm"}, "not a Docker tag: 'bad tag;rm'"),
        ({"IMAGE_TAG": "-leading-dash"}, "not a Docker tag"),
        ({"MODEL_V1_WEIGHT": "5$(id)"}, "MODEL_V1_WEIGHT must be a whole number"),
        ({"DEPLOY_TIMEOUT": "soon"}, "DEPLOY_TIMEOUT must be a number of seconds"),
    ],
)
def test_bad_settings_are_refused_before_anything_runs(tmp_path, env, message):
    result = pipeline(tmp_path, "deploy", **env)
    assert result.returncode == 1 and message in result.stderr, result.stderr
    assert not (tmp_path / "state").exists(), "nothing recorded for a refused deploy"


def test_deploy_needs_an_engine_and_rollback_a_recorded_tag(tmp_path):
    """(That a tag must have been built is checked against a real engine, in tests/containers.)"""
    missing = pipeline(tmp_path, "deploy", IMAGE_TAG="never-built")
    assert missing.returncode == 1
    assert "no Docker engine answers (docker info)" in missing.stderr, missing.stderr
    assert not (tmp_path / "state").exists()
    nothing = pipeline(tmp_path, "rollback")
    assert nothing.returncode == 1 and "nothing to roll back to" in nothing.stderr, nothing.stderr


def test_unknown_command_prints_the_usage(tmp_path):
    result = pipeline(tmp_path, "ship-it")
    assert result.returncode == 1 and "usage: deploy/pipeline.sh tag|build|test|deploy|smoke|rollback" in result.stderr


def test_surge_drain_outlasts_the_front_doors_dns_and_failure_memory():
    """The surge API stays until the front door has re-resolved flask-api and forgotten a failure of its address."""
    conf = (ROOT / "docker" / "nginx" / "frontdoor.compose.conf").read_text(encoding="utf-8")
    (valid,) = re.findall(r"^\s*resolver \S+ valid=(\d+)s", conf, re.M)
    assert "fail_timeout=" not in conf, "the drain below assumes nginx's default fail_timeout (10 s)"
    (drain,) = re.findall(r"^DRAIN_SECONDS=(\d+)$", PIPELINE.read_text(encoding="utf-8"), re.M)
    assert int(drain) >= int(valid) + 10, (drain, valid)
