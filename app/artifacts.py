"""A model set on disk: the manifest, its sha256 stamps, its optional signature, and verified unpickling.

Training writes a model set with these names; the serving registry and the drift report read it.

- Every file the manifest names is a plain name, so it can only be a file inside the models
  directory; those files (the versions' pickles and ``training_stats``) are the only ones ever opened
  besides the manifest and its signature.
- Every pickle's sha256 is checked against ``manifest.json`` *before* it is unpickled, and the bytes
  that were hashed are the bytes unpickled, so a file swapped between the check and the load can
  never be unpickled unchecked. That guards against corrupted, partial or swapped files.
- With a signing key (MODEL_SIGNING_KEY), the manifest's bytes must also match the HMAC-SHA256 in
  ``manifest.json.sig``, checked before the manifest is even parsed: someone who can write the models
  directory but does not hold the key cannot make the service unpickle a file of their choice.

Messages name files relative to the models directory, never by absolute path: they reach /health.
"""

from __future__ import annotations

import hashlib
import hmac
import io
import json
import os
import re
import shutil
import tempfile
from pathlib import Path
from typing import Any

import joblib

from app.errors import IntegrityError

MANIFEST_NAME = "manifest.json"
SIGNATURE_NAME = "manifest.json.sig"
STATS_NAME = "training_stats.pkl"
DEFAULT_MODEL_NAME = "iris"
"""The name a set is served under by the Open Inference Protocol when its manifest names none."""
MODEL_NAME_RULE = "1-64 letters, digits, '.', '_' or '-'"
"""What a model name may be: it is a path segment of /v2/models/<name>."""
_MODEL_NAME = re.compile(r"[A-Za-z0-9._-]{1,64}")


def is_model_name(value: object) -> bool:
    """Whether ``value`` follows MODEL_NAME_RULE."""
    return isinstance(value, str) and _MODEL_NAME.fullmatch(value) is not None


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
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise IntegrityError(f"{path.name} cannot be read: {exc.strerror}") from None
    actual = hashlib.sha256(data).hexdigest()
    if actual != expected_sha256:
        raise IntegrityError(f"{path.name} sha256 mismatch (manifest {expected_sha256[:12]}…, file {actual[:12]}…)")
    return joblib.load(io.BytesIO(data))


def sign(manifest_bytes: bytes, key: bytes) -> str:
    """The signature of a manifest: hex HMAC-SHA256 of its exact bytes."""
    return hmac.new(key, manifest_bytes, hashlib.sha256).hexdigest()


def write_signature(models_dir: Path, manifest_bytes: bytes, key: bytes) -> None:
    """Write ``manifest.json.sig`` for these manifest bytes (training does, inside its atomic swap)."""
    (Path(models_dir) / SIGNATURE_NAME).write_text(sign(manifest_bytes, key) + "\n")


def verify_signature(models_dir: Path, manifest_bytes: bytes, key: bytes) -> None:
    """Raise IntegrityError unless ``manifest.json.sig`` is the HMAC of ``manifest_bytes`` under ``key``."""
    try:
        given = (Path(models_dir) / SIGNATURE_NAME).read_bytes().strip()
    except FileNotFoundError:
        raise IntegrityError(
            f"{SIGNATURE_NAME} is missing: the model set is not signed (MODEL_SIGNING_KEY is set)"
        ) from None
    except OSError as exc:
        raise IntegrityError(f"{SIGNATURE_NAME} cannot be read: {exc.strerror}") from None
    if not hmac.compare_digest(given, sign(manifest_bytes, key).encode()):
        raise IntegrityError(f"{MANIFEST_NAME} signature does not match MODEL_SIGNING_KEY: the set is refused")


def read_manifest_bytes(models_dir: Path) -> bytes:
    """The manifest's raw bytes; FileNotFoundError, or IntegrityError saying why it cannot be read."""
    try:
        return (Path(models_dir) / MANIFEST_NAME).read_bytes()
    except FileNotFoundError:
        raise
    except OSError as exc:
        raise IntegrityError(f"{MANIFEST_NAME} cannot be read: {exc.strerror}") from None


def parse_manifest(manifest_bytes: bytes) -> dict[str, Any]:
    """The parsed and checked manifest; ValueError saying what is wrong."""
    manifest = json.loads(manifest_bytes)
    check_manifest(manifest)
    return manifest  # type: ignore[no-any-return]


def read_manifest(models_dir: Path, signing_key: bytes | None = None) -> dict[str, Any]:
    """The manifest of a model set, its signature verified first when there is a key.

    FileNotFoundError when there is none, IntegrityError when it cannot be read or its signature does
    not match, ValueError when it is not a usable manifest.
    """
    data = read_manifest_bytes(models_dir)
    if signing_key is not None:
        verify_signature(models_dir, data, signing_key)
    return parse_manifest(data)


def check_manifest(manifest: Any) -> None:
    """Raise ValueError if the manifest lacks what loading needs or names a file outside its directory."""
    if not isinstance(manifest, dict):
        raise ValueError("the manifest is not a JSON object")
    for key in ("feature_names", "class_names", "versions", "training_stats"):
        if key not in manifest:
            raise ValueError(f"missing {key!r}")
    if not isinstance(manifest["versions"], dict) or not manifest["versions"]:
        raise ValueError("no versions listed")
    if not is_model_name(manifest.get("model_name", DEFAULT_MODEL_NAME)):
        raise ValueError(f"model_name must be {MODEL_NAME_RULE}")
    entries = {f"version {v[:64]!r}": meta for v, meta in manifest["versions"].items()}
    entries["training_stats"] = manifest["training_stats"]
    for where, meta in entries.items():
        if not isinstance(meta, dict) or "file" not in meta or "sha256" not in meta:
            raise ValueError(f"{where} lacks file or sha256")
        if not is_plain_name(meta["file"]):
            raise ValueError(f"{where}: file must be a plain name inside the models directory")
        if not isinstance(meta["sha256"], str):
            raise ValueError(f"{where}: sha256 must be a string")


def is_plain_name(name: Any) -> bool:
    """A file name with no directory part: it can only name a file inside the models directory."""
    return (
        isinstance(name, str)
        and name not in ("", ".", "..")
        and Path(name).name == name
        and "\\" not in name
        and "\x00" not in name
    )


def load_training_stats(models_dir: Path, signing_key: bytes | None = None) -> dict[str, Any]:
    """The verified training statistics (reference sample, per-feature stats) of a model set."""
    manifest = read_manifest(models_dir, signing_key)
    meta = manifest["training_stats"]
    stats = load_verified(Path(models_dir) / meta["file"], meta["sha256"])
    return {**stats, "feature_names": manifest["feature_names"], "class_names": manifest["class_names"]}


def files_of(manifest: dict[str, Any]) -> list[str]:
    """Every file a (checked) manifest names: the versions' pickles and the training statistics."""
    return [*(meta["file"] for meta in manifest["versions"].values()), manifest["training_stats"]["file"]]


def swap_into_place(staging: Path, target: Path) -> None:
    """Replace ``target`` by ``staging`` with two renames, so readers see the old set or the new one."""
    os.chmod(staging, 0o755)
    old = None
    if target.exists():
        old = Path(tempfile.mkdtemp(prefix=".models-old-", dir=target.parent))
        os.rmdir(old)
        os.rename(target, old)
    os.rename(staging, target)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)
