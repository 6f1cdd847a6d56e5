"""The model registry: the verified model set a worker serves, and hot reload.

Files are read through ``app.artifacts``, which checks every pickle's sha256 against the manifest
*before* unpickling it: a file that does not match is never loaded. With a signing key, the manifest's
signature is verified first, on the very bytes that are then parsed, and a set that fails it is
refused whole before any file is unpickled. A ``ModelSet`` is immutable; a reload builds a new one and
the service swaps the reference, so requests in flight finish on the set they started with.

Failure reasons reach /health, so they name files relative to the models directory, never by path.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import sklearn

from app.artifacts import (
    DEFAULT_MODEL_NAME,
    MANIFEST_NAME,
    load_verified,
    parse_manifest,
    read_manifest_bytes,
    sha256_file,
    verify_signature,
)
from app.errors import IntegrityError, ModelUnavailable, NotFound
from app.serving.predictor import FastForest, Predictor, SklearnPredictor, build_predictor

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadedVersion:
    """One servable model version."""

    version: str
    meta: dict[str, Any]
    estimator: Any
    predictor: Predictor

    @property
    def sha256(self) -> str:
        """The verified sha256 of the pickle this version was loaded from."""
        sha256: str = self.meta["sha256"]
        return sha256


@dataclass(frozen=True)
class ModelSet:
    """Everything loaded from one models directory at one moment."""

    versions: dict[str, LoadedVersion] = field(default_factory=dict)
    failed: dict[str, str] = field(default_factory=dict)
    manifest: dict[str, Any] = field(default_factory=dict)
    reference: npt.NDArray[np.float64] | None = None
    backend: str = "fast"

    def known(self, version: str) -> None:
        """NotFound (404) unless the manifest lists ``version``."""
        listed = self.manifest.get("versions", {})
        if version not in listed:
            known = ", ".join(sorted(listed)) or "none"
            raise NotFound(f"model {self.model_name!r} has no version {version[:64]!r}; versions: {known}")

    def loaded(self, version: str) -> LoadedVersion:
        """The loaded ``version``: NotFound if the manifest has none, ModelUnavailable (503) if it did not load."""
        self.known(version)
        if version not in self.versions:
            raise ModelUnavailable(f"version {version!r} is not loaded; see GET /health")
        return self.versions[version]

    @property
    def model_name(self) -> str:
        """The name the Open Inference Protocol serves this set under."""
        name: str = self.manifest.get("model_name", DEFAULT_MODEL_NAME)
        return name

    @property
    def feature_names(self) -> list[str]:
        """Input feature names, in model order."""
        return list(self.manifest.get("feature_names", []))

    @property
    def class_names(self) -> list[str]:
        """Class names, indexed by predicted class."""
        return list(self.manifest.get("class_names", []))

    @property
    def status(self) -> str:
        """'healthy', 'degraded' (something failed but a model serves) or 'unhealthy' (nothing serves)."""
        if not self.versions:
            return "unhealthy"
        return "degraded" if self.failed else "healthy"


def load_model_set(
    models_dir: Path,
    backend: str = "fast",
    previous: ModelSet | None = None,
    *,
    signing_key: bytes | None = None,
) -> ModelSet:
    """Load and verify every version in ``models_dir``.

    With ``previous``, unchanged versions are reused as they are and a version whose new files
    fail to load keeps serving its previous model (reported in ``failed``). With ``signing_key``
    (MODEL_SIGNING_KEY), a set whose manifest signature does not match is refused whole, before any
    file is unpickled, and ``previous`` keeps serving. If training swaps a new set in while this
    runs (the manifest changed), the load starts again.
    """
    models_dir = Path(models_dir)
    for _ in range(_LOAD_ATTEMPTS):
        before = _manifest_bytes(models_dir)
        model_set = _load_once(models_dir, backend, previous, signing_key)
        if _manifest_bytes(models_dir) == before:
            return model_set
        log.warning("model set in %s changed while loading; loading again", models_dir)
    return model_set


_LOAD_ATTEMPTS = 3


def _manifest_bytes(models_dir: Path) -> bytes | None:
    """The manifest's raw bytes (to notice a set swapped in mid-load), or None if it cannot be read."""
    try:
        return (models_dir / MANIFEST_NAME).read_bytes()
    except OSError:
        return None


