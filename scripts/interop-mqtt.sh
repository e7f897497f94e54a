#!/usr/bin/env bash
# Interop check of the gateway's MQTT over mutual TLS against an independent
# broker: Debian's mosquitto 2.0 with a TLS listener that requires a client
# certificate, takes its CN as the user name, and lets a gateway write only
# under coldgate/v1/<its CN>/#.
#
#   scripts/interop-mqtt.sh            # from the workspace root
#
# Installs mosquitto and mosquitto-clients (apt-get) when missing and fails
# loudly if it cannot. The broker, its ACL and every certificate come from
# the recipe in docs/broker.md, extracted and run as written by
# scripts/broker-recipe.sh (nothing of it is repeated here). Prints
# "N passed, M failed"; exits non-zero on any failure.
#
# mosquitto facts this relies on:
# - Started as root it drops to the `mosquitto` user: every certificate and
#   key file (and their directory) must be readable by that user.
# - With `require_certificate true` and `use_identity_as_username true` the
#   certificate's CN is the user name ACL `pattern` lines see as %u.
# - 2.0 PUBACKs a publish its ACL denies (and drops it): a gateway cannot
#   tell from the PUBACK. With `mqtt.verify_own_status = true` the gateway
#   subscribes to its own status and publishes events only once the broker
#   delivered it back, so the ACL must also let it read {prefix}/status.
set -euo pipefail

ROOT="$(cd "$(dirname "$0")/.." && pwd)"
cd "$ROOT"
WORK="$(mktemp -d)"
PIDS=()
cleanup() {
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

die() { echo "interop-mqtt: FATAL: $*" >&2; exit 1; }
PASSED=0
FAILED=0
pass() { PASSED=$((PASSED + 1)); echo "  ok   $*"; }
fail() { FAILED=$((FAILED + 1)); echo "  FAIL $*"; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# ---- prerequisites: install if missing, fail loudly if not possible
if ! command -v mosquitto >/dev/null 2>&1 || ! command -v mosquitto_sub >/dev/null 2>&1; then
    echo "interop-mqtt: installing mosquitto and mosquitto-clients"
    $SUDO apt-get update -qq || die "apt-get update failed; cannot install mosquitto"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq mosquitto mosquitto-clients \
        || die "apt-get install mosquitto mosquitto-clients failed"
fi
for tool in mosquitto mosquitto_sub mosquitto_pub openssl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
MOSQUITTO="$(command -v mosquitto)"
echo "interop-mqtt: $("$MOSQUITTO" -h 2>/dev/null | head -1)"

# ---- the broker: docs/broker.md's recipe, run as written (certificates,
#      ACL, mosquitto.conf), so the set-up tested here is the documented one.
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
chmod 755 "$WORK"
PKI="$WORK/broker"
MQTT_PORT="$PORT" GATEWAY_ID=interop-gw "$ROOT/scripts/broker-recipe.sh" "$PKI" \
    || die "the broker recipe of docs/broker.md failed as written"
# A gateway certificate from a CA the broker does not know: the same recipe
# in another directory is another CA.
GATEWAY_ID=interop-gw "$ROOT/scripts/broker-recipe.sh" "$WORK/rogue" \
    || die "the broker recipe failed for the rogue CA"
cp "$WORK/rogue/interop-gw.pem" "$PKI/rogue.pem"
cp "$WORK/rogue/interop-gw.key" "$PKI/rogue.key"
"$MOSQUITTO" -c "$PKI/mosquitto.conf" >"$WORK/mosquitto.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 1 100); do
    if python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.2)" 2>/dev/null; then break; fi
    sleep 0.1
done
python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 0.5)" 2>/dev/null \
    || { cat "$WORK/mosquitto.log" >&2; die "mosquitto does not listen on $PORT"; }

SUB=(mosquitto_sub -h localhost -p "$PORT" --cafile "$PKI/ca.pem"
    --cert "$PKI/backend.pem" --key "$PKI/backend.key" -q 1 -v)
"${SUB[@]}" -t 'coldgate/#' >"$WORK/sub.txt" 2>"$WORK/sub.err" &
PIDS+=($!)
sleep 1

# ---- our side
cargo build -q -p coldgate --bin coldgate || die "cannot build coldgate"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
COLDGATE="$TARGET_DIR/debug/coldgate"

# gateway_config DIR CERT KEY [PREFIX]
gateway_config() {
    local dir="$1" cert="$2" key="$3" prefix="${4:-coldgate/v1/{gateway_id\}}"
    mkdir -p "$dir"
    cat >"$dir/coldgate.toml" <<EOF
gateway_id = "interop-gw"
[storage]
path = "$dir/coldgate.redb"
[ingest]
batch_interval = "200ms"
[mqtt]
host = "localhost"
port = $PORT
reconnect_min = "100ms"
reconnect_max = "1s"
prefix = "$prefix"
verify_own_status = true
[mqtt.tls]
ca_file = "$PKI/ca.pem"
cert_file = "$cert"
key_file = "$key"
[[profiles]]
id = "refrigerated"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "refrigerated"
[sim]
speed = 600.0
reading_interval = "30s"
failures = [{ zone = "rear", after = "2m", lasts = "20m", every = "40m" }]
[[sensors]]
id = "rear-0"
zone = "rear"
kind = "sim"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
EOF
}

