//! Profiles compiled from configuration into what the detectors need:
//! limits in the readings' units and durations in milliseconds.

use std::collections::HashMap;
use std::time::Duration;

use coldgate_sensor_drivers::Quantity;

use super::detector::Limits;
use crate::config::{Config, ProfileConfig};

/// One limit rule of a profile (`profiles[i].limits[index]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Position in the profile's `limits`: part of the tracker key, so a
    /// rule keeps its state across restarts while the config is unchanged.
    pub index: usize,
    pub quantity: Quantity,
    pub limits: Limits,
    /// Cumulative time out of range allowed per lot, ms.
    pub budget_ms: Option<i64>,
}

#[derive(Debug, Clone, PartialEq)]
pub struct MktRule {
    pub limit: f64,
    pub window_ms: Option<i64>,
    pub activation_energy: f64,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LightRule {
    pub threshold: f64,
    pub hysteresis: f64,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Profile {
    pub id: String,
    pub rules: Vec<Rule>,
    pub mkt: Option<MktRule>,
    pub light: Option<LightRule>,
    pub silence_ms: Option<i64>,
}

pub(crate) fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

impl Profile {
    pub fn from_config(p: &ProfileConfig) -> Profile {
        Profile {
            id: p.id.clone(),
            rules: p
                .limits
                .iter()
                .enumerate()
                .map(|(index, l)| Rule {
                    index,
                    quantity: l.quantity,
                    limits: Limits {
                        low: l.low,
                        high: l.high,
                        delay_ms: ms(l.delay),
                        exclusive: l.exclusive,
                        hysteresis: l.hysteresis,
                    },
                    budget_ms: l.budget.map(ms),
                })
                .collect(),
            mkt: p.mkt.as_ref().map(|m| MktRule {
                limit: m.limit,
                window_ms: m.window.map(ms),
                activation_energy: m.activation_energy,
            }),
            light: p.light.as_ref().map(|l| LightRule {
                threshold: l.threshold,
                hysteresis: l.hysteresis,
            }),
            silence_ms: p.silence.map(ms),
        }
    }

    /// The rules that judge `quantity`.
    pub fn rules_for(&self, quantity: Quantity) -> impl Iterator<Item = &Rule> {
        self.rules.iter().filter(move |r| r.quantity == quantity)
    }
}

/// Every profile a zone or pallet of this config can name, by id.
pub fn compile(config: &Config) -> HashMap<String, Profile> {
    let mut out = HashMap::new();
    for p in crate::config::presets().iter().chain(&config.profiles) {
        // The file's own profiles come last and replace presets of their id.
        out.insert(p.id.clone(), Profile::from_config(p));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{presets, Problem};

    #[test]
    fn the_presets_load_and_pass_validation() {
        let ids: Vec<&str> = presets().iter().map(|p| p.id.as_str()).collect();
        assert_eq!(ids, ["refrigerated", "crt", "frozen", "who-30dtr"]);
        let mut problems: Vec<Problem> = Vec::new();
        for (i, p) in presets().iter().enumerate() {
            crate::config::validate_profile(p, &format!("presets[{i}]"), &mut problems);
        }
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn the_who_preset_has_an_exclusive_heat_alarm_and_an_inclusive_cold_one() {
        let who = presets().iter().find(|p| p.id == "who-30dtr").unwrap();
        let who = Profile::from_config(who);
        let heat = &who.rules[0].limits;
        assert_eq!(
            (heat.high, heat.exclusive, heat.delay_ms),
            (Some(8.0), true, 36_000_000)
        );
        let cold = &who.rules[1].limits;
        assert_eq!(
            (cold.low, cold.exclusive, cold.delay_ms),
            (Some(-0.5), false, 3_600_000)
        );
    }
}
