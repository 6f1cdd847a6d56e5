#!/usr/bin/env bash
# Smoke test of a RUNNING stack (docker-compose or native): tests all 10
# components and reports PASS / FAIL / WARN for each, then a summary.
# Exit status: 0 when nothing FAILed (WARNs allowed), 1 otherwise.
#
#   ./test_everything.sh
#
#    1  API /health reports healthy
#    2  both models (v1, v2) loaded, per /health
#    3  POST /predict with a setosa sample -> prediction 0
#    4  bad input -> HTTP 400 with a JSON error
#    5  GET /config shows the A/B weights
#    6  A/B routing: 40 predictions reach both versions (WARN if a weight is 0)
#    7  /metrics has prediction_requests_total and model_version_requests_total
#    8  GET /drift answers
#    9  Streamlit UI /_stcore/health
#   10  Prometheus /-/ready and the flask-api target up
#   +   average response time of 20 predictions
#
# Targets (environment):
#   API_URL                 default http://127.0.0.1:${API_PORT:-5000}
#   UI_URL                  default http://127.0.0.1:${UI_PORT:-8501}
#   PROMETHEUS_URL          default http://127.0.0.1:${PROMETHEUS_PORT:-9090}
#   CURL_TIMEOUT            seconds per request (default 5)
#   UI_WAIT                 seconds to wait for the UI to answer (default 20)
#   PROMETHEUS_TARGET_WAIT  seconds to wait for the flask-api target (default 30)
#   SLOW_RESPONSE_MS        average above this is a WARN (default 500)
# JSON is read with python3; NO_COLOR=1 turns colours off.
set -euo pipefail

SCRIPT_DIR=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
readonly SCRIPT_DIR

API_URL=${API_URL:-http://127.0.0.1:${API_PORT:-5000}}
UI_URL=${UI_URL:-http://127.0.0.1:${UI_PORT:-8501}}
PROMETHEUS_URL=${PROMETHEUS_URL:-http://127.0.0.1:${PROMETHEUS_PORT:-9090}}
API_URL=${API_URL%/}
UI_URL=${UI_URL%/}
PROMETHEUS_URL=${PROMETHEUS_URL%/}
CURL_TIMEOUT=${CURL_TIMEOUT:-5}
PROMETHEUS_TARGET_WAIT=${PROMETHEUS_TARGET_WAIT:-30}
UI_WAIT=${UI_WAIT:-20}
SLOW_RESPONSE_MS=${SLOW_RESPONSE_MS:-500}

readonly SETOSA='{"features": [5.1, 3.5, 1.4, 0.2]}'
readonly AB_REQUESTS=40
readonly TIMING_REQUESTS=20

PASSED=0
FAILED=0
WARNED=0
HTTP_CODE=000
WORK_DIR=""
BODY=""
WEIGHT_V1=""
WEIGHT_V2=""

if [[ -t 1 && -z ${NO_COLOR:-} ]]; then
    GREEN=$'\033[0;32m' RED=$'\033[0;31m' YELLOW=$'\033[0;33m'
    BOLD=$'\033[1m' RESET=$'\033[0m'
else
    GREEN="" RED="" YELLOW="" BOLD="" RESET=""
fi

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}

pass() {
    PASSED=$((PASSED + 1))
    printf '%s[PASS]%s %s\n' "$GREEN" "$RESET" "$*"
}

fail() {
    FAILED=$((FAILED + 1))
    printf '%s[FAIL]%s %s\n' "$RED" "$RESET" "$*"
}

warn() {
    WARNED=$((WARNED + 1))
    printf '%s[WARN]%s %s\n' "$YELLOW" "$RESET" "$*"
}

section() {
    printf '\n%s%s%s\n' "$BOLD" "$*" "$RESET"
}

cleanup() {
    if [[ -n $WORK_DIR ]]; then
        rm -rf "$WORK_DIR"
    fi
}

# request METHOD URL [JSON_BODY]: body to $BODY, status to $HTTP_CODE
# (000 when the server could not be reached).
request() {
    local method=$1 url=$2 data=${3:-}
    local -a args=(-sS --max-time "$CURL_TIMEOUT" -o "$BODY" -w '%{http_code}' -X "$method")
    if [[ -n $data ]]; then
        args+=(-H 'Content-Type: application/json' --data "$data")
    fi
    : >"$BODY"
    HTTP_CODE=$(curl "${args[@]}" "$url" 2>/dev/null) || true
    [[ $HTTP_CODE =~ ^[0-9]{3}$ ]] || HTTP_CODE=000
}

# json EXPRESSION: evaluate a Python expression over the JSON in $BODY (bound
# to d) and print the result; exit status 1 if the body is not JSON or the
# expression fails. The expressions are constants of this script.
json() {
    python3 - "$BODY" "$1" <<'PY' 2>/dev/null
import json, sys
with open(sys.argv[1], encoding="utf-8") as fh:
    d = json.load(fh)
value = eval(sys.argv[2], {"d": d})
if isinstance(value, (dict, list)):
    print(json.dumps(value, sort_keys=True))
elif isinstance(value, bool):
    print("true" if value else "false")
elif value is not None:
    print(value)
PY
}

# Version that served the prediction in $BODY (key model_version or version).
served_version() {
    json 'd.get("model_version", d.get("version", ""))'
}

check_health() {
    section "1. API health ($API_URL/health)"
    request GET "$API_URL/health"
    if [[ $HTTP_CODE != 200 ]]; then
        fail "GET /health returned HTTP $HTTP_CODE"
        return
    fi
    local status
    status=$(json 'd.get("status", "")') || status=""
    case $status in
    healthy | ok) pass "API is $status" ;;
    "") fail "GET /health answered 200 but without a JSON status" ;;
    *) warn "API answered 200 with status '$status'" ;;
    esac
}