echo "interop-mqtt: mosquitto on localhost:$PORT (TLS, client certificates required)"

# 1. check-config accepts the recipe's client certificate, and
#    `uplink --test` passes every step against the recipe's broker.
gateway_config "$WORK/gw" "$PKI/interop-gw.pem" "$PKI/interop-gw.key"
if "$COLDGATE" check-config --config "$WORK/gw/coldgate.toml" >/dev/null 2>"$WORK/check.err"; then
    pass "check-config accepts the TLS section made by the recipe"
else
    fail "check-config: $(cat "$WORK/check.err")"
fi
if "$COLDGATE" uplink --test --config "$WORK/gw/coldgate.toml" >"$WORK/uplink.txt" 2>&1 \
    && grep -q "uplink: every step passed" "$WORK/uplink.txt"; then
    pass "uplink --test passes every step against the recipe's broker"
else
    fail "uplink --test: $(cat "$WORK/uplink.txt")"
fi

# 2. The gateway publishes over mutual TLS; events arrive in seq order.
# Telemetry (mqtt.telemetry.qos = 0) reaches a QoS 1 subscriber at QoS 0.
"${SUB[@]}" -F '%q %t' -t 'coldgate/v1/interop-gw/telemetry/#' -C 2 -W 30 >"$WORK/qos.txt" 2>/dev/null &
QOS_SUB=$!
RUST_LOG=info "$COLDGATE" run --config "$WORK/gw/coldgate.toml" 2>"$WORK/gw.log" &
GW=$!
PIDS+=("$GW")
sleep 4
mosquitto_pub -h localhost -p "$PORT" --cafile "$PKI/ca.pem" --cert "$PKI/backend.pem" \
    --key "$PKI/backend.key" -q 1 -t 'coldgate/v1/interop-gw/cmd/manifest' \
    -m '{"action":"load","command_id":"interop-1","sscc":"106141412345678908","zone":"rear","items":[{"gtin":"09520123456788","lot":"ABC123"}]}' \
    || fail "mosquitto_pub of a manifest command"
sleep 2
# The same request again (by its current name): answered, not applied twice.
mosquitto_pub -h localhost -p "$PORT" --cafile "$PKI/ca.pem" --cert "$PKI/backend.pem" \
    --key "$PKI/backend.key" -q 1 -t 'coldgate/v1/interop-gw/cmd/manifest' \
    -m '{"action":"load","request_id":"interop-1","sscc":"106141412345678908","zone":"rear","items":[{"gtin":"09520123456788","lot":"ABC123"}]}' \
    || fail "mosquitto_pub of a repeated manifest command"
sleep 3
kill -TERM "$GW"
wait "$GW" && pass "the gateway stops cleanly" || fail "the gateway exited with $?"
sleep 1
# A clean stop is not a crash: the status retained now is the gateway's own
# "offline, stopped" (sent before DISCONNECT), not the Last Will.
"${SUB[@]}" -t 'coldgate/v1/interop-gw/status' -C 1 -W 5 >"$WORK/retained.txt" 2>/dev/null || true
if grep -q '"reason":"stopped"' "$WORK/retained.txt"; then
    pass "after SIGTERM the retained status is offline, reason stopped (not the Last Will)"
else
    fail "after SIGTERM the retained status is: $(cat "$WORK/retained.txt")"
fi

python3 - "$WORK/sub.txt" >"$WORK/check.txt" <<'EOF' || true
import json, sys
seqs, status = [], None
for line in open(sys.argv[1]):
    topic, _, payload = line.rstrip("\n").partition(" ")
    if topic.startswith("coldgate/v1/interop-gw/events/"):
        seqs.append(json.loads(payload)["seq"])
    elif topic == "coldgate/v1/interop-gw/status":
        status = json.loads(payload)
first = []
for s in seqs:
    if s not in first:
        first.append(s)
ok_order = first == list(range(1, len(first) + 1))
print("events", len(first), "in_order" if ok_order else "OUT_OF_ORDER", first[:20])
print("status", status and status.get("state"), status and status.get("client_cert_expires_at"))
EOF
cat "$WORK/check.txt"
if grep -q '^events [1-9][0-9]* in_order' "$WORK/check.txt"; then
    pass "events arrived over mutual TLS, seq 1..n in order"
else
    fail "events did not arrive in seq order (see above; gateway log: $WORK/gw.log)"
fi
wait "$QOS_SUB" || true
if [ "$(grep -c '^0 coldgate/v1/interop-gw/telemetry/' "$WORK/qos.txt")" -ge 1 ] && ! grep -qv '^0 ' "$WORK/qos.txt"; then
    pass "telemetry published at QoS 0 reaches a QoS 1 subscriber at QoS 0"
else
    fail "telemetry QoS as delivered by mosquitto: $(tr '\n' ';' <"$WORK/qos.txt")"
