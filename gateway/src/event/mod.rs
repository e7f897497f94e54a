//! What the gateway publishes. An [`Event`] is built by the engine (or
//! ingest) from a typed body ([`payload`]) without knowing its sequence
//! number; ingest numbers it when it is committed, and the payload bytes
//! stored then are the ones (re)published.

pub mod parts;
pub mod payload;

use serde_json::Value;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use ulid::Ulid;

use payload::{Envelope, EventBody};

/// The fields of an `excursion` payload that subscribers rely on
/// (ARCHITECTURE.md: more may be added, none renamed).
pub const EXCURSION_FIELDS: &[&str] = &[
    "schema",
    "event_id",
    "seq",
    "gateway_id",
    "at",
    "phase",
    "excursion_id",
    "sensor_id",
    "zone",
    "quantity",
    "unit",
    "direction",
    "limit",
    "profile",
    "started_at",
    "ended_at",
    "duration_s",
    "min",
    "max",
    "mean",
    "affected",
];

/// The kinds of event, one topic each (`{prefix}/events/{kind}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EventKind {
    Excursion,
    Door,
    Sensor,
    Lot,
    Gateway,
    /// An audit trail entry (see `crate::audit`), published as it is committed.
    Audit,
}

impl EventKind {
    pub fn as_str(self) -> &'static str {
        match self {
            EventKind::Excursion => "excursion",
            EventKind::Door => "door",
            EventKind::Sensor => "sensor",
            EventKind::Lot => "lot",
            EventKind::Gateway => "gateway",
            EventKind::Audit => "audit",
        }
    }

    /// The topic below the prefix.
    pub fn topic(self) -> String {
        format!("events/{}", self.as_str())
    }
}

#[derive(Debug, Clone, PartialEq)]
pub struct Event {
    /// Stable identity: generated once, stored, and sent unchanged with every
    /// retry so subscribers can drop duplicates.
    pub event_id: Ulid,
    pub at_ms: i64,
    /// The kind-specific fields.
    pub body: EventBody,
}

impl Event {
    pub fn new(at_ms: i64, body: impl Into<EventBody>) -> Event {
        Event {
            event_id: Ulid::from_parts(u64::try_from(at_ms.max(0)).unwrap_or(0), rand::random()),
            at_ms,
            body: body.into(),
        }
    }

    pub fn kind(&self) -> EventKind {
        match self.body {
            EventBody::Excursion(_) => EventKind::Excursion,
            EventBody::Door(_) => EventKind::Door,
            EventBody::Sensor(_) => EventKind::Sensor,
            EventBody::Lot(_) => EventKind::Lot,
            EventBody::Gateway(_) => EventKind::Gateway,
            EventBody::Audit(_) => EventKind::Audit,
        }
    }

    /// The payload as published, numbered `seq`.
    pub fn envelope(&self, seq: u64, gateway_id: &str) -> Envelope<&EventBody> {
        Envelope {
            schema: format!("coldgate.{}/1", self.body.kind_name()),
            event_id: self.event_id.to_string(),
            seq,
            gateway_id: gateway_id.to_string(),
            at: rfc3339(self.at_ms),
            body: &self.body,
            part: None,
            parts: None,
        }
    }

    /// The JSON payload.
    pub fn payload(&self, seq: u64, gateway_id: &str) -> Vec<u8> {
        payload::to_bytes(&self.envelope(seq, gateway_id))
    }

    /// The payloads to store for this event, at most `max` bytes each when
    /// it can be split (an excursion naming many pallets; see [`parts`]),
    /// numbered from `seq`. One that cannot be split to fit is kept whole:
    /// the publisher sets it aside rather than let it block the outbox.
    ///
    /// Splitting works on the serialised payload: cutting a list at byte
    /// budgets is a matter of the wire, and every part reads back as the
    /// same [`Envelope`] type with a shorter list.
    pub fn payloads(&self, seq: u64, gateway_id: &str, max: usize) -> Vec<Vec<u8>> {
        let list = match &self.body {
            EventBody::Excursion(_) => Some("affected"),
            // A lot's budget event lists the SSCCs of its pallets.
            EventBody::Lot(l) if l.pallets.is_some() => Some("pallets"),
            _ => None,
        };
        let whole = || -> serde_json::Map<String, Value> {
            match serde_json::to_value(self.envelope(u64::MAX, gateway_id)) {
                Ok(Value::Object(m)) => m,
                _ => serde_json::Map::new(),
            }
        };
        let Some(list) = list else {
            return vec![self.payload(seq, gateway_id)];
        };
        let parts = match parts::split(&whole(), list, max) {
            Ok(parts) => parts,
            Err(error) => {
                tracing::error!(kind = self.kind().as_str(), %error, "An event cannot be split to fit mqtt.max_payload; it is stored whole and will be set aside.");
                return vec![self.payload(seq, gateway_id)];
            }
        };
        if parts.len() == 1 {
            return vec![self.payload(seq, gateway_id)];
        }
        parts
            .into_iter()
            .zip(seq..)
            .map(|(mut m, seq)| {
                m.insert("seq".into(), Value::from(seq));
                serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
            })
            .collect()
    }
}

