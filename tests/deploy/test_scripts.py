"""The shell scripts: shellcheck and conventions, and install.sh, get_ip.sh and test_everything.sh run
against stand-ins (fake apt and Python, a fake IMDS curl, a stand-in stack on 127.0.0.1)."""

from __future__ import annotations

import http.server
import ipaddress
import json
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path
from typing import ClassVar

import pytest

from tests.deploy.helpers import ROOT, assert_ok, require_tool, run, serve, shell_scripts, stub


def test_shell_scripts_found():
    names = {p.relative_to(ROOT).as_posix() for p in shell_scripts()}
    assert {
        "get_ip.sh",
        "test_everything.sh",
        "terraform/user_data.sh",
        "docker/api-entrypoint.sh",
        "deploy/pipeline.sh",
    } <= names


def test_shellcheck_clean():
    tool = require_tool("shellcheck")
    scripts = [str(p) for p in shell_scripts()]
    assert_ok(run([tool, "--external-sources", *scripts]), "shellcheck " + " ".join(scripts))


@pytest.mark.parametrize("script", shell_scripts(), ids=lambda p: p.relative_to(ROOT).as_posix())
def test_shell_script_conventions(script):
    lines = script.read_text(encoding="utf-8").splitlines()
    assert lines[0] == "#!/usr/bin/env bash", f"{script.name}: shebang"
    assert "set -euo pipefail" in lines, f"{script.name}: set -euo pipefail"
    if script.parent in (ROOT, ROOT / "deploy"):
        assert os.access(script, os.X_OK), f"{script.name} is not executable"


# install.sh against a fake apt and a fake Python ---------------------------


def _fake_install_env(
    tmp_path: Path, *, uid: int, sudo: bool, unavailable: str = "", installed: str = ""
) -> tuple[dict[str, str], Path]:
    """PATH with fake id/sudo/dpkg-query/apt-get/apt-cache, and a PYTHON whose venvs only log pip.

    Every call of apt-get and pip is appended to the returned log.
    """
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    log = tmp_path / "calls.log"
    q_log = shlex.quote(str(log))
    real_python = shlex.quote(sys.executable)
    scripts = {
        "id": f'if [[ "$1" == -u ]]; then echo {uid}; else exec /usr/bin/id "$@"; fi\n',
        "sudo": ('[[ "$1" == -n ]] && shift\nexec "$@"\n' if sudo else "exit 1\n"),
        # Installed packages print dpkg's status; the others are unknown.
        "dpkg-query": (f'case " {installed} " in *" ${{!#}} "*) printf "install ok installed" ;; *) exit 1 ;; esac\n'),
        "apt-get": (
            f'printf "apt-get %s\\n" "$*" >> {q_log}\n'
            '[[ "$1" == install ]] || exit 0\n'
            'for arg in "$@"; do\n'
            f'  case " {unavailable} " in *" $arg "*)\n'
            "    echo \"E: Package '$arg' has no installation candidate\" >&2; exit 100 ;; esac\n"
            "done\n"
        ),
        "apt-cache": (
            'pkg="${!#}"; echo "$pkg:"; echo "  Installed: (none)"\n'
            f'case " {unavailable} " in *" $pkg "*) echo "  Candidate: (none)" ;; *) echo "  Candidate: 1.0" ;; esac\n'
        ),
        # python3 -m venv [--clear] DIR makes a venv whose python logs "pip ..." instead of installing.
        "fake-python": (
            'if [[ "$1 $2" == "-m venv" ]]; then\n'
            "  shift 2\n"
            f'  if [[ "$1" == --clear ]]; then echo "venv --clear" >> {q_log}; shift; fi\n'
            '  mkdir -p "$1/bin"; echo "home = /fake" > "$1/pyvenv.cfg"\n'
            '  { echo "#!/usr/bin/env bash"\n'
            f'    echo \'if [[ "$1 $2" == "-m pip" ]]; then echo "pip $*" >> {q_log}; exit 0; fi\'\n'
            f'    echo \'exec {real_python} "$@"\'; }} > "$1/bin/python"\n'
            '  chmod +x "$1/bin/python"; exit 0\n'
            "fi\n"
            f'exec {real_python} "$@"\n'
        ),
    }
    for name, body in scripts.items():
        path = bin_dir / name
        path.write_text("#!/usr/bin/env bash\n" + body, encoding="utf-8")
        path.chmod(0o755)
    env = {
        **os.environ,
        "PATH": f"{bin_dir}:{os.environ['PATH']}",
        "PYTHON": str(bin_dir / "fake-python"),
        "VENV": str(tmp_path / "venv"),
    }
    return env, log


