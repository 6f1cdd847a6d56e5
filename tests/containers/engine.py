"""A Docker engine for the container tests, and local stand-ins for the public base images.

The tests use the engine that answers (``DOCKER_HOST``, or the default socket). Where none does, they
start their own: Debian's ``dockerd`` (installed by ``./install.sh --dev``) as root with the vfs storage
driver and a data root, exec root and socket of its own under ``MLOPS_TEST_DOCKER_ROOT``
(/var/lib/mlops-test-docker). The data root outlives the run, so images and build layers are cached
between runs on the same machine; the engine itself is stopped when the tests end.

No container registry is reachable here, so a public base image (the Dockerfiles' ``python``, the
compose file's ``nginx`` and ``prom/prometheus``) that is neither present nor pullable is replaced by a
stand-in under the very same name: a Debian root filesystem made with ``mmdebstrap`` from Debian's
packages, ``docker import``-ed, and finished by a small Dockerfile in ``standins/`` that mimics the
official image (its users, entrypoint, paths). The names are read from the Dockerfiles and the compose
file, so a pin changed there is followed here. What users build is never changed: only the bases are.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from app.settings import REPO_DIR

STANDINS_DIR = Path(__file__).with_name("standins")
ENGINE_ROOT = Path(os.environ.get("MLOPS_TEST_DOCKER_ROOT", "/var/lib/mlops-test-docker"))
HOST_CA_BUNDLE = Path("/etc/ssl/certs/ca-certificates.crt")
DEBIAN_MIRROR = "http://deb.debian.org/debian"


@dataclass(frozen=True)
class Standin:
    """How to make a stand-in for one public image repository from Debian's packages."""

    suite: str  # the Debian release whose packages fit the pinned image
    packages: tuple[str, ...]
    dockerfile: str  # in standins/

    def sources(self) -> list[str]:
        """The apt sources of the root filesystem: the release, and its security updates where it has them."""
        lines = [f"deb {DEBIAN_MIRROR} {self.suite} main"]
        if self.suite not in ("sid", "unstable"):
            lines.append(f"deb http://deb.debian.org/debian-security {self.suite}-security main")
        return lines


