#!/usr/bin/env bash
# Builds the Debian package with cargo-deb and checks it without installing:
#  - every file lands where systemd/coldgate.service and docs/install.md say;
#  - /etc/coldgate/coldgate.toml is a conffile, a template the packaged binary
#    refuses until its example sensors are filled in;
#  - the maintainer scripts create the user before handing it the config;
#  - the man pages and shell completions are in it;
#  - the binary is the lean daemon (no embedded broker, `coldgate demo` says
#    so) for the package's architecture.
# An arm64 or armhf package's binary is run under qemu-user.
# Usage: scripts/check-deb.sh                                 # amd64: build, check
#        scripts/check-deb.sh --target TRIPLE [--profile P]   # build with scripts/cross, check
#        scripts/check-deb.sh --no-build path/to/coldgate.deb ...
#        scripts/check-deb.sh --with-demo --no-build path/to/coldgate.deb
# --with-demo: the binary carries the demo (CI's shared arm64 build,
# scripts/qemu-build.sh); every check but the lean one.
set -euo pipefail
cd "$(dirname "$0")/.."
. scripts/lib/qemu.sh

fail() { echo "check-deb: $*" >&2; exit 1; }

debs=()
with_demo=0
if [ "${1:-}" = "--with-demo" ]; then with_demo=1; shift; fi
case "${1:-}" in
    --no-build)
        shift
        [ $# -gt 0 ] || fail "--no-build needs the .deb path(s)"
        debs=("$@") ;;
    --target)
        target=${2:?"--target needs a triple"}
        profile=release
        [ "${3:-}" = "--profile" ] && profile=${4:?"--profile needs a name"}
        bash scripts/cross --profile "$profile" "$target"
        debs=("target/$target/debian/"coldgate_*.deb) ;;
    "")
        command -v cargo-deb >/dev/null 2>&1 || cargo install cargo-deb --locked
        # The package ships the lean daemon, as the ARM ones do.
        cargo build --release -p coldgate --bin coldgate --no-default-features
        scripts/man-and-completions.sh target/release/coldgate
        scripts/strip-for host target/release/coldgate
        # cargo-deb prints the path of the package it wrote as its last line.
        debs=("$(cargo deb -p coldgate --no-build --no-default-features | tail -n 1)") ;;
    *) fail "unknown argument $1" ;;
esac
if [ "${#debs[@]}" -gt 1 ]; then
    for d in "${debs[@]}"; do
        if [ "$with_demo" = 1 ]; then bash "$0" --with-demo --no-build "$d"; else bash "$0" --no-build "$d"; fi
    done
    exit 0
fi
deb=${debs[0]}
[ -f "$deb" ] || fail "no package at '$deb'"
echo "check-deb: $deb"
# How to run the packaged binary here, and the ELF machine it must be.
arch=$(dpkg-deb -f "$deb" Architecture)
qemu_runner "$arch" || fail "cannot run the $arch binary here"

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

dpkg-deb -c "$deb" | tee "$tmp/contents"
dpkg-deb -x "$deb" "$tmp/root"
dpkg-deb -e "$deb" "$tmp/control"

# The unit is read from the package itself, so a path changed on one side
# but not the other is caught.
# cargo-deb 3 installs units under /usr/lib (merged /usr), older ones /lib.
unit=
for dir in usr/lib/systemd/system lib/systemd/system; do
    [ -f "$tmp/root/$dir/coldgate.service" ] && unit="$tmp/root/$dir/coldgate.service" && break
done
[ -n "$unit" ] || fail "no coldgate.service under /usr/lib/systemd/system or /lib/systemd/system"
cmp -s "$unit" systemd/coldgate.service || fail "the packaged unit differs from systemd/coldgate.service"
exec_start=$(sed -n 's/^ExecStart=\([^ ]*\) run --config \([^ ]*\)$/\1 \2/p' "$unit")
[ -n "$exec_start" ] || fail "unit has no 'ExecStart=<bin> run --config <file>'"
read -r bin config <<<"$exec_start"
for path in "$bin" "$config" /usr/lib/sysusers.d/coldgate.conf \
    /usr/share/doc/coldgate/install.md /usr/share/doc/coldgate/examples/coldgate.toml; do
    [ -e "$tmp/root$path" ] || fail "$path is not in the package"