def _docker_engine_package() -> list[str]:
    """docker.io is on install.sh's list only where no dockerd is installed (Docker's own would clash)."""
    present = shutil.which("dockerd") or any(os.path.exists(p) for p in ("/usr/sbin/dockerd", "/usr/bin/dockerd"))
    return [] if present else ["docker.io"]


def _apt_installs(log: Path) -> list[list[str]]:
    calls = log.read_text(encoding="utf-8").splitlines() if log.exists() else []
    return [[w for w in c.split()[2:] if not w.startswith("-")] for c in calls if c.startswith("apt-get install")]


def test_install_dev_installs_the_runtime_packages_even_when_a_dev_package_is_unavailable(tmp_path):
    env, log = _fake_install_env(tmp_path, uid=0, sudo=False, unavailable="chromium")
    result = run([str(ROOT / "install.sh"), "--dev"], env=env)
    assert_ok(result, "install.sh --dev")
    out = result.stdout + result.stderr
    installs = _apt_installs(log)
    # The runtime packages (Prometheus, nginx) first on their own; then the dev tools together; apt
    # refused, so one at a time.
    dev = ["chromium", "fonts-noto-color-emoji", "shellcheck", "docker-compose", "wrk", "postgresql", "mmdebstrap"]
    dev += _docker_engine_package()
    assert installs == [["prometheus", "nginx"], dev, *[[pkg] for pkg in dev]], installs
    assert "apt-get could not install chromium: no installation candidate" in out, out
    assert re.search(r"not installed: chromium \(", out), out
    for pkg in ("prometheus", "nginx", "shellcheck", "docker-compose", "wrk"):
        assert f"could not install {pkg}" not in out, out
    assert "needs root" not in out, "the failure is apt's, not a missing root"
    assert "pip -m pip install" in log.read_text(encoding="utf-8") and "requirements-dev.txt" in log.read_text()


def test_install_without_root_names_the_packages_and_the_reason(tmp_path):
    env, log = _fake_install_env(tmp_path, uid=1000, sudo=False, installed="fonts-noto-color-emoji")
    result = run([str(ROOT / "install.sh"), "--dev"], env=env)
    assert_ok(result, "install.sh --dev (no root)")
    out = result.stdout + result.stderr
    assert _apt_installs(log) == [], "without root apt-get install is never tried"
    assert "cannot install prometheus nginx: this needs root or passwordless sudo" in out, out
    wanted = " ".join(["chromium", "shellcheck", "docker-compose", "wrk", "postgresql", "mmdebstrap"])
    wanted += "".join(f" {pkg}" for pkg in _docker_engine_package())
    assert f"cannot install {wanted}: this needs root" in out, out

    # With passwordless sudo the same run installs through sudo; a second run finds it all done.
    env, log = _fake_install_env(tmp_path, uid=1000, sudo=True, installed="fonts-noto-color-emoji")
    result = run([str(ROOT / "install.sh")], env=env)
    assert_ok(result, "install.sh (sudo)")
    assert _apt_installs(log) == [["prometheus", "nginx"]]
    env, log = _fake_install_env(tmp_path, uid=1000, sudo=False, installed="prometheus nginx")
    log.unlink()
    result = run([str(ROOT / "install.sh")], env=env)
    assert_ok(result, "install.sh (second run)")
    assert not log.exists(), "nothing to install: neither apt-get nor pip runs"


