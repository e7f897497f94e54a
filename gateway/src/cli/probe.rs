//! `coldgate probe`: reads every configured sensor once and prints what it
//! got, or why there is nothing, before the service is enabled.
//!
//! Design: it runs the daemon's own sources (the Modbus pollers, the BLE
//! source, the simulator) built from the same configuration, for a bounded
//! time, and keeps the first reading of each sensor. So a value printed here
//! went through exactly the decoding the daemon will record. Nothing is
//! stored: the readings go to a channel this command drains, the database
//! is never opened, so it is safe beside a running daemon (a Modbus RTU bus
//! the daemon holds open is the one thing two processes cannot share).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use coldgate_sensor_drivers::ble::{
    AdvertisementStream, BleSource, BtleplugScanner, Diagnostics as BleDiagnostics, ScanError,
    Scanner,
};
use coldgate_sensor_drivers::modbus::HealthMap;
use coldgate_sensor_drivers::{Quantity, Source};
use tokio::sync::{mpsc, watch};

use crate::config::{Config, SensorKind};

#[derive(Args)]
pub struct ProbeArgs {
    /// The configuration whose sensors are read.
    #[arg(long, default_value = "/etc/coldgate/coldgate.toml")]
    config: PathBuf,
    /// How long Modbus units and the simulator have to give a value.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    wait: Duration,
    /// How long to listen for BLE advertisements (sensors advertise every
    /// few seconds; some only every 10 s or more).
    #[arg(long, default_value = "15s", value_parser = humantime::parse_duration)]
    ble_scan: Duration,
}

/// What one configured sensor gave.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    pub sensor: String,
    pub kind: SensorKind,
    pub zone: String,
    /// Every quantity of its first reading(s), in the order they came.
    pub values: Vec<(Quantity, f64)>,
    /// Why there is no value; None when `values` is not empty.
    pub reason: Option<String>,
}

/// After the first reading of a sensor, how long to keep collecting so
/// that the other quantities of the same poll or advertisement come too.
const SETTLE: Duration = Duration::from_millis(300);

