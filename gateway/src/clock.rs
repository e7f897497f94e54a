//! Whether the system clock can be trusted. A Pi has no real-time clock: until
//! NTP has synchronised, its time may be days off.

use std::path::Path;

/// systemd-timesyncd touches this file once the clock is synchronised.
const TIMESYNC_MARKER: &str = "/run/systemd/timesync/synchronized";

/// `Some(true)` once timesyncd reports synchronisation, `None` when unknown.
pub fn is_synchronised() -> Option<bool> {
    Path::new(TIMESYNC_MARKER).exists().then_some(true)
}
