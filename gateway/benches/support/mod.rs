//! What the wear benchmarks share: the bytes this process has made the
//! block device write. Included by each bench with `mod support;` (a
//! directory without `main.rs` is not a bench target of its own).

/// `write_bytes` of `/proc/self/io`: charged when a page is dirtied, so it
/// counts what this process makes the device write (docs/performance.md).
/// Panics when the kernel does not report it: a bench that printed 0 bytes
/// written would look like the best result rather than no measurement.
pub fn write_bytes() -> u64 {
    let io = std::fs::read_to_string("/proc/self/io")
        .unwrap_or_else(|e| panic!("cannot read /proc/self/io to count bytes written: {e}"));
    io.lines()
        .find_map(|l| l.strip_prefix("write_bytes: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("/proc/self/io has no write_bytes line: {io:?}"))
}
