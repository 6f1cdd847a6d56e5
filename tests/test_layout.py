"""The package's shape: entry points where the seeds put them, reports without the serving stack, no sys.path edits."""

from __future__ import annotations

import ast
import subprocess
import sys

import pytest

from app.settings import REPO_DIR

PYTHON_DIRS = ("app", "tests", "benchmarks", "docker")


def imported_after(code: str) -> set[str]:
    """The top-level modules a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint(' '.join(sorted({{m.split('.')[0] for m in sys.modules}} | set(sys.modules))))"
    out = subprocess.run([sys.executable, "-c", probe], cwd="/", capture_output=True, text=True, check=True)
    return set(out.stdout.split())


@pytest.mark.parametrize(
    "module",
    ["app.cli.ab_report", "app.reports.ab", "app.reports.drift", "app.reports.timeline", "app.cli.drift_report"],
)
def test_reports_load_without_models_flask_or_the_serving_core(module):
    loaded = imported_after(f"import {module}")
    assert not {"sklearn", "flask", "app.serving.service", "app.serving.registry"} & loaded, sorted(loaded)


def test_importing_the_entry_module_builds_no_app(tmp_path):
    code = "import threading, app.flask_app; print(threading.active_count())"
    out = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "1"  # no log writer, no state poller
    assert list(tmp_path.iterdir()) == []  # no database opened


def test_nothing_edits_sys_path():
    scanned = [path for folder in PYTHON_DIRS for path in sorted((REPO_DIR / folder).rglob("*.py"))]
    assert len({path.parent.relative_to(REPO_DIR).parts[0] for path in scanned}) == len(PYTHON_DIRS), scanned
    offenders = [
        f"{path.relative_to(REPO_DIR)}:{node.lineno}"
        for path in scanned
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8")))
        if isinstance(node, ast.Attribute) and node.attr == "path" and getattr(node.value, "id", "") == "sys"
    ]
    assert not offenders, offenders
