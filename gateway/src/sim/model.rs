//! The thermal model. Each zone's air relaxes exponentially towards the set
//! point while the compressor works, towards the outside air while it has
//! failed, and faster towards the outside air while the door is open.

use std::sync::Arc;

use coldgate_sensor_drivers::Quantity;
use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

use crate::config::SimConfig;

/// Time constants in milliseconds of simulated time.
const COOLING_TAU_MS: f64 = 10.0 * 60_000.0;
const WARMING_TAU_MS: f64 = 30.0 * 60_000.0;
const DOOR_TAU_MS: f64 = 30.0 * 60_000.0;
const LIGHT_OPEN_LUX: f64 = 350.0;
const LIGHT_CLOSED_LUX: f64 = 0.2;

pub struct SensorSpec {
    pub id: Arc<str>,
    pub zone: String,
    pub quantities: Vec<Quantity>,
}

struct Zone {
    id: String,
    temperature: f64,
    humidity: f64,
}

pub struct Container {
    cfg: SimConfig,
    zones: Vec<Zone>,
    sensors: Vec<(SensorSpec, usize)>,
    rng: SmallRng,
}

impl Container {
    pub fn new(cfg: &SimConfig, sensors: Vec<SensorSpec>) -> Container {
        let mut zones: Vec<Zone> = Vec::new();
        let mut placed = Vec::new();
        for s in sensors {
            let idx = match zones.iter().position(|z| z.id == s.zone) {
                Some(i) => i,
                None => {
                    zones.push(Zone {
                        id: s.zone.clone(),
                        temperature: cfg.setpoint,
                        humidity: 60.0,
                    });
                    zones.len() - 1
                }
            };
            placed.push((s, idx));
        }
        Container {
            cfg: cfg.clone(),
            zones,
            sensors: placed,
            rng: SmallRng::seed_from_u64(cfg.seed),
        }
    }

    fn door_open(&self, t_ms: i64) -> bool {
        match self.cfg.door_every {
            Some(every) => {
                let every = every.as_millis() as i64;
                let open = self.cfg.door_open_for.as_millis() as i64;
                t_ms % every >= every - open
            }
            None => false,
        }
    }

    fn failed(&self, zone: &str, t_ms: i64) -> bool {
        self.cfg.failures.iter().any(|f| {
            if f.zone != zone {
                return false;
            }
            let after = f.after.as_millis() as i64;
            let lasts = f.lasts.as_millis() as i64;
            if t_ms < after {
                return false;
            }
            let since = t_ms - after;
            match f.every {
                Some(every) => since % (every.as_millis() as i64) < lasts,
                None => since < lasts,
            }
        })
    }

    /// Advances the model by `step_ms` ending at `t_ms` and returns one value
    /// per sensor and quantity.
    pub fn step(&mut self, t_ms: i64, step_ms: i64) -> Vec<(Arc<str>, Quantity, f64)> {
        let door = self.door_open(t_ms);
        let dt = step_ms as f64;
        for i in 0..self.zones.len() {
            let failed = self.failed(&self.zones[i].id, t_ms);
            let z = &mut self.zones[i];
            let (target, tau) = if failed {
                (self.cfg.ambient, WARMING_TAU_MS)
            } else {
                (self.cfg.setpoint, COOLING_TAU_MS)
            };
            z.temperature += (target - z.temperature) * (1.0 - (-dt / tau).exp());
            if door {
                z.temperature +=
                    (self.cfg.ambient - z.temperature) * (1.0 - (-dt / DOOR_TAU_MS).exp());
                z.humidity += (80.0 - z.humidity) * 0.2;
            } else {
                z.humidity += (60.0 - z.humidity) * 0.05;
            }
        }
        let mut out = Vec::new();
        for (spec, zi) in &self.sensors {
            let z = &self.zones[*zi];
            for &q in &spec.quantities {
                let value = match q {
                    Quantity::Temperature => z.temperature + self.rng.random_range(-0.05..0.05),
                    Quantity::Humidity => {
                        (z.humidity + self.rng.random_range(-0.5..0.5)).clamp(0.0, 100.0)
                    }
                    Quantity::Illuminance => {
                        if door {
                            LIGHT_OPEN_LUX + self.rng.random_range(-20.0..20.0)
                        } else {
                            LIGHT_CLOSED_LUX
                        }
                    }
                    Quantity::Battery => 95.0,
                    Quantity::BatteryVoltage => 3000.0,
                };
                out.push((spec.id.clone(), q, (value * 100.0).round() / 100.0));
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::FailureConfig;
    use std::time::Duration;

    fn container(failure: bool) -> Container {
        let mut cfg = SimConfig::default();
        if failure {
            cfg.failures.push(FailureConfig {
                zone: "rear".into(),
                after: Duration::from_secs(600),
                lasts: Duration::from_secs(1500),
                every: None,
            });
        }
        cfg.door_every = Some(Duration::from_secs(2400));
        cfg.door_open_for = Duration::from_secs(180);
        Container::new(
            &cfg,
            vec![SensorSpec {
                id: Arc::from("r"),
                zone: "rear".into(),
                quantities: vec![Quantity::Temperature, Quantity::Illuminance],
            }],
        )
    }

    fn run(c: &mut Container, minutes: i64) -> Vec<(i64, f64, f64)> {
        (0..minutes * 2)
            .map(|i| {
                let t = i * 30_000;
                let v = c.step(t, 30_000);
                (t, v[0].2, v[1].2)
            })
            .collect()
    }

    #[test]
    fn without_failure_the_zone_stays_near_the_set_point_apart_from_doors() {
        let mut c = container(false);
        let series = run(&mut c, 120);
        let max = series.iter().map(|s| s.1).fold(f64::MIN, f64::max);
        assert!(max < 8.0, "max {max}");
        assert!(series.iter().any(|s| s.2 > 100.0), "the door opened");
    }

    #[test]
    fn a_compressor_failure_drives_the_zone_above_8_and_back() {
        let mut c = container(true);
        let series = run(&mut c, 120);
        let first_above = series
            .iter()
            .find(|s| s.1 > 8.0)
            .map(|s| s.0)
            .expect("goes above 8");
        let back = series
            .iter()
            .filter(|s| s.0 > first_above)
            .find(|s| s.1 < 8.0)
            .map(|s| s.0)
            .expect("comes back");
        assert!(
            first_above > 10 * 60_000 && first_above < 25 * 60_000,
            "{first_above}"
        );
        assert!(back < 60 * 60_000, "{back}");
    }
}
