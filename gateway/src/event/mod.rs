//! What the gateway publishes. An [`Event`] is built by the engine without
//! knowing its sequence number; ingest numbers it when it is committed, and
//! the payload bytes stored then are the ones (re)published.

pub mod parts;

use serde_json::{Map, Value};
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;
use ulid::Ulid;

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
    pub kind: EventKind,
    /// Stable identity: generated once, stored, and sent unchanged with every
    /// retry so subscribers can drop duplicates.
    pub event_id: Ulid,
    pub at_ms: i64,
    /// The kind-specific fields (`phase`, `excursion_id`, …).
    pub fields: Map<String, Value>,
}

impl Event {
    pub fn new(kind: EventKind, at_ms: i64, fields: Map<String, Value>) -> Event {
        Event {
            kind,
            event_id: Ulid::from_parts(u64::try_from(at_ms.max(0)).unwrap_or(0), rand::random()),
            at_ms,
            fields,
        }
    }

    /// The JSON payload with the common fields first.
    pub fn payload(&self, seq: u64, gateway_id: &str) -> Vec<u8> {
        serde_json::to_vec(&Value::Object(self.payload_map(seq, gateway_id))).unwrap_or_default()
    }

    /// The payloads to store for this event, at most `max` bytes each when
    /// it can be split (an excursion naming many pallets; see [`parts`]),
    /// numbered from `seq`. One that cannot be split to fit is kept whole:
    /// the publisher sets it aside rather than let it block the outbox.
    pub fn payloads(&self, seq: u64, gateway_id: &str, max: usize) -> Vec<Vec<u8>> {
        let whole = self.payload_map(u64::MAX, gateway_id);
        let list = match self.kind {
            EventKind::Excursion => Some("affected"),
            // A lot's budget event lists the SSCCs of its pallets.
            EventKind::Lot if self.fields.get("pallets").is_some_and(|p| p.is_array()) => {
                Some("pallets")
            }
            _ => None,
        };
        let parts = match list {
            Some(list) => parts::split(&whole, list, max),
            None => Ok(vec![whole]),
        };
        let parts = match parts {
            Ok(parts) => parts,
            Err(error) => {
                tracing::error!(kind = self.kind.as_str(), %error, "An event cannot be split to fit mqtt.max_payload; it is stored whole and will be set aside.");
                vec![self.payload_map(u64::MAX, gateway_id)]
            }
        };
        parts
            .into_iter()
            .zip(seq..)
            .map(|(mut m, seq)| {
                m.insert("seq".into(), Value::from(seq));
                serde_json::to_vec(&Value::Object(m)).unwrap_or_default()
            })
            .collect()
    }

    fn payload_map(&self, seq: u64, gateway_id: &str) -> Map<String, Value> {
        let mut m = Map::new();
        m.insert(
            "schema".into(),
            Value::from(format!("coldgate.{}/1", self.kind.as_str())),
        );
        m.insert("event_id".into(), Value::from(self.event_id.to_string()));
        m.insert("seq".into(), Value::from(seq));
        m.insert("gateway_id".into(), Value::from(gateway_id));
        m.insert("at".into(), Value::from(rfc3339(self.at_ms)));
        for (k, v) in &self.fields {
            m.insert(k.clone(), v.clone());
        }
        m
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

    #[test]
    fn payload_has_the_common_fields_and_the_event_id_is_stable() {
        let mut f = Map::new();
        f.insert("phase".into(), Value::from("started"));
        let e = Event::new(EventKind::Excursion, 1_000, f);
        let a: Value = serde_json::from_slice(&e.payload(7, "g")).unwrap();
        let b: Value = serde_json::from_slice(&e.payload(7, "g")).unwrap();
        assert_eq!(a, b);
        assert_eq!(a["schema"], "coldgate.excursion/1");
        assert_eq!(a["seq"], 7);
        assert_eq!(a["gateway_id"], "g");
        assert_eq!(a["phase"], "started");
        assert_eq!(a["event_id"].as_str().unwrap().len(), 26);
    }

    #[test]
    fn a_lot_event_naming_more_pallets_than_fit_is_numbered_in_parts_from_its_seq() {
        let mut f = Map::new();
        f.insert("phase".into(), Value::from("exhausted"));
        let ssccs: Vec<String> = (0..400).map(|i| format!("1061414100000{i:05}")).collect();
        f.insert("pallets".into(), serde_json::json!(ssccs));
        let e = Event::new(EventKind::Lot, 1_000, f);
        let payloads = e.payloads(40, "g", 4096);
        assert!(payloads.len() >= 2, "{}", payloads.len());
        let mut named = Vec::new();
        for (i, p) in payloads.iter().enumerate() {
            assert!(p.len() <= 4096, "{}", p.len());
            let v: Value = serde_json::from_slice(p).unwrap();
            assert_eq!(v["seq"], 40 + i as u64);
            assert_eq!(v["part"], i + 1);
            assert_eq!(v["event_id"], e.event_id.to_string());
            named.extend(v["pallets"].as_array().unwrap().iter().cloned());
        }
        assert_eq!(named, serde_json::json!(ssccs).as_array().unwrap().clone());
        // Small, it is one payload without part fields.
        let one = Event::new(EventKind::Lot, 1_000, Map::new()).payloads(3, "g", 4096);
        assert_eq!(one.len(), 1);
        assert!(!String::from_utf8_lossy(&one[0]).contains("\"part\""));
    }
}
