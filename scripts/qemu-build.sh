#!/usr/bin/env bash
# CI's one ARM build: in a single cargo invocation, the unit tests of the
# sensor drivers and of the gateway (scripts/qemu-unit.sh runs them under
# qemu), and the `coldgate` binary with the demo's broker
# (scripts/qemu-demo.sh runs it), then a .deb of that binary, which
# scripts/check-deb.sh --with-demo checks (layout, conffiles, check-config
# under qemu).
#
# Why one invocation: cargo resolves features per invocation. A
# `cargo build` of the binary alone leaves out the dev-dependencies'
# features (tokio's test-util among them), so the dependencies under tokio
# would be compiled a second time for the tests; the lean binary
# (--no-default-features) would be a third build. Here the binary is built
# beside the tests with the tests' features, and nothing after this script
# compiles (qemu-unit.sh and check-deb.sh fail if cargo compiles anything).
#
# So CI's arm64 package carries the demo and tokio's test-util: it proves
# the cross package and its binary on arm64, not the lean feature set. That
# is checked on amd64 in CI (scripts/check-deb.sh builds --no-default-features)
# and per ARM target by scripts/cross, whose packages are the ones that ship.
#
# Usage: scripts/qemu-build.sh [TRIPLE] [PROFILE]   (aarch64-unknown-linux-gnu ci-cross)
# Output: target/TRIPLE/PROFILE/coldgate, target/TRIPLE/debian-ci/coldgate_*.deb
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TERM_COLOR=never
target=${1:-aarch64-unknown-linux-gnu}
profile=${2:-ci-cross}

# The toolchain (Rust target, cross gcc, qemu), no build.
bash scripts/cross --setup-only "$target"

# --tests adds the unit-test harnesses to the plain library and binary; the
# package list is the one qemu-unit.sh tests, so its resolution is the same.
cargo build --target "$target" --profile "$profile" \
    -p coldgate-sensor-drivers -p coldgate --lib --bin coldgate --tests

dir=$profile
[ "$profile" = dev ] && dir=debug
bin="target/$target/$dir/coldgate"
[ -x "$bin" ] || { echo "qemu-build: $bin was not built" >&2; exit 1; }
echo "qemu-build: $bin $(stat -c %s "$bin") bytes (with demo and test-util: not the shipped binary)"

scripts/man-and-completions.sh "$bin"
scripts/strip-for "$target" "$bin"
out="target/$target/debian-ci"
rm -rf "$out"
cargo deb -p coldgate --no-build --target "$target" --profile "$profile" --output "$out/"
ls -l "$out"/coldgate_*.deb
