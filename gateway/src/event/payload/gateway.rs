//! The bodies of `events/gateway` (the gateway's own health) and
//! `events/audit` (its audit trail as committed).

use serde::{Deserialize, Serialize};

/// What happened. Stored as its snake_case name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum AuditKind {
    GatewayStarted,
    GatewayStopped,
    ConfigLoaded,
    ConfigReloaded,
    ConfigRejected,
    /// A manifest command (load or unload a pallet) from an operator over
    /// MQTT or a technician over HTTP, accepted or not. Trails written
    /// by earlier builds may also hold `manifest_loaded` / `manifest_unloaded`.
    ManifestCommand,
    /// Made at least hourly so that the readings are covered by a
    /// checkpoint (see `crate::audit::readings`) even when nothing else happens.
    ReadingsCheckpoint,
}

impl AuditKind {
    pub fn as_str(self) -> &'static str {
        match self {
            AuditKind::GatewayStarted => "gateway_started",
            AuditKind::GatewayStopped => "gateway_stopped",
            AuditKind::ConfigLoaded => "config_loaded",
            AuditKind::ConfigReloaded => "config_reloaded",
            AuditKind::ConfigRejected => "config_rejected",
            AuditKind::ManifestCommand => "manifest_command",
            AuditKind::ReadingsCheckpoint => "readings_checkpoint",
        }
    }
}

/// Every `phase` a gateway event takes; which go with which `kind` is in
/// docs/schema/gateway.json.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PressurePhase {
    Started,
    Ended,
}

/// Why commits failed: the outage a `storage` event reports.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StorageReason {
    DiskFull,
    StorageError,
}

/// `events/gateway`, one variant per `kind`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Gateway {
    /// The outbox reached `mqtt.outbox_cap` (`started`) or fell back under
    /// 90 % of it (`ended`).
    OutboxPressure {
        phase: PressurePhase,
        outbox_waiting: u64,
        outbox_cap: u64,
        telemetry_dropped: u64,
    },
    /// Commits started failing and readings are held in memory
    /// (`disk_full`, `storage_error`: [`StorageFailure`]), then the disk came
    /// back and they were committed (`recovered`: [`StorageRecovery`]).
    Storage {
        phase: StoragePhase,
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        failure: Option<StorageFailure>,
        #[serde(flatten, default, skip_serializing_if = "Option::is_none")]
        recovery: Option<StorageRecovery>,
    },
    /// The wall clock stepped (docs/time.md).
    ClockJump {
        phase: ClockJumpPhase,
        offset_ms: i64,
        affected_from: String,
        affected_to: String,
        /// `None` when the clock's synchronisation is unknown.
        synchronised: Option<bool>,
    },
    /// A reload (SIGHUP) was refused and the old configuration kept.
    ConfigRejected {
        phase: ConfigRejectedPhase,
        actor: String,
        path: String,
        problems: Vec<String>,
    },
    /// An outbox entry over `mqtt.max_payload` was taken out unsent.
    EntrySetAside {
        phase: SetAsidePhase,
        set_aside_seq: u64,
        topic: String,
        bytes: u64,
        max_payload: u64,
    },
    /// At start: the last run did not stop cleanly; nothing was observed
    /// between `last_alive_at` and `started_at`.
    UncleanStop {
        phase: DetectedPhase,
        last_alive_at: String,
        started_at: String,
        downtime_s: i64,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StoragePhase {
    DiskFull,
    StorageError,
    Recovered,
}

/// What a recovery reports about the outage it ends.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageRecovery {
    pub reason: StorageReason,
    pub since: String,
    pub outage_s: i64,
    pub failed_commits: u64,
    pub dropped_readings: u64,
}

/// What a failing commit reports.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StorageFailure {
    pub error: String,
    pub held_readings: u64,
    pub buffer_limit: u64,
}

macro_rules! one_phase {
    ($($name:ident = $text:literal),*) => {$(
        #[doc = concat!("The only phase of its kind: `", $text, "`.")]
        #[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
        pub enum $name {
            #[default]
            #[serde(rename = $text)]
            Only,
        }
    )*};
}
one_phase!(
    ClockJumpPhase = "clock_jump",
    ConfigRejectedPhase = "config_rejected",
    SetAsidePhase = "set_aside",
    DetectedPhase = "detected"
);

/// `events/audit`: an audit trail entry as it was committed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Audit {
    /// What happened.
    pub phase: AuditKind,
    pub audit_seq: u64,
    pub actor: String,
    /// The entry's details as recorded (an object whose fields depend on
    /// the kind: docs/audit.md).
    pub details: serde_json::Value,
    /// The chain's head once this entry is in (`SEQ:HASH`): an anchor for
    /// `coldgate audit verify --anchor`.
    pub audit_head: Option<String>,
    /// On an accepted unload only: the MKT of each lot of the pallet, so a
    /// fleet can combine a lot's MKT over every gateway of its journey
    /// (readings never leave the gateway). Not part of the audit entry.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub lot_mkt: Vec<LotMktAtUnload>,
}

/// A lot's MKT as the gateway's ledger holds it when one of its pallets is
/// unloaded: over everything the lot saw on board this gateway so far (all
/// its stays here), with the time that carries weight and the ΔH, which
/// together let MKTs of several gateways combine exactly
/// (`mean exp(-ΔH/RT) = exp(-ΔH/(R·MKT))`, weighted by `monitored_s`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LotMktAtUnload {
    pub gtin: String,
    pub lot: String,
    /// °C.
    pub mkt: f64,
    /// Time with weight in the MKT: on board, observed (a monitoring gap
    /// past the profile's silence limit carries none), seconds.
    pub monitored_s: i64,
    /// ΔH, J/mol.
    pub activation_energy_j_per_mol: f64,
}
