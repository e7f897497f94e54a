#!/usr/bin/env bash
# The fleet benchmark (docs/performance.md, "Fleet"): nats-server with its MQTT
# listener over mutual TLS, a throwaway PostgreSQL 15, W coldgate-fleet workers
# and the load generator (N gateways, each a real MQTT session over TLS).
# Measures publish -> committed in PostgreSQL: events/s, p50/p99 latency, CPU and
# peak RSS per worker, PostgreSQL bytes per event.
#
#   scripts/bench-fleet.sh [GATEWAYS=1000] [EVENTS_PER_GATEWAY=30] [WORKERS=2] [RATE=0] [PALLETS=0] [SERIALS=100]
#
# PALLETS > 0 adds the custody workload (issue 18, item 5): each gateway first
# publishes its manifest (PALLETS pallets of SERIALS serials) and one load
# event per pallet, then its events with excursions among them. The events
# counted are then the loads, the doors and the excursions; the run also
# waits for every stay (PALLETS x (SERIALS + 1) per gateway) and reports when
# custody had them all.
#
# Uses target/release binaries (built if missing: cargo build --release -p
# coldgate-fleet). RATE=0 publishes as fast as the sessions are acknowledged.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000}; E=${2:-30}; W=${3:-2}; RATE=${4:-0}; P=${5:-0}; S=${6:-100}
T=${BIN_DIR:-${CARGO_TARGET_DIR:-target}/release}
[ -x "$T/coldgate-fleet" ] && [ -x "$T/coldgate-fleet-loadgen" ] \
    || cargo build --release -p coldgate-fleet --bin coldgate-fleet --bin coldgate-fleet-loadgen
command -v nats-server >/dev/null || { echo "bench-fleet: FATAL: no nats-server (apt-get install nats-server)" >&2; exit 1; }
PGBIN=/usr/lib/postgresql/15/bin
[ -x "$PGBIN/postgres" ] || { echo "bench-fleet: FATAL: no PostgreSQL 15 (apt-get install postgresql-15)" >&2; exit 1; }

WORK=$(mktemp -d); chmod 755 "$WORK"
PIDS=()
# Bounded: stopped by a timeout, PostgreSQL's default (smart) shutdown waited
# for a backend still inserting stays for a worker already gone, so the
# script hung here or left PostgreSQL behind. The postmaster (its pid from
# postmaster.pid: `$!` is the subshell of `as_pg`, not PostgreSQL) gets
# SIGINT, a fast shutdown that ends its backends; whatever still runs after
# 10 s is killed.
cleanup() {
    local pg=
    [ -f "$WORK/pg/postmaster.pid" ] && pg=$(head -1 "$WORK/pg/postmaster.pid")
    [ -n "$pg" ] && kill -INT "$pg" 2>/dev/null || true
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for _ in $(seq 50); do
        alive=0
        for p in "${PIDS[@]}" $pg; do kill -0 "$p" 2>/dev/null && alive=1; done
        [ "$alive" = 0 ] && break
        sleep 0.2
    done
    for p in "${PIDS[@]}" $pg; do kill -KILL "$p" 2>/dev/null || true; done
    wait 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT
# A signal ends the script through `exit`, so that the EXIT trap runs: without
# these, `timeout`'s SIGTERM ended bash and left PostgreSQL and the workers.
trap 'exit 143' TERM
trap 'exit 130' INT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
as_pg() { if [ "$(id -u)" = 0 ]; then setpriv --reuid=postgres --regid=postgres --init-groups "$@"; else "$@"; fi; }

# Certificates (X.509 v3: rustls refuses v1).
cd "$WORK"
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 2 -subj /CN=bench-ca \
    -keyout ca.key -out ca.pem 2>/dev/null
for who in server client; do
    openssl req -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -subj /CN=$who -keyout $who.key -out $who.csr 2>/dev/null
    if [ $who = server ]; then ext="subjectAltName=IP:127.0.0.1,DNS:localhost"; else ext="extendedKeyUsage=clientAuth"; fi
    printf '%s\n' "$ext" > $who.ext
    openssl x509 -req -in $who.csr -CA ca.pem -CAkey ca.key -CAcreateserial -days 2 -extfile $who.ext -out $who.pem 2>/dev/null
done
cd - >/dev/null

PGPORT=$(port); NPORT=$(port); MPORT=$(port)
mkdir "$WORK/pg"; [ "$(id -u)" = 0 ] && chown postgres:postgres "$WORK/pg"
as_pg "$PGBIN/initdb" -D "$WORK/pg" -A trust -U fleet --no-sync >/dev/null
as_pg "$PGBIN/postgres" -D "$WORK/pg" -p "$PGPORT" -k "$WORK/pg" -c listen_addresses=127.0.0.1 \
    -c max_connections=300 -c shared_buffers=256MB ${PG_OPTS:-} >"$WORK/pg.log" 2>&1 &
PIDS+=($!)

cat > "$WORK/fleet.toml" <<TOML
[nats]
url = "nats://127.0.0.1:$NPORT"
partitions = 16
[postgres]
url = "host=127.0.0.1 port=$PGPORT user=fleet dbname=postgres"
[worker]
batch = 1000
batch_wait = "50ms"
[http]
listen = "127.0.0.1:0"
TOML
{
    echo "server_name: bench"
    echo "listen: \"127.0.0.1:$NPORT\""
    echo "max_payload: 1MB"
    echo "jetstream { store_dir: \"$WORK/js\" }"
    echo "mqtt { listen: \"127.0.0.1:$MPORT\", max_ack_pending: 1000,"
    echo "  tls { cert_file: \"$WORK/server.pem\", key_file: \"$WORK/server.key\", ca_file: \"$WORK/ca.pem\", verify: true } }"
    "$T/coldgate-fleet" nats-mapping --config "$WORK/fleet.toml"
} > "$WORK/nats.conf"
nats-server -c "$WORK/nats.conf" >"$WORK/nats.log" 2>&1 &
PIDS+=($!)
for i in $(seq 100); do
    "$PGBIN/pg_isready" -q -h 127.0.0.1 -p "$PGPORT" && (echo >"/dev/tcp/127.0.0.1/$MPORT") 2>/dev/null && break
    sleep 0.2
done
"$T/coldgate-fleet" migrate --config "$WORK/fleet.toml" >/dev/null

WPIDS=()
for w in $(seq "$W"); do
    sed "s/^listen = .*/listen = \"127.0.0.1:$(port)\"/; s/^\[worker\]/[worker]\nname = \"w$w\"/" "$WORK/fleet.toml" > "$WORK/fleet-$w.toml"
    RUST_LOG=warn "$T/coldgate-fleet" run --config "$WORK/fleet-$w.toml" >"$WORK/worker-$w.log" 2>&1 &
    PIDS+=($!); WPIDS+=($!)
done
sleep 4   # leases settle

psql_() { psql -X -A -t -h 127.0.0.1 -p "$PGPORT" -U fleet -d postgres -c "$1"; }
STARTED=$(date +%s.%N)
"$T/coldgate-fleet-loadgen" --port "$MPORT" --ca "$WORK/ca.pem" --cert "$WORK/client.pem" --key "$WORK/client.key" \
    --gateways "$N" --events "$E" --rate "$RATE" --id-prefix b --pallets "$P" --serials "$S" | tee "$WORK/loadgen.out"
# The event messages published (loads and parts of split events included).
TOTAL=$(sed -n 's/.*event_messages=\([0-9]*\).*/\1/p' "$WORK/loadgen.out")
TOTAL=${TOTAL:-$((N * E))}
for i in $(seq 1200); do
    [ "$(psql_ 'SELECT count(*) FROM events')" -ge "$TOTAL" ] && break
    sleep 0.5
done
# The ingest figures as soon as every event is in: with custody they do not
# wait for the stays, which come later (and a run stopped while custody is
# still writing has them).
psql_ "SELECT 'events_in_after_s=' || round(extract(epoch FROM max(committed_at) - min(at))::numeric, 1) ||
              ' committed=' || count(*) ||
              ' events_per_s=' || round(count(*) / extract(epoch FROM max(committed_at) - min(at))) ||
              ' p50_ms=' || round(1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY committed_at - at))) ||
              ' p99_ms=' || round(1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY committed_at - at)))
       FROM events"
