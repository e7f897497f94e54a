#!/usr/bin/env bash
# The unit tests of the sensor drivers and of the gateway's domain modules,
# built for an ARM target and run under qemu-user (the cargo `runner` in
# .cargo/config.toml). What they prove is that the code is right on a
# 64-bit or 32-bit ARM (alignment, usize, atomics, float formatting, redb's
# files), not how fast it is there.
#
# Usage: scripts/qemu-unit.sh [TRIPLE] [PROFILE]
#   default aarch64-unknown-linux-gnu, profile ci-cross (the one CI's cross
#   build already compiled the dependencies with).
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/qemu.sh
target=${1:-aarch64-unknown-linux-gnu}
profile=${2:-ci-cross}
qemu_runner "$target"

# The domain: what decides, records and judges, and nothing that needs a
# network peer. Each must run at least one test, so a renamed module fails
# here instead of silently running nothing.
domain=(excursion manifest audit event clock config store)

fail() { echo "qemu-unit: FAIL: $*" >&2; exit 1; }
out=$(mktemp)
trap 'rm -f "$out"' EXIT

echo "qemu-unit: coldgate-sensor-drivers on $target ($profile)"
cargo test --target "$target" --profile "$profile" -p coldgate-sensor-drivers --lib 2>&1 | tee "$out"
grep -q '^test result: ok\. [1-9]' "$out" || fail "no sensor-driver test ran"

filters=()
for m in "${domain[@]}"; do filters+=("$m::"); done
echo "qemu-unit: coldgate --lib ${filters[*]} on $target ($profile)"
cargo test --target "$target" --profile "$profile" -p coldgate --lib -- "${filters[@]}" 2>&1 | tee "$out"
for m in "${domain[@]}"; do
    n=$(grep -c "^test $m::.* \.\.\. ok$" "$out" || true)
    [ "$n" -gt 0 ] || fail "no test of the module $m ran (renamed? update scripts/qemu-unit.sh)"
    printf 'qemu-unit: %-10s %4d tests passed\n' "$m" "$n"
done
echo "qemu-unit: OK"
