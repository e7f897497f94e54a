//! Start-up's code handed back once the gateway runs.
//!
//! Most of the gateway's resident memory is not its own data but pages of
//! the executable (`RssFile`, docs/performance.md "Footprint"). Start-up
//! (parsing the configuration, opening the store, building the HTTP router,
//! the first connections) runs code the steady state never runs again, and
//! the kernel maps an executable in windows of 64 KiB around each page
//! touched, so after start-up most of the binary is mapped, and stays so.
//! The same holds for the C library's code. Unmapping the read-only,
//! never-written file mappings once the gateway runs leaves mapped only
//! what the steady state uses: those pages
//! come back on their next access (a minor fault, from the page cache), the
//! rest become page cache the kernel may reclaim like any other, instead of
//! pages a process holds.
//!
//! The heap has the same shape: start-up frees most of what it allocates,
//! but glibc keeps the freed pages resident in its arenas;
//! [`release_free_heap`] hands them back once, at the same time.

use std::time::Duration;

/// After the one-off work (config, store, router, first polls, the MQTT
/// connection), short against a gateway's life of months.
pub const AFTER: Duration = Duration::from_secs(15);

/// Address ranges of the file mappings in `smaps` (the executable's and the
/// shared libraries') that can be unmapped without losing a byte: not
/// writable and holding no private (copied-on-write) page, so each page
/// equals the file's. That keeps the relocated RELRO (read-only, but written
/// by the loader) mapped: dropping it would bring back the file's unrelocated
/// pointers. Kernel mappings (`[vdso]`, `[vvar]`) have no file and are kept.
fn droppable(smaps: &str) -> Vec<(usize, usize)> {
    let mut out = Vec::new();
    let mut current: Option<(usize, usize)> = None;
    for line in smaps.lines() {
        let mut fields = line.split_whitespace();
        let Some(first) = fields.next() else { continue };
        if let Some((lo, hi)) = first.split_once('-') {
            // A mapping's header: range, perms, offset, dev, inode, path.
            let perms = fields.next().unwrap_or("");
            let path = fields.nth(3).unwrap_or("");
            let range = usize::from_str_radix(lo, 16)
                .ok()
                .zip(usize::from_str_radix(hi, 16).ok());
            current = match range {
                Some(r) if path.starts_with('/') && !perms.contains('w') => Some(r),
                _ => None,
            };
        } else if first == "Anonymous:" {
            if let Some(r) = current.take() {
                if fields.next() == Some("0") {
                    out.push(r);
                }
            }
        }
    }
    out
}

/// Unmaps the droppable file mappings (see [`droppable`]) and
/// returns how many bytes of address space that covered.
#[cfg(target_os = "linux")]
pub fn unmap_startup_pages() -> std::io::Result<usize> {
    let smaps = std::fs::read_to_string("/proc/self/smaps")?;
    let mut covered = 0;
    for (lo, hi) in droppable(&smaps) {
        dont_need(lo, hi)?;
        covered += hi - lo;
    }
    Ok(covered)
}

#[cfg(not(target_os = "linux"))]
pub fn unmap_startup_pages() -> std::io::Result<usize> {
    Ok(0)
}

