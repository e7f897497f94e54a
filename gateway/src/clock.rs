//! Whether the system clock can be trusted, and noticing when it jumps.
//!
//! A Pi has no real-time clock: until NTP has synchronised, its time may be
//! days off, and synchronisation then *steps* the clock. Design (docs/time.md):
//! ingest reads the wall clock and a monotonic clock through [`WallClock`] and
//! feeds both to a [`Timeline`], which reports a [`Jump`] when the wall clock
//! moved more than [`JUMP_THRESHOLD_MS`] away from monotonic time. The engine's
//! durations and delays are then kept on monotonic time (its state is moved
//! by the jump), and the readings taken before it are marked in the database.
//!
//! The synchronisation state is the kernel's (`adjtimex`: `STA_UNSYNC` and
//! `TIME_ERROR`, what `timedatectl` shows as "System clock synchronized"),
//! with systemd-timesyncd's marker file as a fallback.

use std::path::Path;
use std::time::Instant;

use serde::Serialize;

/// systemd-timesyncd touches this file once the clock is synchronised.
const TIMESYNC_MARKER: &str = "/run/systemd/timesync/synchronized";

/// A wall clock that moved more than this relative to monotonic time
/// between two looks has jumped (an NTP slew moves it at most 0.5 ms/s).
pub const JUMP_THRESHOLD_MS: i64 = 2_000;

/// No clock showing a time before this is plausible: it is older than this
/// build. (A Pi without a real-time clock starts at its last saved time, or
/// in 1970.) Update with each release.
pub const PLAUSIBLE_AFTER_MS: i64 = 1_793_491_200_000; // 2026-11-01T00:00:00Z

/// The kernel's view of the clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum SyncState {
    Synchronised,
    Unsynchronised,
    Unknown,
}

impl SyncState {
    pub fn as_str(self) -> &'static str {
        match self {
            SyncState::Synchronised => "synchronised",
            SyncState::Unsynchronised => "unsynchronised",
            SyncState::Unknown => "unknown",
        }
    }

    /// `Some(true|false)`, or `None` when unknown (JSON `null`).
    pub fn as_option(self) -> Option<bool> {
        match self {
            SyncState::Synchronised => Some(true),
            SyncState::Unsynchronised => Some(false),
            SyncState::Unknown => None,
        }
    }

    /// One byte for the database's clock records.
    pub fn code(self) -> u8 {
        match self {
            SyncState::Unknown => 0,
            SyncState::Synchronised => 1,
            SyncState::Unsynchronised => 2,
        }
    }
}

/// The system clock's synchronisation state: the kernel's NTP state, or
/// timesyncd's marker file if the kernel cannot be asked.
pub fn sync_state() -> SyncState {
    match kernel_sync() {
        Some(true) => SyncState::Synchronised,
        Some(false) if Path::new(TIMESYNC_MARKER).exists() => SyncState::Synchronised,
        Some(false) => SyncState::Unsynchronised,
        None if Path::new(TIMESYNC_MARKER).exists() => SyncState::Synchronised,
        None => SyncState::Unknown,
    }
}

/// `Some(true)` once the clock is known synchronised, `Some(false)` when
/// the kernel says it is not, `None` when unknown.
pub fn is_synchronised() -> Option<bool> {
    sync_state().as_option()
}

/// Whether the wall clock shows a time this build could be running at.
pub fn is_plausible(wall_ms: i64) -> bool {
    wall_ms >= PLAUSIBLE_AFTER_MS
}

/// What to say beside a TLS failure (or at start with TLS configured) when
/// the clock cannot be trusted, `None` when it can.
pub fn tls_clock_warning() -> Option<&'static str> {
    let plausible = is_plausible(crate::event::now_ms());
    match (sync_state(), plausible) {
        (_, false) => Some("clock not synchronised (it shows a time before this build); TLS certificate validity cannot be checked"),
        (SyncState::Synchronised, true) => None,
        _ => Some("clock not synchronised; TLS certificate validity cannot be checked"),
    }
}

/// The kernel's NTP state, read without changing anything (`modes = 0`):
/// `Some(false)` when `STA_UNSYNC` is set or the call returns `TIME_ERROR`.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn kernel_sync() -> Option<bool> {
    let (state, status) = adjtimex_read()?;
    Some(state != libc::TIME_ERROR && status & libc::STA_UNSYNC == 0)
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn kernel_sync() -> Option<bool> {
    None
}

/// `adjtimex(2)` with `modes = 0`, a read-only query any user may make:
/// the clock state it returns and the `status` bits. Neither `nix` nor
/// `rustix` wraps it, so this is the crate's one `unsafe` block.
#[cfg(all(target_os = "linux", target_env = "gnu"))]
#[allow(unsafe_code)]
fn adjtimex_read() -> Option<(libc::c_int, libc::c_int)> {
    // SAFETY: `timex` is a plain C struct of integers for which all-zero
    // bytes are a valid value, and zero `modes` asks the kernel only to fill
    // it in. The pointer is to a live, exclusively borrowed local for the
    // duration of the call, and the kernel writes nothing beyond the struct.
    let (state, status) = unsafe {
        let mut tx: libc::timex = std::mem::zeroed();
        let state = libc::adjtimex(&mut tx);
        (state, tx.status)
    };
    (state >= 0).then_some((state, status))
}

/// The two clocks ingest looks at: injected so tests can make the wall
/// clock jump without touching the machine's.
pub trait WallClock: Send + Sync {
    /// Wall time, ms since the Unix epoch (UTC).
    fn wall_ms(&self) -> i64;
    /// Monotonic time, ms since an arbitrary point of this process's life.
    fn mono_ms(&self) -> i64;
    /// Whether the wall clock is synchronised.
    fn sync(&self) -> SyncState;
}