def test_install_recreates_a_virtualenv_older_than_python_311(tmp_path):
    env, log = _fake_install_env(tmp_path, uid=0, sudo=False, installed="prometheus nginx")
    venv = Path(env["VENV"])
    (venv / "bin").mkdir(parents=True)
    (venv / "pyvenv.cfg").write_text("home = /usr/old\nversion = 3.10.13\n", encoding="utf-8")
    old = venv / "bin" / "python"
    old.write_text(
        '#!/usr/bin/env bash\n[[ "$1" == --version ]] && echo "Python 3.10.13"\n[[ "$1" == -c ]] && exit 1\nexit 0\n',
        encoding="utf-8",
    )
    old.chmod(0o755)
    result = run([str(ROOT / "install.sh")], env=env)
    assert_ok(result, "install.sh (old venv)")
    assert "recreating virtualenv" in result.stdout and "Python 3.10.13" in result.stdout, result.stdout
    calls = log.read_text(encoding="utf-8")
    assert "venv --clear" in calls and "-r requirements.txt" in calls, calls
    assert "3.10" not in old.read_text(encoding="utf-8"), "the venv's python is the new one"


# get_ip.sh ---------------------------------------------------------------


def _fake_curl(bin_dir: Path, log: Path, body: str) -> None:
    """A curl that records its arguments and answers like IMDS, offline."""
    bin_dir.mkdir(exist_ok=True)
    fake = bin_dir / "curl"
    fake.write_text(
        "#!/usr/bin/env bash\n"
        f'printf "%s\\n" "$*" >> {shlex.quote(str(log))}\n'
        'case "$*" in\n'
        '  *"-X PUT"*latest/api/token*) printf "tok-123" ;;\n'
        f'  *meta-data/public-ipv4*) printf "%s" {shlex.quote(body)} ;;\n'
        "  *) exit 7 ;;\n"
        "esac\n",
        encoding="utf-8",
    )
    fake.chmod(0o755)


def _get_ip_env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in ("PUBLIC_IP", "GET_IP_IMDS", "API_PORT", "UI_PORT", "PROMETHEUS_PORT")
    }
    env["PATH"] = f"{tmp_path / 'bin'}:{env['PATH']}"
    env.update(extra)
    return env


def test_get_ip_imdsv2_flow(tmp_path):
    log = tmp_path / "curl.log"
    _fake_curl(tmp_path / "bin", log, "203.0.113.10")
    env = _get_ip_env(tmp_path, GET_IP_IMDS="always")
    result = run([str(ROOT / "get_ip.sh"), "--quiet"], env=env)
    assert_ok(result, "get_ip.sh --quiet")
    assert result.stdout == "203.0.113.10\n"
    calls = log.read_text(encoding="utf-8").splitlines()
    assert len(calls) == 2, calls
    put, get = calls
    assert "-X PUT" in put and "http://169.254.169.254/latest/api/token" in put
    assert "X-aws-ec2-metadata-token-ttl-seconds" in put
    assert "X-aws-ec2-metadata-token: tok-123" in get
    assert "http://169.254.169.254/latest/meta-data/public-ipv4" in get
    assert all("--max-time 2" in call for call in calls), calls

    result = run([str(ROOT / "get_ip.sh")], env={**env, "API_PORT": "6000"})
    assert_ok(result, "get_ip.sh")
    assert result.stdout.splitlines()[0] == "Detected IP Address: 203.0.113.10"
    assert "http://203.0.113.10:6000" in result.stdout
    assert "http://203.0.113.10:8501" in result.stdout
    assert "http://203.0.113.10:9090" in result.stdout


def test_get_ip_falls_back_without_imds(tmp_path):
    log = tmp_path / "curl.log"
    _fake_curl(tmp_path / "bin", log, "not-an-ip")
    result = run([str(ROOT / "get_ip.sh"), "--quiet"], env=_get_ip_env(tmp_path, GET_IP_IMDS="always"))
    assert_ok(result, "get_ip.sh --quiet")
    ipaddress.IPv4Address(result.stdout.strip())  # hostname -I or 127.0.0.1
    assert result.stdout.strip() != "not-an-ip"

    log.unlink()
    result = run([str(ROOT / "get_ip.sh"), "--quiet"], env=_get_ip_env(tmp_path, GET_IP_IMDS="never"))
    assert_ok(result, "get_ip.sh --quiet")
    ipaddress.IPv4Address(result.stdout.strip())
    assert not log.exists(), "GET_IP_IMDS=never must not call the metadata service"

    result = run([str(ROOT / "get_ip.sh"), "-q"], env=_get_ip_env(tmp_path, PUBLIC_IP="198.51.100.4"))
    assert result.stdout == "198.51.100.4\n"


# test_everything.sh against a stand-in stack on 127.0.0.1 -----------------