/// RFC 3339 UTC with milliseconds, e.g. `2026-11-25T21:04:05.120Z`.
pub fn rfc3339(at_ms: i64) -> String {
    let t = OffsetDateTime::from_unix_timestamp_nanos(i128::from(at_ms) * 1_000_000)
        .unwrap_or(OffsetDateTime::UNIX_EPOCH);
    const FORMAT: &[time::format_description::BorrowedFormatItem<'static>] = time::macros::format_description!(
        "[year]-[month]-[day]T[hour]:[minute]:[second].[subsecond digits:3]Z"
    );
    t.format(FORMAT).unwrap_or_default()
}

/// Parses RFC 3339 into milliseconds since the epoch.
pub fn parse_rfc3339(text: &str) -> Option<i64> {
    let t = OffsetDateTime::parse(text, &Rfc3339).ok()?;
    i64::try_from(t.unix_timestamp_nanos() / 1_000_000).ok()
}

/// The wall clock, in milliseconds since the epoch.
pub fn now_ms() -> i64 {
    i64::try_from(OffsetDateTime::now_utc().unix_timestamp_nanos() / 1_000_000).unwrap_or(0)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_rfc3339_utc_with_milliseconds() {
        assert_eq!(rfc3339(1_764_104_645_120), "2025-11-25T21:04:05.120Z");
        assert_eq!(
            parse_rfc3339("2025-11-25T21:04:05.120Z"),
            Some(1_764_104_645_120)
        );
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
    }

    fn door() -> payload::Door {
        payload::Door {
            phase: payload::DoorPhase::Opened,
            door_id: "d1".into(),
            sensor_id: "s1".into(),
            zone: "rear".into(),
            lux: 80.0,
            max_lux: None,
            threshold_lux: 50.0,
            opened_at: rfc3339(1_000),
            closed_at: None,
            duration_s: 0,
        }
    }

    #[test]
    fn payload_has_the_common_fields_and_the_event_id_is_stable() {
        let e = Event::new(1_000, door());
        let a: Value = serde_json::from_slice(&e.payload(7, "g")).unwrap();
        let b: Value = serde_json::from_slice(&e.payload(7, "g")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["schema"], "coldgate.door/1");
        assert_eq!(a["seq"], 7);
        assert_eq!(a["gateway_id"], "g");
        assert_eq!(a["phase"], "opened");
        assert_eq!(a["event_id"].as_str().unwrap().len(), 26);
        let back = EventBody::parse("door", &e.payload(7, "g")).unwrap();
        assert_eq!(back.body, EventBody::Door(door()));
    }

    fn exhausted(pallets: Option<Vec<String>>) -> payload::Lot {
        let mut lot = payload::Lot::new(payload::LotPhase::Exhausted, payload::LotReason::Budget);
        lot.gtin = Some("09520123456788".into());
        lot.lot = Some("L1".into());
        lot.pallets = pallets;
        lot
    }

    #[test]
    fn a_lot_event_naming_more_pallets_than_fit_is_numbered_in_parts_from_its_seq() {
        let ssccs: Vec<String> = (0..400).map(|i| format!("1061414100000{i:05}")).collect();
        let e = Event::new(1_000, exhausted(Some(ssccs.clone())));
        let payloads = e.payloads(40, "g", 4096);
        assert!(payloads.len() >= 2, "{}", payloads.len());
        let mut named = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            assert!(p.len() <= 4096, "{}", p.len());
            let v: Envelope<payload::Lot> = serde_json::from_slice(p).unwrap();
            assert_eq!(v.seq, 40 + i as u64);
            assert_eq!(v.part, Some(i as u64 + 1));
            assert_eq!(v.parts, Some(payloads.len() as u64));
            assert_eq!(v.event_id, e.event_id.to_string());
            assert_eq!(v.body.lot.as_deref(), Some("L1"));
            named.extend(v.body.pallets.unwrap());
        }
        assert_eq!(named, ssccs);
        // Small, it is one payload without part fields.
        let one = Event::new(1_000, exhausted(Some(vec![]))).payloads(3, "g", 4096);
        assert_eq!(one.len(), 1);
        assert!(!String::from_utf8_lossy(&one[0]).contains("\"part\""));
    }
}
