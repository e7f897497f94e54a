//! What the BLE source has seen, shared with the gateway's metrics and
//! diagnostics API.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, MutexGuard};

use serde::Serialize;

use super::mac::MacAddr;

/// Counters and per-sensor state, cheap to clone (one shared map).
#[derive(Debug, Clone, Default)]
pub struct Diagnostics {
    inner: Arc<Mutex<DiagnosticsSnapshot>>,
}

/// A copy of the diagnostics at one instant.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct DiagnosticsSnapshot {
    /// Every advertisement the scanner delivered.
    pub advertisements_seen: u64,
    /// From addresses that are not configured sensors, or from configured
    /// sensors but carrying no measurement (iBeacon, name-only, other formats).
    pub advertisements_ignored: u64,
    /// From configured sensors, but undecodable, failing authentication,
    /// plaintext where a key is configured, or carrying a replayed counter.
    pub advertisements_rejected: u64,
    /// Repeats of an advertisement already counted (same packet id / counter).
    pub advertisements_duplicate: u64,
    /// Whether a scan session is currently running.
    pub adapter_up: bool,
    /// Per configured sensor id.
    pub sensors: BTreeMap<String, SensorDiagnostics>,
}

/// One sensor's radio-side state.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct SensorDiagnostics {
    pub mac: String,
    /// RSSI of the last authentic advertisement, dBm.
    pub rssi: Option<i16>,
    /// When the last authentic advertisement arrived, UTC ms.
    pub last_seen_ms: Option<i64>,
    pub accepted: u64,
    pub duplicates: u64,
    pub rejected: u64,
    /// Why the last rejected advertisement was rejected.
    pub last_error: Option<String>,
}

impl Diagnostics {
    pub fn new() -> Self {
        Self::default()
    }

    /// A consistent copy of everything.
    pub fn snapshot(&self) -> DiagnosticsSnapshot {
        self.lock().clone()
    }

    // A poisoned lock only means another thread panicked mid-update of plain
    // counters; the counters are still usable.
    fn lock(&self) -> MutexGuard<'_, DiagnosticsSnapshot> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    pub(crate) fn register(&self, sensor: &str, mac: MacAddr) {
        self.lock()
            .sensors
            .entry(sensor.to_string())
            .or_default()
            .mac = mac.to_string();
    }

    pub(crate) fn set_adapter_up(&self, up: bool) {
        self.lock().adapter_up = up;
    }

    pub(crate) fn seen(&self) {
        self.lock().advertisements_seen += 1;
    }

    pub(crate) fn ignored(&self) {
        self.lock().advertisements_ignored += 1;
    }

    pub(crate) fn rejected(&self, sensor: &str, why: String) {
        let mut s = self.lock();
        s.advertisements_rejected += 1;
        let e = s.sensors.entry(sensor.to_string()).or_default();
        e.rejected += 1;
        e.last_error = Some(why);
    }

    pub(crate) fn duplicate(&self, sensor: &str, rssi: Option<i16>, at_ms: i64) {
        let mut s = self.lock();
        s.advertisements_duplicate += 1;
        let e = s.sensors.entry(sensor.to_string()).or_default();
        e.duplicates += 1;
        Self::heard(e, rssi, at_ms);
    }

    pub(crate) fn accepted(&self, sensor: &str, rssi: Option<i16>, at_ms: i64) {
        let mut s = self.lock();
        let e = s.sensors.entry(sensor.to_string()).or_default();
        e.accepted += 1;
        Self::heard(e, rssi, at_ms);
    }

    fn heard(e: &mut SensorDiagnostics, rssi: Option<i16>, at_ms: i64) {
        if rssi.is_some() {
            e.rssi = rssi;
        }
        e.last_seen_ms = Some(e.last_seen_ms.map_or(at_ms, |t| t.max(at_ms)));
    }
}
