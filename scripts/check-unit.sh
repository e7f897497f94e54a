#!/usr/bin/env bash
# Checks systemd/coldgate.service and systemd/coldgate.sysusers offline:
#  - `systemd-analyze verify` is clean (on a copy whose ExecStart= names a
#    real binary: verify insists the executable exists);
#  - `systemd-analyze security --offline=true` scores at most $MAX_EXPOSURE;
#  - the sysusers file parses (dry run against a copy of /etc).
# Usage: scripts/check-unit.sh [path/to/coldgate]   (default target/debug/coldgate,
# built if missing). Needs systemd >= 252 tools; no running systemd.
set -euo pipefail
cd "$(dirname "$0")/.."

MAX_EXPOSURE=${MAX_EXPOSURE:-2.0}
UNIT=systemd/coldgate.service
SYSUSERS=systemd/coldgate.sysusers
if ! command -v systemd-analyze >/dev/null 2>&1; then
    echo "check-unit: installing systemd (for systemd-analyze)"
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq systemd \
        || { echo "check-unit: FATAL: cannot install systemd-analyze" >&2; exit 1; }
fi
BIN=${1:-target/debug/coldgate}
if [ ! -x "$BIN" ]; then
    cargo build -p coldgate --bin coldgate
fi
BIN=$(realpath "$BIN")

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# verify: same unit name, ExecStart= pointing at the built binary.
sed "s|^ExecStart=/usr/bin/coldgate |ExecStart=$BIN |" "$UNIT" > "$tmp/coldgate.service"
grep -q "^ExecStart=$BIN " "$tmp/coldgate.service" || {
    echo "check-unit: ExecStart= is not /usr/bin/coldgate …; update this script" >&2
    exit 1
}
verify_out=$(systemd-analyze verify "$tmp/coldgate.service" 2>&1) || {
    echo "$verify_out" >&2
    echo "check-unit: systemd-analyze verify failed" >&2
    exit 1
}
if [ -n "$verify_out" ]; then
    echo "$verify_out" >&2
    echo "check-unit: systemd-analyze verify is not clean" >&2
    exit 1
fi
echo "check-unit: verify clean"

# security: parse "→ Overall exposure level for coldgate.service: 1.5 OK".
security_out=$(systemd-analyze security --offline=true "$UNIT" 2>&1)
score=$(printf '%s\n' "$security_out" | sed -n 's/.*Overall exposure level for [^:]*: \([0-9.]*\).*/\1/p')
if [ -z "$score" ]; then
    printf '%s\n' "$security_out" >&2
    echo "check-unit: no 'Overall exposure level' line" >&2
    exit 1
fi
if awk -v s="$score" -v m="$MAX_EXPOSURE" 'BEGIN { exit !(s > m) }'; then
    printf '%s\n' "$security_out" | grep '✗' >&2 || true
    echo "check-unit: exposure $score is above $MAX_EXPOSURE" >&2
    exit 1
fi
echo "check-unit: exposure $score (limit $MAX_EXPOSURE)"

# sysusers: a dry run on a copy of this machine's account files.
mkdir -p "$tmp/root/etc"
cp /etc/passwd /etc/group "$tmp/root/etc/"
sysusers_out=$(systemd-sysusers --root="$tmp/root" --dry-run "$(realpath "$SYSUSERS")" 2>&1) || {
    printf '%s\n' "$sysusers_out" >&2
    echo "check-unit: $SYSUSERS does not parse" >&2
    exit 1
}
echo "check-unit: sysusers parses"