/// The machine's clocks: `SystemTime` and `Instant` (CLOCK_MONOTONIC).
#[derive(Debug)]
pub struct SystemClock {
    start: Instant,
}

impl SystemClock {
    pub fn new() -> SystemClock {
        SystemClock {
            start: Instant::now(),
        }
    }
}

impl Default for SystemClock {
    fn default() -> Self {
        SystemClock::new()
    }
}

impl WallClock for SystemClock {
    fn wall_ms(&self) -> i64 {
        crate::event::now_ms()
    }
    fn mono_ms(&self) -> i64 {
        i64::try_from(self.start.elapsed().as_millis()).unwrap_or(i64::MAX)
    }
    fn sync(&self) -> SyncState {
        sync_state()
    }
}

/// A step of the wall clock.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct Jump {
    /// The wall time just after the jump (new clock).
    pub at_ms: i64,
    /// How far the wall clock moved beyond monotonic time: positive forward.
    pub offset_ms: i64,
    /// Readings stamped in `[affected_from_ms, affected_to_ms)` (old clock)
    /// were taken since the last trusted point and before the jump: their
    /// times are off by up to `offset_ms`.
    pub affected_from_ms: i64,
    pub affected_to_ms: i64,
    /// The state after the jump.
    pub sync: SyncState,
}

/// Follows the wall clock against monotonic time, one look at a time.
#[derive(Debug, Clone)]
pub struct Timeline {
    /// `(wall, mono)` at the previous look.
    anchor: Option<(i64, i64)>,
    /// The wall time (current clock) since which readings are not known to
    /// be dated right: the last look at which the clock was synchronised,
    /// the last jump, or the first look.
    trusted_ms: Option<i64>,
    sync: Option<SyncState>,
    last_jump: Option<Jump>,
}

impl Default for Timeline {
    fn default() -> Self {
        Timeline::new()
    }
}

impl Timeline {
    pub fn new() -> Timeline {
        Timeline {
            anchor: None,
            trusted_ms: None,
            sync: None,
            last_jump: None,
        }
    }

    /// Looks at the clocks: a [`Jump`] if the wall clock moved more than
    /// [`JUMP_THRESHOLD_MS`] relative to monotonic time since the last look.
    pub fn observe(&mut self, wall_ms: i64, mono_ms: i64, sync: SyncState) -> Option<Jump> {
        let mut jump = None;
        if let Some((wall0, mono0)) = self.anchor {
            let expected = wall0.saturating_add(mono_ms.saturating_sub(mono0));
            let offset = wall_ms.saturating_sub(expected);
            if offset.abs() > JUMP_THRESHOLD_MS {
                let j = Jump {
                    at_ms: wall_ms,
                    offset_ms: offset,
                    affected_from_ms: self.trusted_ms.unwrap_or(wall0).min(expected),
                    affected_to_ms: expected,
                    sync,
                };
                self.last_jump = Some(j);
                self.trusted_ms = Some(wall_ms);
                jump = Some(j);
            }
        }
        if sync == SyncState::Synchronised || self.trusted_ms.is_none() {
            self.trusted_ms = Some(wall_ms);
        }
        self.anchor = Some((wall_ms, mono_ms));
        self.sync = Some(sync);
        jump
    }

    /// The state at the last look.
    pub fn sync(&self) -> Option<SyncState> {
        self.sync
    }

    pub fn last_jump(&self) -> Option<Jump> {
        self.last_jump
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const T: i64 = 1_800_000_000_000;
    const H: i64 = 3_600_000;

    #[test]
    fn a_steady_clock_and_slow_drift_are_not_jumps() {
        let mut t = Timeline::new();
        assert_eq!(t.observe(T, 0, SyncState::Unsynchronised), None);
        assert_eq!(t.observe(T + 1_000, 1_000, SyncState::Unsynchronised), None);
        // 1.5 s drift between looks: below the threshold.
        assert_eq!(t.observe(T + 3_500, 2_000, SyncState::Unsynchronised), None);
        assert_eq!(t.sync(), Some(SyncState::Unsynchronised));
    }

    #[test]
    fn a_step_forward_then_back_is_reported_with_the_affected_range() {
        let mut t = Timeline::new();
        t.observe(T, 0, SyncState::Unsynchronised);
        t.observe(T + 60_000, 60_000, SyncState::Unsynchronised);
        let j = t
            .observe(T + 120_000 + H, 120_000, SyncState::Synchronised)
            .unwrap();
        assert_eq!(j.offset_ms, H);
        // Nothing was trusted since the first look.
        assert_eq!((j.affected_from_ms, j.affected_to_ms), (T, T + 120_000));
        assert_eq!(j.sync, SyncState::Synchronised);
        // Synchronised from here: the next jump affects only since the last look.
        t.observe(T + 180_000 + H, 180_000, SyncState::Synchronised);
        let back = t
            .observe(T + 240_000, 240_000, SyncState::Unsynchronised)
            .unwrap();
        assert_eq!(back.offset_ms, -H);
        assert_eq!(
            (back.affected_from_ms, back.affected_to_ms),
            (T + 180_000 + H, T + 240_000 + H)
        );
        assert_eq!(t.last_jump(), Some(back));
    }

    #[test]
    fn the_kernel_state_is_read_without_privileges() {
        // On Linux adjtimex(modes = 0) answers any user: the state is known.
        if cfg!(all(target_os = "linux", target_env = "gnu")) {
            assert!(kernel_sync().is_some());
        }
        assert!(!is_plausible(0));
        assert!(is_plausible(T));
    }
}
