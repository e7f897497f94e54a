#!/usr/bin/env bash
# Generates the man pages and shell completions the .deb ships, from the
# binary itself (`coldgate man`, `coldgate completions`), into assets/ beside
# the binary (target/release/assets/), where [package.metadata.deb] assets
# expect them: cargo-deb maps target/release/ to the profile and target it
# packages. Run after building the binary and before `cargo deb --no-build`
# (scripts/check-deb.sh does).
# Usage: scripts/man-and-completions.sh path/to/coldgate
set -euo pipefail
cd "$(dirname "$0")/.."
bin=${1:?"usage: $0 path/to/coldgate"}
out=$(dirname "$bin")/assets
rm -rf "$out/man" "$out/completions"
mkdir -p "$out/man" "$out/completions"
"$bin" man --dir "$out/man"
# Debian keeps man pages compressed; -n leaves no time stamp in the file.
gzip -9n "$out"/man/*.1
"$bin" completions bash >"$out/completions/coldgate"
"$bin" completions zsh >"$out/completions/_coldgate"
"$bin" completions fish >"$out/completions/coldgate.fish"
