//! Every payload coldgate publishes, and every command it takes, as a type.
//!
//! These types are the MQTT contract (docs/mqtt.md, docs/schema/): the
//! engine, ingest and the publisher build them, the trip report, the
//! dashboard and the CLI read them back from the events table, and the
//! fleet reads them off the wire. A field is added here or nowhere, so a
//! payload can only change in one place, and a reader's field is the
//! writer's field by construction. Times are RFC 3339 strings (as on the
//! wire); the `*_ms` of the domain types are converted where they are built.
//!
//! Events share an [`Envelope`] (schema, event_id, seq, gateway_id, at, and
//! `part`/`parts` when split); the kind-specific fields are its `body`, one
//! type per topic. The other messages (status, manifest, telemetry, command
//! answers) stand alone.

mod commands;
mod events;
mod gateway;
mod messages;

use serde::{Deserialize, Serialize};

pub use commands::{CommandResult, CommandWarning, ManifestCommand, ReplayRequest, ReplayResult};
pub use events::{
    Affected, Direction, Door, DoorPhase, Excursion, ExcursionEnd, ExcursionPhase, GapCause, Lot,
    LotPhase, LotReason, SensorGap, SensorPhase,
};
pub use gateway::{
    Audit, AuditKind, ClockJumpPhase, ConfigRejectedPhase, DetectedPhase, Gateway, LotMktAtUnload,
    PressurePhase, SetAsidePhase, StorageFailure, StoragePhase, StorageReason, StorageRecovery,
};
pub use messages::{
    ClockJumpSeen, Item, Link, LinkState, Manifest, ManifestPallet, QuantityStats, Status,
    StatusState, Telemetry,
};

/// The fields every event carries, around its kind's `body`. `part` and
/// `parts` are present only on an event split to fit `mqtt.max_payload`
/// (docs/mqtt.md, "Large events").
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Envelope<B> {
    /// `coldgate.{kind}/1`.
    pub schema: String,
    /// The event's ULID: the same on every resend and in every part.
    pub event_id: String,
    /// The gateway's gap-free event number (one per part).
    pub seq: u64,
    pub gateway_id: String,
    /// When it happened (RFC 3339, UTC, milliseconds).
    pub at: String,
    #[serde(flatten)]
    pub body: B,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub part: Option<u64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub parts: Option<u64>,
}

/// The kind-specific part of an event, one variant per `events/{kind}` topic.
/// Serialised as the inner type's fields (the topic and `schema` name the
/// kind); read back with [`EventBody::parse`].
#[derive(Debug, Clone, PartialEq, Serialize)]
#[serde(untagged)]
pub enum EventBody {
    Excursion(Excursion),
    Door(Door),
    Sensor(SensorGap),
    Lot(Lot),
    Gateway(Gateway),
    Audit(Audit),
}

impl EventBody {
    /// The topic word and schema name of this kind.
    pub fn kind_name(&self) -> &'static str {
        match self {
            EventBody::Excursion(_) => "excursion",
            EventBody::Door(_) => "door",
            EventBody::Sensor(_) => "sensor",
            EventBody::Lot(_) => "lot",
            EventBody::Gateway(_) => "gateway",
            EventBody::Audit(_) => "audit",
        }
    }

    /// Reads a stored or received event of the kind named by `kind`
    /// (`excursion`, `door`, … as in its topic `events/{kind}`).
    pub fn parse(kind: &str, payload: &[u8]) -> Result<Envelope<EventBody>, ParseError> {
        fn read<B: serde::de::DeserializeOwned>(
            payload: &[u8],
            wrap: fn(B) -> EventBody,
        ) -> Result<Envelope<EventBody>, ParseError> {
            let e: Envelope<B> = serde_json::from_slice(payload).map_err(ParseError::Json)?;
            Ok(Envelope {
                schema: e.schema,
                event_id: e.event_id,
                seq: e.seq,
                gateway_id: e.gateway_id,
                at: e.at,
                body: wrap(e.body),
                part: e.part,
                parts: e.parts,
            })
        }
        match kind {
            "excursion" => read(payload, EventBody::Excursion),
            "door" => read(payload, EventBody::Door),
            "sensor" => read(payload, EventBody::Sensor),
            "lot" => read(payload, EventBody::Lot),
            "gateway" => read(payload, EventBody::Gateway),
            "audit" => read(payload, EventBody::Audit),
            other => Err(ParseError::UnknownKind(other.to_string())),
        }
    }
}

impl EventBody {
    /// [`EventBody::parse`] for a payload already read as JSON (the HTTP
    /// API returns stored payloads inside its answers).
    pub fn parse_value(
        kind: &str,
        payload: &serde_json::Value,
    ) -> Result<Envelope<EventBody>, ParseError> {
        let bytes = serde_json::to_vec(payload).map_err(ParseError::Json)?;
        EventBody::parse(kind, &bytes)
    }
}

/// Why a payload could not be read as the type its topic names.
#[derive(Debug, thiserror::Error)]
pub enum ParseError {
    #[error("no event kind `{0}`")]
    UnknownKind(String),
    #[error("not a valid payload: {0}")]
    Json(serde_json::Error),
}

macro_rules! body_from {
    ($($t:ident => $v:ident),*) => {$(
        impl From<$t> for EventBody {
            fn from(b: $t) -> EventBody {
                EventBody::$v(b)
            }
        }
    )*};
}
body_from!(Excursion => Excursion, Door => Door, SensorGap => Sensor, Lot => Lot, Gateway => Gateway, Audit => Audit);

/// Serialises a payload type. Every type here is plain data (strings,
/// numbers, lists, maps with string keys), which always serialises; the
/// empty fallback only satisfies the signature.
pub fn to_bytes<T: Serialize>(payload: &T) -> Vec<u8> {
    serde_json::to_vec(payload).unwrap_or_default()
}

/// A unit enum's wire word (`started`, `high`, `disk_full`, …), for
/// printing it as a subscriber reads it.
pub fn word<T: Serialize>(value: &T) -> String {
    match serde_json::to_value(value) {
        Ok(serde_json::Value::String(s)) => s,
        _ => String::new(),
    }
}

#[cfg(test)]
mod tests;
