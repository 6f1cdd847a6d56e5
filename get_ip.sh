#!/usr/bin/env bash
# Print the address this machine's services are reachable on, and their URLs.
#
#   ./get_ip.sh            "Detected IP Address: X" and the three service URLs
#   ./get_ip.sh --quiet    only the IP address
#
# Order of detection:
#   1. PUBLIC_IP, if set (override, e.g. behind NAT or a load balancer);
#   2. on AWS EC2: the instance's public IPv4 from the metadata service (IMDSv2:
#      a token PUT, then GET .../meta-data/public-ipv4, each curl --max-time 2);
#   3. the first address of `hostname -I`;
#   4. 127.0.0.1.
# The metadata service is only asked when the machine looks like EC2 (DMI or
# hypervisor ids), so elsewhere no request leaves the box. GET_IP_IMDS=always
# or GET_IP_IMDS=never overrides that check (default: auto).
#
# Ports: API_PORT (5000), UI_PORT (8501), PROMETHEUS_PORT (9090).
set -euo pipefail

readonly IMDS_BASE="http://169.254.169.254/latest"

usage() {
    awk 'NR > 1 && !/^#/ { exit } NR > 1 { sub(/^# ?/, ""); print }' "$0"
}

is_ipv4() {
    local ip=$1 part
    local -a parts
    [[ $ip =~ ^[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}\.[0-9]{1,3}$ ]] || return 1
    IFS=. read -r -a parts <<<"$ip"
    for part in "${parts[@]}"; do
        ((10#$part <= 255)) || return 1
    done
}

looks_like_ec2() {
    local f
    for f in /sys/devices/virtual/dmi/id/sys_vendor \
        /sys/devices/virtual/dmi/id/board_asset_tag \
        /sys/hypervisor/uuid; do
        [[ -r $f ]] || continue
        case "$(head -c 64 "$f" 2>/dev/null || true)" in
        *"Amazon EC2"* | i-* | ec2* | EC2*) return 0 ;;
        esac
    done
    return 1
}

imds_public_ip() {
    local token ip
    command -v curl >/dev/null 2>&1 || return 1
    token=$(curl -fsS --max-time 2 -X PUT "$IMDS_BASE/api/token" \
        -H "X-aws-ec2-metadata-token-ttl-seconds: 60" 2>/dev/null) || return 1
    [[ -n $token ]] || return 1
    ip=$(curl -fsS --max-time 2 -H "X-aws-ec2-metadata-token: $token" \
        "$IMDS_BASE/meta-data/public-ipv4" 2>/dev/null) || return 1
    is_ipv4 "$ip" || return 1
    printf '%s\n' "$ip"
}

hostname_ip() {
    local first
    command -v hostname >/dev/null 2>&1 || return 1
    first=$(hostname -I 2>/dev/null | awk '{print $1}') || return 1
    is_ipv4 "$first" || return 1
    printf '%s\n' "$first"
}

detect_ip() {
    local ip mode=${GET_IP_IMDS:-auto}
    if [[ -n ${PUBLIC_IP:-} ]]; then
        printf '%s\n' "$PUBLIC_IP"
        return
    fi
    if [[ $mode == always ]] || { [[ $mode == auto ]] && looks_like_ec2; }; then
        if ip=$(imds_public_ip); then
            printf '%s\n' "$ip"
            return
        fi
    fi
    if ip=$(hostname_ip); then
        printf '%s\n' "$ip"
        return
    fi
    printf '127.0.0.1\n'
}

main() {
    local quiet=0 ip
    while (($#)); do
        case $1 in
        -q | --quiet) quiet=1 ;;
        -h | --help)
            usage
            return 0
            ;;
        *)
            printf 'get_ip.sh: unknown option: %s\n' "$1" >&2
            usage >&2
            return 2
            ;;
        esac
        shift
    done

    ip=$(detect_ip)
    if ((quiet)); then
        printf '%s\n' "$ip"
        return 0
    fi
    printf 'Detected IP Address: %s\n' "$ip"
    printf '  Flask API:   http://%s:%s\n' "$ip" "${API_PORT:-5000}"
    printf '  Streamlit:   http://%s:%s\n' "$ip" "${UI_PORT:-8501}"
    printf '  Prometheus:  http://%s:%s\n' "$ip" "${PROMETHEUS_PORT:-9090}"
}

main "$@"
