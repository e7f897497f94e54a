//! Configs, pallets and feeders shared by the engine's test modules.

use super::*;
use crate::event::EventKind;
use serde_json::Value;

pub(super) const MIN: i64 = 60_000;
pub(super) const SSCC: &str = "106141412345678908";

pub(super) fn config(extra: &str) -> Config {
    crate::config::parse(
        &format!(
            r#"
gateway_id = "g"
[[profiles]]
id = "refrigerated"
silence = "10m"
light = {{ threshold = 10.0, hysteresis = 5.0 }}
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "5m", high_budget = "20m" }}]
[[zones]]
id = "rear"
profile = "refrigerated"
[[zones]]
id = "front"
profile = "who-30dtr"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
quantities = ["temperature", "humidity", "illuminance"]
[[sensors]]
id = "front-1"
zone = "front"
kind = "sim"
[sim]
{extra}
"#
        ),
        "test",
    )
    .unwrap()
}

pub(super) fn pallet(loaded: &str, unloaded: Option<&str>) -> String {
    format!(
        r#"
[[pallets]]
sscc = "{SSCC}"
zone = "rear"
loaded_at = "{loaded}"
{}
items = [{{ gtin = "09520123456788", lot = "ABC123", expiry = "2027-12-31", serials = ["12345"] }}]
"#,
        unloaded
            .map(|u| format!("unloaded_at = \"{u}\""))
            .unwrap_or_default()
    )
}

pub(super) fn r(sensor: &str, at: i64, v: f64) -> Reading {
    Reading::new(Arc::from(sensor), Quantity::Temperature, v, at)
}

pub(super) fn feed(e: &mut Engine, sensor: &str, series: &[(i64, f64)]) -> Vec<Event> {
    series
        .iter()
        .flat_map(|&(at, v)| e.on_reading(&r(sensor, at, v)))
        .collect()
}

pub(super) fn payload(e: &Event) -> Value {
    serde_json::from_slice(&e.payload(1, "g")).unwrap()
}

pub(super) fn of_kind(events: &[Event], kind: EventKind) -> Vec<Value> {
    events
        .iter()
        .filter(|e| e.kind() == kind)
        .map(payload)
        .collect()
}

pub(super) fn minutes(from: i64, to: i64, v: f64) -> Vec<(i64, f64)> {
    (from..=to).map(|m| (m * MIN, v)).collect()
}