fi
if grep -Eq '^status (online|offline) [0-9]{4}-' "$WORK/check.txt"; then
    pass "the retained status carries client_cert_expires_at"
else
    fail "no status with client_cert_expires_at"
fi

if grep '^coldgate/v1/interop-gw/cmd/manifest/result ' "$WORK/sub.txt" | grep '"command_id":"interop-1"' | grep -q '"ok":true'; then
    pass "a load command over mosquitto is applied and answered ok"
else
    fail "no ok answer to the manifest command: $(grep 'cmd/manifest/result' "$WORK/sub.txt" || echo none)"
fi

# JSON fields come in any order: match both on the same answer line.
if grep '^coldgate/v1/interop-gw/cmd/manifest/result ' "$WORK/sub.txt" | grep '"request_id":"interop-1"' | grep -q '"duplicate":true'; then
    pass "the repeated request_id is answered as a duplicate"
else
    fail "no duplicate answer to the repeated command: $(grep 'cmd/manifest/result' "$WORK/sub.txt" || echo none)"
fi
if grep -q '^coldgate/v1/interop-gw/manifest .*"sscc":"106141412345678908"' "$WORK/sub.txt"; then
    pass "the manifest with the loaded pallet is published"
else
    fail "no manifest with the loaded pallet: $(grep -c '/manifest ' "$WORK/sub.txt" || true) manifest messages"
fi
if grep -q '^coldgate/v1/interop-gw/telemetry/rear-0 .*"coldgate.telemetry/1"' "$WORK/sub.txt"; then
    pass "telemetry arrives on telemetry/{sensor_id}"
else
    fail "no telemetry for rear-0"
fi

# 3. The ACL: the gateway's certificate cannot write under another prefix.
mosquitto_pub -h localhost -p "$PORT" --cafile "$PKI/ca.pem" --cert "$PKI/interop-gw.pem" \
    --key "$PKI/interop-gw.key" -q 1 -t 'coldgate/v1/other-gw/events/door' -m '{"forged":true}' \
    2>/dev/null || true
mosquitto_pub -h localhost -p "$PORT" --cafile "$PKI/ca.pem" --cert "$PKI/interop-gw.pem" \
    --key "$PKI/interop-gw.key" -q 1 -t 'coldgate/v1/interop-gw/acl-probe' -m '{"probe":true}' \
    2>/dev/null || true
sleep 1
if grep -q 'acl-probe' "$WORK/sub.txt" && ! grep -q 'other-gw' "$WORK/sub.txt"; then
    pass "the broker's ACL keeps the gateway's identity inside coldgate/v1/interop-gw/#"
else
    fail "ACL: probe inside the prefix seen=$(grep -c acl-probe "$WORK/sub.txt" || true), forged outside seen=$(grep -c other-gw "$WORK/sub.txt" || true)"
fi

# 4. A gateway certificate from an unknown CA is refused, and said so.
gateway_config "$WORK/rogue" "$PKI/rogue.pem" "$PKI/rogue.key"
RUST_LOG=info "$COLDGATE" run --config "$WORK/rogue/coldgate.toml" 2>"$WORK/rogue.log" &
GW=$!
PIDS+=("$GW")
sleep 4
kill -TERM "$GW" || true
wait "$GW" || true
if grep -q "broker ended the TLS handshake" "$WORK/rogue.log"; then
    pass "a client certificate from an unknown CA is refused and reported"
else
    fail "rogue certificate: $(grep -m1 'MQTT connection' "$WORK/rogue.log" || echo 'no connection error logged')"
fi

# 5. A prefix outside the ACL: mosquitto PUBACKs and drops; the gateway
#    notices its own status never comes back, publishes no event, says so.
gateway_config "$WORK/denied" "$PKI/interop-gw.pem" "$PKI/interop-gw.key" "coldgate/v1/someone-else"
RUST_LOG=info "$COLDGATE" run --config "$WORK/denied/coldgate.toml" 2>"$WORK/denied.log" &
GW=$!
PIDS+=("$GW")
sleep 13
kill -TERM "$GW" || true
wait "$GW" || true
if grep -q "did not deliver this gateway's own status back" "$WORK/denied.log" \
    && ! grep -q "someone-else/events" "$WORK/sub.txt"; then
    pass "a prefix the ACL denies is reported and no event is published into it"
else
    fail "denied prefix: $(grep -m1 -E 'own status|ERROR' "$WORK/denied.log" || echo 'nothing logged')"
fi

# 6. `uplink --test` says the same before the service is enabled.
if ! "$COLDGATE" uplink --test --timeout 3s --config "$WORK/denied/coldgate.toml" >"$WORK/uplink-denied.txt" 2>&1 \
    && grep -q "FAIL  own status: .*did not deliver it back" "$WORK/uplink-denied.txt"; then
    pass "uplink --test reports the denied prefix as no read-back"
else
    fail "uplink --test with a denied prefix: $(cat "$WORK/uplink-denied.txt")"
fi

echo "interop-mqtt: $PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
