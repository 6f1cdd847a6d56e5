#!/usr/bin/env bash
# The delivery pipeline's steps, one command each. The Jenkinsfile calls these and nothing else, so every
# step runs, and is tested, without Jenkins.
#
#   deploy/pipeline.sh tag        print the tag this build's images get: <BUILD_NUMBER or "local">-<git sha>
#   deploy/pipeline.sh build      build both images (API, UI) as IMAGE_TAG (default: the tag above)
#   deploy/pipeline.sh test       install, then the test suite without the browser and container tests
#                                 (those start a stack of their own, which the host's deployed one would meet)
#   deploy/pipeline.sh deploy     start IMAGE_TAG in place of the tag that runs (recorded as the one to roll
#                                 back to): its API first runs beside the running one and takes traffic with
#                                 it; once healthy, the stack is switched and waited on until every container
#                                 is healthy. An API that is not healthy within DEPLOY_TIMEOUT is removed
#                                 before anything that serves is touched; a stack that is not healthy after
#                                 the switch is rolled back. Either way the command fails
#   deploy/pipeline.sh smoke      ./test_everything.sh against the deployed stack
#   deploy/pipeline.sh rollback   start the recorded previous tag again and wait until it is healthy
#
# State: DEPLOY_STATE_DIR (default RUN_DIR/deploy, run/deploy) holds "current" and "previous" (tags) and history.log (a
# line per deploy and rollback, with the time). The stack's settings are ./run_demo.sh's (API_PORT,
# UI_PORT, PROMETHEUS_PORT, BIND_HOST, ADMIN_TOKEN, MODEL_V1_WEIGHT, MODEL_V2_WEIGHT, COMPOSE_PROJECT_NAME,
# .env); DEPLOY_TIMEOUT=180 seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STATE_DIR="${DEPLOY_STATE_DIR:-${RUN_DIR:-$ROOT/run}/deploy}"  # where ./run_demo.sh finds the deployed tag too
DEPLOY_TIMEOUT="${DEPLOY_TIMEOUT:-180}"
API_CONTAINER=mlops-flask-api
SURGE_CONTAINER=mlops-flask-api-surge
# How long the surge API keeps serving after the switch: the front door re-resolves flask-api every 5 s
# ("resolver ... valid=5s") and, after an error from an address, skips it for 10 s (nginx's default
# fail_timeout). A new container may get the old one's address, so the surge stays until both have passed
# and the new API is surely in the front door's list and not skipped.
DRAIN_SECONDS=15
IMAGES=(mlops-flask-api mlops-streamlit-ui)

log() { printf '[pipeline] %s\n' "$*"; }
die() { printf '[pipeline] error: %s\n' "$*" >&2; exit 1; }

check_tag() {
  [[ "$1" =~ ^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$ ]] || die "not a Docker tag: '$1'"
}

check_settings() {
  [[ "$DEPLOY_TIMEOUT" =~ ^[0-9]{1,5}$ ]] || die "DEPLOY_TIMEOUT must be a number of seconds (got '$DEPLOY_TIMEOUT')"
  local weight
  for weight in MODEL_V1_WEIGHT MODEL_V2_WEIGHT; do
    [[ -z "${!weight:-}" || "${!weight}" =~ ^[0-9]{1,7}$ ]] || die "$weight must be a whole number (got '${!weight}')"
  done
}

build_tag() {
  # <BUILD_NUMBER>-<12 characters of the commit>: which pipeline run built it, from which source.
  local sha
  sha="$(git -C "$ROOT" rev-parse --short=12 HEAD 2>/dev/null)" || die "not a git checkout: set IMAGE_TAG"
  echo "${BUILD_NUMBER:-local}-$sha"
}

image_tag() {
  local tag="${IMAGE_TAG:-}"
  [[ -n "$tag" ]] || tag="$(build_tag)"
  check_tag "$tag"
  echo "$tag"
}

state() { cat "$STATE_DIR/$1" 2>/dev/null || true; }

record() {
  # record NAME VALUE: written whole (a rename), never half.
  mkdir -p "$STATE_DIR"
  printf '%s\n' "$2" >"$STATE_DIR/$1.tmp"
  mv "$STATE_DIR/$1.tmp" "$STATE_DIR/$1"
}

history() {
  mkdir -p "$STATE_DIR"
  printf '%s %s\n' "$(date -u +%Y-%m-%dT%H:%M:%SZ)" "$*" >>"$STATE_DIR/history.log"
}

running_tag() {
  # The tag of the API container that runs now, if one does.
  local image
  image="$(docker inspect --format '{{.Config.Image}}' "$API_CONTAINER" 2>/dev/null)" || return 0
  [[ "$image" == mlops-flask-api:* ]] && echo "${image#mlops-flask-api:}"
  return 0
}

require_images() {
  local image
  docker info >/dev/null 2>&1 || die "no Docker engine answers (docker info): start one, or set DOCKER_HOST"
  for image in "${IMAGES[@]}"; do
    docker image inspect "$image:$1" >/dev/null 2>&1 || die "image $image:$1 does not exist: deploy/pipeline.sh build first"
  done
}

compose() { RUN_MODE=docker "$ROOT/run_demo.sh" compose "$@"; }

health() {
  # Docker's health of a running container, else its status (exited...); as run_demo.sh reads its containers.
  docker inspect --format \
    '{{if and .State.Running .State.Health}}{{.State.Health.Status}}{{else}}{{.State.Status}}{{end}}' "$1" 2>/dev/null
}

