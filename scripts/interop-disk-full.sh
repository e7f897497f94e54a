#!/usr/bin/env bash
# A real full disk under a real `coldgate run`: the database lives on a small
# tmpfs that a filler file then fills up. The daemon must keep running, log
# the failed commit, and, once the filler is removed, commit what it held
# and record the `disk_full` and `recovered` gateway events; the database
# must then open and export cleanly, and stopping must exit 0.
#
#   sudo scripts/interop-disk-full.sh      # from the workspace root
#
# Needs root (mount). Run by .ci/run. Prints "N passed, M failed"; exits
# non-zero on any failure.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
die() { echo "interop-disk-full: FATAL: $*" >&2; exit 1; }
[ "$(id -u)" -eq 0 ] || die "needs root to mount a small tmpfs"

WORK="$(mktemp -d)"
DATA="$WORK/data"
mkdir -p "$DATA"
GW_PID=""
cleanup() {
    if [ -n "$GW_PID" ]; then kill -9 "$GW_PID" 2>/dev/null || true; fi
    wait 2>/dev/null || true
    umount "$DATA" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
mount -t tmpfs -o size=8m tmpfs "$DATA" || die "cannot mount a tmpfs on $DATA"

cargo build -q -p coldgate --bin coldgate
BIN="$ROOT/target/debug/coldgate"

PASS=0; FAIL=0
check() { # name, then a command that must succeed
    local name="$1"; shift
    if "$@"; then PASS=$((PASS + 1)); echo "ok: $name"; else FAIL=$((FAIL + 1)); echo "FAIL: $name"; fi
}
wait_log() { # text, seconds
    local i
    for i in $(seq 1 $(($2 * 5))); do
        grep -q "$1" "$WORK/run.log" && return 0
        sleep 0.2
    done
    return 1
}

# Eight simulated sensors at 20 readings/s each, committed every 200 ms.
{
    cat <<EOF
gateway_id = "disk-full"
[storage]
path = "$DATA/coldgate.redb"
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
speed = 600.0
reading_interval = "30s"
EOF
    for i in 0 1 2 3 4 5 6 7; do
        printf '[[sensors]]\nid = "rear-%s"\nzone = "rear"\nkind = "sim"\n' "$i"
    done
} > "$WORK/coldgate.toml"
"$BIN" check-config --config "$WORK/coldgate.toml" >/dev/null

RUST_LOG=info,coldgate::ingest=debug "$BIN" run --config "$WORK/coldgate.toml" 2> "$WORK/run.log" &
GW_PID=$!
check "the daemon starts" wait_log "coldgate is running." 20
sleep 2

# Fill the file system: the filler takes every free block.
dd if=/dev/zero of="$DATA/filler" bs=64k 2>/dev/null || true
echo "filled: $(df -k --output=avail "$DATA" | tail -1) KiB left"
check "a commit fails and the readings are held" wait_log "Commit failed; readings are held in memory" 30
check "the failure is recognised as a full disk" grep -q "disk_full=true" "$WORK/run.log"
sleep 2
check "the daemon survives the full disk" kill -0 "$GW_PID"

# Space returns.
rm -f "$DATA/filler"
check "ingest recovers and commits what it held" wait_log "Storage recovered" 60
sleep 1
kill -TERM "$GW_PID"
status=0; wait "$GW_PID" || status=$?
GW_PID=""
check "SIGTERM after recovery exits 0 (status $status)" [ "$status" -eq 0 ]

"$BIN" export --db "$DATA/coldgate.redb" --what events --format jsonl > "$WORK/events.json" \
    || die "the database does not export after the outage"
check "the disk_full event is stored" grep -q '"phase":"disk_full"' "$WORK/events.json"
check "the recovered event is stored" grep -q '"phase":"recovered"' "$WORK/events.json"
readings=$("$BIN" export --db "$DATA/coldgate.redb" --what readings --format csv | wc -l)
check "readings are stored ($readings)" [ "$readings" -gt 100 ]
check "audit chain verifies" "$BIN" audit verify --db "$DATA/coldgate.redb"

echo "interop-disk-full: $PASS passed, $FAIL failed"
[ "$FAIL" -eq 0 ]
