#!/usr/bin/env bash
# Checks systemd/coldgate-fleet.service offline, as scripts/check-unit.sh
# does for the gateway's unit:
#  - `systemd-analyze verify` is clean (on a copy whose ExecStart= and
#    ExecStartPre= name a real binary: verify insists the executable exists);
#  - `systemd-analyze security --offline=true` scores at most $MAX_EXPOSURE.
# Usage: scripts/check-fleet-unit.sh [path/to/coldgate-fleet]
#   (default target/debug/coldgate-fleet, built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
UNIT=systemd/coldgate-fleet.service
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check-fleet-unit: installing systemd (for systemd-analyze)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd \
        || { echo "check-fleet-unit: FATAL: cannot install systemd-analyze" >&2; exit 1; }
fi
BIN=${1:-${CARGO_TARGET_DIR:-target}/debug/coldgate-fleet}
if [ ! -x "$BIN" ]; then
    cargo build -p coldgate-fleet --bin coldgate-fleet
fi
BIN=$(realpath "$BIN")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

sed "s|=/usr/bin/coldgate-fleet |=$BIN |" "$UNIT" > "$tmp/coldgate-fleet.service"
[ "$(grep -c "=$BIN " "$tmp/coldgate-fleet.service")" = 2 ] || {
    echo "check-fleet-unit: ExecStart=/ExecStartPre= are not /usr/bin/coldgate-fleet …; update this script" >&2
    exit 1
}
verify_out=$(systemd-analyze verify "$tmp/coldgate-fleet.service" 2>&1) || {
    echo "$verify_out" >&2
    echo "check-fleet-unit: systemd-analyze verify failed" >&2
    exit 1
}
if [ -n "$verify_out" ]; then
    echo "$verify_out" >&2
    echo "check-fleet-unit: systemd-analyze verify is not clean" >&2
    exit 1
fi
echo "check-fleet-unit: verify clean"

security_out=$(systemd-analyze security --offline=true "$UNIT" 2>&1)
score=$(printf '%s\n' "$security_out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
    printf '%s\n' "$security_out" >&2
    echo "check-fleet-unit: no 'Overall exposure level' line" >&2
    exit 1
fi
if awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
    printf '%s\n' "$security_out" | grep '✗' >&2 || true
    echo "check-fleet-unit: exposure $score is above $MAX_EXPOSURE" >&2
    exit 1
fi
echo "check-fleet-unit: exposure $score (limit $MAX_EXPOSURE)"
