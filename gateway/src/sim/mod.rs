//! A simulated container: zones whose air follows a simple thermal model,
//! door openings (light and warm air) and compressor failures, at any speed.
//! It is a [`Source`] like any sensor bus, so the whole path can be run and
//! tested without hardware.

mod model;

use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use coldgate_sensor_drivers::{Reading, ReadingSender, Source, SourceError};
use tokio::sync::watch;

use crate::config::{Config, SensorKind, SimConfig};
pub use model::{Container, SensorSpec};

pub struct SimSource {
    container: Container,
    interval: Duration,
    speed: f64,
    start_ms: i64,
}

impl SimSource {
    /// `None` when the config has no simulated sensors.
    pub fn from_config(config: &Config, start_ms: i64) -> Option<SimSource> {
        let sim: &SimConfig = config.sim.as_ref()?;
        let sensors: Vec<SensorSpec> = config
            .sensors
            .iter()
            .filter(|s| s.kind == SensorKind::Sim)
            .map(|s| SensorSpec {
                id: Arc::from(s.id.as_str()),
                zone: s.zone.clone(),
                quantities: s.quantities.clone(),
            })
            .collect();
        if sensors.is_empty() {
            return None;
        }
        Some(SimSource {
            container: Container::new(sim, sensors),
            interval: sim.reading_interval,
            speed: sim.speed,
            start_ms,
        })
    }
}

impl Source for SimSource {
    fn name(&self) -> String {
        "sim".to_string()
    }

    fn run(
        mut self: Box<Self>,
        readings: ReadingSender,
        mut shutdown: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>> {
        Box::pin(async move {
            let real_step = self.interval.div_f64(self.speed);
            let step_ms = i64::try_from(self.interval.as_millis()).unwrap_or(i64::MAX);
            let mut tick = tokio::time::interval(real_step.max(Duration::from_micros(100)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut elapsed_ms: i64 = 0;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                if *shutdown.borrow() {
                    return Ok(());
                }
                let at_ms = self.start_ms + elapsed_ms;
                for (sensor, quantity, value) in self.container.step(elapsed_ms, step_ms) {
                    let reading = Reading::new(sensor, quantity, value, at_ms);
                    tokio::select! {
                        sent = readings.send(reading) => if sent.is_err() {
                            return Err(SourceError::IngestClosed);
                        },
                        _ = shutdown.changed() => return Ok(()),
                    }
                }
                elapsed_ms += step_ms;
            }
        })
    }
}