# Keyed by repository; the tags come from the files that pin them.
STANDINS = {
    # Debian 12's Python is 3.11, as in python:3.11-*-bookworm.
    "python": Standin("bookworm", ("python3", "python3-venv", "ca-certificates"), "python.Dockerfile"),
    # The front door's config needs nginx >= 1.27.3 (upstream "server ... resolve"): only Debian unstable has one.
    "nginx": Standin("sid", ("nginx", "wget", "ca-certificates", "passwd"), "nginx.Dockerfile"),
    # Debian 13's Prometheus is 2.53, as the compose file's pin.
    "prom/prometheus": Standin("trixie", ("prometheus", "wget"), "prometheus.Dockerfile"),
}


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess[str]:
    """Run the docker CLI against the tests' engine; fails the test with its output when ``check`` and it fails."""
    result = subprocess.run(
        ["docker", *args], stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=timeout, check=False
    )
    if check and result.returncode != 0:
        pytest.fail(f"docker {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def engine_answers() -> bool:
    try:
        return docker("info", "--format", "{{.ServerVersion}}", timeout=15, check=False).returncode == 0
    except subprocess.TimeoutExpired:
        return False


@dataclass(frozen=True)
class Engine:
    host: str  # DOCKER_HOST
    own: bool  # started by the tests: stand-ins may be tagged there, never in the caller's engine


@contextmanager
def docker_engine() -> Iterator[Engine]:
    """An engine that answers: the caller's, or one started here (and stopped after)."""
    if shutil.which("docker") is None:
        pytest.fail("the docker CLI is not installed: ./install.sh --dev installs it (Debian: docker.io)")
    if engine_answers():
        yield Engine(os.environ.get("DOCKER_HOST", "unix:///var/run/docker.sock"), own=False)
        return
    dockerd = shutil.which("dockerd") or "/usr/sbin/dockerd"
    if not os.path.exists(dockerd):
        pytest.fail("no Docker engine answers and dockerd is not installed: ./install.sh --dev (Debian: docker.io)")
    if os.geteuid() != 0:
        pytest.fail("no Docker engine answers, and starting one (dockerd) needs root: start one, set DOCKER_HOST")
    for sub in ("data", "exec"):
        (ENGINE_ROOT / sub).mkdir(parents=True, exist_ok=True)
    socket_path = ENGINE_ROOT / "docker.sock"
    host = f"unix://{socket_path}"
    _stop_leftover_engine(ENGINE_ROOT / "dockerd.pid")
    log = (ENGINE_ROOT / "dockerd.log").open("ab")
    process = subprocess.Popen(
        [
            dockerd,
            "--storage-driver=vfs",
            f"--data-root={ENGINE_ROOT / 'data'}",
            f"--exec-root={ENGINE_ROOT / 'exec'}",
            f"--pidfile={ENGINE_ROOT / 'dockerd.pid'}",
            f"--host={host}",
        ],
        stdin=subprocess.DEVNULL,
        stdout=log,
        stderr=log,
        start_new_session=True,
    )
    os.environ["DOCKER_HOST"] = host
    try:
        deadline = time.monotonic() + 60
        while not engine_answers():
            if process.poll() is not None or time.monotonic() > deadline:
                tail = (ENGINE_ROOT / "dockerd.log").read_text(errors="replace")[-3000:]
                pytest.fail(f"dockerd did not start (exit {process.poll()}):\n{tail}")
            time.sleep(0.2)
        yield Engine(host, own=True)
    finally:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def _stop_leftover_engine(pidfile: Path) -> None:
    """A dockerd of an earlier run that was killed before it could stop its engine still holds the data root."""
    try:
        pid = int(pidfile.read_text().strip())
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except (OSError, ValueError):
        return
    if not cmdline or not cmdline[0].endswith(b"dockerd"):
        return
    os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 30
    while Path(f"/proc/{pid}").exists() and time.monotonic() < deadline:
        time.sleep(0.2)


def pinned_base_images() -> list[str]:
    """The public images the stack is built from or runs: the Dockerfiles' ARG defaults and compose's images."""
    names = []
    for dockerfile in sorted((REPO_DIR / "docker").glob("Dockerfile.*")):
        names += re.findall(r"^ARG PYTHON_IMAGE=(\S+)$", dockerfile.read_text(encoding="utf-8"), re.M)
    compose = yaml.safe_load((REPO_DIR / "docker-compose.yml").read_text(encoding="utf-8"))
    names += [s["image"] for s in compose["services"].values() if "build" not in s]
    return sorted(set(names))


def image_exists(name: str) -> bool:
    return docker("image", "inspect", name, check=False).returncode == 0


def ensure_base_image(name: str, engine: Engine) -> str:
    """``name`` present in the engine: already there, pulled, or (in the tests' own engine) built as a stand-in."""
    if image_exists(name):
        return "present"
    if docker("pull", name, timeout=600, check=False).returncode == 0:
        return "pulled"
    if not engine.own:
        pytest.fail(f"{name} cannot be pulled; stand-ins are built only in the tests' own engine (unset DOCKER_HOST)")
    repository = name.rsplit(":", 1)[0]
    if repository not in STANDINS:
        pytest.fail(f"{name} cannot be pulled and there is no stand-in recipe for {repository}")
    build_standin(name, STANDINS[repository])
    return "stand-in"


def build_standin(name: str, standin: Standin) -> None:
    """mmdebstrap a root filesystem, import it, and finish it with the stand-in's Dockerfile as ``name``."""
    if shutil.which("mmdebstrap") is None:
        pytest.fail("mmdebstrap is not installed: ./install.sh --dev installs it")
    rootfs = f"mlops-standin-rootfs/{standin.dockerfile.split('.')[0]}:{standin.suite}"
    with tempfile.TemporaryDirectory(prefix="mlops-standin-") as tmp:
        context = Path(tmp)
        tarball = context / "rootfs.tar"
        result = subprocess.run(
            [
                "mmdebstrap",
                "--quiet",
                "--variant=minbase",
                f"--include={','.join(standin.packages)}",
                # Like the slim images: no documentation, manuals or translations.
                "--dpkgopt=path-exclude=/usr/share/doc/*",
                "--dpkgopt=path-exclude=/usr/share/man/*",
                "--dpkgopt=path-exclude=/usr/share/locale/*",
                "--dpkgopt=path-include=/usr/share/doc/*/copyright",
                # The mirror reachable here may be a dated copy: a release whose signed Release file has a
                # Valid-Until (unstable, security) would be refused as expired once the copy is older.
                "--aptopt=Acquire::Check-Valid-Until false",
                standin.suite,
                str(tarball),
                *standin.sources(),
            ],
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=900,
            check=False,
        )
        if result.returncode != 0:
            pytest.fail(f"mmdebstrap for the {name} stand-in failed:\n{result.stdout[-2000:]}\n{result.stderr[-4000:]}")
        docker("import", str(tarball), rootfs, timeout=600)
        tarball.unlink()
        shutil.copy(STANDINS_DIR / standin.dockerfile, context / "Dockerfile")
        shutil.copy(HOST_CA_BUNDLE, context / "ca-certificates.crt")
        docker("build", "--quiet", "--build-arg", f"ROOTFS={rootfs}", "-t", name, str(context), timeout=600)
    docker("image", "rm", rootfs, check=False)