check_models_loaded() {
    section "2. Models loaded"
    request GET "$API_URL/health"
    local versions
    # /health "models" may be a dict keyed by version, a list of versions, or
    # a list of objects with a "version" field.
    versions=$(json '" ".join(sorted(
        (str(m.get("version", m.get("model_version", ""))) if isinstance(m, dict) else str(m))
        for m in (d.get("models") or {})))') || versions=""
    local missing=()
    local v
    for v in v1 v2; do
        [[ " $versions " == *" $v "* ]] || missing+=("$v")
    done
    if [[ $HTTP_CODE == 200 && ${#missing[@]} -eq 0 ]]; then
        pass "models loaded: $versions"
    else
        fail "models missing from /health (HTTP $HTTP_CODE): ${missing[*]:-?} (found: ${versions:-none})"
    fi
}

check_prediction() {
    section "3. Prediction (setosa sample)"
    request POST "$API_URL/predict" "$SETOSA"
    if [[ $HTTP_CODE != 200 ]]; then
        fail "POST /predict returned HTTP $HTTP_CODE"
        return
    fi
    local prediction version
    prediction=$(json 'd.get("prediction")') || prediction=""
    version=$(served_version) || version=""
    if [[ $prediction == 0 || $prediction == setosa ]]; then
        pass "prediction $prediction (setosa) from model ${version:-?}"
    else
        fail "expected prediction 0 (setosa), got '${prediction}'"
    fi
}

check_bad_input() {
    section "4. Input validation"
    request POST "$API_URL/predict" '{"features": [1.0, 2.0]}'
    local error
    error=$(json 'd["error"]') || error=""
    if [[ $HTTP_CODE == 400 && -n $error ]]; then
        pass "2 features rejected with 400: $error"
    else
        fail "2 features: expected HTTP 400 with a JSON error, got HTTP $HTTP_CODE"
    fi
    request POST "$API_URL/predict" 'not json'
    case $HTTP_CODE in
    400) pass "non-JSON body rejected with 400" ;;
    4??) warn "non-JSON body rejected with HTTP $HTTP_CODE (expected 400)" ;;
    *) fail "non-JSON body: expected HTTP 400, got HTTP $HTTP_CODE" ;;
    esac
}

check_config() {
    section "5. A/B configuration (/config)"
    request GET "$API_URL/config"
    if [[ $HTTP_CODE != 200 ]]; then
        fail "GET /config returned HTTP $HTTP_CODE"
        return
    fi
    # Weights as {"weights": {"v1": 50, "v2": 50}} or flat model_v1_weight keys.
    local weights
    weights=$(json '(lambda w: "%g %g" % (float(w["v1"]), float(w["v2"])))(
        d["weights"] if isinstance(d.get("weights"), dict) else
        {"v1": next(d[k] for k in d if k.lower() in ("model_v1_weight", "v1_weight")),
         "v2": next(d[k] for k in d if k.lower() in ("model_v2_weight", "v2_weight"))})') || weights=""
    if [[ -z $weights ]]; then
        fail "GET /config has no v1/v2 weights"
        return
    fi
    read -r WEIGHT_V1 WEIGHT_V2 <<<"$weights"
    pass "weights v1=$WEIGHT_V1 v2=$WEIGHT_V2"
}

