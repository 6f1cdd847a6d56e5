"""The requirement files: each image's own, pinned; requirements.txt installs them all; one version per package."""

from __future__ import annotations

import re
from pathlib import Path

from app.settings import REPO_DIR

PARTS = ("requirements-api.txt", "requirements-ui.txt", "requirements-tools.txt")


def pins(path: Path) -> dict[str, str]:
    """{package name (normalised, extras dropped): version} of a file of ``name==version`` lines."""
    found = {}
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        match = re.fullmatch(r"([A-Za-z0-9_.-]+)(\[[a-z,]+\])?==([0-9][0-9A-Za-z.]*)", line)
        assert match, f"{path.name}: not pinned exactly: {line!r}"
        name = re.sub(r"[-_.]+", "-", match.group(1)).lower()
        assert name not in found, f"{path.name} names {name} twice"
        found[name] = match.group(3)
    return found


def test_requirements_txt_installs_every_part():
    lines = [
        line.strip()
        for line in (REPO_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert lines == [f"-r {part}" for part in PARTS]


def test_a_package_in_two_files_has_one_version():
    seen: dict[str, tuple[str, str]] = {}
    for part in PARTS:
        for name, version in pins(REPO_DIR / part).items():
            if name in seen:
                assert seen[name][1] == version, f"{name}: {seen[name][0]} pins {seen[name][1]}, {part} pins {version}"
            seen[name] = (part, version)


def test_each_image_gets_only_what_it_runs():
    api = pins(REPO_DIR / "requirements-api.txt")
    ui = pins(REPO_DIR / "requirements-ui.txt")
    assert {"flask", "gunicorn", "scikit-learn", "tl2cgen"} <= set(api)
    assert not {"streamlit", "pyarrow", "pandas"} & set(api), "the API image serves: no UI or file-tool packages"
    assert {"streamlit", "requests"} <= set(ui)
    assert not {"scikit-learn", "scipy", "flask", "gunicorn"} & set(ui), "the UI only calls the API"
