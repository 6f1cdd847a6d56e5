"""Model sets shared through the store: published once, fetched and verified by every host that lacks them."""

from __future__ import annotations

import dataclasses
import json
import shutil

import numpy as np
import pytest

from app.artifacts import MANIFEST_NAME
from app.errors import IntegrityError
from app.serving import model_sync
from app.serving.service import Service
from app.store import ModelSetFiles, SQLiteStore
from app.training.datasets import load_iris_dataset
from app.training.trainer import train
from tests.helpers import wait_until


@pytest.fixture
def store(tmp_path):
    s = SQLiteStore(tmp_path / "shared.db", create=True)
    yield s
    s.close()


def test_a_published_set_is_fetched_into_an_empty_directory_once(store, models_dir, tmp_path):
    set_id = model_sync.publish(store, models_dir)
    host = tmp_path / "host-b" / "models"
    assert model_sync.pull(store, host) == set_id
    for name in ("manifest.json", "model_v1.pkl", "model_v2.pkl", "training_stats.pkl"):
        assert (host / name).read_bytes() == (models_dir / name).read_bytes()
    assert model_sync.pull(store, host) is None  # already on it
    assert model_sync.pull(store, models_dir) is None  # the publisher is on it too


def test_nothing_published_leaves_the_directory_alone(store, models_dir):
    before = (models_dir / MANIFEST_NAME).read_bytes()
    assert model_sync.pull(store, models_dir) is None
    assert (models_dir / MANIFEST_NAME).read_bytes() == before


def test_a_tampered_published_file_is_refused_and_nothing_is_written(store, models_dir, tmp_path):
    files = {n: (models_dir / n).read_bytes() for n in ("model_v1.pkl", "model_v2.pkl", "training_stats.pkl")}
    files["model_v1.pkl"] += b"tampered"
    store.publish_model_set(ModelSetFiles((models_dir / MANIFEST_NAME).read_bytes(), None, files))
    host = tmp_path / "host-c" / "models"
    with pytest.raises(IntegrityError, match=r"model_v1\.pkl does not match"):
        model_sync.pull(store, host)
    assert not host.exists()


def test_a_host_that_starts_later_serves_the_published_versions(settings, models_dir, tmp_path):
    first = Service(settings)
    try:
        model_sync.publish(first.store, models_dir)
    finally:
        first.stop()
    late = Service(settings.with_overrides(models_dir=tmp_path / "late" / "models"))
    try:
        assert sorted(late.models.versions) == ["v1", "v2"]
        shas = {v: lv.sha256 for v, lv in late.models.versions.items()}
        assert shas == {
            v: m["sha256"] for v, m in json.loads((models_dir / MANIFEST_NAME).read_text())["versions"].items()
        }
    finally:
        late.stop()


def test_a_reload_on_one_host_makes_every_host_serve_the_new_set(settings, models_dir, tmp_path):
    a = Service(settings)
    b = Service(settings.with_overrides(models_dir=tmp_path / "b" / "models"))
    a.start()
    b.start()
    try:
        model_sync.publish(a.store, models_dir)
        a.reload()
        wait_until(lambda: sorted(b.models.versions) == ["v1", "v2"], timeout=5, message="host b on the first set")
        # A retrained set (different data, different pickles), published from a's directory.
        data = load_iris_dataset()
        order = np.random.default_rng(1).permutation(len(data.y))
        retrained = tmp_path / "retrained"
        train(dataclasses.replace(data, X=data.X[order], y=data.y[order]), retrained, log=lambda *_: None)
        shutil.rmtree(models_dir)
        shutil.copytree(retrained, models_dir)
        model_sync.publish(a.store, models_dir)
        a.reload()
        new = json.loads((models_dir / MANIFEST_NAME).read_text())["versions"]["v1"]["sha256"]
        wait_until(lambda: b.models.versions["v1"].sha256 == new, timeout=5, message="host b on the new set")
        assert a.models.versions["v1"].sha256 == new
    finally:
        a.stop()
        b.stop()