check_ab_routing() {
    section "6. A/B routing ($AB_REQUESTS predictions)"
    local i version v1=0 v2=0 other=0 errors=0
    for ((i = 0; i < AB_REQUESTS; i++)); do
        request POST "$API_URL/predict" "$SETOSA"
        if [[ $HTTP_CODE != 200 ]]; then
            errors=$((errors + 1))
            # Unreachable: no point in waiting out the remaining requests.
            [[ $HTTP_CODE != 000 ]] || break
            continue
        fi
        version=$(served_version) || version=""
        case $version in
        v1) v1=$((v1 + 1)) ;;
        v2) v2=$((v2 + 1)) ;;
        *) other=$((other + 1)) ;;
        esac
    done
    local counts="v1=$v1 v2=$v2 (other=$other, errors=$errors)"
    if ((errors > 0)); then
        fail "$errors of $AB_REQUESTS predictions failed (stops at the first unreachable one): $counts"
        return
    fi
    if [[ -z $WEIGHT_V1 || -z $WEIGHT_V2 ]]; then
        if ((v1 > 0 && v2 > 0)); then
            pass "both versions served: $counts"
        else
            warn "weights unknown (see 5) and one version never served: $counts"
        fi
        return
    fi
    # How likely is it that a version with weight > 0 is never picked in
    # $AB_REQUESTS draws? Only a miss that should be near-impossible FAILs.
    local verdict
    verdict=$(python3 - "$WEIGHT_V1" "$WEIGHT_V2" "$v1" "$v2" "$AB_REQUESTS" <<'PY'
import sys
w1, w2 = float(sys.argv[1]), float(sys.argv[2])
n1, n2, n = int(sys.argv[3]), int(sys.argv[4]), int(sys.argv[5])
if w1 <= 0 or w2 <= 0:
    print("zero-weight")
elif n1 > 0 and n2 > 0:
    print("ok")
else:
    share = min(w1, w2) / (w1 + w2)
    print("unlucky" if (1 - share) ** n > 0.001 else "miss")
PY
    )
    case $verdict in
    ok) pass "both versions served: $counts" ;;
    zero-weight) warn "a weight is 0 (v1=$WEIGHT_V1 v2=$WEIGHT_V2), A/B split not exercised: $counts" ;;
    unlucky) warn "one version never served, plausible with a small weight: $counts" ;;
    *) fail "one version never served despite weights v1=$WEIGHT_V1 v2=$WEIGHT_V2: $counts" ;;
    esac
}

check_metrics() {
    section "7. Metrics ($API_URL/metrics)"
    request GET "$API_URL/metrics"
    if [[ $HTTP_CODE != 200 ]]; then
        fail "GET /metrics returned HTTP $HTTP_CODE"
        return
    fi
    local metric
    for metric in prediction_requests_total model_version_requests_total; do
        if grep -q "^$metric" "$BODY"; then
            pass "/metrics exposes $metric"
        else
            fail "/metrics lacks $metric"
        fi
    done
}

check_drift() {
    section "8. Drift (/drift)"
    request GET "$API_URL/drift"
    if [[ $HTTP_CODE != 200 ]]; then
        fail "GET /drift returned HTTP $HTTP_CODE"
        return
    fi
    local score
    if score=$(json '"score %s, status %s" % (d.get("drift_score", "n/a"), d.get("status", "n/a"))'); then
        pass "drift endpoint answers ($score)"
    else
        fail "GET /drift answered 200 but not with JSON"
    fi
}

check_ui() {
    section "9. Streamlit UI ($UI_URL)"
    # The UI container starts only once the API is healthy: give it a moment.
    local deadline=$((SECONDS + UI_WAIT))
    while :; do
        request GET "$UI_URL/_stcore/health"
        [[ $HTTP_CODE == 200 ]] && break
        ((SECONDS < deadline)) || break
        sleep 2
    done
    if [[ $HTTP_CODE == 200 ]]; then
        pass "UI healthy: $(head -c 40 "$BODY")"
    else
        fail "GET $UI_URL/_stcore/health returned HTTP $HTTP_CODE"
    fi
}

