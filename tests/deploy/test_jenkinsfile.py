"""The Jenkinsfile: its stages, and the shell steps that can run here (no Jenkins) run for real."""

from __future__ import annotations

import http.server
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.deploy.helpers import README_TEST_COMMAND, ROOT, assert_ok, run, serve, stub

JENKINSFILE = ROOT / "Jenkinsfile"


def jenkinsfile() -> str:
    return JENKINSFILE.read_text(encoding="utf-8")


def stage_body(name: str) -> str:
    """The text between the braces of ``stage('name') { ... }``."""
    text = jenkinsfile()
    start = text.index("{", text.index(f"stage('{name}')"))
    depth = 0
    for i in range(start, len(text)):
        depth += {"{": 1, "}": -1}.get(text[i], 0)
        if depth == 0:
            return text[start + 1 : i]
    raise AssertionError(f"stage {name!r} is not closed")


def sh_steps(name: str) -> list[str]:
    """The scripts of a stage's ``sh '...'`` and ``sh '''...'''`` steps, as Groovy hands them to the shell."""
    scripts = []
    for triple, single in re.findall(r"\bsh\s+(?:'''(.*?)'''|'([^'\n]*)')", stage_body(name), re.S):
        script = triple or single
        # Groovy string escapes: a backslash before a newline joins the lines; \\ and \' stand for \ and '.
        scripts.append(script.replace("\\\n", "").replace("\\'", "'").replace("\\\\", "\\"))
    return scripts


def run_sh_step(script: str, tmp_path: Path, env: dict[str, str] | None = None, timeout: int = 120):
    """Run a step as Jenkins does: a script with its own #! line as it is, anything else with ``sh -xe``."""
    path = tmp_path / "step.sh"
    path.write_text(script, encoding="utf-8")
    command = ["bash", str(path)] if script.startswith("#!") else ["sh", "-xe", str(path)]
    return run(command, env=env, timeout=timeout)


def test_jenkinsfile_stages_and_commands():
    text = jenkinsfile()
    stages = re.findall(r"stage\('([^']+)'\)", text)
    assert stages == ["Checkout", "Install", "Lint", "Test", "Train", "Build images", "Deploy", "Health check"]
    assert "checkout scm" in stage_body("Checkout")
    assert sh_steps("Install") == ["./install.sh --dev"]
    assert sh_steps("Train") == [".venv/bin/python -m app.train_model"]
    assert sh_steps("Build images") == ["docker-compose build"]
    assert sh_steps("Deploy") == ["docker-compose up -d"]
    for needed in (
        "shellcheck",
        "--junitxml=reports/junit.xml",
        "curl -fsS --max-time 5",
        "junit ",
        "archiveArtifacts",
    ):
        assert needed in text, f"Jenkinsfile lacks {needed!r}"
    post = text[text.index("post {") :]
    assert "always {" in post and "failure {" in post and "junit " in post.split("failure {")[0]


def test_jenkinsfile_admin_token_from_credentials_only():
    text = jenkinsfile()
    assert re.search(r"ADMIN_TOKEN\s*=\s*credentials\('mlops-admin-token'\)", text)
    literal = re.findall(r"ADMIN_TOKEN\s*[=:]\s*(?!credentials\()['\"]?([^\s'\"]+)", text)
    assert not [v for v in literal if not v.startswith("${")], f"literal ADMIN_TOKEN in Jenkinsfile: {literal}"


def test_jenkinsfile_runs_the_readme_test_command(tmp_path):
    """The Test stage runs the README's command; its marker expression is valid and leaves out the browser tests."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert README_TEST_COMMAND in readme, (
        f"README.md no longer shows {README_TEST_COMMAND!r}: keep it and the Jenkinsfile Test stage in step"
    )
    (command,) = [step for step in sh_steps("Test") if "pytest" in step]
    assert command.startswith(README_TEST_COMMAND), command
    # The same command, collecting only, with the report written here instead of reports/.
    junit = tmp_path / "junit.xml"
    collect = command.replace(README_TEST_COMMAND, f"{sys.executable} -m pytest").replace(
        "--junitxml=reports/junit.xml", f"--junitxml={junit} --collect-only -q -p no:cacheprovider"
    )
    assert "--collect-only" in collect, collect
    result = run(["bash", "-c", collect], timeout=300)
    assert_ok(result, collect)
    collected = result.stdout.splitlines()
    assert any(line.startswith("tests/deploy/test_jenkinsfile.py::") for line in collected), result.stdout[-2000:]
    assert not any(line.startswith("tests/ui/test_browser.py::") for line in collected), "browser tests collected"
    assert junit.is_file()


def test_jenkinsfile_lint_stage_runs_clean(tmp_path):
    """The Lint stage's find | shellcheck, run in the repository: it finds the scripts and they pass."""
    (script,) = sh_steps("Lint")
    result = run_sh_step(script, tmp_path)
    assert_ok(result, "the Lint stage")
    listing = run(["bash", "-c", script.replace("| xargs -0 shellcheck", "| tr '\\0' '\\n'")])
    found = set(listing.stdout.split())
    assert {"./get_ip.sh", "./docker/api-entrypoint.sh", "./terraform/user_data.sh"} <= found, found
    assert not [p for p in found if p.startswith(("./.venv/", "./.git/"))]


class _Api(http.server.BaseHTTPRequestHandler):
    status = 200

    def log_message(self, *args):
        pass

    def do_GET(self):
        body = b'{"status": "healthy"}' if self.path == "/health" else b"{}"
        self.send_response(type(self).status if self.path == "/health" else 404)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


@pytest.fixture
def api_stand_in() -> Iterator[tuple[type[_Api], str]]:
    handler = type("Handler", (_Api,), {})
    with serve(handler) as url:
        yield handler, url


def test_jenkinsfile_health_check_stage(tmp_path, api_stand_in):
    """The Health check step against a stand-in API: passes at once when healthy; after 30 tries it fails
    and prints the compose state and logs. ``sleep`` and ``docker-compose`` are stubs."""
    health, *rest = sh_steps("Health check")
    assert rest == ["./test_everything.sh"]
    handler, url = api_stand_in
    calls = tmp_path / "calls.log"
    bin_dir = tmp_path / "bin"
    stub(bin_dir, "sleep", f'echo "sleep $*" >> {calls}\n')
    stub(bin_dir, "docker-compose", f'echo "docker-compose $*" >> {calls}\n')
    env = {"PATH": f"{bin_dir}:/usr/bin:/bin", "API_URL": url}

    healthy = run_sh_step(health, tmp_path, env)
    assert_ok(healthy, "health check (healthy API)")
    assert "API healthy after 1 attempt(s)" in healthy.stdout
    assert not calls.exists()

    handler.status = 503
    unhealthy = run_sh_step(health, tmp_path, env)
    assert unhealthy.returncode == 1, unhealthy.stdout + unhealthy.stderr
    assert f"API did not become healthy at {url}/health" in unhealthy.stderr
    logged = calls.read_text(encoding="utf-8").splitlines()
    assert logged == ["sleep 5"] * 30 + ["docker-compose ps", "docker-compose logs --tail=200 flask-api"]
