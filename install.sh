#!/usr/bin/env bash
# Install what the stack needs: a Python virtualenv with the pinned requirements, Prometheus and nginx.
#
#   ./install.sh          runtime: .venv + requirements.txt + this project (editable), Prometheus and
#                         nginx (the API's front door), with apt
#   ./install.sh --dev    also the test tools: requirements-dev.txt, Chromium, shellcheck, a Docker
#                         engine (docker.io) with docker-compose and mmdebstrap (the container tests),
#                         PostgreSQL, wrk (benchmarks)
#
# Idempotent: a second run with unchanged requirements installs nothing. A system package
# that cannot be installed is reported (with the reason) and does not stop the rest: the runtime
# packages (Prometheus, nginx) are installed on their own first, so an unavailable dev tool never
# keeps them out. Debian's nginx package also enables its own nginx.service (port 80, the default
# site) where systemd runs; run_demo.sh does not use it: `systemctl disable --now nginx` if unwanted.
# An existing virtualenv made with a Python older than 3.11 is recreated.
set -euo pipefail

cd "$(dirname "${BASH_SOURCE[0]}")"

DEV=0
VENV="${VENV:-.venv}"
PYTHON="${PYTHON:-python3}"

log() { printf '[install] %s\n' "$*"; }
die() { printf '[install] error: %s\n' "$*" >&2; exit 1; }

parse_args() {
  for arg in "$@"; do
    case "$arg" in
      --dev) DEV=1 ;;
      -h|--help) sed -n '2,15p' "$0"; exit 0 ;;
      *) die "unknown option: $arg" ;;
    esac
  done
}

check_python() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11 or newer"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is required ($("$PYTHON" --version 2>&1) found)"
}

can_root() {
  [[ $(id -u) -eq 0 ]] || { command -v sudo >/dev/null && sudo -n true 2>/dev/null; }
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  else
    sudo -n "$@"
  fi
}

installed() {
  # installed PKG: the Debian package PKG is installed (not just known, or removed with its config left).
  local status
  # shellcheck disable=SC2016 # ${Status} is dpkg-query's format, not a shell expansion
  status="$(dpkg-query -W -f='${Status}' "$1" 2>/dev/null)" || return 1
  [[ "$status" == *" ok installed" ]]
}

APT_UPDATED=0
APT_FAILED=()

apt_get() {
  as_root env DEBIAN_FRONTEND=noninteractive apt-get "$@"
}