def _load_once(models_dir: Path, backend: str, previous: ModelSet | None, signing_key: bytes | None) -> ModelSet:
    """One attempt at loading ``models_dir``; see ``load_model_set``."""
    try:
        raw = read_manifest_bytes(models_dir)
        if signing_key is not None:
            verify_signature(models_dir, raw, signing_key)  # before the manifest names any file to open
        manifest = parse_manifest(raw)  # the verified bytes, not a second read
    except FileNotFoundError:
        return _keep_previous(
            previous, f"{MANIFEST_NAME} not found in the models directory (MODELS_DIR): run python app/train_model.py"
        )
    except IntegrityError as exc:
        return _keep_previous(previous, str(exc))
    except (ValueError, KeyError, TypeError) as exc:
        return _keep_previous(previous, f"{MANIFEST_NAME} is invalid: {_without_paths(str(exc), models_dir)}")

    # Only a previous set with the same features and classes can stand in for a version that fails.
    fallback = previous if previous is not None and _same_schema(previous, manifest) else None
    versions, failed = _load_versions(models_dir, manifest, backend, fallback.versions if fallback else {})
    reference = _load_reference(models_dir, manifest, failed, fallback.reference if fallback else None)
    return ModelSet(versions=versions, failed=failed, manifest=manifest, reference=reference, backend=backend)


def _same_schema(previous: ModelSet, manifest: dict[str, Any]) -> bool:
    """Whether the previous set takes the same features and predicts the same classes as ``manifest``."""
    feature_names: list[str] = manifest["feature_names"]
    class_names: list[str] = manifest["class_names"]
    return previous.feature_names == feature_names and previous.class_names == class_names


def _load_versions(
    models_dir: Path, manifest: dict[str, Any], backend: str, previous: Mapping[str, LoadedVersion]
) -> tuple[dict[str, LoadedVersion], dict[str, str]]:
    """Load every version the manifest lists; one that fails keeps serving its ``previous`` model, if any."""
    versions: dict[str, LoadedVersion] = {}
    failed: dict[str, str] = {}
    for version, meta in manifest["versions"].items():
        old = previous.get(version)
        try:
            versions[version] = _load_version(models_dir, version, meta, manifest, backend, old)
        except Exception as exc:  # noqa: BLE001 - any failure refuses this version, never the service
            reason = str(exc) if isinstance(exc, IntegrityError) else f"cannot load {meta.get('file')}: {exc}"
            reason = _without_paths(reason, models_dir)
            failed[version] = reason
            if old is not None:
                versions[version] = old
                log.error("model %s refused (%s); keeping the previously loaded model", version, reason)
            else:
                log.error("model %s refused and not served: %s", version, reason)
    return versions, failed


def _load_version(
    models_dir: Path,
    version: str,
    meta: dict[str, Any],
    manifest: dict[str, Any],
    backend: str,
    old: LoadedVersion | None,
) -> LoadedVersion:
    """One verified version: ``old`` again if its file is unchanged, else unpickled, checked and compiled."""
    path = models_dir / meta["file"]
    if (
        old is not None
        and old.sha256 == meta["sha256"]
        and old.predictor.backend == backend
        and path.is_file()
        and sha256_file(path) == meta["sha256"]
    ):
        # The verified bytes are the ones already in memory: no need to unpickle again.
        return LoadedVersion(version, meta, old.estimator, old.predictor)
    estimator = load_verified(path, meta["sha256"])
    _check_estimator(estimator, manifest)
    if meta.get("sklearn_version") not in (None, sklearn.__version__):
        log.warning(
            "model %s was trained with scikit-learn %s, serving with %s",
            version,
            meta["sklearn_version"],
            sklearn.__version__,
        )
    return LoadedVersion(version, meta, estimator, _checked_predictor(version, estimator, backend))


