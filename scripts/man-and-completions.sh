#!/usr/bin/env bash
# Generates the man pages and shell completions the .deb ships, from the
# binary itself (`coldgate man`, `coldgate completions`), into assets/ beside
# the binary (target/release/assets/, target/<triple>/<profile>/assets/),
# where [package.metadata.deb] assets expect them: cargo-deb maps
# target/release/ to the profile and target it packages. Run after building
# the binary and before `cargo deb --no-build` (scripts/check-deb.sh and
# scripts/cross do). An arm64 or armhf binary is run under qemu-user, so the
# pages are the packaged binary's own, whatever its architecture.
# Usage: scripts/man-and-completions.sh path/to/coldgate
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/qemu.sh
bin=${1:?"usage: $0 path/to/coldgate"}
case "$(readelf -h "$bin" | sed -n 's/^ *Machine: *//p')" in
    AArch64) qemu_runner arm64 ;;
    ARM) qemu_runner armhf ;;
    *) run=() ;;
esac
out=$(dirname "$bin")/assets
rm -rf "$out/man" "$out/completions"
mkdir -p "$out/man" "$out/completions"
"${run[@]}" "$bin" man --dir "$out/man"
# Debian keeps man pages compressed; -n leaves no time stamp in the file.
gzip -9n "$out"/man/*.1
for shell in bash zsh fish; do
    file=coldgate
    [ "$shell" = zsh ] && file=_coldgate
    [ "$shell" = fish ] && file=coldgate.fish
    "${run[@]}" "$bin" completions "$shell" >"$out/completions/$file"
done