/// Runs the configured sources until every sensor gave a reading or the
/// time is up (`wait`, or `ble_scan` when BLE sensors are configured), and
/// says for each sensor what it got. `scanner` replaces btleplug (tests).
pub async fn read_once(
    config: &Config,
    scanner: Option<Box<dyn Scanner>>,
    wait: Duration,
    ble_scan: Duration,
) -> anyhow::Result<Vec<Outcome>> {
    let health = HealthMap::new();
    let mut sources: Vec<Box<dyn Source>> = config.modbus.sources(&health).map_err(|p| {
        anyhow::anyhow!(
            "the Modbus section cannot be used: {}",
            p.iter()
                .map(|p| p.to_string())
                .collect::<Vec<_>>()
                .join("; ")
        )
    })?;
    let ble = BleDiagnostics::new();
    let has_ble = !config.ble.sensors.is_empty();
    let mut ble_index = None;
    let adapter_error = Arc::new(Mutex::new(None));
    if has_ble {
        let inner =
            scanner.unwrap_or_else(|| Box::new(BtleplugScanner::new(config.ble.adapter.clone())));
        let watched = Watched {
            inner,
            last_error: adapter_error.clone(),
        };
        let source = BleSource::new(&config.ble, Box::new(watched), ble.clone()).map_err(|p| {
            anyhow::anyhow!(
                "the BLE section cannot be used: {}",
                p.iter()
                    .map(|p| p.to_string())
                    .collect::<Vec<_>>()
                    .join("; ")
            )
        })?;
        ble_index = Some(sources.len());
        sources.push(Box::new(source));
    }
    if let Some(sim) = crate::sim::SimSource::from_config(config, crate::event::now_ms()) {
        sources.push(Box::new(sim));
    }

    let (tx, mut rx) = mpsc::channel(1024);
    let (stop, shutdown) = watch::channel(false);
    let tasks: Vec<_> = sources
        .into_iter()
        .map(|s| tokio::spawn(s.run(tx.clone(), shutdown.clone())))
        .collect();
    drop(tx);

    let expected: Vec<&str> = config.sensors.iter().map(|s| s.id.as_str()).collect();
    let mut got: BTreeMap<String, Vec<(Quantity, f64)>> = BTreeMap::new();
    let limit = if has_ble { wait.max(ble_scan) } else { wait };
    let deadline = tokio::time::Instant::now() + limit;
    let mut settle_until: Option<tokio::time::Instant> = None;
    loop {
        let until = settle_until.map_or(deadline, |s| s.min(deadline));
        let reading = match tokio::time::timeout_at(until, rx.recv()).await {
            Ok(Some(r)) => r,
            Ok(None) | Err(_) => break,
        };
        let values = got.entry(reading.sensor.to_string()).or_default();
        if !values.iter().any(|(q, _)| *q == reading.quantity) {
            values.push((reading.quantity, reading.value));
        }
        if settle_until.is_none() && expected.iter().all(|id| got.contains_key(*id)) {
            settle_until = Some(tokio::time::Instant::now() + SETTLE);
        }
    }
    stop.send_replace(true);
    let mut ble_error = None;
    for (i, task) in tasks.into_iter().enumerate() {
        let ended = tokio::time::timeout(Duration::from_secs(2), task).await;
        if Some(i) == ble_index {
            if let Ok(Ok(Err(e))) = ended {
                ble_error = Some(e.to_string());
            }
        }
    }

    let ble_seen = ble.snapshot();
    let adapter_error: Option<String> = adapter_error
        .lock()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    Ok(config
        .sensors
        .iter()
        .map(|s| {
            let values = got.remove(&s.id).unwrap_or_default();
            let reason = values.is_empty().then(|| match s.kind {
                SensorKind::Modbus => match health.get(&s.id) {
                    Some(h) => match h.last_error {
                        Some(e) => format!("{} unit {}: {e}", h.link, h.unit),
                        None => format!(
                            "{} unit {}: no value within {}",
                            h.link,
                            h.unit,
                            humantime::format_duration(wait)
                        ),
                    },
                    None => "no [[modbus.*.devices]] entry reads this sensor".to_string(),
                },
                SensorKind::Ble => match (&ble_error, ble_seen.sensors.get(&s.id)) {
                    (Some(e), _) => format!("the BLE scan failed: {e}"),
                    (None, _) if adapter_error.is_some() => format!(
                        "the BLE scan could not start: {}",
                        adapter_error.as_deref().unwrap_or_default()
                    ),
                    (None, Some(d)) if d.rejected > 0 => format!(
                        "{} advertisement(s) from {} refused: {}",
                        d.rejected,
                        d.mac,
                        d.last_error.as_deref().unwrap_or("no reason recorded")
                    ),
                    (None, d) => format!(
                        "no advertisement from {} in {}",
                        d.map_or("its address", |d| d.mac.as_str()),
                        humantime::format_duration(ble_scan)
                    ),
                },
                SensorKind::Sim => format!(
                    "the simulator gave no reading in {} ([sim] reading_interval and speed)",
                    humantime::format_duration(wait)
                ),
            });
            Outcome {
                sensor: s.id.clone(),
                kind: s.kind,
                zone: s.zone.clone(),
                values,
                reason,
            }
        })
        .collect())
}

/// A scanner that remembers why it last failed to start, so the probe can
/// give that as the reason (the BLE source only logs it and retries).
struct Watched {
    inner: Box<dyn Scanner>,
    last_error: Arc<Mutex<Option<String>>>,
}

impl Scanner for Watched {
    fn describe(&self) -> String {
        self.inner.describe()
    }

    fn open(&mut self) -> futures::future::BoxFuture<'_, Result<AdvertisementStream, ScanError>> {
        let last = self.last_error.clone();
        let opening = self.inner.open();
        Box::pin(async move {
            let opened = opening.await;
            *last.lock().unwrap_or_else(PoisonError::into_inner) =
                opened.as_ref().err().map(|e| e.to_string());
            opened
        })
    }
}

fn kind_name(kind: SensorKind) -> &'static str {
    match kind {
        SensorKind::Sim => "sim",
        SensorKind::Ble => "ble",
        SensorKind::Modbus => "modbus",
    }
}

