//! The BLE [`Source`]: advertisements in, readings out.
//!
//! Design: all radio handling (adapter sessions, backoff) is here; what an
//! advertisement means is in `decode` and `dedup`, which do no IO. The
//! scanner is a trait, so tests drive this with a script on tokio's paused
//! clock.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;
use std::sync::Arc;

use futures::StreamExt;
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::advertisement::Advertisement;
use super::btleplug_scanner::BtleplugScanner;
use super::config::{BleConfig, ConfigProblem, SensorSpec};
use super::decode::{decode, DecodeError};
use super::dedup::{DedupState, Verdict};
use super::diagnostics::Diagnostics;
use super::mac::MacAddr;
use super::scanner::Scanner;
use crate::Backoff;
use crate::{Reading, ReadingSender, Source, SourceError};

/// Waits between attempts to reach the adapter: 1 s, 2 s, 4 s … 60 s, and
/// from 1 s again once it delivers, so a brief outage does not leave the
/// next one waiting a minute.
const ADAPTER_RETRY_FIRST: std::time::Duration = std::time::Duration::from_secs(1);
const ADAPTER_RETRY_CAP: std::time::Duration = std::time::Duration::from_secs(60);

struct Tracked {
    spec: SensorSpec,
    dedup: DedupState,
    /// Last rejection reason, so a misconfigured sensor warns once per change
    /// of reason instead of on every advertisement.
    last_error: Option<String>,
}

/// Turns advertisements from configured sensors into [`Reading`]s.
pub struct BleSource {
    scanner: Box<dyn Scanner>,
    sensors: HashMap<MacAddr, Tracked>,
    diagnostics: Diagnostics,
}

impl BleSource {
    /// A source for the sensors of `config`, fed by `scanner`, reporting into
    /// `diagnostics`. Fails with every configuration problem.
    pub fn new(
        config: &BleConfig,
        scanner: Box<dyn Scanner>,
        diagnostics: Diagnostics,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let specs = config.resolve("ble")?;
        let sensors = specs
            .into_iter()
            .map(|spec| {
                diagnostics.register(&spec.sensor, spec.mac);
                (
                    spec.mac,
                    Tracked {
                        spec,
                        dedup: DedupState::default(),
                        last_error: None,
                    },
                )
            })
            .collect();
        Ok(BleSource {
            scanner,
            sensors,
            diagnostics,
        })
    }

    /// The production wiring: a [`BleSource`] scanning with btleplug on the
    /// configured adapter (or the first one).
    pub fn with_btleplug(
        config: &BleConfig,
        diagnostics: Diagnostics,
    ) -> Result<Self, Vec<ConfigProblem>> {
        let scanner = BtleplugScanner::new(config.adapter.clone());
        Self::new(config, Box::new(scanner), diagnostics)
    }

    /// The shared diagnostics this source reports into.
    pub fn diagnostics(&self) -> Diagnostics {
        self.diagnostics.clone()
    }

    async fn run_inner(
        mut self,
        readings: ReadingSender,
        mut shutdown: watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        let name = self.name();
        let mut backoff = Backoff::new(ADAPTER_RETRY_FIRST, ADAPTER_RETRY_CAP);
        loop {
            let opened = tokio::select! {
                r = self.scanner.open() => r,
                _ = shutdown_requested(&mut shutdown) => return Ok(()),
            };
            match opened {
                Err(error) => {
                    warn!(source = %name, %error, "Bluetooth scan could not start; will retry.");
                }
                Ok(mut stream) => {
                    self.diagnostics.set_adapter_up(true);
                    info!(source = %name, "Bluetooth scan running.");
                    loop {
                        let next = tokio::select! {
                            n = stream.next() => n,
                            _ = shutdown_requested(&mut shutdown) => {
                                self.diagnostics.set_adapter_up(false);
                                return Ok(());
                            }
                        };
                        match next {
                            Some(adv) => {
                                backoff.reset();
                                self.handle(adv, &readings, &mut shutdown).await?;
                            }
                            None => {
                                warn!(source = %name, "Bluetooth adapter stopped delivering advertisements (removed or BlueZ restarted); will reopen.");
                                break;
                            }
                        }
                    }
                    self.diagnostics.set_adapter_up(false);
                }
            }
            let delay = backoff.next_delay();
            info!(source = %name, delay_s = delay.as_secs(), "Waiting before the next Bluetooth scan attempt.");
            tokio::select! {
                _ = tokio::time::sleep(delay) => {}
                _ = shutdown_requested(&mut shutdown) => return Ok(()),
            }
        }
    }