class _Stack(http.server.BaseHTTPRequestHandler):
    """API under /api, UI under /ui, Prometheus under /prom."""

    broken = False
    counter = 0
    weights: ClassVar[dict[str, int]] = {"v1": 50, "v2": 50}

    def log_message(self, *args):  # keep pytest output quiet
        pass

    def _send(self, code: int, body, content_type: str = "application/json") -> None:
        data = (
            body if isinstance(body, bytes) else (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        )
        self.send_response(code)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def do_GET(self):
        path = self.path.split("?", 1)[0]
        cls = type(self)
        routes = {
            "/api/health": lambda: (200, {"status": "healthy", "models": {"v1": {}, "v2": {}}}),
            "/api/config": lambda: (200, {"weights": cls.weights, "total_weight": sum(cls.weights.values())}),
            "/api/drift": lambda: (200, {"drift_score": 0.12}),
            "/ui/_stcore/health": lambda: (200, "ok"),
            "/prom/-/ready": lambda: (200, "Prometheus Server is Ready."),
            "/prom/api/v1/targets": lambda: (
                200,
                {
                    "status": "success",
                    "data": {
                        "activeTargets": [
                            {"labels": {"job": "prometheus"}, "health": "up"},
                            {"labels": {"job": "flask-api"}, "health": "down" if cls.broken else "up"},
                        ]
                    },
                },
            ),
        }
        if path == "/api/metrics":
            metrics = "# TYPE prediction_requests_total counter\nprediction_requests_total 61.0\n"
            if not cls.broken:
                metrics += 'model_version_requests_total{version="v1"} 30.0\n'
            self._send(200, metrics, "text/plain; version=0.0.4")
        elif path in routes:
            code, body = routes[path]()
            self._send(code, body, "text/plain" if isinstance(body, str) else "application/json")
        else:
            self._send(404, {"error": "not found"})

    def do_POST(self):
        length = int(self.headers.get("Content-Length", 0))
        raw = self.rfile.read(length)
        if self.path != "/api/predict":
            self._send(404, {"error": "not found"})
            return
        try:
            features = json.loads(raw)["features"]
        except (ValueError, KeyError, TypeError):
            features = None
        if not isinstance(features, list) or len(features) != 4:
            self._send(400, {"error": "features must be a list of 4 numbers"})
            return
        cls = type(self)
        cls.counter += 1
        version = "v1" if cls.broken or cls.weights["v2"] == 0 or cls.counter % 2 else "v2"
        self._send(200, {"prediction": 0, "class_name": "setosa", "model_version": version})


@pytest.fixture
def stand_in_stack():
    handler = type("Handler", (_Stack,), {"broken": False, "counter": 0})
    with serve(handler) as url:
        yield handler, url


def _run_test_everything(tmp_path: Path, base: str) -> subprocess.CompletedProcess:
    """Run test_everything.sh against ``base`` with logging wrappers for curl and python3 and a jq that only logs.

    Every curl call goes to curl.log (to check each has --max-time), every python3 call to python3.log;
    jq, which the script must not need, logs to jq.log and fails.
    """
    bin_dir = tmp_path / "bin"
    real_curl = require_tool("curl")
    real_python3 = require_tool("python3")
    stub(bin_dir, "curl", f'printf "%s\\n" "$*" >> {shlex.quote(str(tmp_path / "curl.log"))}\nexec {real_curl} "$@"\n')
    stub(bin_dir, "python3", f'echo "python3 $1" >> {tmp_path / "python3.log"}\nexec {real_python3} "$@"\n')
    stub(bin_dir, "jq", f'echo "jq $*" >> {tmp_path / "jq.log"}\nexit 127\n')
    env = {k: v for k, v in os.environ.items() if k not in ("API_PORT", "UI_PORT", "PROMETHEUS_PORT")}
    env.update(
        PATH=f"{bin_dir}:{env['PATH']}",
        API_URL=f"{base}/api",
        UI_URL=f"{base}/ui",
        PROMETHEUS_URL=f"{base}/prom",
        PUBLIC_IP="198.51.100.7",
        GET_IP_IMDS="never",
        PROMETHEUS_TARGET_WAIT="0",
        UI_WAIT="0",
        CURL_TIMEOUT="5",
        NO_COLOR="1",
    )
    return run([str(ROOT / "test_everything.sh")], env=env, timeout=240)


def _curl_calls(tmp_path: Path) -> list[str]:
    return (tmp_path / "curl.log").read_text(encoding="utf-8").splitlines()


def test_test_everything_passes_against_a_healthy_stack(tmp_path, stand_in_stack):
    _, base = stand_in_stack
    result = _run_test_everything(tmp_path, base)
    assert_ok(result, "test_everything.sh")
    out = result.stdout
    assert "[FAIL]" not in out
    for n in range(1, 11):
        assert re.search(rf"^{n}\. ", out, re.M), f"section {n} missing:\n{out}"
    assert "both versions served" in out
    assert re.search(r"average response time [\d.]+ ms", out)
    assert "Detected IP Address: 198.51.100.7" in out
    assert re.search(r"^\d+ passed, 0 failed, 0 warnings$", out, re.M), out
    calls = _curl_calls(tmp_path)
    assert len(calls) >= 60
    assert all("--max-time" in call for call in calls), [c for c in calls if "--max-time" not in c]


def test_test_everything_fails_on_a_broken_stack(tmp_path, stand_in_stack):
    handler, base = stand_in_stack
    handler.broken = True
    result = _run_test_everything(tmp_path, base)
    assert result.returncode == 1, result.stdout + result.stderr
    out = result.stdout
    assert "[FAIL] one version never served" in out
    assert "[FAIL] /metrics lacks model_version_requests_total" in out
    assert "[FAIL] flask-api target not up" in out
    assert "SOME CHECKS FAILED" in out


def test_test_everything_warns_when_a_weight_is_zero(tmp_path, stand_in_stack):
    handler, base = stand_in_stack
    handler.weights = {"v1": 100, "v2": 0}
    result = _run_test_everything(tmp_path, base)
    assert_ok(result, "test_everything.sh (v2 weight 0)")
    assert "[WARN] a weight is 0 (v1=100 v2=0)" in result.stdout
    assert re.search(r"^\d+ passed, 0 failed, 1 warnings$", result.stdout, re.M), result.stdout


def test_test_everything_uses_python_not_jq(tmp_path, stand_in_stack):
    """JSON is read with python3: with a jq that fails, a healthy stack still passes, and jq is never called."""
    _, base = stand_in_stack
    result = _run_test_everything(tmp_path, base)
    assert_ok(result, "test_everything.sh (jq unavailable)")
    assert not (tmp_path / "jq.log").exists(), (tmp_path / "jq.log").read_text(encoding="utf-8")
    python_calls = (tmp_path / "python3.log").read_text(encoding="utf-8").splitlines()
    assert python_calls and all(call.startswith("python3 -") for call in python_calls), python_calls


def test_run_demo_api_alone_takes_any_port_and_needs_no_upstream_port(tmp_path):
    """With RUN_SERVICES=api gunicorn itself listens on API_PORT, so API_PORT+10000 need not be a port (a free
    high port, as tests pick, must work); the whole stack still refuses it, and stop/status read what start
    recorded rather than the caller's RUN_SERVICES."""
    env = {**os.environ, "RUN_MODE": "native", "RUN_DIR": str(tmp_path / "run"), "API_PORT": "60000"}
    env.pop("API_UPSTREAM_PORT", None)
    alone = run([str(ROOT / "run_demo.sh"), "status"], env={**env, "RUN_SERVICES": "api"})
    assert "api" in alone.stdout and "frontdoor" not in alone.stdout, alone.stdout + alone.stderr
    assert "not a port" not in alone.stderr

    whole = run([str(ROOT / "run_demo.sh"), "status"], env=env)
    assert whole.returncode != 0 and "API_PORT+10000 is not a port" in whole.stderr

    (tmp_path / "run").mkdir()
    (tmp_path / "run" / "services").write_text("api\n", encoding="utf-8")
    recorded = run([str(ROOT / "run_demo.sh"), "status"], env=env)
    assert "not a port" not in recorded.stderr and "frontdoor" not in recorded.stdout, recorded.stderr

    config = run([str(ROOT / "run_demo.sh"), "prometheus-config"], env={**env, "RUN_SERVICES": "api"})
    assert config.returncode != 0 and "--api-targets-file" in config.stderr
