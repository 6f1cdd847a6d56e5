#!/usr/bin/env bash
# Install what the stack needs: a Python virtualenv with the pinned requirements, and Prometheus.
#
#   ./install.sh          runtime: .venv + requirements.txt, Prometheus (Debian/Ubuntu: apt)
#   ./install.sh --dev    also the test tools: requirements-dev.txt, Chromium, shellcheck,
#                         docker-compose (for static checks), wrk (benchmarks)
#
# Idempotent: a second run with unchanged requirements installs nothing.
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
      -h|--help) sed -n '2,9p' "$0"; exit 0 ;;
      *) die "unknown option: $arg" ;;
    esac
  done
}

check_python() {
  command -v "$PYTHON" >/dev/null || die "$PYTHON not found; install Python 3.11 or newer"
  "$PYTHON" -c 'import sys; sys.exit(sys.version_info < (3, 11))' \
    || die "Python 3.11 or newer is required ($("$PYTHON" --version 2>&1) found)"
}

as_root() {
  if [[ $(id -u) -eq 0 ]]; then
    "$@"
  elif command -v sudo >/dev/null && sudo -n true 2>/dev/null; then
    sudo "$@"
  else
    return 1
  fi
}

apt_install() {
  local missing=()
  local pkg
  for pkg in "$@"; do
    dpkg -s "$pkg" >/dev/null 2>&1 || missing+=("$pkg")
  done
  ((${#missing[@]})) || return 0
  log "installing system packages: ${missing[*]}"
  as_root env DEBIAN_FRONTEND=noninteractive apt-get update -qq \
    && as_root env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
}

install_system_packages() {
  local wanted=(prometheus)
  if ((DEV)); then
    wanted+=(chromium fonts-noto-color-emoji shellcheck docker-compose wrk)
  fi
  if command -v apt-get >/dev/null && command -v dpkg >/dev/null; then
    apt_install "${wanted[@]}" || {
      log "could not install ${wanted[*]} (need root or passwordless sudo)."
      log "install them yourself: sudo apt-get install ${wanted[*]}"
      return 0
    }
  elif ! command -v prometheus >/dev/null; then
    log "Prometheus is not installed and this is not a Debian/Ubuntu system."
    log "Either run the stack in Docker (RUN_MODE=docker ./run_demo.sh), or install Prometheus"
    log "from your distribution or the release tarball so 'prometheus' and 'promtool' are on PATH."
  fi
}

install_python_packages() {
  local requirements=requirements.txt kind=runtime
  if ((DEV)); then requirements="requirements-dev.txt"; kind=dev; fi
  if [[ ! -x "$VENV/bin/python" ]]; then
    log "creating virtualenv $VENV"
    "$PYTHON" -m venv "$VENV"
  fi
  local runtime_stamp dev_stamp stamp
  runtime_stamp="$VENV/.installed-runtime-$(sha256sum requirements.txt | cut -c1-16)"
  dev_stamp="$VENV/.installed-dev-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)"
  stamp="$runtime_stamp"
  if ((DEV)); then stamp="$dev_stamp"; fi
  if [[ -f "$stamp" ]]; then
    log "Python packages already installed ($requirements)"
    return 0
  fi
  log "installing Python packages from $requirements"
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check --upgrade pip
  "$VENV/bin/python" -m pip install --quiet --disable-pip-version-check -r "$requirements"
  rm -f "$VENV"/.installed-*
  touch "$runtime_stamp"
  if [[ "$kind" == dev ]]; then touch "$dev_stamp"; fi
}

main() {
  parse_args "$@"
  check_python
  install_system_packages
  install_python_packages
  log "done"
}

main "$@"
