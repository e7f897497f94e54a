//! Applies each zone's profile to every reading of the zone's sensors and
//! turns the trackers' transitions into events.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use coldgate_sensor_drivers::{Quantity, Reading};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};

use super::detector::{Limits, Tracker, Transition};
use crate::config::Config;
use crate::event::{rfc3339, Event, EventKind};

struct Rule {
    key: String,
    zone: String,
    profile: String,
    limits: Limits,
}

/// Everything the engine must remember across a restart.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct EngineState {
    /// Tracker per `sensor/quantity/profile`.
    pub trackers: BTreeMap<String, Tracker>,
}

pub struct Engine {
    rules: HashMap<(Arc<str>, Quantity), Vec<Rule>>,
    state: EngineState,
}

impl Engine {
    /// Builds the rules from a validated config and resumes from `state`.
    /// Trackers of rules that no longer exist are dropped.
    pub fn new(config: &Config, mut state: EngineState) -> Engine {
        let mut rules: HashMap<(Arc<str>, Quantity), Vec<Rule>> = HashMap::new();
        for sensor in &config.sensors {
            let Some(profile) = config.zone_profile(&sensor.zone) else {
                continue;
            };
            for limit in &profile.limits {
                if !sensor.quantities.contains(&limit.quantity) {
                    continue;
                }
                let key = format!("{}/{}/{}", sensor.id, limit.quantity, profile.id);
                rules
                    .entry((Arc::from(sensor.id.as_str()), limit.quantity))
                    .or_default()
                    .push(Rule {
                        key,
                        zone: sensor.zone.clone(),
                        profile: profile.id.clone(),
                        limits: Limits {
                            low: limit.low,
                            high: limit.high,
                            delay_ms: i64::try_from(limit.delay.as_millis()).unwrap_or(i64::MAX),
                        },
                    });
            }
        }
        let keys: std::collections::HashSet<&str> =
            rules.values().flatten().map(|r| r.key.as_str()).collect();
        state.trackers.retain(|k, _| keys.contains(k.as_str()));
        Engine { rules, state }
    }

    pub fn state(&self) -> &EngineState {
        &self.state
    }

    pub fn on_reading(&mut self, reading: &Reading) -> Vec<Event> {
        let Some(rules) = self.rules.get(&(reading.sensor.clone(), reading.quantity)) else {
            return Vec::new();
        };
        if !reading.value.is_finite() {
            return Vec::new();
        }
        let mut events = Vec::new();
        for rule in rules {
            let tracker = self.state.trackers.entry(rule.key.clone()).or_default();
            for t in tracker.on_value(reading.at_ms, reading.value, &rule.limits) {
                events.push(excursion_event(reading, rule, &t));
            }
        }
        events
    }
}

fn excursion_event(reading: &Reading, rule: &Rule, t: &Transition) -> Event {
    let (phase, id, dir, since, ended, stats) = match *t {
        Transition::Started {
            excursion_id,
            direction,
            since_ms,
            stats,
        } => ("started", excursion_id, direction, since_ms, None, stats),
        Transition::Ended {
            excursion_id,
            direction,
            since_ms,
            ended_ms,
            stats,
        } => (
            "ended",
            excursion_id,
            direction,
            since_ms,
            Some(ended_ms),
            stats,
        ),
    };
    let at = ended.unwrap_or(reading.at_ms);
    let mut f = Map::new();
    f.insert("phase".into(), json!(phase));
    f.insert("excursion_id".into(), json!(id.to_string()));
    f.insert("sensor_id".into(), json!(&*reading.sensor));
    f.insert("zone".into(), json!(rule.zone));
    f.insert("quantity".into(), json!(reading.quantity.as_str()));
    f.insert("unit".into(), json!(reading.quantity.unit()));
    f.insert("direction".into(), json!(dir.as_str()));
    f.insert("limit".into(), json!(rule.limits.limit(dir)));
    f.insert("profile".into(), json!(rule.profile));
    f.insert("started_at".into(), json!(rfc3339(since)));
    f.insert(
        "ended_at".into(),
        ended.map(rfc3339).map(Value::from).unwrap_or(Value::Null),
    );
    f.insert("duration_s".into(), json!((at - since) / 1000));
    f.insert("min".into(), json!(round3(stats.min)));
    f.insert("max".into(), json!(round3(stats.max)));
    f.insert("mean".into(), json!(round3(stats.mean())));
    f.insert("affected".into(), json!([]));
    Event::new(EventKind::Excursion, at, f)
}

fn round3(v: f64) -> f64 {
    (v * 1000.0).round() / 1000.0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config() -> Config {
        crate::config::parse(
            r#"
gateway_id = "g"
[[profiles]]
id = "refrigerated"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0, delay = "5m" }]
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
quantities = ["temperature", "humidity"]
[sim]
"#,
            "test",
        )
        .unwrap()
    }

    fn r(at_min: i64, v: f64) -> Reading {
        Reading::new(
            Arc::from("rear-1"),
            Quantity::Temperature,
            v,
            at_min * 60_000,
        )
    }

    #[test]
    fn an_excursion_starts_after_the_delay_and_ends_with_the_contract_fields() {
        let mut e = Engine::new(&config(), EngineState::default());
        let mut events = Vec::new();
        for (m, v) in [
            (0, 5.0),
            (1, 9.0),
            (3, 10.0),
            (6, 10.5),
            (7, 11.0),
            (8, 6.0),
        ] {
            events.extend(e.on_reading(&r(m, v)));
        }
        assert_eq!(events.len(), 2, "{events:?}");
        let started: Value = serde_json::from_slice(&events[0].payload(1, "g")).unwrap();
        let ended: Value = serde_json::from_slice(&events[1].payload(2, "g")).unwrap();
        assert_eq!(started["phase"], "started");
        assert_eq!(started["started_at"], rfc3339(60_000));
        assert_eq!(started["at"], rfc3339(6 * 60_000 + 60_000));
        assert_eq!(started["ended_at"], Value::Null);
        assert_eq!(ended["phase"], "ended");
        assert_eq!(ended["excursion_id"], started["excursion_id"]);
        assert_eq!(ended["duration_s"], 7 * 60);
        assert_eq!(ended["max"], 11.0);
        assert_eq!(ended["min"], 9.0);
        for key in [
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
        ] {
            assert!(ended.get(key).is_some(), "missing {key}");
        }
    }

    #[test]
    fn quantities_without_limits_and_unknown_sensors_raise_nothing() {
        let mut e = Engine::new(&config(), EngineState::default());
        let h = Reading::new(Arc::from("rear-1"), Quantity::Humidity, 99.0, 0);
        let x = Reading::new(Arc::from("other"), Quantity::Temperature, 99.0, 0);
        assert!(e.on_reading(&h).is_empty());
        assert!(e.on_reading(&x).is_empty());
    }

    #[test]
    fn a_restored_engine_continues_the_open_excursion() {
        let mut e = Engine::new(&config(), EngineState::default());
        for (m, v) in [(0, 9.0), (6, 9.0)] {
            e.on_reading(&r(m, v));
        }
        let saved: EngineState =
            serde_json::from_slice(&serde_json::to_vec(e.state()).unwrap()).unwrap();
        let mut again = Engine::new(&config(), saved);
        let out = again.on_reading(&r(7, 5.0));
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].fields["phase"], "ended");
        assert_eq!(out[0].fields["started_at"], rfc3339(0));
    }
}
