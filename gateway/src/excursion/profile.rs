//! Profiles compiled from configuration into what the detectors need:
//! limits in the readings' units and durations in milliseconds.

use std::collections::HashMap;
use std::time::Duration;

use coldgate_sensor_drivers::Quantity;

use super::detector::{Direction, Limits};
use crate::config::{Config, ProfileConfig};

/// One limit rule of a profile (`profiles[i].limits[index]`).
#[derive(Debug, Clone, PartialEq)]
pub struct Rule {
    /// Position in the profile's `limits`: part of the tracker key, so a
    /// rule keeps its state across restarts while the config is unchanged.
    pub index: usize,
    pub quantity: Quantity,
    pub limits: Limits,
    /// Cumulative time below `low` allowed per lot, ms; None: no allowance.
    pub low_budget_ms: Option<i64>,
    /// Cumulative time above `high` allowed per lot, ms; None: no allowance.
    pub high_budget_ms: Option<i64>,
    /// Time below `low` is a freeze.
    pub freeze: bool,
}

impl Rule {
    /// The cumulative allowance of one direction, ms.
    pub fn budget_ms(&self, direction: Direction) -> Option<i64> {
        match direction {
            Direction::Low => self.low_budget_ms,
            Direction::High => self.high_budget_ms,
        }
    }
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

impl Profile {
    /// ΔH for every MKT this profile's readings feed (excursions, ledger),
    /// so one record never mixes two activation energies.
    pub fn activation_energy(&self) -> f64 {
        self.mkt
            .as_ref()
            .map_or(super::mkt::DEFAULT_ACTIVATION_ENERGY_KJ_PER_MOL, |m| {
                m.activation_energy
            })
    }
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
                    low_budget_ms: l.allowance(Direction::Low).map(ms),
                    high_budget_ms: l.allowance(Direction::High).map(ms),
                    freeze: l.freeze,
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
        assert_eq!(
            ids,
            [
                "refrigerated",
                "crt",
                "frozen",
                "who-30dtr",
                "who-tr07-type1",
                "who-tr07-type2"
            ]
        );
        let mut problems: Vec<Problem> = Vec::new();
        for (i, p) in presets().iter().enumerate() {
            crate::config::validate_profile(p, &format!("presets[{i}]"), &mut problems);
        }
        assert!(problems.is_empty(), "{problems:?}");
    }

    #[test]
    fn label_presets_keep_the_labelled_end_points_in_range_and_who_presets_follow_their_specs() {
        let get = |id: &str| Profile::from_config(presets().iter().find(|p| p.id == id).unwrap());
        // Label semantics: "2–8 °C" includes 2.0 and 8.0, for every rule of
        // a range taken from a label.
        for id in ["refrigerated", "crt", "frozen"] {
            for r in get(id).rules.iter().filter(|r| !r.freeze) {
                let l = &r.limits;
                assert!(l.exclusive, "{id} limits[{}]", r.index);
                for end in [l.low, l.high].into_iter().flatten() {
                    assert_eq!(l.classify(end), None, "{id}: {end} is in range");
                }
            }
        }
        // The refrigerated freeze rule: at or below 0 °C, no allowance.
        let fridge = get("refrigerated");
        let freeze = fridge.rules.iter().find(|r| r.freeze).unwrap();
        assert_eq!(freeze.limits.classify(0.0), Some(Direction::Low));
        assert_eq!(freeze.limits.classify(0.001), None);
        assert_eq!(freeze.budget_ms(Direction::Low), None);
        assert_eq!(fridge.rules[0].budget_ms(Direction::High), Some(86_400_000));
        assert_eq!(fridge.rules[0].budget_ms(Direction::Low), None);
        // WHO/PQS/E006/TR07: thresholds are in the alarm range.
        let h = 3_600_000;
        for id in ["who-tr07-type1", "who-tr07-type2"] {
            let p = get(id);
            type Shape = (Option<f64>, Option<f64>, i64, Option<i64>);
            let rules: Vec<Shape> = p
                .rules
                .iter()
                .map(|r| {
                    assert!(!r.limits.exclusive, "{id}");
                    let budget = r.budget_ms(Direction::High).or(r.budget_ms(Direction::Low));
                    (r.limits.low, r.limits.high, r.limits.delay_ms, budget)
                })
                .collect();
            let mut expected = vec![
                (None, Some(45.0), h, None),
                (None, Some(30.0), 0, Some(10 * h)),
            ];
            expected.push(if id.ends_with('1') {
                (Some(-0.5), None, h, None)
            } else {
                (None, Some(10.0), 0, Some(20 * h))
            });
            assert_eq!(rules, expected, "{id}");
        }
        assert!(get("who-tr07-type1").rules[2].freeze);
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
