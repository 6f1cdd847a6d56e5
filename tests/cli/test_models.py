"""The model-set CLI: publish a directory's set to the store, pull the newest one into another directory."""

import shutil

import pytest

from app.artifacts import MANIFEST_NAME
from app.cli.models import NOTHING_PUBLISHED, main
from app.serving.registry import load_model_set


@pytest.fixture
def store_env(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'state.db'}")
    monkeypatch.delenv("MODEL_SIGNING_KEY", raising=False)
    monkeypatch.delenv("MODEL_SIGNING_KEY_FILE", raising=False)


def test_pull_says_when_nothing_is_published(tmp_path, store_env, capsys):
    assert main(["pull", "--models-dir", str(tmp_path / "empty")]) == NOTHING_PUBLISHED
    assert "no model set is published" in capsys.readouterr().err
    assert not (tmp_path / "empty" / MANIFEST_NAME).exists()


def test_publish_then_pull_into_an_empty_directory(tmp_path, models_dir, store_env, capsys):
    assert main(["publish", "--models-dir", str(models_dir)]) == 0
    assert "Published as model set 1" in capsys.readouterr().out
    host = tmp_path / "other-host" / "models"
    assert main(["pull", "--models-dir", str(host)]) == 0
    assert "Fetched model set 1" in capsys.readouterr().out
    assert (host / MANIFEST_NAME).read_bytes() == (models_dir / MANIFEST_NAME).read_bytes()
    pulled = load_model_set(host)
    assert pulled.status == "healthy" and sorted(pulled.versions) == ["v1", "v2"]
    assert main(["pull", "--models-dir", str(host)]) == 0
    assert "already holds the newest" in capsys.readouterr().out


def test_a_tampered_set_is_not_published(tmp_path, models_dir, store_env, capsys):
    tampered = tmp_path / "tampered"
    shutil.copytree(models_dir, tampered)
    with open(tampered / "model_v1.pkl", "ab") as handle:
        handle.write(b"x")
    assert main(["publish", "--models-dir", str(tampered)]) == 2
    assert "was not published" in capsys.readouterr().err
    assert main(["pull", "--models-dir", str(tmp_path / "empty")]) == NOTHING_PUBLISHED
