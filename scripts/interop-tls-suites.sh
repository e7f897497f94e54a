#!/usr/bin/env bash
# Which cipher suite the gateway and its broker settle on, with the gateway
# offering ChaCha20-Poly1305 first (as on a Pi 4, no AES instructions) and
# AES-GCM first (x86-64, a Pi 5). COLDGATE_TLS_PREFER stands in for the CPU
# detection. The suite is read from the peer's ServerHello on the loopback
# interface (a raw socket; needs root). Peers:
#  - Debian's mosquitto 2.0 as installed: it chooses by its own order (OpenSSL
#    server preference), AES-256-GCM whatever the gateway offers first;
#  - mosquitto with `ciphers_tls1.3` putting ChaCha first: ChaCha for all;
#  - `openssl s_server`, which honours the client's order (as OpenSSL does
#    unless told otherwise, and rustls servers do): the gateway's order wins.
#
# Usage: scripts/interop-tls-suites.sh [path/to/coldgate]  (default: debug build)
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
die() { echo "interop-tls-suites: FATAL: $*" >&2; exit 1; }
[ "$(id -u)" = 0 ] || die "needs root (a raw socket on lo reads the ServerHello)"
for tool in mosquitto openssl python3; do
    command -v "$tool" >/dev/null 2>&1 || die "$tool is missing"
done
# shellcheck source=scripts/lib/pki.sh
. scripts/lib/pki.sh
pki_init "$WORK/pki" "coldgate suites CA"
pki_issue server localhost "$PKI_EC" "$PKI_SERVER_EXT"
pki_publish

COLDGATE=${1:-}
if [ -z "$COLDGATE" ]; then
    cargo build -q -p coldgate --bin coldgate || die "cannot build coldgate"
    COLDGATE="$ROOT/target/debug/coldgate"
fi

# The cipher suite of the first ServerHello sent from PORT, within SECS.
cat >"$WORK/hello.py" <<'PY'
import socket, struct, sys, time
port, secs = int(sys.argv[1]), float(sys.argv[2])
names = {0x1301: "TLS13_AES_128_GCM_SHA256", 0x1302: "TLS13_AES_256_GCM_SHA384",
         0x1303: "TLS13_CHACHA20_POLY1305_SHA256", 0xC02B: "ECDHE_ECDSA_AES_128_GCM_SHA256",
         0xC02C: "ECDHE_ECDSA_AES_256_GCM_SHA384", 0xCCA9: "ECDHE_ECDSA_CHACHA20_POLY1305_SHA256"}
s = socket.socket(socket.AF_PACKET, socket.SOCK_RAW, socket.ntohs(3))
s.bind(("lo", 0))
s.settimeout(0.5)
print("ready", flush=True)
end = time.time() + secs
while time.time() < end:
    try:
        pkt = s.recv(65535)
    except socket.timeout:
        continue
    kind = struct.unpack("!H", pkt[12:14])[0]
    ip = pkt[14:]
    if kind == 0x0800 and ip[9] == 6:
        tcp = ip[(ip[0] & 0xF) * 4:]
    elif kind == 0x86DD and ip[6] == 6:
        tcp = ip[40:]
    else:
        continue
    if struct.unpack("!H", tcp[0:2])[0] != port:
        continue
    data = tcp[(tcp[12] >> 4) * 4:]
    # TLS record (0x16 handshake) holding a ServerHello (type 2): version 2,
    # random 32, session id (length-prefixed), then the cipher suite.
    if len(data) > 45 and data[0] == 0x16 and data[5] == 0x02:
        hello = data[9:]
        sid = hello[34]
        suite = struct.unpack("!H", hello[35 + sid:37 + sid])[0]
        print(names.get(suite, hex(suite)), flush=True)
        sys.exit(0)
print("none", flush=True)
PY

free_port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }

# negotiate PEER PREFER: prints the suite the peer chose.
negotiate() {
    local peer="$1" prefer="$2" port dir
    port=$(free_port)
    dir="$WORK/$peer-$prefer"
    mkdir -p "$dir"
    case "$peer" in
        mosquitto|mosquitto-chacha)
            cat >"$dir/mosquitto.conf" <<CONF
per_listener_settings false
allow_anonymous true
persistence false
log_dest stderr
log_type error
listener $port 127.0.0.1
cafile $PKI/ca.pem
certfile $PKI/server.pem
keyfile $PKI/server.key
CONF
            if [ "$peer" = mosquitto-chacha ]; then
                echo "ciphers_tls1.3 TLS_CHACHA20_POLY1305_SHA256:TLS_AES_256_GCM_SHA384:TLS_AES_128_GCM_SHA256" \
                    >>"$dir/mosquitto.conf"
            fi
            chmod 755 "$dir"; chmod 644 "$dir/mosquitto.conf"
            mosquitto -c "$dir/mosquitto.conf" >"$dir/peer.log" 2>&1 & ;;
        openssl)
            openssl s_server -quiet -accept "127.0.0.1:$port" -cert "$PKI/server.pem" \
                -key "$PKI/server.key" >"$dir/peer.log" 2>&1 </dev/null & ;;
    esac
    local broker=$!
    PIDS+=("$broker")
    for _ in $(seq 1 50); do (exec 3<>"/dev/tcp/127.0.0.1/$port") 2>/dev/null && break; sleep 0.1; done
    cat >"$dir/coldgate.toml" <<CONF
gateway_id = "suites-gw"
[storage]
path = "$dir/coldgate.redb"
[mqtt]
host = "localhost"
port = $port
[mqtt.tls]
ca_file = "$PKI/ca.pem"
[[profiles]]
id = "refrigerated"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "refrigerated"
[sim]
speed = 60.0
[[sensors]]
id = "rear-0"
zone = "rear"
kind = "sim"
CONF
    python3 "$WORK/hello.py" "$port" 20 >"$dir/hello.out" &
    local sniffer=$!
    PIDS+=("$sniffer")
    until grep -q ready "$dir/hello.out" 2>/dev/null; do sleep 0.1; done
    COLDGATE_TLS_PREFER="$prefer" "$COLDGATE" run --config "$dir/coldgate.toml" >"$dir/gw.log" 2>&1 &
    local gw=$!
    PIDS+=("$gw")
    wait "$sniffer" || true
    kill "$gw" "$broker" 2>/dev/null || true
    wait "$gw" "$broker" 2>/dev/null || true
    tail -n 1 "$dir/hello.out"
}

status=0
# expect PEER PREFER SUITE
expect() {
    local got
    got=$(negotiate "$1" "$2")
    if [ "$got" = "$3" ]; then
        echo "  ok   $1, gateway offers $2 first: $got"
    else
        echo "  FAIL $1, gateway offers $2 first: $got (expected $3)"
        status=1
    fi
}
expect mosquitto chacha TLS13_AES_256_GCM_SHA384
expect mosquitto aes TLS13_AES_256_GCM_SHA384
expect mosquitto-chacha chacha TLS13_CHACHA20_POLY1305_SHA256
expect mosquitto-chacha aes TLS13_CHACHA20_POLY1305_SHA256
expect openssl chacha TLS13_CHACHA20_POLY1305_SHA256
expect openssl aes TLS13_AES_256_GCM_SHA384
exit "$status"
