//! The messages that are not events: the retained `status` and `manifest`,
//! and `telemetry`. They carry no `seq` and no `event_id`.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StatusState {
    Online,
    Offline,
}

/// `{prefix}/status`, retained: online while connected, offline from a clean
/// stop or as the Last Will.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// `coldgate.status/1`.
    pub schema: String,
    pub gateway_id: String,
    pub at: String,
    pub state: StatusState,
    /// Why `offline`: `stopped` or `connection lost`; `None` online.
    pub reason: Option<String>,
    pub version: String,
    pub uptime_s: u64,
    pub outbox_depth: u64,
    pub oldest_unsent_at: Option<String>,
    pub oldest_unsent_age_s: Option<i64>,
    pub telemetry_dropped: u64,
    /// Events set aside unsent, over `mqtt.max_payload`.
    #[serde(default)]
    pub set_aside: u64,
    /// `None` when unknown (docs/time.md).
    pub clock_synced: Option<bool>,
    /// `synchronised`, `unsynchronised` or `unknown` (docs/time.md).
    #[serde(default)]
    pub clock_state: Option<String>,
    #[serde(default)]
    pub clock_last_jump: Option<ClockJumpSeen>,
    pub client_cert_expires_at: Option<String>,
    #[serde(default)]
    pub audit_head: Option<String>,
    pub link: Link,
}

/// The last wall-clock jump recorded.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ClockJumpSeen {
    pub at: String,
    pub offset_ms: i64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum LinkState {
    Connected,
    Disconnected,
}

/// The uplink as the publisher sees it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Link {
    pub state: LinkState,
    pub connected_since: Option<String>,
    pub failures: u64,
    pub last_error: Option<String>,
    /// The broker delivered the gateway's own status back on this connection.
    pub verified: bool,
}

/// `{prefix}/manifest`, retained (and `manifest/part/{k}` when split): the
/// pallets on board now.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Manifest {
    /// `coldgate.manifest/1`.
    pub schema: String,
    pub gateway_id: String,
    pub at: String,
    pub pallets: Vec<ManifestPallet>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u64>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ManifestPallet {
    pub sscc: String,
    pub zone: String,
    /// The pallet's own profile; `None` means its zone's.
    pub profile: Option<String>,
    pub loaded_at: String,
    pub items: Vec<Item>,
}

/// A trade item line: a GTIN and lot, with the lot's expiry and, for
/// serialised packs, their serials. In the manifest, in a load command, in an
/// excursion's `affected`, and on board (`crate::manifest::Item`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Item {
    /// GTIN-14 with a valid check digit (pad shorter GTINs with leading zeros).
    pub gtin: String,
    /// AI (10) batch/lot: 1 to 20 characters of GS1 character set 82.
    pub lot: String,
    /// The lot's expiry, `YYYY-MM-DD`.
    #[serde(default)]
    pub expiry: Option<String>,
    /// AI (21) serials of the packs on this pallet, if serialised.
    #[serde(default)]
    pub serials: Vec<String>,
}

/// `{prefix}/telemetry/{sensor_id}`: per quantity, a summary of one window.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Telemetry {
    /// `coldgate.telemetry/1`.
    pub schema: String,
    pub gateway_id: String,
    pub sensor_id: String,
    pub from: String,
    pub to: String,
    /// By quantity name (`temperature`, `humidity`, …).
    pub quantities: BTreeMap<String, QuantityStats>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct QuantityStats {
    pub unit: String,
    pub min: f64,
    pub max: f64,
    pub mean: f64,
    pub count: u64,
}
