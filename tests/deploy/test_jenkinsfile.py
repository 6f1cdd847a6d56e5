"""The Jenkinsfile: its stages, and the shell steps that can run here (no Jenkins) run for real."""

from __future__ import annotations

import re
import sys
from pathlib import Path

from tests.deploy.helpers import README_TEST_COMMAND, ROOT, assert_ok, run

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


PIPELINE = ROOT / "deploy" / "pipeline.sh"


def test_jenkinsfile_stages_call_the_pipeline_script():
    """Thin: every stage after the checkout is one call of deploy/pipeline.sh, which runs without Jenkins."""
    text = jenkinsfile()
    stages = re.findall(r"stage\('([^']+)'\)", text)
    assert stages == ["Checkout", "Test", "Build images", "Deploy", "Smoke test"]
    assert "checkout scm" in stage_body("Checkout")
    assert sh_steps("Test") == ["mkdir -p reports", "deploy/pipeline.sh test --junitxml=reports/junit.xml"]
    assert sh_steps("Build images") == ["deploy/pipeline.sh build"]
    assert sh_steps("Deploy") == ["deploy/pipeline.sh deploy"]
    # The smoke stage's own failure handler rolls back to the tag the deploy recorded.
    assert sh_steps("Smoke test") == ["deploy/pipeline.sh smoke", "deploy/pipeline.sh rollback"]
    smoke = stage_body("Smoke test")
    assert smoke.index("failure {") < smoke.index("deploy/pipeline.sh rollback")
    for name in ("MODEL_V1_WEIGHT", "MODEL_V2_WEIGHT"):
        assert re.search(rf"string\(name: '{name}', defaultValue: '50'", text), name
        assert f'{name} = "${{params.{name}}}"' in text, name
    for needed in ("junit ", "archiveArtifacts", "DEPLOY_STATE_DIR"):
        assert needed in text, f"Jenkinsfile lacks {needed!r}"
    post = text[text.rindex("post {") :]
    assert "always {" in post and "failure {" in post and "junit " in post.split("failure {")[0]


def test_jenkinsfile_admin_token_from_credentials_only():
    """The token is bound only where the stack starts (not where the tests and pip run), from the credential."""
    text = jenkinsfile()
    for stage in ("Deploy", "Smoke test"):
        assert re.search(r"ADMIN_TOKEN\s*=\s*credentials\('mlops-admin-token'\)", stage_body(stage)), stage
    for stage in ("Checkout", "Test", "Build images"):
        assert "ADMIN_TOKEN" not in stage_body(stage), stage
    assert len(re.findall(r"ADMIN_TOKEN\s*=", text)) == 2, "bound nowhere else (not pipeline-wide)"
    literal = re.findall(r"ADMIN_TOKEN\s*[=:]\s*(?!credentials\()['\"]?([^\s'\"]+)", text)
    assert not [v for v in literal if not v.startswith("${")], f"literal ADMIN_TOKEN in Jenkinsfile: {literal}"


def test_pipeline_test_step_runs_the_readme_test_command(tmp_path):
    """The Test stage's pytest is the README's command; its marker expression leaves out the browser tests and the
    container tests (which would start a stack beside the deployed one), and keeps the rest."""
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    assert README_TEST_COMMAND in readme, (
        f"README.md no longer shows {README_TEST_COMMAND!r}: keep it and deploy/pipeline.sh test in step"
    )
    script = PIPELINE.read_text(encoding="utf-8")
    (command,) = re.findall(rf"^\s*({re.escape(README_TEST_COMMAND)} .*)$", script, re.M)
    junit = tmp_path / "junit.xml"
    collect = command.replace(README_TEST_COMMAND, f"{sys.executable} -m pytest").replace(
        '"$@"', f"--junitxml={junit} --collect-only -q -p no:cacheprovider"
    )
    assert "--collect-only" in collect, collect
    result = run(["bash", "-c", collect], timeout=300)
    assert_ok(result, collect)
    collected = result.stdout.splitlines()
    assert any(line.startswith("tests/deploy/test_jenkinsfile.py::") for line in collected), result.stdout[-2000:]
    assert not any(line.startswith("tests/ui/test_browser.py::") for line in collected), "browser tests collected"
    assert not any(line.startswith("tests/containers/") for line in collected), "container tests collected"
    assert junit.is_file()