done
[ -x "$tmp/root$bin" ] || fail "$bin is not executable"
# Man pages and completions, made by the packaged binary itself.
for path in /usr/share/man/man1/coldgate.1.gz /usr/share/man/man1/coldgate-check-config.1.gz \
    /usr/share/bash-completion/completions/coldgate /usr/share/zsh/vendor-completions/_coldgate \
    /usr/share/fish/vendor_completions.d/coldgate.fish; do
    [ -s "$tmp/root$path" ] || fail "$path is not in the package"
done
"${run[@]}" "$tmp/root$bin" completions bash | cmp -s - "$tmp/root/usr/share/bash-completion/completions/coldgate" \
    || fail "the packaged bash completion is not the packaged binary's"
grep -qx "$config" "$tmp/control/conffiles" || fail "$config is not a conffile"
grep -q '^StateDirectory=coldgate$' "$unit" || fail "unit has no StateDirectory=coldgate"
grep -q '"/var/lib/coldgate/' "$tmp/root$config" \
    || fail "the shipped config does not keep its database in /var/lib/coldgate (StateDirectory=)"
grep -q '^u coldgate ' "$tmp/root/usr/lib/sysusers.d/coldgate.conf" || fail "sysusers has no coldgate user"
grep -q '^m coldgate dialout' "$tmp/root/usr/lib/sysusers.d/coldgate.conf" || fail "coldgate is not in dialout"
# The user must exist before the config is handed to its group.
sysusers_line=$(grep -n 'systemd-sysusers.*coldgate.conf' "$tmp/control/postinst" | head -n 1 | cut -d: -f1)
chgrp_line=$(grep -n 'chgrp coldgate' "$tmp/control/postinst" | head -n 1 | cut -d: -f1)
[ -n "$sysusers_line" ] || fail "postinst does not create the user"
[ -n "$chgrp_line" ] || fail "postinst does not hand the config to the coldgate group"
[ "$sysusers_line" -lt "$chgrp_line" ] || fail "postinst uses the coldgate group before creating it"
sh -n "$tmp/control/postinst" || fail "postinst is not valid sh"

# The shipped configuration is a template: the packaged binary refuses it
# (exit 78, "no sensors configured") and accepts it once its example sensors
# are un-commented, as docs/install.md tells the installer to.
set +e
"${run[@]}" "$tmp/root$bin" check-config --config "$tmp/root$config" 2>"$tmp/refused"
status=$?
set -e
[ "$status" -eq 78 ] || fail "the shipped config is not refused by check-config (exit $status)"
grep -q 'no sensors configured' "$tmp/refused" || fail "check-config does not say 'no sensors configured': $(cat "$tmp/refused")"
sed '/^# --- example sensors ---$/,/^# --- end of example sensors ---$/{/^# --- /d;s/^# \{0,1\}//}' \
    "$tmp/root$config" >"$tmp/filled.toml"
"${run[@]}" "$tmp/root$bin" check-config --config "$tmp/filled.toml" || fail "the shipped config with its examples filled in does not pass check-config"

# The lean daemon for this architecture: no embedded broker in it (rumqttd's
# source paths, its panic locations, are in any binary that links it), and
# the demo says so.
readelf -h "$tmp/root$bin" | grep -q "Machine:.*$machine" || fail "$bin is not a $machine binary"
# The release profile keeps the symbol table (gateway/build.rs's link order is
# made from a profile that needs the names); the package does not ship it.
if readelf -S "$tmp/root$bin" | grep -q '\.symtab'; then
    fail "$bin still carries its symbol table: strip it before packaging (scripts/strip-for)"
fi
if [ "$with_demo" = 1 ]; then
    echo "check-deb: $arch, $bin $(stat -c %s "$tmp/root$bin") bytes, with the demo (--with-demo: lean not checked)"
    echo "check-deb: OK"
    exit 0
fi
if grep -aq 'rumqttd-0\.' "$tmp/root$bin"; then
    fail "$bin carries the embedded broker (rumqttd): build with --no-default-features"
fi
if "${run[@]}" "$tmp/root$bin" demo --duration 1s >"$tmp/demo.out" 2>&1; then
    fail "'coldgate demo' ran in the packaged build"
fi
grep -q 'has no demo' "$tmp/demo.out" || { cat "$tmp/demo.out"; fail "'coldgate demo' does not say this build has no demo"; }
echo "check-deb: $arch, $bin $(stat -c %s "$tmp/root$bin") bytes, lean"

echo "check-deb: OK"
