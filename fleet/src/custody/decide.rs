//! The pure decisions of custody: when two stays are one code in two
//! places at once, when a serial was relabelled, when a lot was loaded past
//! its expiry. Functions of the set of stays, never of their arrival.

use std::collections::BTreeMap;

use serde::Serialize;
use time::{Date, OffsetDateTime};

/// One time a code was on board one gateway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Stay {
    /// `sscc` or `sgtin`.
    pub kind: String,
    /// The SSCC, or `GTIN/SERIAL`.
    pub code: String,
    pub gateway_id: String,
    pub zone: String,
    pub sscc: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub gtin: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub serial: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lot: Option<String>,
    /// `YYYY-MM-DD`, as in the manifest.
    #[serde(
        skip_serializing_if = "Option::is_none",
        serialize_with = "expiry_text"
    )]
    pub expiry: Option<Date>,
    #[serde(with = "time::serde::rfc3339")]
    pub loaded: OffsetDateTime,
    #[serde(with = "time::serde::rfc3339::option")]
    pub unloaded: Option<OffsetDateTime>,
    pub source: String,
}

impl Stay {
    /// The same code on board two gateways at once. Intervals are half open
    /// (`[loaded, unloaded)`, as the `stays_one_place` constraint reads
    /// them): a pallet unloaded from A at 10:00 and loaded on B at 10:00 is
    /// a move, not a conflict.
    pub fn overlaps(&self, other: &Stay) -> bool {
        let before_end = |t: OffsetDateTime, s: &Stay| s.unloaded.is_none_or(|u| t < u);
        self.kind == other.kind
            && self.code == other.code
            && self.gateway_id != other.gateway_id
            && before_end(self.loaded, self)
            && before_end(other.loaded, other)
            && before_end(self.loaded, other)
            && before_end(other.loaded, self)
    }

    fn label(&self) -> (Option<&str>, Option<Date>) {
        (self.lot.as_deref(), self.expiry)
    }

    /// Identity of a stay (the table's unique key): a manifest repeated
    /// lists it again, unchanged.
    pub(crate) fn id(&self) -> String {
        format!(
            "{}|{}|{}|{}|{}|{}",
            self.gateway_id,
            self.loaded.unix_timestamp_nanos(),
            self.code,
            self.sscc,
            self.lot.as_deref().unwrap_or(""),
            self.expiry.map(|e| e.to_string()).unwrap_or_default()
        )
    }

    /// A total order that does not depend on arrival: time first, then the
    /// gateway, then the rest of the identity, so stays loaded at the same
    /// instant are still ordered.
    #[allow(clippy::type_complexity)]
    fn order(
        &self,
    ) -> (
        OffsetDateTime,
        &str,
        &str,
        &str,
        &str,
        Option<&str>,
        Option<Date>,
    ) {
        (
            self.loaded,
            &self.gateway_id,
            &self.code,
            &self.kind,
            &self.sscc,
            self.lot.as_deref(),
            self.expiry,
        )
    }
}

/// An alert as stored (`alerts`) and published (`fleet.alerts.custody`).
#[derive(Debug, Clone, PartialEq)]
pub struct Alert {
    /// What it is about; the same facts give the same key.
    pub key: String,
    pub kind: &'static str,
    pub code: String,
    /// The gateway of the later place.
    pub gateway_id: String,
    pub detail: serde_json::Value,
}

/// The overlap and relabelling alerts that `stays` call for, a pure
/// function of the set: any order of the same stays gives the same alerts.
pub fn wanted_alerts(stays: &[Stay]) -> Vec<Alert> {
    let mut sorted: Vec<&Stay> = stays.iter().collect();
    sorted.sort_by(|a, b| a.order().cmp(&b.order()));
    sorted.dedup_by(|a, b| a.kind == b.kind && a.id() == b.id());
    let mut out = Vec::new();
    for (i, a) in sorted.iter().enumerate() {
        for b in &sorted[i + 1..] {
            if a.overlaps(b) {
                out.push(Alert {
                    key: format!(
                        "custody_overlap|{}|{}|{}|{}",
                        a.kind,
                        a.code,
                        a.id(),
                        b.id()
                    ),
                    kind: "custody_overlap",
                    code: a.code.clone(),
                    gateway_id: b.gateway_id.clone(),
                    detail: serde_json::json!({
                        "schema": "coldgate.fleet_alert/1",
                        "kind": "custody_overlap",
                        "code_kind": a.kind,
                        "code": a.code,
                        "places": [a, b],
                    }),
                });
            }
        }
    }
    // Relabelling: per GTIN + serial, the first stay of each label (lot,
    // expiry); every label other than the first recorded is an alert.
    let mut firsts: BTreeMap<&str, Vec<&Stay>> = BTreeMap::new();
    for s in sorted.iter().filter(|s| s.kind == "sgtin") {
        let labels = firsts.entry(&s.code).or_default();
        if !labels.iter().any(|l| l.label() == s.label()) {
            labels.push(s);
        }
    }
    for (code, labels) in firsts {
        let Some((first, others)) = labels.split_first() else {
            continue;
        };
        for then in others {
            out.push(Alert {
                key: format!("relabelled|{code}|{}|{}", first.id(), then.id()),
                kind: "relabelled",
                code: code.to_string(),
                gateway_id: then.gateway_id.clone(),
                detail: serde_json::json!({
                    "schema": "coldgate.fleet_alert/1",
                    "kind": "relabelled",
                    "code": code,
                    "gtin": then.gtin,
                    "serial": then.serial,
                    "first": first,
                    "then": then,
                }),
            });
        }
    }
    out
}

/// A lot on a pallet is past its expiry when loaded after the end of its
/// expiry day (UTC): the date on the pack is the last day it may be used.
pub fn loaded_after_expiry(loaded: OffsetDateTime, expiry: Option<Date>) -> bool {
    expiry.is_some_and(|e| loaded.to_offset(time::UtcOffset::UTC).date() > e)
}

pub(crate) fn expiry_text<S: serde::Serializer>(e: &Option<Date>, s: S) -> Result<S::Ok, S::Error> {
    match e {
        Some(d) => s.serialize_str(&d.to_string()),
        None => s.serialize_none(),
    }
}

#[cfg(test)]
mod tests;
