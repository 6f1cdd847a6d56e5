"""Forests compiled to machine code for batch scoring: treelite reads the fitted forest, tl2cgen writes
it out as C, the system's C compiler builds a shared library, and this process loads it.

The pickle stays the source of truth: the library is built at load time from the verified
estimator, in a child process (``python -m app.serving.compiled DIR``) working in a private temporary
directory (its TMPDIR too) that is removed once the library is loaded, so no compiled file outlives
the load and the server's own streams are never touched (tl2cgen and its treelite print to stdout and
stderr; the child's output becomes one debug line). The compile has a time limit, after which the
child and everything it started are killed; a forest that failed is not tried again in this process.
A forest is compiled once per process (keyed by the digest of its treelite form, the last few kept),
however many apps it builds.

Without a C compiler, or if treelite cannot read the estimator, the compile fails or takes too long,
``compile_forest`` returns None and the caller keeps its pure-numpy path; the registry's self-check
against scikit-learn still runs on whatever path is chosen.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
from collections import OrderedDict
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

log = logging.getLogger(__name__)

TOOLCHAIN = "gcc"
COMPILE_TIMEOUT_SECONDS = 12.0
"""Per forest: a worker loads its versions while it boots, and gunicorn kills one that takes over 30 s."""
_FAILED: set[str] = set()  # digests that did not compile: not tried again on every reload
_CACHE_SIZE = 8
_CACHE: OrderedDict[str, CompiledForest] = OrderedDict()
_CACHE_LOCK = threading.Lock()
_PACKAGE_ROOT = Path(__file__).resolve().parents[2]  # where ``python -m app...`` finds the package


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
        import treelite.sklearn
    except ImportError as exc:  # pragma: no cover - a runtime requirement
        log.warning("forest compiler unavailable (%s); batches use the numpy path", exc)
        return None
    if shutil.which(TOOLCHAIN) is None:
        log.warning("no C compiler (%s) on PATH; batches use the numpy path", TOOLCHAIN)
        return None
    try:
        checkpoint = treelite.sklearn.import_model(estimator).serialize_bytes()
    except Exception as exc:  # noqa: BLE001 - an estimator treelite cannot read is served without it
        log.warning("treelite cannot read this estimator (%s); batches use the numpy path", exc)
        return None
    digest = hashlib.sha256(checkpoint).hexdigest()
    with _CACHE_LOCK:
        if digest in _CACHE:
            _CACHE.move_to_end(digest)
            return _CACHE[digest]
        if digest in _FAILED:
            return None
        built = _build(checkpoint, int(estimator.n_classes_))
        if built is None:
            _FAILED.add(digest)
        else:
            _CACHE[digest] = built
            while len(_CACHE) > _CACHE_SIZE:  # a forest still served keeps its library through its predictor
                _CACHE.popitem(last=False)
        return built


def _build(checkpoint: bytes, n_classes: int) -> CompiledForest | None:
    """Compile in a child process, then load the library here."""
    try:
        workdir = Path(tempfile.mkdtemp(prefix="mlops-forest-"))  # mode 0700: this user's only
    except OSError as exc:
        log.warning("no room to compile the forest (%s); batches use the numpy path", exc)
        return None
    try:
        (workdir / "model.bin").write_bytes(checkpoint)
        # Its own session, so a timeout ends every process it started (tl2cgen runs the compiler through
        # shells), and its own TMPDIR, so whatever they write is under workdir and removed with it.
        child = subprocess.Popen(
            [sys.executable, "-m", "app.serving.compiled", str(workdir), TOOLCHAIN],
            cwd=_PACKAGE_ROOT,
            env={**os.environ, "TMPDIR": str(workdir)},
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            output, _ = child.communicate(timeout=COMPILE_TIMEOUT_SECONDS)
        except subprocess.TimeoutExpired:
            os.killpg(child.pid, signal.SIGKILL)
            child.communicate()
            log.warning("compiling the forest took over %.0f s; batches use the numpy path", COMPILE_TIMEOUT_SECONDS)
            return None
        notes = " | ".join(line for line in output.decode(errors="replace").splitlines() if line.strip())
        if child.returncode != 0:
            log.warning(
                "compiling the forest failed (%s); batches use the numpy path", notes[-300:] or child.returncode
            )
            return None
        log.debug("tl2cgen: %s", notes)
        import tl2cgen

        return CompiledForest(tl2cgen.Predictor(workdir / "forest.so", nthread=1), n_classes)
    except Exception as exc:  # noqa: BLE001 - a library that will not load leaves the numpy path serving
        log.warning("loading the compiled forest failed (%s); batches use the numpy path", str(exc)[:200])
        return None
    finally:
        shutil.rmtree(workdir, ignore_errors=True)  # the loaded library stays mapped


def _compile_main(argv: list[str]) -> int:
    """The child: DIR/model.bin (a treelite checkpoint) → DIR/forest.so."""
    import tl2cgen
    import treelite

    workdir, toolchain = Path(argv[0]), argv[1]
    model = treelite.Model.deserialize_bytes((workdir / "model.bin").read_bytes())
    tl2cgen.export_lib(model, toolchain=toolchain, libpath=workdir / "forest.so", params={"parallel_comp": 8})
    return 0


if __name__ == "__main__":
    sys.exit(_compile_main(sys.argv[1:]))