/// One line per sensor; exit code 1 if any gave nothing.
pub async fn probe(a: ProbeArgs) -> anyhow::Result<ExitCode> {
    let config = crate::config::load(&a.config)?;
    if config.sensors.is_empty() {
        anyhow::bail!("{}: no sensors configured", a.config.display());
    }
    let outcomes = read_once(&config, None, a.wait, a.ble_scan)
        .await
        .context("cannot read the sensors")?;
    let width = outcomes.iter().map(|o| o.sensor.len()).max().unwrap_or(0);
    for o in &outcomes {
        let what = match &o.reason {
            Some(reason) => format!("NO VALUE: {reason}"),
            None => o
                .values
                .iter()
                .map(|(q, v)| format!("{q} {v} {}", q.symbol()))
                .collect::<Vec<_>>()
                .join(", "),
        };
        println!(
            "{:<width$}  {:<6}  {}  {what}",
            o.sensor,
            kind_name(o.kind),
            o.zone
        );
    }
    let silent = outcomes.iter().filter(|o| o.reason.is_some()).count();
    println!(
        "probe: {} of {} sensor(s) gave a value; nothing was stored",
        outcomes.len() - silent,
        outcomes.len()
    );
    Ok(if silent == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use coldgate_sensor_drivers::ble::{Advertisement, MacAddr, ScriptedScanner, Session};

    const HEARD: &str = "A4:C1:38:00:00:01";
    const QUIET: &str = "A4:C1:38:00:00:02";

    fn config() -> Config {
        let text = format!(
            r#"gateway_id = "probe-test"
[mqtt]
enabled = false
[[profiles]]
id = "refrigerated"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0 }}]
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "heard"
zone = "rear"
kind = "ble"
[[sensors]]
id = "quiet"
zone = "rear"
kind = "ble"
[[ble.sensors]]
sensor = "heard"
mac = "{HEARD}"
[[ble.sensors]]
sensor = "quiet"
mac = "{QUIET}"
"#
        );
        crate::config::parse(&text, "test").unwrap()
    }

    /// A plain BTHome v2 advertisement: packet id 1, 4.25 °C.
    fn bthome(mac: &str) -> Advertisement {
        let mac: MacAddr = mac.parse().unwrap();
        let mut data = vec![0x40, 0x00, 0x01, 0x02];
        data.extend(425i16.to_le_bytes());
        Advertisement::new(mac.0.into(), crate::event::now_ms()).with_service_data(0xFCD2, data)
    }

    #[tokio::test]
    async fn a_ble_sensor_heard_within_the_scan_gives_its_value_and_a_quiet_one_its_reason() {
        let scanner = ScriptedScanner::new([Session::Deliver(vec![bthome(HEARD)])]);
        let scan = Duration::from_millis(400);
        let out = read_once(&config(), Some(Box::new(scanner)), scan, scan)
            .await
            .unwrap();
        assert_eq!(out.len(), 2);
        assert_eq!(out[0].sensor, "heard");
        assert_eq!(out[0].values, vec![(Quantity::Temperature, 4.25)]);
        assert_eq!(out[0].reason, None);
        assert_eq!(out[1].sensor, "quiet");
        assert!(out[1].values.is_empty());
        assert_eq!(
            out[1].reason.as_deref(),
            Some(format!("no advertisement from {QUIET} in 400ms").as_str())
        );
    }

    #[tokio::test]
    async fn an_adapter_that_cannot_scan_is_the_reason_for_every_ble_sensor() {
        let scanner = ScriptedScanner::new([Session::Fail(ScanError::NoAdapter {
            reason: "no D-Bus".into(),
        })]);
        let scan = Duration::from_millis(300);
        let out = read_once(&config(), Some(Box::new(scanner)), scan, scan)
            .await
            .unwrap();
        for o in &out {
            assert!(o.values.is_empty(), "{o:?}");
            assert_eq!(
                o.reason.as_deref(),
                Some("the BLE scan could not start: no Bluetooth adapter: no D-Bus"),
                "{o:?}"
            );
        }
    }
}
