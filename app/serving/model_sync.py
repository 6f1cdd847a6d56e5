"""Model sets shared through the state store, so every host serves the same versions.

``publish`` stores a model directory's manifest, signature and files (``python app/train_model.py
--publish``). ``pull`` brings a host's MODELS_DIR up to the newest published set: when the store holds a
newer one than the directory came from (a marker file records which), its files are checked against the
manifest's sha256 (and signature, with a key) and swapped in atomically, under a lock so the workers of
one host fetch it once. The registry then loads the directory as always, verifying the bytes again
before anything is unpickled.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import logging
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from app.artifacts import (
    MANIFEST_NAME,
    SIGNATURE_NAME,
    files_of,
    parse_manifest,
    read_manifest_bytes,
    swap_into_place,
    verify_signature,
)
from app.errors import IntegrityError
from app.store import ModelSetFiles, Store

log = logging.getLogger(__name__)

MARKER_NAME = ".published-set.json"


def publish(store: Store, models_dir: Path, signing_key: bytes | None = None) -> int:
    """Store the model set in ``models_dir`` for every host; returns its published id."""
    models_dir = Path(models_dir)
    manifest_bytes = read_manifest_bytes(models_dir)
    if signing_key is not None:
        verify_signature(models_dir, manifest_bytes, signing_key)
    manifest = parse_manifest(manifest_bytes)
    signature_path = models_dir / SIGNATURE_NAME
    signature = signature_path.read_text().strip() if signature_path.exists() else None
    files = {name: (models_dir / name).read_bytes() for name in files_of(manifest)}
    _check_files(manifest, files)
    set_id = store.publish_model_set(ModelSetFiles(manifest_bytes, signature, files))
    _write_marker(models_dir, set_id, manifest_bytes)
    return set_id


def pull(store: Store, models_dir: Path, signing_key: bytes | None = None) -> int | None:
    """Bring ``models_dir`` to the newest published set if it is not on it; returns the set id fetched, or None."""
    models_dir = Path(models_dir)
    latest = store.latest_model_set()
    if latest is None or _marker_id(models_dir) == latest.id:
        return None
    models_dir.parent.mkdir(parents=True, exist_ok=True)
    with _host_lock(models_dir):
        if _marker_id(models_dir) == latest.id:  # another worker of this host fetched it meanwhile
            return None
        model_set = store.fetch_model_set(latest.id)
        if hashlib.sha256(model_set.manifest).hexdigest() != latest.manifest_sha256:
            raise IntegrityError(f"published model set {latest.id}: its manifest does not match its sha256")
        manifest = parse_manifest(model_set.manifest)
        _check_files(manifest, model_set.files)
        staging = Path(tempfile.mkdtemp(prefix=".models-staging-", dir=models_dir.parent))
        (staging / MANIFEST_NAME).write_bytes(model_set.manifest)
        if model_set.signature is not None:
            (staging / SIGNATURE_NAME).write_text(model_set.signature + "\n")
        if signing_key is not None:
            verify_signature(staging, model_set.manifest, signing_key)
        for name, data in model_set.files.items():
            (staging / name).write_bytes(data)
        _write_marker(staging, latest.id, model_set.manifest)
        swap_into_place(staging, models_dir)
    log.info("model set %d fetched from the state store into %s", latest.id, models_dir.name)
    return latest.id


def _check_files(manifest: dict[str, Any], files: dict[str, bytes]) -> None:
    """Every file the manifest names is there and matches its sha256; nothing else is."""
    named = files_of(manifest)
    if sorted(files) != sorted(named):
        raise IntegrityError(f"the model set's files {sorted(files)} are not the manifest's {sorted(named)}")
    expected = {m["file"]: m["sha256"] for m in [*manifest["versions"].values(), manifest["training_stats"]]}
    for name, data in files.items():
        if hashlib.sha256(data).hexdigest() != expected[name]:
            raise IntegrityError(f"{name} does not match the manifest's sha256")


def _write_marker(models_dir: Path, set_id: int, manifest_bytes: bytes) -> None:
    marker = {"id": set_id, "manifest_sha256": hashlib.sha256(manifest_bytes).hexdigest()}
    (models_dir / MARKER_NAME).write_text(json.dumps(marker) + "\n")


def _marker_id(models_dir: Path) -> int | None:
    """The published set ``models_dir`` holds, when its manifest is still that set's."""
    try:
        marker = json.loads((models_dir / MARKER_NAME).read_text())
        manifest = (models_dir / MANIFEST_NAME).read_bytes()
    except (OSError, ValueError):
        return None
    if not isinstance(marker, dict) or marker.get("manifest_sha256") != hashlib.sha256(manifest).hexdigest():
        return None  # trained locally since: the directory is not the published set any more
    set_id = marker.get("id")
    return set_id if isinstance(set_id, int) else None


@contextmanager
def _host_lock(models_dir: Path) -> Iterator[None]:
    with open(models_dir.parent / f".{models_dir.name}.lock", "a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)
