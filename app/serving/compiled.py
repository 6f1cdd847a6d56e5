"""Forests compiled to machine code for batch scoring: treelite reads the fitted forest, tl2cgen writes
it out as C, the system's C compiler builds a shared library, and this process loads it.

The pickle stays the source of truth: the library is built at load time from the verified
estimator, into a private temporary directory that is removed once the library is loaded, so no
compiled file outlives the process or can be swapped underneath it. A forest is compiled once per
process (keyed by the digest of its treelite form), however many apps a process builds.

Without a C compiler, or if treelite cannot read the estimator, ``compile_forest`` returns None and
the caller keeps its pure-numpy path; the registry's self-check against scikit-learn still runs on
whatever path is chosen.
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import logging
import os
import re
import shutil
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

_CACHE: dict[str, CompiledForest] = {}
_CACHE_LOCK = threading.Lock()


class CompiledForest:
    """A forest's ``predict_proba`` as a shared library built by tl2cgen (one thread per call)."""

    backend = "tl2cgen"
    batch_backend = "tl2cgen"

    def __init__(self, predictor: Any, n_classes: int) -> None:
        self._predictor = predictor
        self._n_classes = n_classes
        # One call at a time per library: its thread pool is not documented as re-entrant.
        self._lock = threading.Lock()

    def predict_proba(self, X: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
        """Class probabilities for every row; inputs are compared as float32, as scikit-learn's trees do."""
        import tl2cgen

        matrix = tl2cgen.DMatrix(np.ascontiguousarray(X, dtype=np.float32))
        with self._lock:
            out = self._predictor.predict(matrix)
        proba: npt.NDArray[np.float64] = np.asarray(out, dtype=np.float64).reshape(len(X), self._n_classes)
        return proba


def compile_forest(estimator: Any) -> CompiledForest | None:
    """The estimator compiled for batch scoring, or None when this machine cannot compile it."""
    try:
        import tl2cgen
        import treelite.sklearn
    except ImportError as exc:  # pragma: no cover - both are runtime requirements
        log.warning("forest compiler unavailable (%s); batches use the numpy path", exc)
        return None
    if shutil.which("gcc") is None:
        log.warning("no C compiler (gcc) on PATH; batches use the numpy path")
        return None
    try:
        model = treelite.sklearn.import_model(estimator)
    except Exception as exc:  # noqa: BLE001 - an estimator treelite cannot read is served without it
        log.warning("treelite cannot read this estimator (%s); batches use the numpy path", exc)
        return None
    digest = hashlib.sha256(model.serialize_bytes()).hexdigest()
    with _CACHE_LOCK:
        if digest not in _CACHE:
            built = _build(tl2cgen, model, int(estimator.n_classes_))
            if built is None:
                return None
            _CACHE[digest] = built
        return _CACHE[digest]


def _build(tl2cgen: Any, model: Any, n_classes: int) -> CompiledForest | None:
    workdir = Path(tempfile.mkdtemp(prefix="mlops-forest-"))  # mode 0700: this user's only
    try:
        with _native_notes() as notes:
            library = workdir / "forest.so"
            tl2cgen.export_lib(model, toolchain="gcc", libpath=library, params={"parallel_comp": 8}, nthread=1)
            predictor = tl2cgen.Predictor(library, nthread=1)
    except Exception as exc:  # noqa: BLE001 - a failed compile leaves the numpy path serving
        log.warning("compiling the forest failed (%s); batches use the numpy path", str(exc).splitlines()[0][:200])
        return None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the loaded library stays mapped
    if notes:
        log.debug("tl2cgen: %s", " | ".join(notes))
    return CompiledForest(predictor, n_classes)


_NATIVE_NOTE = re.compile(r"^\[\d\d:\d\d:\d\d\] |Treelite version|Parallel compilation|Generated shared library")


@contextlib.contextmanager
def _native_notes() -> Iterator[list[str]]:
    """Collect what tl2cgen and the treelite inside it print while compiling and loading.

    tl2cgen prints its log lines to Python's stdout, raises notes as warnings, and its embedded
    treelite writes to file descriptor 2 (e.g. that it is older than the treelite that read the
    estimator). Those become one debug line; anything else written to stderr meanwhile (another
    thread's log line) is written back to stderr afterwards.
    """
    notes: list[str] = []
    out = io.StringIO()
    sys.stderr.flush()
    saved = os.dup(2)
    with tempfile.TemporaryFile() as captured:
        os.dup2(captured.fileno(), 2)
        try:
            with contextlib.redirect_stdout(out), warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always")
                yield notes
        finally:
            sys.stderr.flush()
            os.dup2(saved, 2)
            os.close(saved)
            captured.seek(0)
            others: list[str] = []
            for line in captured.read().decode(errors="replace").splitlines():
                (notes if _NATIVE_NOTE.search(line) else others).append(line)
            if others:
                sys.stderr.write("\n".join(others) + "\n")
            notes.extend(line for line in out.getvalue().splitlines() if line.strip())
            notes.extend(str(w.message) for w in caught)
