#!/usr/bin/env bash
# Bring the whole stack up from a fresh clone: API (gunicorn + Flask behind the nginx front door),
# Streamlit UI, Prometheus.
#
#   ./run_demo.sh           install if needed, train if models are missing, start, wait until
#                           healthy, print the URLs and return (services keep running)
#   ./run_demo.sh stop      stop the services
#   ./run_demo.sh status    show what runs and whether it answers
#   ./run_demo.sh build     (Docker mode) build the images as IMAGE_TAG, without starting them
#   ./run_demo.sh compose ARGS...   (Docker mode) docker-compose ARGS, on this stack's project and settings
#   ./run_demo.sh prometheus-config   write the native Prometheus config to RUN_DIR, print its path
#
# RUN_MODE=auto|native|docker (auto: Docker Compose when a Docker engine answers, else native
# processes running the very same services). Environment knobs (defaults):
#   API_PORT=5000 UI_PORT=8501 PROMETHEUS_PORT=9090 BIND_HOST=127.0.0.1 (0.0.0.0 to expose;
#   native and Docker modes alike: Compose publishes the ports on BIND_HOST)
#   API_UPSTREAM_PORT=API_PORT+10000: natively, nginx (the "frontdoor" service) listens on
#   BIND_HOST:API_PORT and gunicorn on 127.0.0.1:API_UPSTREAM_PORT only; the UI and Prometheus talk
#   to gunicorn there directly, every outside client goes through nginx.
#   FRONTDOOR_CLIENT_TIMEOUT=5 FRONTDOOR_WRITE_RATE=10 FRONTDOOR_WRITE_BURST=20
#   FRONTDOOR_CONNECTIONS_PER_CLIENT=256 (see docker/nginx/frontdoor.conf.template)
#   API_WORKERS=<cores> ADMIN_TOKEN=<unset: admin disabled> DATABASE_URL=sqlite:///data/mlops.db
#   RUN_SERVICES=all|api: "api" starts only gunicorn, on API_HOST:API_PORT itself (API_HOST=127.0.0.1;
#   no front door, UI or Prometheus): one replica of several behind a load balancer, all sharing a
#   PostgreSQL DATABASE_URL. Set PROXY_HOPS=1 when the balancer is the only way in. With an empty
#   MODELS_DIR the newest model set published in the store is fetched; training happens only when
#   the store holds none.
#   MODEL_V1_WEIGHT=50 MODEL_V2_WEIGHT=50 MODELS_DIR=app/models RUN_DIR=run
# Docker mode: IMAGE_TAG (the images' tag; unset: the tag deploy/pipeline.sh deployed last, started as it
#   was built, else "dev"), COMPOSE_PROJECT_NAME=mlops (prefixes the named volumes that keep the state
#   across stop and start), DOCKER_BUILD=1 (0: start the tagged images as they are, as deploy/pipeline.sh
#   does; 0 by default for a deployed tag). A .env file here (see .env.example) is read as docker-compose reads it:
#   a variable set in the environment wins over the file.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$ROOT"

