#!/usr/bin/env bash
# MQTT performance figures for docs/performance.md, against Debian's
# mosquitto over mutual TLS on this machine (the interop suite's setup:
# TLS 1.2+, require_certificate, use_identity_as_username, prefix ACL).
#
#   scripts/bench-mqtt.sh [--events 100000] [--samples 1000] [--debug]
#
# Builds the `bench-mqtt` tool (release profile unless --debug) and prints
# one line per figure, `name value unit target met|MISSED`:
#   mqtt_drain_rate             events/s   >=5000
#   mqtt_reading_to_puback_p50  ms
#   mqtt_reading_to_puback_p99  ms         <=50
# Installs mosquitto (apt-get) when missing and fails loudly if it cannot.
# Exits non-zero if the tool fails (not when a target is missed: the line
# says so).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
EVENTS=100000
SAMPLES=1000
PROFILE=release
while [ $# -gt 0 ]; do
    case "$1" in
        --events) EVENTS="$2"; shift 2 ;;
        --samples) SAMPLES="$2"; shift 2 ;;
        --debug) PROFILE=dev; shift ;;
        *) echo "bench-mqtt: unknown option $1" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
die() { echo "bench-mqtt: FATAL: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v mosquitto >/dev/null 2>&1; then
    echo "bench-mqtt: installing mosquitto" >&2
    $SUDO apt-get update -qq || die "apt-get update failed; cannot install mosquitto"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto \
        || die "apt-get install mosquitto failed"
fi
for tool in mosquitto openssl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

# ---- certificates: ECDSA CA and broker, RSA gateway (as in interop-mqtt.sh)
# shellcheck source=lib/pki.sh
. "$ROOT/scripts/lib/pki.sh"
pki_init "$WORK/pki" "coldgate bench CA"
pki_issue server localhost "$PKI_EC" "$PKI_SERVER_EXT"
pki_issue gw bench-gw "rsa:2048" "$PKI_CLIENT_EXT"
pki_publish

# ---- the broker
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$WORK/acl" <<'EOF'
pattern write coldgate/v1/%u/#
pattern read coldgate/v1/%u/cmd/#
pattern read coldgate/v1/%u/status
EOF
cat >"$WORK/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous false
acl_file $WORK/acl
persistence false
log_dest stderr
log_type error
log_type warning
listener $PORT 127.0.0.1
cafile $PKI/ca.pem
certfile $PKI/server.pem
keyfile $PKI/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
max_inflight_messages 0
max_queued_messages 0
EOF
chmod 644 "$WORK/acl" "$WORK/mosquitto.conf"
mosquitto -c "$WORK/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then break; fi
    sleep 0.1
done
python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.5)" 2>/dev/null \
    || { cat "$WORK/mosquitto.log" >&2; die "mosquitto does not listen on $PORT"; }

# ---- the gateway's configuration: one zone, one sensor fed by the tool
mkdir -p "$WORK/gw"
cat >"$WORK/gw/coldgate.toml" <<EOF
gateway_id = "bench-gw"
[storage]
path = "$WORK/gw/coldgate.redb"
[ingest]
batch_interval = "200ms"
[mqtt]
host = "localhost"
port = $PORT
reconnect_min = "100ms"
reconnect_max = "1s"
inflight = 32
[mqtt.telemetry]
enabled = false
[mqtt.tls]
ca_file = "$PKI/ca.pem"
cert_file = "$PKI/gw.pem"
key_file = "$PKI/gw.key"
[[profiles]]
id = "bench"
limits = [{ quantity = "temperature", high = 8.0, delay = "0s" }]
[[zones]]
id = "bench"
profile = "bench"
[[sensors]]
id = "bench-0"
zone = "bench"
kind = "sim"
[sim]
# Too slow to send anything: the tool feeds bench-0 itself.
speed = 0.0001
reading_interval = "24h"
EOF

cargo build -q --profile "$PROFILE" -p coldgate-tests --bin bench-mqtt || die "cannot build bench-mqtt"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
DIR="$PROFILE"; [ "$PROFILE" = dev ] && DIR=debug
RUST_LOG="${RUST_LOG:-warn}" "$TARGET_DIR/$DIR/bench-mqtt" \
    --config "$WORK/gw/coldgate.toml" --events "$EVENTS" --samples "$SAMPLES" \
    || { tail -20 "$WORK/mosquitto.log" >&2; die "bench-mqtt failed"; }
