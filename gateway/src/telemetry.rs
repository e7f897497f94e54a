//! Periodic telemetry: per sensor and quantity, min, max, mean and count
//! over an interval, on `{prefix}/telemetry/{sensor_id}`.
//!
//! Design: pure, no IO, no clock of its own. Windows are aligned to the
//! readings' own time (`[k·interval, (k+1)·interval)`), like the excursion
//! engine, so a simulator running ahead of the wall clock is summarised by
//! its own time. Ingest feeds every reading and, on its timer, asks for the
//! windows that are over; it stores the messages in the telemetry outbox,
//! apart from events: telemetry has no `seq` and never takes one, and a
//! full outbox drops telemetry first (see `store::Writer::set_outbox_cap`).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::event::payload::{self, QuantityStats};
use crate::event::rfc3339;
use coldgate_sensor_drivers::{Quantity, Reading};

/// One telemetry message, ready to store and publish.
#[derive(Debug, Clone, PartialEq)]
pub struct Telemetry {
    /// The end of the window.
    pub at_ms: i64,
    /// Below the prefix: `telemetry/{sensor_id}`.
    pub topic: String,
    pub payload: Vec<u8>,
}

#[derive(Debug, Clone, Copy)]
struct Stats {
    min: f64,
    max: f64,
    sum: f64,
    count: u64,
}

#[derive(Debug, Clone)]
struct Window {
    start_ms: i64,
    stats: BTreeMap<&'static str, (Quantity, Stats)>,
}

/// Summarises readings per sensor over fixed windows.
#[derive(Debug, Clone)]
pub struct Aggregator {
    gateway_id: String,
    interval_ms: i64,
    windows: BTreeMap<Arc<str>, Window>,
}

impl Aggregator {
    /// `interval` is clamped to at least one second.
    pub fn new(gateway_id: &str, interval: std::time::Duration) -> Aggregator {
        Aggregator {
            gateway_id: gateway_id.to_string(),
            interval_ms: i64::try_from(interval.as_millis())
                .unwrap_or(i64::MAX)
                .max(1000),
            windows: BTreeMap::new(),
        }
    }

    /// Adds a reading. A reading of a later window closes the sensor's
    /// window and returns its message; a reading older than the open window
    /// (out of order) is not counted.
    pub fn add(&mut self, r: &Reading) -> Option<Telemetry> {
        if !r.value.is_finite() {
            return None;
        }
        let start = r.at_ms.div_euclid(self.interval_ms) * self.interval_ms;
        let mut closed = None;
        if let Some(w) = self.windows.get(&r.sensor) {
            if start < w.start_ms {
                return None;
            }
            if start > w.start_ms {
                closed = self
                    .windows
                    .remove(&r.sensor)
                    .map(|w| self.message(&r.sensor, &w));
            }
        }
        let w = self.windows.entry(r.sensor.clone()).or_insert(Window {
            start_ms: start,
            stats: BTreeMap::new(),
        });
        let (_, s) = w.stats.entry(r.quantity.as_str()).or_insert((
            r.quantity,
            Stats {
                min: r.value,
                max: r.value,
                sum: 0.0,
                count: 0,
            },
        ));
        s.min = s.min.min(r.value);
        s.max = s.max.max(r.value);
        s.sum += r.value;
        s.count += 1;
        closed
    }

    /// Closes and returns every window that ended at or before `now_ms`.
    pub fn due(&mut self, now_ms: i64) -> Vec<Telemetry> {
        let over: Vec<Arc<str>> = self
            .windows
            .iter()
            .filter(|(_, w)| w.start_ms.saturating_add(self.interval_ms) <= now_ms)
            .map(|(k, _)| k.clone())
            .collect();
        over.into_iter()
            .filter_map(|k| {
                let w = self.windows.remove(&k)?;
                Some(self.message(&k, &w))
            })
            .collect()
    }

    fn message(&self, sensor: &str, w: &Window) -> Telemetry {
        let end = w.start_ms.saturating_add(self.interval_ms);
        let quantities = w
            .stats
            .iter()
            .map(|(name, (q, s))| {
                let stats = QuantityStats {
                    unit: q.unit().to_string(),
                    min: s.min,
                    max: s.max,
                    mean: s.sum / s.count.max(1) as f64,
                    count: s.count,
                };
                ((*name).to_string(), stats)
            })
            .collect();
        let message = payload::Telemetry {
            schema: "coldgate.telemetry/1".into(),
            gateway_id: self.gateway_id.clone(),
            sensor_id: sensor.to_string(),
            from: rfc3339(w.start_ms),
            to: rfc3339(end),
            quantities,
        };
        Telemetry {
            at_ms: end,
            topic: format!("telemetry/{sensor}"),
            payload: payload::to_bytes(&message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn r(sensor: &str, q: Quantity, value: f64, at_ms: i64) -> Reading {
        Reading {
            sensor: Arc::from(sensor),
            quantity: q,
            value,
            at_ms,
        }
    }

    fn json(t: &Telemetry) -> serde_json::Value {
        serde_json::from_slice(&t.payload).unwrap()
    }

    #[test]
    fn a_window_gives_min_max_mean_and_count_per_quantity() {
        let mut a = Aggregator::new("g", Duration::from_secs(60));
        for (v, t) in [(4.0, 0), (6.0, 10_000), (5.0, 59_999)] {
            assert!(a.add(&r("s1", Quantity::Temperature, v, t)).is_none());
        }
        a.add(&r("s1", Quantity::Humidity, 50.0, 30_000));
        assert!(a.due(59_999).is_empty(), "the window is not over yet");
        let out = a.due(60_000);
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].topic, "telemetry/s1");
        let v = json(&out[0]);
        assert_eq!(v["schema"], "coldgate.telemetry/1");
        assert_eq!(v["from"], "1970-01-01T00:00:00.000Z");
        assert_eq!(v["to"], "1970-01-01T00:01:00.000Z");
        let t = &v["quantities"]["temperature"];
        assert_eq!(
            (t["min"].as_f64(), t["max"].as_f64()),
            (Some(4.0), Some(6.0))
        );
        assert_eq!(t["mean"].as_f64(), Some(5.0));
        assert_eq!(t["count"], 3);
        assert_eq!(v["quantities"]["humidity"]["count"], 1);
        assert!(a.due(1_000_000).is_empty(), "a window is sent once");
    }

    #[test]
    fn a_reading_of_a_later_window_closes_the_sensors_window_only() {
        let mut a = Aggregator::new("g", Duration::from_secs(60));
        a.add(&r("s1", Quantity::Temperature, 4.0, 1_000));
        a.add(&r("s2", Quantity::Temperature, 7.0, 1_000));
        let closed = a.add(&r("s1", Quantity::Temperature, 5.0, 61_000)).unwrap();
        assert_eq!(json(&closed)["quantities"]["temperature"]["count"], 1);
        assert!(
            a.add(&r("s1", Quantity::Temperature, 9.0, 30_000))
                .is_none(),
            "an older reading is not counted"
        );
        let rest = a.due(120_000);
        assert_eq!(rest.len(), 2);
        let s1 = rest.iter().find(|t| t.topic == "telemetry/s1").unwrap();
        assert_eq!(
            json(s1)["quantities"]["temperature"]["max"].as_f64(),
            Some(5.0)
        );
    }
}