apt_install() {
  # apt_install PKG...: install the missing ones; each one that cannot be installed is added
  # to APT_FAILED and reported with the reason. Returns 1 if any failed.
  local missing=() failed=() pkg
  for pkg in "$@"; do
    installed "$pkg" || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  if ! can_root; then
    log "cannot install ${missing[*]}: this needs root or passwordless sudo."
    log "install them yourself: sudo apt-get install ${missing[*]}"
    APT_FAILED+=("${missing[@]}")
    return 1
  fi
  if ((!APT_UPDATED)); then
    apt_get update -qq || log "apt-get update failed; trying with the package lists there are"
    APT_UPDATED=1
  fi
  log "installing system packages: ${missing[*]}"
  if apt_get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null; then
    return 0
  fi
  # apt installs all or nothing: retry one by one to install what can be and name what cannot.
  if ((${#missing[@]} > 1)); then
    log "apt-get could not install them together; trying one at a time"
    for pkg in "${missing[@]}"; do
      apt_get install -y -qq --no-install-recommends "$pkg" >/dev/null || failed+=("$pkg")
    done
  else
    failed=("${missing[@]}")
  fi
  ((${#failed[@]})) || return 0
  for pkg in "${failed[@]}"; do
    log "apt-get could not install $pkg: $(apt_reason "$pkg")"
  done
  APT_FAILED+=("${failed[@]}")
  return 1
}

apt_reason() {
  # Why apt could not install PKG, as far as apt-cache tells.
  local candidate
  candidate="$(apt-cache policy "$1" 2>/dev/null | sed -n 's/^ *Candidate: *//p')"
  if [[ -z "$candidate" || "$candidate" == "(none)" ]]; then
    echo "no installation candidate (not in this system's apt repositories)"
  else
    echo "apt-get install failed for version $candidate (see apt's message above)"
  fi
}

install_system_packages() {
  # postgresql: the throwaway clusters of the store's contract and several-host tests.
  # docker.io (dockerd) and mmdebstrap: the container tests start an engine of their own where none
  # answers, and build stand-ins for the public base images where no registry is reachable. An engine
  # that is already installed (Docker's own packages) is used as it is: docker.io would conflict with it.
  local dev_packages=(chromium fonts-noto-color-emoji shellcheck docker-compose wrk postgresql mmdebstrap)
  if ! command -v dockerd >/dev/null && [[ ! -x /usr/sbin/dockerd ]] && [[ ! -x /usr/bin/dockerd ]]; then
    dev_packages+=(docker.io)
  fi
  if command -v apt-get >/dev/null && command -v dpkg-query >/dev/null; then
    # The runtime packages on their own, so a dev tool apt cannot install never keeps them out.
    apt_install prometheus nginx || true
    if ((DEV)); then
      apt_install "${dev_packages[@]}" || true
    fi
    if ((${#APT_FAILED[@]})); then
      log "not installed: ${APT_FAILED[*]} (reasons above); continuing without them"
    fi
    return 0
  fi
  if ! command -v prometheus >/dev/null; then
    log "Prometheus is not installed and this is not a Debian/Ubuntu system."
    log "Either run the stack in Docker (RUN_MODE=docker ./run_demo.sh), or install Prometheus"
    log "from your distribution or the release tarball so 'prometheus' and 'promtool' are on PATH."
  fi
  if ! command -v nginx >/dev/null && [[ ! -x /usr/sbin/nginx ]]; then
    log "nginx (the API's front door) is not installed: install it from your distribution, or use Docker."
  fi
  if ((DEV)); then
    log "without apt, install the test tools yourself: ${dev_packages[*]}"
  fi
}

install_python_packages() {
  local requirements=requirements.txt kind=runtime
  if ((DEV)); then requirements="requirements-dev.txt"; kind=dev; fi
  if [[ -x "$VENV/bin/python" ]] \
    && "$VENV/bin/python" -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null; then
    :
  elif [[ -f "$VENV/pyvenv.cfg" ]]; then
    # Made with a Python older than 3.11, or one since removed: --clear empties it (packages
    # and install stamps included) and recreates it with $PYTHON.
    log "recreating virtualenv $VENV: it has $("$VENV/bin/python" --version 2>/dev/null || echo 'no working Python'), 3.11+ is required"
    "$PYTHON" -m venv --clear "$VENV"
  else
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local runtime_stamp dev_stamp stamp
  local runtime_files=(requirements.txt requirements-api.txt requirements-ui.txt requirements-tools.txt pyproject.toml)
  runtime_stamp="$VENV/.installed-runtime-$(cat "${runtime_files[@]}" | sha256sum | cut -c1-16)"
  dev_stamp="$VENV/.installed-dev-$(cat "${runtime_files[@]}" requirements-dev.txt | sha256sum | cut -c1-16)"
  stamp="$runtime_stamp"
  if ((DEV)); then stamp="$dev_stamp"; fi
  if [[ -f "$stamp" ]]; then
    log "Python packages already installed ($requirements)"
    return 0
  fi
  log "installing Python packages from $requirements"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  # The project itself, editable: `import app` works from anywhere, the console scripts land in
  # $VENV/bin, and its dependencies are the pinned ones installed just above.
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --no-deps -e .
  rm -f "$VENV"/.installed-*
  touch "$runtime_stamp"
  if [[ "$kind" == dev ]]; then touch "$dev_stamp"; fi
}

install_checkov() {
  # checkov (the Kubernetes policy check) pins its own dependency tree: it gets a virtualenv of its own.
  local tools="$VENV/tools/checkov" version=3.3.30
  if [[ -x "$tools/bin/checkov" ]] && [[ "$("$tools/bin/checkov" --version 2>/dev/null)" == "$version" ]]; then
    return 0
  fi
  log "installing checkov $version into $tools"
  rm -rf "$tools"
  "$PYTHON" -m venv "$tools"
  "$tools/bin/python" -m pip install --quiet --disable-pip-version-check "checkov==$version"
}

main() {
  parse_args "$@"
  check_python
  install_system_packages
  install_python_packages
  if ((DEV)); then install_checkov; fi
  log "done"
}

main "$@"
