#!/usr/bin/env bash
# The delivery pipeline's steps, one command each. The Jenkinsfile calls these and nothing else, so every
# step runs, and is tested, without Jenkins.
#
#   deploy/pipeline.sh tag        print the tag this build's images get: <BUILD_NUMBER or "local">-<git sha>
#   deploy/pipeline.sh build      build both images (API, UI) as IMAGE_TAG (default: the tag above)
#   deploy/pipeline.sh test       install, then the test suite without the browser and container tests
#                                 (those start a stack of their own, which the host's deployed one would meet)
#   deploy/pipeline.sh deploy     start IMAGE_TAG in place of the tag that runs (recorded as the one to roll
#                                 back to) and wait until every container is healthy; if they do not become
#                                 healthy within DEPLOY_TIMEOUT, roll back and fail
#   deploy/pipeline.sh smoke      ./test_everything.sh against the deployed stack
#   deploy/pipeline.sh rollback   start the recorded previous tag again and wait until it is healthy
#
# State: DEPLOY_STATE_DIR (default run/deploy) holds "current" and "previous" (tags) and history.log (a
# line per deploy and rollback, with the time). The stack's settings are ./run_demo.sh's (API_PORT,
# UI_PORT, PROMETHEUS_PORT, BIND_HOST, ADMIN_TOKEN, MODEL_V1_WEIGHT, MODEL_V2_WEIGHT, COMPOSE_PROJECT_NAME,
# .env); DEPLOY_TIMEOUT=180 seconds.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"

STATE_DIR="${DEPLOY_STATE_DIR:-$ROOT/run/deploy}"
DEPLOY_TIMEOUT="${DEPLOY_TIMEOUT:-180}"
API_CONTAINER=mlops-flask-api
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
    [[ -z "${!weight:-}" || "${!weight}" =~ ^[0-9]{1,3}$ ]] || die "$weight must be a whole number (got '${!weight}')"
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
  for image in "${IMAGES[@]}"; do
    docker image inspect "$image:$1" >/dev/null 2>&1 || die "image $image:$1 does not exist: deploy/pipeline.sh build first"
  done
}

start() {
  # start TAG: converge the stack on TAG's images (containers whose image changed are recreated) and
  # wait until every container is healthy.
  IMAGE_TAG="$1" RUN_MODE=docker DOCKER_BUILD=0 START_TIMEOUT="$DEPLOY_TIMEOUT" "$ROOT/run_demo.sh" start
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
  local tag previous
  tag="$(image_tag)"
  require_images "$tag"
  previous="$(running_tag)"
  [[ -n "$previous" ]] || previous="$(state current)"
  if [[ "$previous" == "$tag" ]]; then
    previous="$(state previous)"  # a second deploy of the same tag keeps the tag to roll back to
  fi
  record previous "$previous"
  record current "$tag"
  history "deploy $tag (previous: ${previous:-none})"
  log "deploying $tag (rolls back to ${previous:-nothing} if it fails)"
  if start "$tag"; then
    history "deployed $tag: healthy"
    log "deployed $tag"
    return 0
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