def _load_reference(
    models_dir: Path,
    manifest: dict[str, Any],
    failed: dict[str, str],
    previous: npt.NDArray[np.float64] | None,
) -> npt.NDArray[np.float64] | None:
    """The verified training reference for drift; if it fails, ``previous`` and the reason in ``failed``."""
    try:
        stats_meta = manifest["training_stats"]
        stats = load_verified(models_dir / stats_meta["file"], stats_meta["sha256"])
        return np.asarray(stats["reference"], dtype=np.float64)
    except Exception as exc:  # noqa: BLE001 - drift is unavailable, predictions still serve
        failed["training_stats"] = _without_paths(str(exc), models_dir)
        log.error("training statistics refused: %s", exc)
        return previous


def _without_paths(reason: str, models_dir: Path) -> str:
    """``reason`` with the models directory's absolute path taken out (a library's message may hold one)."""
    prefixes = {str(models_dir.resolve()), str(models_dir.absolute()), str(models_dir)}
    for prefix in sorted(prefixes, key=len, reverse=True):  # the longest first: one may contain another
        if prefix not in ("", "."):
            reason = reason.replace(prefix + "/", "").replace(prefix, "MODELS_DIR")
    return reason


def _checked_predictor(version: str, estimator: Any, backend: str) -> Predictor:
    """The backend's predictor, after checking it agrees with sklearn on every path it takes.

    A compiled batch path that disagrees is dropped for the numpy walk; a fast predictor that still
    disagrees is replaced by sklearn's own.
    """
    predictor = build_predictor(estimator, backend)
    if backend == "sklearn" or _agrees(predictor, estimator):
        return predictor
    if isinstance(predictor, FastForest) and predictor.batch_backend != "numpy":
        log.error("model %s: the compiled batch path disagrees with scikit-learn; using the numpy path", version)
        predictor = predictor.without_batch()
        if _agrees(predictor, estimator):
            return predictor
    log.error("model %s: the %s backend disagrees with scikit-learn; serving it with sklearn", version, backend)
    return SklearnPredictor(estimator)


def _agrees(predictor: Predictor, estimator: Any) -> bool:
    """Whether ``predictor`` gives sklearn's probabilities on probes of 1, 4 and 64 rows (every path)."""
    rng = np.random.default_rng(0)
    width = int(estimator.n_features_in_)
    probes = rng.normal(size=(64, width)) * rng.choice([0.1, 1.0, 10.0, 100.0], size=(64, 1))
    expected = estimator.predict_proba(probes)
    for rows in (probes[:1], probes[:4], probes):
        got = predictor.predict_proba(rows)
        if got.shape != expected[: len(rows)].shape or not np.allclose(got, expected[: len(rows)], rtol=0, atol=1e-9):
            return False
    return True


def _keep_previous(previous: ModelSet | None, reason: str) -> ModelSet:
    """A whole-set failure: keep what served before, or serve nothing."""
    log.error("model set not loaded: %s", reason)
    if previous is None or not previous.versions:
        return ModelSet(failed={"manifest": reason})
    return ModelSet(
        versions=previous.versions,
        failed={**previous.failed, "manifest": reason},
        manifest=previous.manifest,
        reference=previous.reference,
        backend=previous.backend,
    )


def _check_estimator(estimator: Any, manifest: dict[str, Any]) -> None:
    """The unpickled object must be a forest classifier that fits the manifest's features and classes."""
    from sklearn.ensemble import ExtraTreesClassifier, RandomForestClassifier

    if not isinstance(estimator, (RandomForestClassifier, ExtraTreesClassifier)) or not hasattr(
        estimator, "estimators_"
    ):
        raise TypeError(f"{type(estimator).__name__} is not a fitted forest classifier")
    if int(estimator.n_features_in_) != len(manifest["feature_names"]):
        raise ValueError(
            f"expects {estimator.n_features_in_} features, manifest lists {len(manifest['feature_names'])}"
        )
    if list(estimator.classes_) != list(range(len(manifest["class_names"]))):
        raise ValueError("classes do not match the manifest's class names")
