#!/usr/bin/env bash
# The aarch64 binary's `coldgate demo` under qemu-user for 60 s, watched from
# outside as a newcomer would: mosquitto_sub (a separate MQTT client) must see
# an excursion start and end, and the dashboard must answer an HTTP GET.
# Emulated timings mean nothing (docs/performance.md): this proves the ARM
# build works, not how fast.
#
# Usage: scripts/qemu-demo.sh [path/to/aarch64/coldgate]
#   default: target/aarch64-unknown-linux-gnu/ci-cross/coldgate, built with
#   the default features (the demo needs its embedded broker):
#   cargo build -p coldgate --bin coldgate --target aarch64-unknown-linux-gnu --profile ci-cross
set -euo pipefail
cd "$(dirname "$0")/.."

fail() { echo "qemu-demo: FAIL: $*" >&2; exit 1; }

bin=${1:-target/aarch64-unknown-linux-gnu/ci-cross/coldgate}
[ -x "$bin" ] || fail "no binary at $bin"
readelf -h "$bin" | grep -q 'Machine:.*AArch64' || fail "$bin is not an AArch64 binary"
command -v qemu-aarch64-static >/dev/null 2>&1 || fail "qemu-aarch64-static is missing (scripts/cross installs it)"
command -v mosquitto_sub >/dev/null 2>&1 || fail "mosquitto_sub is missing (apt-get install mosquitto-clients)"

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
mqtt_port=$(free_port)
http_port=$(free_port)
tmp=$(mktemp -d)
pids=()
cleanup() {
    for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$tmp"
}
trap cleanup EXIT

echo "qemu-demo: $bin demo for 60 s (MQTT $mqtt_port, HTTP $http_port)"
qemu-aarch64-static -L /usr/aarch64-linux-gnu "$bin" demo --duration 60s \
    --mqtt-port "$mqtt_port" --http-port "$http_port" --data-dir "$tmp/data" \
    >"$tmp/demo.out" 2>&1 &
demo=$!
pids+=("$demo")

# The subscriber connects as soon as the emulated broker listens.
for _ in $(seq 1 150); do
    (exec 3<>"/dev/tcp/127.0.0.1/$mqtt_port") 2>/dev/null && break
    kill -0 "$demo" 2>/dev/null || { cat "$tmp/demo.out"; fail "the demo exited before its broker listened"; }
    sleep 0.2
done
mosquitto_sub -h 127.0.0.1 -p "$mqtt_port" -t 'coldgate/#' -v >"$tmp/sub.out" 2>&1 &
pids+=("$!")

# The dashboard, while the demo runs.
page=
for _ in $(seq 1 50); do
    page=$(curl -fsS --max-time 5 "http://127.0.0.1:$http_port/" 2>/dev/null) && break
    sleep 0.5
done
[ -n "$page" ] || fail "the dashboard at http://127.0.0.1:$http_port/ did not answer"
grep -qi '<html' <<<"$page" || fail "the dashboard answered without an HTML page"
echo "qemu-demo: dashboard answered ($(wc -c <<<"$page") bytes)"

status=0
wait "$demo" || status=$?
sleep 1
cat "$tmp/demo.out"
[ "$status" = 0 ] || fail "coldgate demo exited with status $status"
grep -q '^demo stopped' "$tmp/demo.out" || fail "the demo did not stop cleanly"

excursions=$(grep '/events/excursion ' "$tmp/sub.out" || true)
grep -q '"phase":"started"' <<<"$excursions" || fail "the subscriber saw no excursion start"
grep -q '"phase":"ended"' <<<"$excursions" || fail "the subscriber saw no excursion end"
grep -q '/status ' "$tmp/sub.out" || fail "the subscriber saw no status message"
echo "qemu-demo: the subscriber saw $(grep -c ' ' "$tmp/sub.out") messages, an excursion started and ended"
echo "qemu-demo: OK"