check_prometheus() {
    section "10. Prometheus ($PROMETHEUS_URL)"
    request GET "$PROMETHEUS_URL/-/ready"
    if [[ $HTTP_CODE == 200 ]]; then
        pass "Prometheus ready"
    else
        fail "GET /-/ready returned HTTP $HTTP_CODE"
        return
    fi
    # The first scrape of a freshly started stack can take a few seconds.
    local health="" deadline=$((SECONDS + PROMETHEUS_TARGET_WAIT))
    while :; do
        request GET "$PROMETHEUS_URL/api/v1/targets?state=active"
        health=$(json '",".join(sorted(t.get("health", "")
            for t in d["data"]["activeTargets"]
            if t.get("labels", {}).get("job") == "flask-api"))') || health=""
        [[ $health == up ]] && break
        ((SECONDS < deadline)) || break
        sleep 2
    done
    if [[ $health == up ]]; then
        pass "flask-api target is up"
    else
        fail "flask-api target not up after ${PROMETHEUS_TARGET_WAIT}s (health: ${health:-no such target})"
    fi
}

check_response_time() {
    section "Response time ($TIMING_REQUESTS predictions)"
    local i code time_total failures=0
    local -a times=()
    for ((i = 0; i < TIMING_REQUESTS; i++)); do
        read -r code time_total < <(curl -sS --max-time "$CURL_TIMEOUT" -o /dev/null \
            -w '%{http_code} %{time_total}\n' -X POST \
            -H 'Content-Type: application/json' --data "$SETOSA" \
            "$API_URL/predict" 2>/dev/null || printf '000 0\n')
        if [[ $code == 200 ]]; then
            times+=("$time_total")
        else
            failures=$((failures + 1))
            [[ $code != 000 ]] || break
        fi
    done
    if ((failures > 0)); then
        fail "$failures of $TIMING_REQUESTS timed predictions failed (stops at the first unreachable one)"
        return
    fi
    local avg_ms
    avg_ms=$(printf '%s\n' "${times[@]}" | awk '{ s += $1 } END { printf "%.1f", s * 1000 / NR }')
    if awk -v a="$avg_ms" -v lim="$SLOW_RESPONSE_MS" 'BEGIN { exit !(a <= lim) }'; then
        pass "average response time ${avg_ms} ms"
    else
        warn "average response time ${avg_ms} ms (above ${SLOW_RESPONSE_MS} ms)"
    fi
}

print_urls() {
    section "Service URLs"
    if [[ -x $SCRIPT_DIR/get_ip.sh ]]; then
        "$SCRIPT_DIR/get_ip.sh" || true
    fi
    printf 'Tested: API %s, UI %s, Prometheus %s\n' "$API_URL" "$UI_URL" "$PROMETHEUS_URL"
}

summary() {
    section "Summary"
    printf '%s%d passed%s, %s%d failed%s, %s%d warnings%s\n' \
        "$GREEN" "$PASSED" "$RESET" "$RED" "$FAILED" "$RESET" "$YELLOW" "$WARNED" "$RESET"
    if ((FAILED > 0)); then
        printf '%sSOME CHECKS FAILED%s\n' "$RED" "$RESET"
        return 1
    fi
    printf '%sALL CHECKS PASSED%s\n' "$GREEN" "$RESET"
}

main() {
    case ${1:-} in
    -h | --help)
        usage
        return 0
        ;;
    "") ;;
    *)
        printf 'test_everything.sh: unknown option: %s\n' "$1" >&2
        return 2
        ;;
    esac
    local tool
    for tool in curl python3 awk; do
        command -v "$tool" >/dev/null 2>&1 || {
            printf 'test_everything.sh: %s is required\n' "$tool" >&2
            return 2
        }
    done
    WORK_DIR=$(mktemp -d)
    trap cleanup EXIT
    BODY=$WORK_DIR/body

    printf '%sMLOps stack smoke test%s\n' "$BOLD" "$RESET"
    check_health
    check_models_loaded
    check_prediction
    check_bad_input
    check_config
    check_ab_routing
    check_metrics
    check_drift
    check_ui
    check_prometheus
    check_response_time
    print_urls
    summary
}

main "$@"