load_dotenv() {
  # .env's values of the variables docker-compose.yml reads (the names .env.example lists), for those the
  # environment does not set: compose's rule. Read, never run; "export ", quotes and a CR are stripped as
  # compose strips them. Any other name in the file is left to compose.
  local line name value allowed
  [[ -f .env ]] || return 0
  allowed=" $(sed -nE 's/^#? ?([A-Z_][A-Z0-9_]*)=.*/\1/p' .env.example | tr '\n' ' ') "
  while IFS= read -r line || [[ -n "$line" ]]; do
    line="${line%$'\r'}"
    line="${line#export }"
    [[ "$line" =~ ^([A-Z_][A-Z0-9_]*)=(.*)$ ]] || continue
    name="${BASH_REMATCH[1]}" value="${BASH_REMATCH[2]}"
    [[ "$allowed" == *" $name "* && -z "${!name+set}" ]] || continue
    if [[ "$value" =~ ^\"(.*)\"$ || "$value" =~ ^\'(.*)\'$ ]]; then value="${BASH_REMATCH[1]}"; fi
    export "$name=$value"
  done <.env
}
load_dotenv

API_PORT="${API_PORT:-5000}"
UI_PORT="${UI_PORT:-8501}"
PROMETHEUS_PORT="${PROMETHEUS_PORT:-9090}"
BIND_HOST="${BIND_HOST:-127.0.0.1}"
API_UPSTREAM_PORT="${API_UPSTREAM_PORT:-}"
RUN_DIR="${RUN_DIR:-$ROOT/run}"
RUN_MODE="${RUN_MODE:-auto}"
START_TIMEOUT="${START_TIMEOUT:-90}"
COMPOSE_PROJECT_NAME="${COMPOSE_PROJECT_NAME:-mlops}"
if [[ -z "${IMAGE_TAG:-}" ]]; then
  # Where deploy/pipeline.sh deployed a tag, that tag runs (as built; never rebuilt from this working tree).
  IMAGE_TAG="$(cat "${DEPLOY_STATE_DIR:-$RUN_DIR/deploy}/current" 2>/dev/null || true)"
  [[ -z "$IMAGE_TAG" ]] || DOCKER_BUILD="${DOCKER_BUILD:-0}"
fi
IMAGE_TAG="${IMAGE_TAG:-dev}"
DOCKER_BUILD="${DOCKER_BUILD:-1}"
VENV="$ROOT/.venv"
RUN_SERVICES="${RUN_SERVICES:-all}"
API_HOST="${API_HOST:-127.0.0.1}"
SERVICES=(api frontdoor ui prometheus)
# The program each service's pid must be running: a pid file whose pid now belongs to
# anything else is stale (the pid was reused) and is neither reported nor signalled.
declare -A PROGRAMS=([api]=gunicorn [frontdoor]=nginx [ui]=streamlit [prometheus]=prometheus)

log() { printf '[run_demo] %s\n' "$*"; }
die() { printf '[run_demo] error: %s\n' "$*" >&2; exit 1; }

check_number() {
  # check_number NAME: the variable NAME holds decimal digits only (1 to 5 of them). Checked before
  # any use: bash arithmetic on an unchecked value runs the commands a crafted one contains.
  local name="$1" value="${!1}"
  [[ "$value" =~ ^[0-9]{1,5}$ ]] || die "$name must be a number (got '$value')"
}

check_port() {
  check_number "$1"
  local name="$1" value="${!1}"
  ((10#$value >= 1 && 10#$value <= 65535)) || die "$name must be a port, 1-65535 (got '$value')"
}

check_settings() {
  # Every value this script computes with or puts on a command line, checked up front.
  local var
  for var in API_PORT UI_PORT PROMETHEUS_PORT; do check_port "$var"; done
  check_number START_TIMEOUT
  case "$RUN_SERVICES" in
    all) ;;
    api) SERVICES=(api) ;;
    *) die "RUN_SERVICES must be all or api (got '$RUN_SERVICES')" ;;
  esac
  [[ "$BIND_HOST" =~ ^[A-Za-z0-9.:-]+$ ]] || die "BIND_HOST must be an IP address or a host name (got '$BIND_HOST')"
  [[ "$API_HOST" =~ ^[A-Za-z0-9.:-]+$ ]] || die "API_HOST must be an IP address or a host name (got '$API_HOST')"
  [[ "$IMAGE_TAG" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "IMAGE_TAG must be a Docker tag (got '$IMAGE_TAG')"
  [[ "$COMPOSE_PROJECT_NAME" =~ ^[a-z0-9][a-z0-9_-]*$ ]] \
    || die "COMPOSE_PROJECT_NAME must be lower-case letters, digits, - and _ (got '$COMPOSE_PROJECT_NAME')"
  [[ "$DOCKER_BUILD" == 0 || "$DOCKER_BUILD" == 1 ]] || die "DOCKER_BUILD must be 0 or 1 (got '$DOCKER_BUILD')"
}

check_upstream_port() {
  # Natively, with the front door: gunicorn's loopback port behind nginx (gunicorn alone listens on API_PORT
  # itself, and Compose has its own network: no upstream port then).
  api_only && return 0
  if [[ -z "$API_UPSTREAM_PORT" ]]; then
    ((10#$API_PORT + 10000 <= 65535)) \
      || die "API_PORT=$API_PORT: API_PORT+10000 is not a port; set API_UPSTREAM_PORT (gunicorn's loopback port)"
    API_UPSTREAM_PORT=$((10#$API_PORT + 10000))
  fi
  check_port API_UPSTREAM_PORT
  [[ "$API_UPSTREAM_PORT" != "$API_PORT" ]] || die "API_UPSTREAM_PORT must differ from API_PORT"
}

api_only() { [[ "${SERVICES[*]}" == api ]]; }

api_health_url() {
  if api_only; then echo "http://$API_HOST:$API_PORT/health"; else echo "http://127.0.0.1:$API_UPSTREAM_PORT/health"; fi
}

docker_available() {
  command -v docker >/dev/null || return 1
  timeout 5 docker info >/dev/null 2>&1 || return 1
  docker compose version >/dev/null 2>&1 || command -v docker-compose >/dev/null
}

resolve_mode() {
  if api_only; then
    # One replica is one gunicorn; Compose runs the whole stack.
    [[ "$RUN_MODE" != docker ]] || die "RUN_SERVICES=api runs natively (RUN_MODE=native), not with Docker Compose"
    RUN_MODE=native
    return 0
  fi
  case "$RUN_MODE" in
    native|docker) ;;
    auto) if docker_available; then RUN_MODE=docker; else RUN_MODE=native; fi ;;
    *) die "RUN_MODE must be auto, native or docker (got '$RUN_MODE')" ;;
  esac
}

local_host() {
  # The address to reach a service bound to BIND_HOST from this machine.
  if [[ "$BIND_HOST" == "0.0.0.0" ]]; then echo 127.0.0.1; else echo "$BIND_HOST"; fi
}

pid_of() { cat "$RUN_DIR/$1.pid" 2>/dev/null || true; }

runs_program() {
  # runs_program PID PROGRAM: the live process PID is one this script started as PROGRAM:
  # it runs in this repository and an argument of its command line is PROGRAM or ends in
  # /PROGRAM ("python .venv/bin/gunicorn ..."), or it is nginx's master, which rewrites its
  # command line to "nginx: master process ...". Linux: reads /proc/PID.
  local pid="$1" program="$2" arg
  [[ "$pid" =~ ^[0-9]+$ ]] && kill -0 "$pid" 2>/dev/null || return 1
  [[ "$(readlink "/proc/$pid/cwd" 2>/dev/null)" == "$(pwd -P)" ]] || return 1
  [[ -r "/proc/$pid/cmdline" ]] || return 1
  while IFS= read -r -d '' arg; do
    [[ "${arg##*/}" == "$program" ]] && return 0
    [[ "$program" == nginx && "$arg" == "nginx: master process "* ]] && return 0
  done <"/proc/$pid/cmdline" 2>/dev/null
  return 1
}

is_running() {
  # is_running NAME: NAME's pid file names a live process running NAME's program. A pid
  # file that does not (the process is gone, or its pid now belongs to something else)
  # is removed.
  local name="$1" pid
  pid="$(pid_of "$name")"
  [[ -n "$pid" ]] || return 1
  if runs_program "$pid" "${PROGRAMS[$name]}"; then
    return 0
  fi
  rm -f "$RUN_DIR/$name.pid"
  return 1
}

port_free() {
  # port_free PORT [HOST]: nothing listens on HOST (default BIND_HOST):PORT.
  "$VENV/bin/python" - "${2:-$BIND_HOST}" "$1" <<'PY'
import socket, sys
s = socket.socket()
s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
try:
    s.bind((sys.argv[1], int(sys.argv[2])))
except OSError:
    sys.exit(1)
PY
}

wait_for() {
  # wait_for NAME URL PID: poll URL until it answers 2xx, the process dies, or time runs out.
  local name="$1" url="$2" pid="$3" deadline=$((SECONDS + START_TIMEOUT))
  until curl -fs --max-time 2 -o /dev/null "$url"; do
    if [[ -n "$pid" ]] && ! kill -0 "$pid" 2>/dev/null; then
      die "$name exited during start-up; see $RUN_DIR/$name.log"
    fi
    ((SECONDS < deadline)) || die "$name did not become healthy at $url within ${START_TIMEOUT}s"
    sleep 0.5
  done
  log "$name is up"
}

NGINX=""

ensure_installed() {
  ./install.sh
  api_only && return 0  # gunicorn only: no nginx or Prometheus needed
  if ! command -v prometheus >/dev/null; then
    die "prometheus is not installed; see the messages above (or use RUN_MODE=docker)"
  fi
  # Debian installs nginx in /usr/sbin, which a non-root PATH may lack.
  NGINX="$(command -v nginx || true)"
  [[ -n "$NGINX" || ! -x /usr/sbin/nginx ]] || NGINX=/usr/sbin/nginx
  [[ -n "$NGINX" ]] || die "nginx is not installed; see the messages above (or use RUN_MODE=docker)"
}

ensure_models() {
  local models_dir="${MODELS_DIR:-$ROOT/app/models}"
  [[ ! -f "$models_dir/manifest.json" ]] || return 0
  # Another host may have published a set to the shared store: serve that one, as every host does.
  local code=0
  "$VENV/bin/python" -m app.cli.models pull --models-dir "$models_dir" || code=$?
  case "$code" in
    0) log "fetched the published model set into $models_dir" ;;
    3) log "no trained models in $models_dir and none published: training"
       "$VENV/bin/python" -m app.train_model --models-dir "$models_dir" ;;
    *) die "the published model set could not be fetched into $models_dir (see above)" ;;
  esac
}

spawn() {
  # spawn NAME CMD...: start in its own session, output to RUN_DIR/NAME.log, pid to RUN_DIR/NAME.pid.
  local name="$1" pid deadline=$((SECONDS + 5))
  shift
  setsid "$@" >"$RUN_DIR/$name.log" 2>&1 < /dev/null &
  pid=$!
  echo "$pid" >"$RUN_DIR/$name.pid"
  # Until the child has exec'd the program, its command line is still this script's and
  # is_running would take the pid file for a stale one: wait for the exec (or an early exit).
  until runs_program "$pid" "${PROGRAMS[$name]}" || ! kill -0 "$pid" 2>/dev/null || ((SECONDS >= deadline)); do
    sleep 0.05
  done
}

start_api() {
  export PROMETHEUS_MULTIPROC_DIR="$RUN_DIR/prometheus-multiproc"
  rm -rf "$PROMETHEUS_MULTIPROC_DIR"
  mkdir -p "$PROMETHEUS_MULTIPROC_DIR"
  # gunicorn on loopback only: the outside reaches it through the front door, which names the client in
  # X-Forwarded-For (PROXY_HOPS=1: the per-client limits read it). One replica of several
  # (RUN_SERVICES=api) listens on API_HOST:API_PORT for the load balancer, PROXY_HOPS as set (0 unless).
  local host=127.0.0.1 port="$API_UPSTREAM_PORT" hops=1
  if api_only; then host="$API_HOST" port="$API_PORT" hops="${PROXY_HOPS:-0}"; fi
  API_HOST="$host" API_PORT="$port" PROXY_HOPS="$hops" \
    spawn api "$VENV/bin/gunicorn" -c docker/gunicorn.conf.py 'app.flask_app:create_app()'
}

nginx_temp_dir() {
  # Where nginx buffers bodies: its workers must be able to reach it. As root they run as nobody,
  # who cannot traverse a private directory (a RUN_DIR under /root, say): then a fresh private
  # directory under /tmp is used (and removed at stop).
  local dir="$RUN_DIR/nginx/temp"
  mkdir -p "$dir"
  if [[ $(id -u) -eq 0 ]] && ! runuser -u nobody -- test -x "$dir" 2>/dev/null; then
    dir="$(mktemp -d /tmp/mlops-frontdoor.XXXXXXXX)"
    chmod 0711 "$dir"
    echo "$dir" >"$RUN_DIR/nginx/temp-elsewhere"
  fi
  echo "$dir"
}

frontdoor_config() {
  # Rendered by Python from the one template; every value is validated there (exit 2 if refused).
  local temp
  mkdir -p "$RUN_DIR/nginx"
  temp="$(nginx_temp_dir)"
  local args=(nginx --listen-host "$BIND_HOST" --listen-port "$API_PORT" --upstream-port "$API_UPSTREAM_PORT"
    --run-dir "$RUN_DIR" --temp-dir "$temp" --output "$RUN_DIR/nginx/frontdoor.conf")
  [[ -z "${FRONTDOOR_CLIENT_TIMEOUT:-}" ]] || args+=(--client-timeout "$FRONTDOOR_CLIENT_TIMEOUT")
  [[ -z "${FRONTDOOR_WRITE_RATE:-}" ]] || args+=(--write-rate "$FRONTDOOR_WRITE_RATE")
  [[ -z "${FRONTDOOR_WRITE_BURST:-}" ]] || args+=(--write-burst "$FRONTDOOR_WRITE_BURST")
  [[ -z "${FRONTDOOR_CONNECTIONS_PER_CLIENT:-}" ]] \
    || args+=(--connections-per-client "$FRONTDOOR_CONNECTIONS_PER_CLIENT")
  "$VENV/bin/python" -m app.cli.configs "${args[@]}" || die "cannot write the front door's config (see above)"
}

start_frontdoor() {
  frontdoor_config
  spawn frontdoor "$NGINX" -e stderr -c "$RUN_DIR/nginx/frontdoor.conf"
}

start_ui() {
  # The UI is a trusted local client: it calls gunicorn directly (as in Compose, where it calls
  # flask-api), so its users do not share one client address in the front door's rate limits.
  API_URL="${API_URL:-http://127.0.0.1:$API_UPSTREAM_PORT}" \
    spawn ui "$VENV/bin/streamlit" run app/streamlit_app.py \
      --server.port "$UI_PORT" --server.address "$BIND_HOST" \
      --server.headless true --browser.gatherUsageStats false --client.toolbarMode viewer
}

prometheus_config() {
  # The compose config with its targets pointed at the native ports (rendered by Python from
  # validated values, nothing interpolated by the shell); rules copied beside it. Prometheus
  # scrapes gunicorn itself: any worker's /metrics sums every worker's counters.
  "$VENV/bin/python" -m app.cli.configs prometheus --api-target "127.0.0.1:$API_UPSTREAM_PORT" \
    --prometheus-target "$(local_host):$PROMETHEUS_PORT" --output "$RUN_DIR/prometheus.yml" \
    || die "cannot write the Prometheus config (see above)"
  cp docker/alert_rules.yml "$RUN_DIR/alert_rules.yml"
}

start_prometheus() {
  prometheus_config
  spawn prometheus prometheus --config.file="$RUN_DIR/prometheus.yml" \
    --storage.tsdb.path="$RUN_DIR/prometheus-data" \
    --web.listen-address="$BIND_HOST:$PROMETHEUS_PORT"
}

print_urls() {
  local host
  host="$(local_host)"
  cat <<EOF

  API:        http://$host:$API_PORT        (try: curl -X POST http://$host:$API_PORT/predict -H 'Content-Type: application/json' -d '{"features": [5.1, 3.5, 1.4, 0.2]}')
  UI:         http://$host:$UI_PORT
  Prometheus: http://$host:$PROMETHEUS_PORT
  Logs and pids: $RUN_DIR    Stop: ./run_demo.sh stop    Status: ./run_demo.sh status
EOF
  if [[ "$RUN_MODE" == native ]]; then
    echo "  (the API port is nginx, the front door; gunicorn itself listens on 127.0.0.1:$API_UPSTREAM_PORT only)"
  fi
  if [[ "$BIND_HOST" == "127.0.0.1" ]]; then
    echo "  (bound to 127.0.0.1; BIND_HOST=0.0.0.0 ./run_demo.sh exposes the ports, ./get_ip.sh shows the public URLs)"
  fi
}

native_start() {
  mkdir -p "$RUN_DIR"
  ensure_installed
  ensure_models
  local name port_var
  for name in "${SERVICES[@]}"; do
    if is_running "$name"; then
      die "$name is already running (pid $(pid_of "$name")); ./run_demo.sh stop first"
    fi
  done
  if api_only; then
    port_free "$API_PORT" "$API_HOST" || die "port $API_PORT (API_PORT) on $API_HOST is in use; set API_PORT to another port"
  else
    for port_var in API_PORT UI_PORT PROMETHEUS_PORT; do
      port_free "${!port_var}" || die "port ${!port_var} ($port_var) on $BIND_HOST is in use; set $port_var to another port"
    done
    port_free "$API_UPSTREAM_PORT" 127.0.0.1 \
      || die "port $API_UPSTREAM_PORT (API_UPSTREAM_PORT) on 127.0.0.1 is in use; set API_UPSTREAM_PORT to another port"
  fi
  local host
  host="$(local_host)"
  # The mode goes first, so "./run_demo.sh stop" finds these processes even while they
  # start; if anything below fails, what was already started is stopped again.
  echo native >"$RUN_DIR/mode"
  echo "$RUN_SERVICES" >"$RUN_DIR/services"
  trap abort_native_start EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM HUP
  if api_only; then
    log "starting the API (gunicorn) alone on $API_HOST:$API_PORT"
    start_api
    wait_for api "$(api_health_url)" "$(pid_of api)"
    trap - EXIT INT TERM HUP
    log "API: http://$API_HOST:$API_PORT   Logs and pids: $RUN_DIR   Stop: RUN_DIR=$RUN_DIR ./run_demo.sh stop"
    return 0
  fi
  log "starting the API (gunicorn) on 127.0.0.1:$API_UPSTREAM_PORT"
  start_api
  wait_for api "$(api_health_url)" "$(pid_of api)"
  log "starting the front door (nginx) on $BIND_HOST:$API_PORT"
  start_frontdoor
  wait_for frontdoor "http://$host:$API_PORT/health" "$(pid_of frontdoor)"
  log "starting the UI on $BIND_HOST:$UI_PORT"
  start_ui
  log "starting Prometheus on $BIND_HOST:$PROMETHEUS_PORT"
  start_prometheus
  wait_for ui "http://$host:$UI_PORT/_stcore/health" "$(pid_of ui)"
  wait_for prometheus "http://$host:$PROMETHEUS_PORT/-/ready" "$(pid_of prometheus)"
  trap - EXIT INT TERM HUP
  print_urls
}

abort_native_start() {
  # EXIT trap of native_start: a start that fails part-way leaves nothing running.
  local code=$?
  trap - EXIT INT TERM HUP
  ((code != 0)) || code=1
  printf '[run_demo] start failed: stopping the services started so far\n' >&2
  native_stop >&2 || true
  exit "$code"
}

stop_one() {
  local name="$1" pid
  pid="$(pid_of "$name")"
  if is_running "$name"; then
    kill -TERM -- "-$pid" 2>/dev/null || kill -TERM "$pid" 2>/dev/null || true
    local deadline=$((SECONDS + 25))
    while kill -0 "$pid" 2>/dev/null && ((SECONDS < deadline)); do sleep 0.2; done
    if kill -0 "$pid" 2>/dev/null; then
      kill -KILL -- "-$pid" 2>/dev/null || kill -KILL "$pid" 2>/dev/null || true
    fi
    log "stopped $name"
  fi
  rm -f "$RUN_DIR/$name.pid"
}

native_stop() {
  local name elsewhere
  for ((i = ${#SERVICES[@]} - 1; i >= 0; i--)); do
    name="${SERVICES[i]}"
    stop_one "$name"
  done
  elsewhere="$(cat "$RUN_DIR/nginx/temp-elsewhere" 2>/dev/null || true)"
  if [[ "$elsewhere" == /tmp/mlops-frontdoor.* && -d "$elsewhere" ]]; then
    rm -rf -- "$elsewhere"
  fi
  rm -f "$RUN_DIR/mode" "$RUN_DIR/services" "$RUN_DIR/nginx/temp-elsewhere"
}

native_status() {
  local host name url code=0
  host="$(local_host)"
  declare -A urls=(
    [api]="$(api_health_url)"
    [frontdoor]="http://$host:$API_PORT/health"
    [ui]="http://$host:$UI_PORT/_stcore/health"
    [prometheus]="http://$host:$PROMETHEUS_PORT/-/ready"
  )
  for name in "${SERVICES[@]}"; do
    url="${urls[$name]}"
    if is_running "$name"; then
      if curl -fsS --max-time 2 -o /dev/null "$url"; then
        printf '  %-11s running (pid %s), healthy at %s\n' "$name" "$(pid_of "$name")" "$url"
      else
        printf '  %-11s running (pid %s), NOT answering at %s\n' "$name" "$(pid_of "$name")" "$url"
        code=1
      fi
    else
      printf '  %-11s stopped\n' "$name"
      code=1
    fi
  done
  return "$code"
}

compose() {
  # Compose in this folder, as one project whatever the folder is called: the named volumes keep their names.
  local -a tool=(docker-compose)
  if docker compose version >/dev/null 2>&1; then tool=(docker compose); fi
  COMPOSE_PROJECT_NAME="$COMPOSE_PROJECT_NAME" IMAGE_TAG="$IMAGE_TAG" BIND_HOST="$BIND_HOST" API_PORT="$API_PORT" \
    UI_PORT="$UI_PORT" PROMETHEUS_PORT="$PROMETHEUS_PORT" "${tool[@]}" -f "$ROOT/docker-compose.yml" "$@"
}

container_states() {
  # One line per service container of the project (not one-off "compose run" containers such as a deploy's
  # surge API): "NAME STATE", STATE being Docker's health (healthy, starting, unhealthy) or, while the
  # container is not running, its status (restarting, exited...).
  docker ps --all --filter "label=com.docker.compose.project=$COMPOSE_PROJECT_NAME" \
    --filter "label=com.docker.compose.oneoff=False" --format '{{.ID}}' \
    | xargs -r docker inspect --format \
      '{{.Name}} {{if and .State.Running .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' \
    | sed 's|^/||'
}

wait_healthy() {
  # wait_healthy SECONDS: every service of the compose file has a container and Docker calls each healthy.
  # Fails at once when one is unhealthy or keeps exiting (it will not get better by waiting).
  local deadline=$((SECONDS + $1)) states expected
  expected="$(compose config --services | wc -l)"
  while :; do
    states="$(container_states)"
    if [[ -n "$states" ]] && (($(grep -c ' healthy$' <<<"$states") == expected)); then
      log "every container is healthy"
      return 0
    fi
    if grep -Eq ' (unhealthy|restarting|exited|dead)$' <<<"$states" || ((SECONDS >= deadline)); then
      printf '[run_demo] containers not healthy (waited up to %ss):\n%s\n' "$1" "$states" >&2
      return 1
    fi
    sleep 1
  done
}

docker_build() {
  docker_available || die "no Docker engine answers (docker info); start one, or use RUN_MODE=native"
  log "building the images as tag $IMAGE_TAG (cached layers are reused)"
  compose build
}

docker_start() {
  docker_available || die "no Docker engine answers (docker info); start one, or use RUN_MODE=native"
  mkdir -p "$RUN_DIR"
  if [[ "$DOCKER_BUILD" == 1 ]]; then docker_build; fi
  log "starting with Docker Compose (tag $IMAGE_TAG, project $COMPOSE_PROJECT_NAME)"
  echo docker >"$RUN_DIR/mode"
  compose up -d --no-build --remove-orphans
  wait_healthy "$START_TIMEOUT" || { compose ps >&2; compose logs --tail=50 >&2 || true; exit 1; }
  local host
  host="$(local_host)"
  wait_for api "http://$host:$API_PORT/health" ""
  wait_for ui "http://$host:$UI_PORT/_stcore/health" ""
  wait_for prometheus "http://$host:$PROMETHEUS_PORT/-/ready" ""
  print_urls
}

docker_stop() {
  # The containers go; the named volumes (weights, prediction log, feedback, Prometheus data) stay.
  compose down --remove-orphans
  rm -f "$RUN_DIR/mode"
}

docker_status() {
  local states
  states="$(container_states)"
  if [[ -z "$states" ]]; then
    echo "  no container of project $COMPOSE_PROJECT_NAME runs"
    return 1
  fi
  printf '  %s\n' "${states//$'\n'/$'\n'  }"
  ! grep -qv ' healthy$' <<<"$states"
}

main() {
  local command="${1:-start}"
  if [[ "$command" != start && "$command" != prometheus-config && -f "$RUN_DIR/services" ]]; then
    RUN_SERVICES="$(cat "$RUN_DIR/services")"  # stop and status act on what start started
  fi
  check_settings
  if [[ "$command" == prometheus-config ]]; then
    api_only && die "prometheus-config renders the whole stack's Prometheus; for several hosts use: mlops-configs prometheus --api-targets-file"
    # The native Prometheus config, for tests and for running Prometheus by hand.
    check_upstream_port
    mkdir -p "$RUN_DIR"
    prometheus_config
    echo "$RUN_DIR/prometheus.yml"
    return 0
  fi
  if [[ -f "$RUN_DIR/mode" && "$RUN_MODE" == "auto" ]]; then
    RUN_MODE="$(cat "$RUN_DIR/mode")"
  fi
  resolve_mode
  [[ "$RUN_MODE" != native ]] || check_upstream_port
  case "$command:$RUN_MODE" in
    start:native) native_start ;;
    start:docker) docker_start ;;
    build:docker) docker_build ;;
    compose:docker) shift; compose "$@" ;;
    stop:native) native_stop ;;
    stop:docker) docker_stop ;;
    status:native) native_status ;;
    status:docker) docker_status ;;
    build:native|compose:native) die "$command is for the containers: RUN_MODE=docker ./run_demo.sh $command" ;;
    *) die "usage: ./run_demo.sh [start|stop|status|build|compose ARGS...|prometheus-config]" ;;
  esac
}

main "$@"
