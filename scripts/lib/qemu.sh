# Sourced by scripts that run a binary built for another architecture.
# qemu_runner TRIPLE: sets the array `run` to the command prefix that runs
# that target's binaries here (empty for the host), and `machine` to the
# ELF machine `readelf -h` names. qemu-user is called by name with the
# target's C library (-L): this machine has no binfmt_misc handlers.
qemu_runner() {
    case "$1" in
        x86_64-unknown-linux-gnu|amd64) run=(); machine='X86-64' ;;
        aarch64-unknown-linux-gnu|arm64) run=(qemu-aarch64-static -L /usr/aarch64-linux-gnu); machine='AArch64' ;;
        armv7-unknown-linux-gnueabihf|armhf) run=(qemu-arm-static -L /usr/arm-linux-gnueabihf); machine='ARM' ;;
        *) echo "qemu_runner: unsupported target '$1'" >&2; return 2 ;;
    esac
    if [ "${#run[@]}" -gt 0 ] && ! command -v "${run[0]}" >/dev/null 2>&1; then
        echo "${run[0]} is needed to run $1 binaries (scripts/cross installs it)" >&2
        return 1
    fi
}
