#!/usr/bin/env bash
# The unit tests of the sensor drivers and of the gateway's domain modules,
# built for an ARM target and run under qemu-user (the cargo `runner` in
# .cargo/config.toml). What they prove is that the code is right on a
# 64-bit or 32-bit ARM (alignment, usize, atomics, float formatting, redb's
# files), not how fast it is there.
#
# Usage: scripts/qemu-unit.sh [TRIPLE] [PROFILE]
#   default aarch64-unknown-linux-gnu, profile ci-cross.
# In CI, scripts/qemu-build.sh has built the tests already: then nothing is
# compiled here (QEMU_UNIT_NO_BUILD=1 makes a compile an error, so a change
# that splits the shared build shows instead of costing CI minutes).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/qemu.sh
export CARGO_TERM_COLOR=never
target=${1:-aarch64-unknown-linux-gnu}
profile=${2:-ci-cross}
qemu_runner "$target"

# The domain: what decides, records and judges, and nothing that needs a
# network peer. Each must run at least one test, so a renamed module fails
# here instead of silently running nothing.
domain=(excursion manifest audit event clock config store)

fail() { echo "qemu-unit: FAIL: $*" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

# The same packages and targets as qemu-build.sh's tests, so the same
# feature resolution: the test executables' paths, built if they are not.
cargo test --no-run --message-format=json --target "$target" --profile "$profile" \
    -p coldgate-sensor-drivers -p coldgate --lib >"$tmp/build.json" 2>"$tmp/build.err" \
    || { cat "$tmp/build.err"; fail "the unit tests do not build"; }
if grep -q '^ *Compiling ' "$tmp/build.err"; then
    grep '^ *Compiling ' "$tmp/build.err"
    [ "${QEMU_UNIT_NO_BUILD:-0}" = 1 ] && fail "cargo compiled the crates above: the shared build (scripts/qemu-build.sh) did not cover them"
fi
exe() {
    python3 -c '
import json, sys
for line in open(sys.argv[1]):
    m = json.loads(line)
    if m.get("reason") == "compiler-artifact" and m["target"]["name"] == sys.argv[2] and m.get("executable"):
        print(m["executable"])' "$tmp/build.json" "$1"
}
drivers=$(exe coldgate_sensor_drivers)
gateway=$(exe coldgate)
[ -n "$drivers" ] && [ -n "$gateway" ] || fail "no test executable in cargo's output"

echo "qemu-unit: coldgate-sensor-drivers on $target ($profile)"
# From the package's directory, as cargo test runs them.
(cd sensor-drivers && "${run[@]}" "$drivers") 2>&1 | tee "$tmp/drivers.out"
grep -q '^test result: ok\. [1-9]' "$tmp/drivers.out" || fail "no sensor-driver test ran"

filters=()
for m in "${domain[@]}"; do filters+=("$m::"); done
echo "qemu-unit: coldgate --lib ${filters[*]} on $target ($profile)"
(cd gateway && "${run[@]}" "$gateway" "${filters[@]}") 2>&1 | tee "$tmp/gateway.out"
grep -q '^test result: ok\.' "$tmp/gateway.out" || fail "the gateway's tests did not pass"
for m in "${domain[@]}"; do
    n=$(grep -c "^test $m::.* \.\.\. ok$" "$tmp/gateway.out" || true)
    [ "$n" -gt 0 ] || fail "no test of the module $m ran (renamed? update scripts/qemu-unit.sh)"
    printf 'qemu-unit: %-10s %4d tests passed\n' "$m" "$n"
done
echo "qemu-unit: OK"