wait_container_healthy() {
  # wait_container_healthy NAME SECONDS: Docker calls NAME's health "healthy"; fails once it is unhealthy,
  # has exited, or time runs out.
  local deadline=$((SECONDS + $2)) state
  while :; do
    state="$(health "$1")" || state=gone
    case "$state" in
      healthy) return 0 ;;
      unhealthy|exited|dead|gone) log "$1 is $state"; return 1 ;;
    esac
    ((SECONDS < deadline)) || { log "$1 is still $state after $2s"; return 1; }
    sleep 1
  done
}

remove_surge() {
  # Stopped gracefully (gunicorn finishes what it has in hand; the front door sends the rest elsewhere).
  docker stop --time 30 "$SURGE_CONTAINER" >/dev/null 2>&1 || true
  docker rm --force "$SURGE_CONTAINER" >/dev/null 2>&1 || true
}

start() {
  # start TAG: TAG's API first runs beside the running one, under the same name on the compose network
  # (the front door resolves flask-api every few seconds and balances over both); once it is healthy, the
  # stack converges on TAG's images (containers whose image changed are recreated, the front door keeps
  # serving from the surge API meanwhile) and the surge API goes. An API that never gets healthy is
  # removed before anything that serves is touched.
  local tag="$1"
  remove_surge
  # An aborted deploy (a Jenkins timeout or abort) leaves no surge API serving an unchecked tag.
  trap remove_surge EXIT
  trap 'exit 143' TERM HUP
  trap 'exit 130' INT
  if [[ -n "$(running_tag)" ]]; then
    log "starting $tag's API beside the running one ($SURGE_CONTAINER)"
    IMAGE_TAG="$tag" compose run --detach --no-deps --use-aliases --name "$SURGE_CONTAINER" flask-api >/dev/null \
      || { remove_surge; return 2; }
    if ! wait_container_healthy "$SURGE_CONTAINER" "$DEPLOY_TIMEOUT"; then
      docker logs --tail 20 "$SURGE_CONTAINER" >&2 || true
      remove_surge
      return 2
    fi
  fi
  local code=0
  IMAGE_TAG="$tag" RUN_MODE=docker DOCKER_BUILD=0 START_TIMEOUT="$DEPLOY_TIMEOUT" "$ROOT/run_demo.sh" start || code=$?
  if [[ -n "$(health "$SURGE_CONTAINER")" ]]; then
    log "draining: the surge API serves beside the new one for ${DRAIN_SECONDS}s more"
    sleep "$DRAIN_SECONDS"
  fi
  remove_surge
  trap - EXIT TERM HUP INT
  return "$code"
}

cmd_build() {
  local tag
  tag="$(image_tag)"
  log "building $(printf '%s ' "${IMAGES[@]}")as $tag"
  IMAGE_TAG="$tag" RUN_MODE=docker "$ROOT/run_demo.sh" build
}

cmd_test() {
  ./install.sh --dev
  .venv/bin/python -m pytest -m "not browser and not containers" "$@"
}

cmd_deploy() {
  local tag previous kept_current kept_previous code=0
  tag="$(image_tag)"
  require_images "$tag"
  kept_current="$(state current)" kept_previous="$(state previous)"
  previous="$(running_tag)"
  [[ -n "$previous" ]] || previous="$kept_current"
  if [[ "$previous" == "$tag" ]]; then
    previous="$kept_previous"  # a second deploy of the same tag keeps the tag to roll back to
  fi
  record previous "$previous"
  record current "$tag"
  history "deploy $tag (previous: ${previous:-none})"
  log "deploying $tag (rolls back to ${previous:-nothing} if it fails)"
  start "$tag" || code=$?
  if ((code == 0)); then
    history "deployed $tag: healthy"
    log "deployed $tag"
    return 0
  fi
  if ((code == 2)); then
    # Its API never got healthy beside the running one (or could not be started): nothing that serves was replaced.
    record current "$kept_current"
    record previous "$kept_previous"
    history "deploy $tag failed: its API was not healthy within ${DEPLOY_TIMEOUT}s; ${previous:-nothing} kept serving"
    die "deploy of $tag failed: its API did not become healthy; ${previous:-the running stack} kept serving"
  fi
  history "deploy $tag failed: not healthy within ${DEPLOY_TIMEOUT}s"
  log "$tag did not become healthy within ${DEPLOY_TIMEOUT}s"
  if [[ -n "$previous" ]]; then
    cmd_rollback
  fi
  die "deploy of $tag failed${previous:+; rolled back to $previous}"
}

cmd_smoke() {
  "$ROOT/test_everything.sh"
}

cmd_rollback() {
  local previous failed
  previous="$(state previous)"
  failed="$(state current)"
  [[ -n "$previous" ]] || die "no previous tag recorded in $STATE_DIR: nothing to roll back to"
  require_images "$previous"
  log "rolling back from ${failed:-?} to $previous"
  history "rollback from ${failed:-?} to $previous"
  start "$previous" || die "the previous tag $previous did not become healthy either"
  record current "$previous"
  record previous ""  # rolling back twice must not bring the failed tag back
  history "rolled back to $previous: healthy"
  log "rolled back to $previous"
}

main() {
  local command="${1:-}"
  [[ $# -eq 0 ]] || shift
  check_settings
  case "$command" in
    tag) image_tag ;;
    build) cmd_build ;;
    test) cmd_test "$@" ;;
    deploy) cmd_deploy ;;
    smoke) cmd_smoke ;;
    rollback) cmd_rollback ;;
    *) die "usage: deploy/pipeline.sh tag|build|test|deploy|smoke|rollback" ;;
  esac
}

main "$@"