if [ "$P" -gt 0 ]; then
    STAYS=$((N * P * (S + 1)))
    for i in $(seq 3600); do
        [ "$(psql_ 'SELECT count(*) FROM stays')" -ge "$STAYS" ] && break
        sleep 0.5
    done
    echo "custody_done_after_s=$(echo "$(date +%s.%N) - $STARTED" | bc)"
    psql_ "SELECT 'custody_rows=' || (SELECT count(*) FROM stays) || ' stays (' || (SELECT count(*) FROM stays WHERE conflict) ||
                  ' conflicting) pallet_lots=' || (SELECT count(*) FROM pallet_lots) ||
                  ' lot_excursions=' || (SELECT count(*) FROM lot_excursions) ||
                  ' alerts=' || (SELECT count(*) FROM alerts) ||
                  ' quarantined=' || (SELECT count(*) FROM quarantine) ||
                  ' custody_bytes=' || (pg_total_relation_size('stays') + pg_total_relation_size('pallet_lots')
                                        + pg_total_relation_size('manifest_seen') + pg_total_relation_size('lot_excursions'))"
fi
echo "gateways=$N events=$TOTAL workers=$W pallets=$P serials=$S"
psql_ "SELECT 'committed=' || count(*) ||
              ' events_per_s=' || round(count(*) / extract(epoch FROM max(committed_at) - min(at))) ||
              ' p50_ms=' || round(1000 * extract(epoch FROM percentile_cont(0.5) WITHIN GROUP (ORDER BY committed_at - at))) ||
              ' p99_ms=' || round(1000 * extract(epoch FROM percentile_cont(0.99) WITHIN GROUP (ORDER BY committed_at - at))) ||
              ' bytes_per_event=' || round(pg_total_relation_size('events')::numeric / count(*))
       FROM events"
psql_ "SELECT 'publish_span_ms=' || round(1000 * extract(epoch FROM max(at) - min(at))) ||
              ' first_commit_after_ms=' || round(1000 * extract(epoch FROM min(committed_at) - min(at))) ||
              ' commit_span_ms=' || round(1000 * extract(epoch FROM max(committed_at) - min(committed_at)))
       FROM events"
psql_ "SELECT 'gaps=' || count(*) FROM gaps"
tick=$(getconf CLK_TCK)
for p in "${WPIDS[@]}"; do
    read -r ut st < <(awk '{print $14, $15}' "/proc/$p/stat")
    echo "worker pid=$p cpu_ms=$(( (ut + st) * 1000 / tick )) peak_rss_kib=$(awk '/VmHWM/ {print $2}' "/proc/$p/status")"
done
