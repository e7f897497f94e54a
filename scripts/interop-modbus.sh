#!/usr/bin/env bash
# Interop check of our Modbus master against an independent implementation
# (pymodbus), over TCP and over RTU on a socat pseudo-terminal pair.
#
#   scripts/interop-modbus.sh            # from the workspace root
#
# Installs socat (apt-get) and pymodbus + pyserial (pip) when missing and fails
# loudly if it cannot. Reads the served values with
# sensor-drivers/examples/modbus_read.rs and compares them with what
# scripts/modbus_server.py serves. Prints "N passed, M failed"; exits non-zero
# on any failure.
#
# pymodbus quirks (3.x, checked with 3.16.1):
# - Its data blocks are addressed one above the wire address (a value for wire
#   address A sits at block index A+1); modbus_server.py compensates (OFFSET).
# - A request to a unit id it does not serve gets exception 0x04
#   (ServerDeviceFailure); a real RS-485 unit would stay silent instead.
# - 3.10 renamed slave -> device (ModbusSlaveContext -> ModbusDeviceContext,
#   slaves= -> devices=); 3.16 warns that these are deprecated (v4 removes them).
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

die() { echo "interop-modbus: FATAL: $*" >&2; exit 1; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then SUDO="sudo"; fi

# ---- prerequisites: install if missing, fail loudly if not possible
if ! command -v socat >/dev/null 2>&1; then
    echo "interop-modbus: installing socat"
    $SUDO apt-get update -qq || die "apt-get update failed; cannot install socat"
    $SUDO apt-get install -y -qq socat || die "apt-get install socat failed"
fi
command -v socat >/dev/null 2>&1 || die "socat is still missing"
command -v python3 >/dev/null 2>&1 || die "python3 is missing"
if ! python3 -c 'import pymodbus, serial' 2>/dev/null; then
    echo "interop-modbus: installing pymodbus and pyserial"
    python3 -m pip install -q "pymodbus==3.16.1" pyserial \
        || python3 -m pip install -q --break-system-packages "pymodbus==3.16.1" pyserial \
        || die "pip install pymodbus pyserial failed"
fi
python3 -c 'import pymodbus, serial' || die "pymodbus/pyserial still not importable"
echo "interop-modbus: pymodbus $(python3 -c 'import pymodbus; print(pymodbus.__version__)'), $(socat -V | sed -n 2p)"

# ---- our side
cargo build -q -p coldgate-sensor-drivers --example modbus_read || die "cannot build modbus_read"
TARGET_DIR="$(cargo metadata --format-version 1 --no-deps | python3 -c 'import json,sys; print(json.load(sys.stdin)["target_directory"])')"
READ="$TARGET_DIR/debug/examples/modbus_read"
[ -x "$READ" ] || die "no $READ"
cargo build -q -p coldgate --bin coldgate || die "cannot build coldgate"
COLDGATE="$TARGET_DIR/debug/coldgate"

# gateway_run LABEL MODBUS_TOML: the real daemon polls the peer for a few
# seconds; its exported readings must be exactly the served values.
gateway_run() {
    local label="$1" section="$2" dir="$WORK/gw-$1"
    mkdir -p "$dir"
    cat >"$dir/coldgate.toml" <<EOF
gateway_id = "interop-$label"
[storage]
path = "$dir/coldgate.redb"
[ingest]
batch_interval = "200ms"
[mqtt]
enabled = false
[[profiles]]
id = "refrigerated"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "wired-1"
zone = "rear"
kind = "modbus"
quantities = ["temperature", "humidity"]
[[sensors]]
id = "wired-2"
zone = "rear"
kind = "modbus"
quantities = ["temperature", "humidity"]
$section
EOF
    "$COLDGATE" check-config --config "$dir/coldgate.toml" >/dev/null 2>"$WORK/err" \
        || { fail "$label coldgate run" "config refused: $(cat "$WORK/err")"; return; }
    "$COLDGATE" run --config "$dir/coldgate.toml" 2>"$dir/run.log" &
    local pid=$!
    sleep 4
    kill -TERM "$pid"
    wait "$pid" || { fail "$label coldgate run" "exit status $?: $(tail -5 "$dir/run.log")"; return; }
    "$COLDGATE" export --db "$dir/coldgate.redb" --format jsonl >"$dir/readings.jsonl" 2>"$WORK/err" \
        || { fail "$label coldgate run" "export failed: $(cat "$WORK/err")"; return; }
    if python3 - "$dir/readings.jsonl" <<'PY'
import json, sys
want = {("wired-1", "temperature"): 21.5, ("wired-1", "humidity"): 45.5,
        ("wired-2", "temperature"): 4.5, ("wired-2", "humidity"): 55.25}
rows = [json.loads(l) for l in open(sys.argv[1]) if l.strip()]
seen = {}
for r in rows:
    seen.setdefault((r["sensor_id"], r["quantity"]), []).append(r["value"])
ok = set(seen) == set(want) and all(
    len(v) >= 2 and all(abs(x - want[k]) < 1e-6 for x in v) for k, v in seen.items())
if not ok:
    print(f"  expected every reading to be {want}\n  got {seen}", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
    then pass "$label coldgate run: exported readings are the served values"
    else fail "$label coldgate run" "readings differ (see above)"; fi
}

devices_toml() { # devices_toml KIND: the two served units under [[modbus.KIND]]
    cat <<EOF
[[modbus.$1.devices]]
sensor = "wired-1"
unit = 1
profile = "xy-md02"
poll_interval = "500ms"
[[modbus.$1.devices]]
sensor = "wired-2"
unit = 2
profile = "vaisala-f32"
poll_interval = "500ms"
EOF
}

PASSED=0
FAILED=0
pass() { echo "PASS $1"; PASSED=$((PASSED + 1)); }
fail() { echo "FAIL $1: $2"; FAILED=$((FAILED + 1)); }

# expect_values NAME EXPECTED_JSON_LINES -- ARGS...: runs modbus_read and
# compares each output line's unit/quantity/value (or raw) with the expectation.
expect_values() {
    local name="$1" expected="$2"; shift 3
    local out
    if ! out="$("$READ" "$@" 2>"$WORK/err")"; then
        fail "$name" "modbus_read failed: $(cat "$WORK/err")"
        return
    fi
    if python3 - "$expected" "$out" <<'PY'
import json, sys
want = [json.loads(l) for l in sys.argv[1].splitlines() if l.strip()]
got = [json.loads(l) for l in sys.argv[2].splitlines() if l.strip()]
def same(a, b):
    if isinstance(a, (int, float)) and isinstance(b, (int, float)):
        return abs(a - b) < 1e-6
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(same(x, y) for x, y in zip(a, b))
    return a == b
ok = len(want) == len(got) and all(all(same(w[k], g.get(k)) for k in w) for w, g in zip(want, got))
if not ok:
    print(f"  expected {want}\n  got      {got}", file=sys.stderr)
sys.exit(0 if ok else 1)
PY
    then pass "$name"; else fail "$name" "values differ (see above)"; fi
}

# expect_error NAME WORD -- ARGS...: modbus_read must fail with WORD in its message.
expect_error() {
    local name="$1" word="$2"; shift 3
    if "$READ" "$@" >/dev/null 2>"$WORK/err"; then
        fail "$name" "succeeded, expected an error with $word"
    elif grep -q "$word" "$WORK/err"; then
        pass "$name"
    else
        fail "$name" "error without $word: $(cat "$WORK/err")"
    fi
}

run_checks() {
    local label="$1"; shift
    local target=("$@")
    expect_values "$label xy-md02 unit 1" \
        '{"unit":1,"quantity":"temperature","value":21.5}
         {"unit":1,"quantity":"humidity","value":45.5}' \
        -- "${target[@]}" --unit 1 --profile xy-md02
    expect_values "$label vaisala-f32 unit 2 (low word first)" \
        '{"unit":2,"quantity":"humidity","value":55.25}
         {"unit":2,"quantity":"temperature","value":4.5}' \
        -- "${target[@]}" --unit 2 --profile vaisala-f32
    expect_values "$label raw input registers 1-2 of unit 1" \
        '{"unit":1,"raw":[215,455],"values":[215,455]}' \
        -- "${target[@]}" --unit 1 --function input --address 1 --count 2 --type i16
    expect_values "$label raw f32 little word order of unit 2" \
        '{"unit":2,"values":[55.25,4.5]}' \
        -- "${target[@]}" --unit 2 --function holding --address 0 --count 4 --type f32 --word-order little
    expect_error "$label exception for a missing register is named" "IllegalDataAddress" \
        -- "${target[@]}" --unit 1 --function holding --address 100 --count 1
}

wait_for() { # wait_for SECONDS COMMAND...
    local deadline=$((SECONDS + $1)); shift
    until "$@" 2>/dev/null; do
        [ "$SECONDS" -lt "$deadline" ] || return 1
        sleep 0.2
    done
}

# ---- TCP
PORT="$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')"
python3 scripts/modbus_server.py tcp "$PORT" >"$WORK/tcp.log" 2>&1 &
PIDS+=($!)
wait_for 15 python3 -c "import socket; socket.create_connection(('127.0.0.1', $PORT), 1)" \
    || die "pymodbus TCP server did not start: $(cat "$WORK/tcp.log")"
run_checks "tcp" --tcp "127.0.0.1:$PORT" --timeout-ms 1000
gateway_run tcp "[[modbus.tcp]]
host = \"127.0.0.1\"
port = $PORT
$(devices_toml tcp)"

# ---- RTU over a socat pty pair
socat pty,raw,echo=0,link="$WORK/ttyS-server" pty,raw,echo=0,link="$WORK/ttyS-client" 2>"$WORK/socat.log" &
PIDS+=($!)
wait_for 10 test -e "$WORK/ttyS-client" || die "socat did not create the pty pair: $(cat "$WORK/socat.log")"
python3 scripts/modbus_server.py rtu "$WORK/ttyS-server" 9600 >"$WORK/rtu.log" 2>&1 &
PIDS+=($!)
# The serial server has no port to poll: wait until it answers.
wait_for 15 "$READ" --serial "$WORK/ttyS-client" --baud 9600 --unit 1 --function input --address 1 --count 1 --timeout-ms 300 >/dev/null \
    || die "pymodbus RTU server does not answer: $(cat "$WORK/rtu.log")"
run_checks "rtu" --serial "$WORK/ttyS-client" --baud 9600 --parity N --stop-bits 1 --timeout-ms 1000
gateway_run rtu "[[modbus.rtu]]
device = \"$WORK/ttyS-client\"
baud = 9600
$(devices_toml rtu)"

echo "$PASSED passed, $FAILED failed"
[ "$FAILED" -eq 0 ]
