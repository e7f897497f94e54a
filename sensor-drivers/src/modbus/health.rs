//! Per-device health, shared with the gateway's diagnostics and its
//! "sensor silent" event. The poller writes, everyone else takes snapshots.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;

use super::error::RequestError;

/// Counters and state of one Modbus unit, keyed by sensor id in [`HealthMap`].
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize)]
pub struct DeviceHealth {
    /// Where the unit lives, e.g. `rtu:/dev/ttyUSB0` or `tcp:10.0.0.5:502`.
    pub link: String,
    /// Modbus unit id.
    pub unit: u8,
    /// Last time (UTC, ms since the epoch) the unit returned registers.
    pub last_success_ms: Option<i64>,
    /// Failed polls in a row (0 while healthy). Drives the backoff.
    pub consecutive_failures: u32,
    /// Polls that returned registers.
    pub successes: u64,
    /// Requests without a reply within the timeout.
    pub timeouts: u64,
    /// Replies whose CRC was wrong.
    pub crc_errors: u64,
    /// Whole frames that did not answer the request (other unit, function, length).
    pub framing_errors: u64,
    /// Exception replies.
    pub exceptions: u64,
    /// Times stray bytes (typically a reply after its timeout) were discarded.
    pub late_replies: u64,
    /// Serial port or TCP connection failures.
    pub link_errors: u64,
    /// The last error, as text, for the technician.
    pub last_error: Option<String>,
}

impl DeviceHealth {
    /// Counts one failed request. Returns whether its text differs from the
    /// previous error's, so callers can log a repeated error only once.
    pub fn record_error(&mut self, error: &RequestError) -> bool {
        match error {
            RequestError::Timeout { .. } => self.timeouts += 1,
            RequestError::Crc => self.crc_errors += 1,
            RequestError::Mismatch(_) => self.framing_errors += 1,
            RequestError::Exception { .. } => self.exceptions += 1,
            RequestError::Io(_) | RequestError::Connect { .. } => self.link_errors += 1,
        }
        let text = error.to_string();
        let changed = self.last_error.as_deref() != Some(text.as_str());
        self.last_error = Some(text);
        changed
    }
}

/// A cheap-to-clone handle on the health of every Modbus device.
#[derive(Debug, Clone, Default)]
pub struct HealthMap(Arc<Mutex<HashMap<Arc<str>, DeviceHealth>>>);

impl HealthMap {
    pub fn new() -> Self {
        HealthMap::default()
    }

    /// A copy of every device's health, sorted by sensor id.
    pub fn snapshot(&self) -> BTreeMap<String, DeviceHealth> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.iter()
            .map(|(k, v)| (k.to_string(), v.clone()))
            .collect()
    }

    /// A copy of one device's health.
    pub fn get(&self, sensor: &str) -> Option<DeviceHealth> {
        let map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        map.get(sensor).cloned()
    }

    /// Changes one device's entry, creating it if needed. A poisoned lock is
    /// taken anyway: counters are never left half-updated by a panic here.
    pub(crate) fn update<R>(
        &self,
        sensor: &Arc<str>,
        change: impl FnOnce(&mut DeviceHealth) -> R,
    ) -> R {
        let mut map = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        change(map.entry(Arc::clone(sensor)).or_default())
    }
}