/// Hands the heap's free pages back to the kernel (`malloc_trim(0)`):
/// start-up frees what it parsed and built (the configuration's text, the
/// TLS root store, the router's tables), but glibc keeps freed pages of its
/// arenas resident until a later allocation reuses them, which a gateway's
/// small steady state rarely does. Returns whether any page was released.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
pub fn release_free_heap() -> bool {
    // SAFETY: malloc_trim only returns free chunks' pages to the kernel
    // (madvise on whole free pages, sbrk at the top); it takes each arena's
    // lock, so it is safe beside allocating threads.
    unsafe { libc::malloc_trim(0) == 1 }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
pub fn release_free_heap() -> bool {
    false
}

/// `madvise(MADV_DONTNEED)`: no safe wrapper in `libc`, and none of the
/// crates the gateway uses offers one.
#[cfg(target_os = "linux")]
#[allow(unsafe_code)]
fn dont_need(lo: usize, hi: usize) -> std::io::Result<()> {
    // SAFETY: [lo, hi) is one whole private file mapping that `droppable`
    // found not writable and without a private page, so every
    // page in it equals the file's bytes at its offset. MADV_DONTNEED on a
    // private file mapping unmaps the pages; the next access maps the same
    // bytes from the file again. No Rust reference can observe a change.
    let r = unsafe { libc::madvise(lo as *mut libc::c_void, hi - lo, libc::MADV_DONTNEED) };
    if r == 0 {
        Ok(())
    } else {
        Err(std::io::Error::last_os_error())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EXE: &str = "/usr/bin/coldgate";

    fn mapping(range: &str, perms: &str, path: &str, anon_kib: u64) -> String {
        format!(
            "{range} {perms} 00000000 fe:01 1234    {path}\nSize: 4 kB\nRss: 4 kB\nAnonymous: {anon_kib} kB\nSwap: 0 kB\n"
        )
    }

    #[test]
    fn only_unwritten_read_only_file_mappings_are_dropped() {
        let smaps = [
            mapping("1000-3000", "r--p", EXE, 0),
            mapping("3000-9000", "r-xp", EXE, 0),
            // RELRO: read-only now, but the loader wrote its pointers.
            mapping("9000-a000", "r--p", EXE, 4),
            mapping("a000-b000", "rw-p", EXE, 0),
            mapping(
                "b000-c000",
                "r-xp",
                "/usr/lib/x86_64-linux-gnu/libc.so.6",
                0,
            ),
            mapping("c000-d000", "rw-p", "", 4),
            mapping("d000-e000", "r--p", "[vvar]", 0),
            mapping("e000-f000", "r-xp", "[vdso]", 0),
        ]
        .concat();
        assert_eq!(
            droppable(&smaps),
            vec![(0x1000, 0x3000), (0x3000, 0x9000), (0xb000, 0xc000)]
        );
    }

    /// This process's resident memory of one kind (`RssAnon:`, `RssFile:`), KiB.
    fn status_kib(key: &str) -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap()
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.split_whitespace().next()?.parse().ok())
            .unwrap()
    }

    /// 48 MiB freed in small blocks stays resident until the heap is
    /// trimmed; the trim gives back most of it. The first assertion shows
    /// the test's premise (freeing alone keeps the pages), so the second
    /// one is the trim's doing, not glibc's own.
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    #[test]
    fn freed_heap_pages_stay_resident_until_the_heap_is_trimmed() {
        const MIB: u64 = 1024;
        // 512-byte blocks: far below glibc's mmap threshold, so in an arena.
        let mut blocks: Vec<Vec<u8>> = (0..98_304).map(|i| vec![i as u8; 512]).collect();
        // Allocated last, so on top of the blocks: the arena cannot shrink
        // from its top when they are freed.
        let pin = vec![7u8; 512];
        let full = status_kib("RssAnon:");
        blocks.clear();
        blocks.shrink_to_fit();
        let freed = status_kib("RssAnon:");
        assert!(
            freed + 16 * MIB > full,
            "freeing alone gave back {} KiB: nothing left for the trim to show",
            full.saturating_sub(freed)
        );
        assert!(release_free_heap(), "malloc_trim released nothing");
        let trimmed = status_kib("RssAnon:");
        assert!(
            trimmed + 32 * MIB < freed,
            "RssAnon {full} KiB full, {freed} KiB freed, {trimmed} KiB trimmed"
        );
        assert_eq!(pin[511], 7);
    }

    /// On this test binary itself: the pages go, and the code they held
    /// still runs (this test returns).
    #[cfg(target_os = "linux")]
    #[test]
    fn unmapping_gives_back_resident_file_pages_and_the_code_still_runs() {
        let before = status_kib("RssFile:");
        let covered = unmap_startup_pages().unwrap();
        let after = status_kib("RssFile:");
        assert!(covered > 0, "no mapping of the test binary was found");
        assert!(
            after + 256 < before,
            "RssFile {before} KiB before, {after} KiB after unmapping {covered} bytes"
        );
    }
}
