#!/usr/bin/env bash
# Recovery after broker outages (issue 14, item 5), for docs/performance.md:
# Debian's mosquitto over mutual TLS (the bench-mqtt.sh setup) is killed and
# restarted 20 times after outages of 5 s to 90 s, with the gateway's
# reconnect settings at their defaults (reconnect_max 60 s). Each time the
# seconds from mosquitto accepting connections again to the first event a
# subscriber receives. About 12 minutes.
#
#   scripts/bench-recovery.sh [--debug] [--outages 5,10,20]
#
# Prints one line per outage and then `name value unit target met|MISSED`:
#   recovery_first_event_p50   s
#   recovery_first_event_p95   s   <=5
#   recovery_first_event_max   s
# Exits non-zero if the tool fails (not when the target is missed).
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
PROFILE=release
OUTAGES=()
while [ $# -gt 0 ]; do
    case "$1" in
        --debug) PROFILE=dev; shift ;;
        --outages) OUTAGES=(--outages "$2"); shift 2 ;;
        *) echo "bench-recovery: unknown option $1" >&2; exit 2 ;;
    esac
done

WORK="$(mktemp -d)"
cleanup() { rm -rf "$WORK"; }
trap cleanup EXIT
die() { echo "bench-recovery: FATAL: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi
if ! command -v mosquitto >/dev/null 2>&1; then
    echo "bench-recovery: installing mosquitto" >&2
    $SUDO apt-get update -qq || die "apt-get update failed; cannot install mosquitto"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto \
        || die "apt-get install mosquitto failed"
fi
for tool in mosquitto openssl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done

# shellcheck source=lib/pki.sh
. "$ROOT/scripts/lib/pki.sh"
pki_init "$WORK/pki" "coldgate recovery CA"
pki_issue server localhost "$PKI_EC" "$PKI_SERVER_EXT"
pki_issue gw rec-gw "rsa:2048" "$PKI_CLIENT_EXT"
pki_issue sub rec-sub "$PKI_EC" "$PKI_CLIENT_EXT"
pki_publish

PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
cat >"$WORK/acl" <<'EOF'
pattern write coldgate/v1/%u/#
pattern read coldgate/v1/%u/cmd/#
pattern read coldgate/v1/%u/status
user rec-sub
topic read coldgate/v1/#
EOF
# No persistence: a restarted broker knows nothing, as after a crash.
cat >"$WORK/mosquitto.conf" <<EOF
per_listener_settings false
allow_anonymous false
acl_file $WORK/acl
persistence false
log_dest none
listener $PORT 127.0.0.1
cafile $PKI/ca.pem
certfile $PKI/server.pem
keyfile $PKI/server.key
require_certificate true
use_identity_as_username true
tls_version tlsv1.2
EOF
chmod 644 "$WORK/acl" "$WORK/mosquitto.conf"

# The gateway: reconnect settings left at their defaults; a cooling failure
# every 4 s (40 simulated minutes at 600x) keeps raising events.
mkdir -p "$WORK/gw"
cat >"$WORK/gw/coldgate.toml" <<EOF
gateway_id = "rec-gw"
[storage]
path = "$WORK/gw/coldgate.redb"
[ingest]
batch_interval = "200ms"
[mqtt]
host = "localhost"
port = $PORT
[mqtt.telemetry]
enabled = false
[mqtt.tls]
ca_file = "$PKI/ca.pem"
cert_file = "$PKI/gw.pem"
key_file = "$PKI/gw.key"
[http]
listen = "127.0.0.1:0"
[[profiles]]
id = "refrigerated"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0, delay = "0s" }]
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "rear-0"
zone = "rear"
kind = "sim"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
[sim]
speed = 600.0
reading_interval = "30s"
failures = [{ zone = "rear", after = "2m", lasts = "20m", every = "40m" }]
EOF

cargo build -q --profile "$PROFILE" -p coldgate --bin coldgate || die "cannot build coldgate"
cargo build -q --profile "$PROFILE" -p coldgate-tests --bin bench-recovery || die "cannot build bench-recovery"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
DIR="$PROFILE"; [ "$PROFILE" = dev ] && DIR=debug
RUST_LOG="${RUST_LOG:-warn}" "$TARGET_DIR/$DIR/bench-recovery" \
    --gateway "$TARGET_DIR/$DIR/coldgate" --config "$WORK/gw/coldgate.toml" \
    --broker-conf "$WORK/mosquitto.conf" --port "$PORT" \
    --ca "$PKI/ca.pem" --cert "$PKI/sub.pem" --key "$PKI/sub.key" \
    --topic "coldgate/v1/rec-gw/events/#" "${OUTAGES[@]}" \
    || die "bench-recovery failed"
