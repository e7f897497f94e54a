#!/usr/bin/env bash
# The wall clock of a real `coldgate run` steps an hour forward, then back,
# through Debian's libfaketime (FAKETIME_DONT_FAKE_MONOTONIC=1: only the wall
# clock moves, as when NTP steps it). The daemon must notice both jumps,
# record them with the range of readings they affect, publish `clock_jump`
# gateway events, keep running, and stop cleanly.
#
#   scripts/interop-clock-jump.sh      # from the workspace root
#
# Installs faketime (apt-get) when missing and fails loudly if it cannot.
# Run by .ci/run. Prints "N passed, M failed"; exits non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
die() { echo "interop-clock-jump: FATAL: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! dpkg -s libfaketime >/dev/null 2>&1; then
    echo "interop-clock-jump: installing faketime"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq faketime \
        || die "cannot install faketime"
fi
LIB="$(dpkg -L libfaketime | grep '/libfaketimeMT\.so\.1$' | head -1)"
[ -n "$LIB" ] || die "libfaketimeMT.so.1 not found in the libfaketime package"

WORK="$(mktemp -d)"
GW_PID=""
cleanup() {
    if [ -n "$GW_PID" ]; then kill -9 "$GW_PID" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

cargo build -q -p coldgate --bin coldgate
BIN="$ROOT/target/debug/coldgate"

PASS=0; FAIL=0
check() { # name, then a command that must succeed
    local name="$1"; shift
    if "$@"; then PASS=$((PASS + 1)); echo "ok: $name"; else FAIL=$((FAIL + 1)); echo "FAIL: $name"; fi
}
count_log() { grep -c "$1" "$WORK/run.log" || true; }
wait_count() { # text, count, seconds
    local i
    for i in $(seq 1 $(($3 * 5))); do
        [ "$(count_log "$1")" -ge "$2" ] && return 0
        sleep 0.2
    done
    return 1
}

cat > "$WORK/coldgate.toml" <<EOF
gateway_id = "clock-jump"
[storage]
path = "$WORK/coldgate.redb"
[ingest]
batch_interval = "200ms"
[mqtt]
enabled = false
[[profiles]]
id = "fridge"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "fridge"
[sim]
speed = 1.0
reading_interval = "1s"
[[sensors]]
id = "rear-0"
zone = "rear"
kind = "sim"
EOF
"$BIN" check-config --config "$WORK/coldgate.toml" >/dev/null

# The offset is read from this file at every clock read (no cache).
echo "+0" > "$WORK/faketime"
LD_PRELOAD="$LIB" FAKETIME_TIMESTAMP_FILE="$WORK/faketime" FAKETIME_NO_CACHE=1 \
    FAKETIME_DONT_FAKE_MONOTONIC=1 RUST_LOG=info \
    "$BIN" run --config "$WORK/coldgate.toml" 2> "$WORK/run.log" &
GW_PID=$!
check "the daemon starts under libfaketime" wait_count "coldgate is running." 1 20
sleep 2
JUMPED="The system clock jumped"
echo "+1h" > "$WORK/faketime"
check "the step forward is noticed" wait_count "$JUMPED" 1 10
sleep 2
echo "+0" > "$WORK/faketime"
check "the step back is noticed" wait_count "$JUMPED" 2 10
sleep 2
check "the daemon keeps running" kill -0 "$GW_PID"
kill -TERM "$GW_PID"
status=0; wait "$GW_PID" || status=$?
GW_PID=""
check "SIGTERM exits 0 (status $status)" [ "$status" -eq 0 ]
check "exactly two jumps were noticed" [ "$(count_log "$JUMPED")" -eq 2 ]

"$BIN" export --db "$WORK/coldgate.redb" --what events --format jsonl > "$WORK/events.jsonl" \
    || die "the database does not export"
offsets="$(grep '"phase":"clock_jump"' "$WORK/events.jsonl" | grep -o '"offset_ms":-\?[0-9]*' | cut -d: -f2 | tr '\n' ' ')"
echo "clock_jump offsets (ms): $offsets"
read -r fwd back _ <<< "$offsets $offsets"
near() { [ "${1#-}" -ge 3590000 ] && [ "${1#-}" -le 3610000 ]; }
check "a clock_jump event about +1 h" [ "${fwd:-0}" -gt 0 ]
check "its offset is an hour" near "${fwd:-0}"
check "a clock_jump event about -1 h" [ "${back:-0}" -lt 0 ]
check "its offset is an hour" near "${back:-0}"
check "the jump names the readings it affects (from)" grep -q '"affected_from":"' "$WORK/events.jsonl"
check "the jump names the readings it affects (to)" grep -q '"affected_to":"' "$WORK/events.jsonl"

echo "interop-clock-jump: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