    async fn handle(
        &mut self,
        adv: Advertisement,
        readings: &ReadingSender,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Result<(), SourceError> {
        self.diagnostics.seen();
        let Some(t) = self.sensors.get_mut(&adv.address) else {
            self.diagnostics.ignored();
            return Ok(());
        };
        let sensor = t.spec.sensor.clone();
        let key = t.spec.key;
        let decoded = match decode(
            &adv,
            t.spec.format,
            Some(adv.address.octets()),
            key.as_ref().map(|k| &k[..]),
        ) {
            Ok(d) => d,
            // Sensors also send advertisements that carry no measurement
            // (iBeacon, a name-only scan response, another vendor format):
            // not an attack and not a fault, so not a rejection.
            Err(e @ (DecodeError::Unrecognised | DecodeError::Missing { .. })) => {
                self.diagnostics.ignored();
                debug!(sensor = %sensor, reason = %e, "BLE advertisement carries no measurement.");
                return Ok(());
            }
            Err(e) => {
                reject(&self.diagnostics, t, &sensor, &e.to_string(), serious(&e));
                return Ok(());
            }
        };
        match t.dedup.judge(&decoded) {
            Verdict::Duplicate => {
                self.diagnostics.duplicate(&sensor, adv.rssi, adv.at_ms);
                Ok(())
            }
            Verdict::Replay => {
                reject(
                    &self.diagnostics,
                    t,
                    &sensor,
                    "encryption counter did not increase (replayed advertisement)",
                    true,
                );
                Ok(())
            }
            Verdict::Accept => {
                t.last_error = None;
                self.diagnostics.accepted(&sensor, adv.rssi, adv.at_ms);
                for (quantity, value) in decoded.values() {
                    let r = Reading::new(Arc::clone(&sensor), quantity, value, adv.at_ms);
                    tokio::select! {
                        sent = readings.send(r) => sent.map_err(|_| SourceError::IngestClosed)?,
                        _ = shutdown_requested(shutdown) => return Ok(()),
                    }
                }
                Ok(())
            }
        }
    }
}

/// Errors that point at tampering or a wrong key rather than at an
/// unrelated advertisement the sensor also sends.
fn serious(e: &DecodeError) -> bool {
    matches!(
        e,
        DecodeError::Authentication { .. }
            | DecodeError::PlaintextRefused { .. }
            | DecodeError::KeyRequired { .. }
    )
}

fn reject(diagnostics: &Diagnostics, t: &mut Tracked, sensor: &str, why: &str, serious: bool) {
    diagnostics.rejected(sensor, why.to_string());
    if t.last_error.as_deref() == Some(why) {
        debug!(sensor, mac = %t.spec.mac, reason = why, "BLE advertisement rejected.");
        return;
    }
    t.last_error = Some(why.to_string());
    if serious {
        warn!(sensor, mac = %t.spec.mac, reason = why, "BLE advertisement rejected.");
    } else {
        info!(sensor, mac = %t.spec.mac, reason = why, "BLE advertisement not decoded.");
    }
}

/// Resolves when shutdown is requested or nobody can request it any more.
async fn shutdown_requested(rx: &mut watch::Receiver<bool>) {
    loop {
        if *rx.borrow_and_update() {
            return;
        }
        if rx.changed().await.is_err() {
            return;
        }
    }
}

impl Source for BleSource {
    fn name(&self) -> String {
        format!("ble:{}", self.scanner.describe())
    }

    fn run(
        self: Box<Self>,
        readings: ReadingSender,
        shutdown: watch::Receiver<bool>,
    ) -> Pin<Box<dyn Future<Output = Result<(), SourceError>> + Send>> {
        Box::pin(self.run_inner(readings, shutdown))
    }
}
