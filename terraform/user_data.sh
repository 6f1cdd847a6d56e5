#!/usr/bin/env bash
# EC2 user data for the MLOps demo, rendered by Terraform's templatefile()
# (main.tf): only the two assignments under "Rendered by Terraform" are
# template expressions; every shell variable below is written as $NAME
# without braces so Terraform leaves it alone. Runs once, as root, on first
# boot. Log: /var/log/mlops-bootstrap.log.
#
# Installs docker and git, the docker compose v2 plugin (also as
# docker-compose) and buildx, clones the repository and starts the stack with
# RUN_MODE=docker BIND_HOST=0.0.0.0 ./run_demo.sh: Compose publishes the ports
# on 127.0.0.1 unless told otherwise, and here they must be reachable from
# outside; the security group (main.tf) admits only allowed_cidr. The
# containers restart with docker on reboot (restart: unless-stopped).
set -euo pipefail

# Rendered by Terraform (values validated in variables.tf).
# shellcheck disable=SC2016 # expanded by templatefile(), not by the shell
REPO_URL='${repo_url}'
# shellcheck disable=SC2016
REPO_BRANCH='${repo_branch}'

readonly APP_DIR=/opt/mlops
readonly LOG_FILE=/var/log/mlops-bootstrap.log
readonly COMPOSE_VERSION=v2.29.7
readonly BUILDX_VERSION=v0.17.1
readonly PLUGIN_DIR=/usr/local/lib/docker/cli-plugins

log() {
    printf '[mlops-bootstrap %s] %s\n' "$(date -u +%H:%M:%S)" "$*"
}

download() {
    curl -fsSL --retry 3 --connect-timeout 10 --max-time 300 -o "$2" "$1"
}

# verify_sha256 FILE EXPECTED_HASH
verify_sha256() {
    local actual
    actual=$(sha256sum "$1" | awk '{print $1}')
    if [[ -z $2 || $actual != "$2" ]]; then
        log "checksum mismatch for $1 (expected '$2', got '$actual')"
        return 1
    fi
}

install_packages() {
    log "installing docker and git"
    dnf install -y docker git
    systemctl enable --now docker
    usermod -aG docker ec2-user
}

install_compose() {
    local arch base tmp expected
    arch=$(uname -m)
    base=https://github.com/docker/compose/releases/download/$COMPOSE_VERSION
    tmp=$(mktemp -d)
    log "installing docker compose $COMPOSE_VERSION ($arch)"
    download "$base/docker-compose-linux-$arch" "$tmp/docker-compose"
    download "$base/docker-compose-linux-$arch.sha256" "$tmp/docker-compose.sha256"
    expected=$(awk '{print $1}' "$tmp/docker-compose.sha256")
    verify_sha256 "$tmp/docker-compose" "$expected"
    install -D -m 0755 "$tmp/docker-compose" "$PLUGIN_DIR/docker-compose"
    ln -sf "$PLUGIN_DIR/docker-compose" /usr/local/bin/docker-compose
    rm -rf "$tmp"
}

install_buildx() {
    local arch name base tmp expected
    case "$(uname -m)" in
    x86_64) arch=amd64 ;;
    aarch64) arch=arm64 ;;
    *)
        log "no buildx build for $(uname -m), skipping"
        return 0
        ;;
    esac
    name=buildx-$BUILDX_VERSION.linux-$arch
    base=https://github.com/docker/buildx/releases/download/$BUILDX_VERSION
    tmp=$(mktemp -d)
    log "installing docker buildx $BUILDX_VERSION"
    download "$base/$name" "$tmp/$name"
    download "$base/checksums.txt" "$tmp/checksums.txt"
    expected=$(awk -v n="*$name" -v m="$name" '$2 == n || $2 == m {print $1}' "$tmp/checksums.txt")
    verify_sha256 "$tmp/$name" "$expected"
    install -D -m 0755 "$tmp/$name" "$PLUGIN_DIR/docker-buildx"
    rm -rf "$tmp"
}

clone_repo() {
    if [[ -d $APP_DIR/.git ]]; then
        log "updating $APP_DIR to $REPO_BRANCH"
        git -C "$APP_DIR" fetch --depth 1 origin "$REPO_BRANCH"
        git -C "$APP_DIR" reset --hard FETCH_HEAD
    else
        log "cloning $REPO_URL ($REPO_BRANCH) into $APP_DIR"
        git clone --depth 1 --branch "$REPO_BRANCH" "$REPO_URL" "$APP_DIR"
    fi
    chown -R ec2-user:ec2-user "$APP_DIR"
}

start_stack() {
    log "starting the stack: RUN_MODE=docker BIND_HOST=0.0.0.0 ./run_demo.sh"
    cd "$APP_DIR"
    RUN_MODE=docker BIND_HOST=0.0.0.0 bash ./run_demo.sh
}

main() {
    exec > >(tee -a "$LOG_FILE") 2>&1
    # cloud-init runs user data with a bare environment.
    export HOME=/root
    export PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
    install_packages
    install_compose
    install_buildx
    clone_repo
    start_stack
    log "done; services on ports 5000 (API), 8501 (UI), 9090 (Prometheus)"
}

main "$@"
