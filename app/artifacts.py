"""A model set on disk: the manifest, its sha256 stamps, and unpickling only what matches them.

Training writes a model set with these names; the serving registry and the drift report read it.
Every pickle's sha256 is checked against ``manifest.json`` *before* it is unpickled, and the bytes
that were hashed are the bytes unpickled, so a file swapped between the check and the load can
never be unpickled unchecked.
"""

from __future__ import annotations

import hashlib
import io
import json
from pathlib import Path
from typing import Any

import joblib

from app.errors import IntegrityError

MANIFEST_NAME = "manifest.json"
STATS_NAME = "training_stats.pkl"


def sha256_file(path: Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for chunk in iter(lambda: handle.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def load_verified(path: Path, expected_sha256: str) -> Any:
    """Unpickle ``path`` only if its sha256 matches the manifest's."""
    if not path.is_file():
        raise IntegrityError(f"{path.name} is missing")
    data = path.read_bytes()
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise IntegrityError(f"{path.name} sha256 mismatch (manifest {expected_sha256[:12]}…, file {actual[:12]}…)")
    return joblib.load(io.BytesIO(data))


def read_manifest(models_dir: Path) -> dict[str, Any]:
    """The parsed and checked manifest of a model set; FileNotFoundError, or ValueError saying what is wrong."""
    manifest = json.loads((Path(models_dir) / MANIFEST_NAME).read_text())
    check_manifest(manifest)
    return manifest  # type: ignore[no-any-return]


def check_manifest(manifest: Any) -> None:
    """Raise ValueError if the manifest lacks what loading needs or names a file outside its directory."""
    if not isinstance(manifest, dict):
        raise ValueError("the manifest is not a JSON object")
    for key in ("feature_names", "class_names", "versions", "training_stats"):
        if key not in manifest:
            raise ValueError(f"missing {key!r}")
    if not isinstance(manifest["versions"], dict) or not manifest["versions"]:
        raise ValueError("no versions listed")
    entries = {f"version {v!r}": meta for v, meta in manifest["versions"].items()}
    entries["training_stats"] = manifest["training_stats"]
    for where, meta in entries.items():
        if not isinstance(meta, dict) or "file" not in meta or "sha256" not in meta:
            raise ValueError(f"{where} lacks file or sha256")
        if not is_plain_name(meta["file"]):
            raise ValueError(f"{where}: file must be a plain name inside the models directory")


def is_plain_name(name: Any) -> bool:
    """A file name with no directory part: it can only name a file inside the models directory."""
    return isinstance(name, str) and name not in ("", ".", "..") and Path(name).name == name and "\\" not in name


def load_training_stats(models_dir: Path) -> dict[str, Any]:
    """The verified training statistics (reference sample, per-feature stats) of a model set."""
    manifest = read_manifest(models_dir)
    meta = manifest["training_stats"]
    stats = load_verified(Path(models_dir) / meta["file"], meta["sha256"])
    return {**stats, "feature_names": manifest["feature_names"], "class_names": manifest["class_names"]}
