//! The daemon's life under systemd: start, READY=1, watchdog pings, SIGHUP
//! reloads, SIGTERM/SIGINT stop with everything committed, STOPPING=1.

use std::path::Path;
use std::time::Duration;

use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{interval, Interval, MissedTickBehavior};
use tracing::{error, info, warn};

use super::notify::Notifier;
use super::{DaemonError, Gateway};
use crate::config::{self, Config};
use crate::ingest::IngestTotals;
use crate::store::StoreError;

/// The signals the daemon acts on, registered once before anything starts:
/// SIGHUP's default action is to terminate, so it must be caught before
/// systemd can send one.
struct Signals {
    term: Signal,
    int: Signal,
    hup: Signal,
}

enum Asked {
    Stop,
    Reload,
}

impl Signals {
    fn new() -> Result<Signals, DaemonError> {
        let watch = |kind: SignalKind, name: &'static str| {
            signal(kind).map_err(|source| DaemonError::Signal { name, source })
        };
        Ok(Signals {
            term: watch(SignalKind::terminate(), "SIGTERM")?,
            int: watch(SignalKind::interrupt(), "SIGINT")?,
            hup: watch(SignalKind::hangup(), "SIGHUP")?,
        })
    }

    async fn next(&mut self) -> Asked {
        tokio::select! {
            _ = self.term.recv() => Asked::Stop,
            _ = self.int.recv() => Asked::Stop,
            _ = self.hup.recv() => Asked::Reload,
        }
    }
}

/// Runs the gateway from `config` (already loaded from `config_path`) until
/// SIGTERM or SIGINT; SIGHUP reloads `config_path`. Returns the totals of
/// the last data path.
pub async fn run(config_path: &Path, config: Config) -> Result<IngestTotals, DaemonError> {
    let notifier = Notifier::from_env();
    let mut signals = Signals::new()?;
    let mut config = config;
    let mut gateway = Gateway::start(&config, Vec::new())?;
    info!(gateway_id = %config.gateway_id, db = %config.storage.path.display(), "coldgate is running.");
    notifier.ready(&status_line(&config));
    let mut pings = notifier.ping_interval().map(|period| {
        let mut i = interval(period);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    loop {
        tokio::select! {
            asked = signals.next() => match asked {
                Asked::Stop => break,
                Asked::Reload => {
                    notifier.reloading();
                    (gateway, config) = reload(gateway, config, config_path).await?;
                    notifier.ready(&status_line(&config));
                }
            },
            _ = tick(&mut pings) => {
                // The ping says the data path is alive, not merely the
                // runtime: if ingest has ended, systemd must restart us.
                if gateway.is_alive() {
                    notifier.ping();
                } else {
                    error!("Ingest has ended; withholding the watchdog ping so systemd restarts the gateway.");
                }
            }
        }
    }
    notifier.stopping();
    info!("Stopping: committing what ingest holds.");
    let totals = gateway.stop().await?;
    info!(
        readings = totals.readings,
        events = totals.events,
        "Stopped cleanly."
    );
    Ok(totals)
}

async fn tick(pings: &mut Option<Interval>) {
    match pings {
        Some(i) => {
            i.tick().await;
        }
        None => std::future::pending().await,
    }
}

fn status_line(config: &Config) -> String {
    format!(
        "Running: gateway {}, {} sensors, database {}",
        config.gateway_id,
        config.sensors.len(),
        config.storage.path.display()
    )
}

/// Validates the file first: a broken one leaves the running gateway alone.
/// A valid one replaces the data path: stopping commits everything ingest
/// holds, so no reading is lost, and the new path resumes from the store.
/// If the new configuration cannot start (a sensor bus that does not open),
/// the previous one is started again.
async fn reload(
    gateway: Gateway,
    current: Config,
    path: &Path,
) -> Result<(Gateway, Config), DaemonError> {
    let new = match config::load(path) {
        Ok(new) => new,
        Err(error) => {
            let problems: Vec<String> = error.problems().iter().map(|p| p.to_string()).collect();
            error!(
                config = %path.display(),
                problems = %problems.join("; "),
                "Configuration reload rejected; the running configuration stays."
            );
            return Ok((gateway, current));
        }
    };
    info!(config = %path.display(), "New configuration is valid; restarting the data path with it.");
    let totals = gateway.stop().await?;
    info!(
        readings = totals.readings,
        events = totals.events,
        "Data path stopped for the reload."
    );
    match start_when_free(&new).await {
        Ok(gateway) => {
            info!(gateway_id = %new.gateway_id, db = %new.storage.path.display(), "Configuration reloaded.");
            Ok((gateway, new))
        }
        Err(error) => {
            error!(%error, "The new configuration cannot start; going back to the previous one.");
            let gateway = start_when_free(&current).await?;
            Ok((gateway, current))
        }
    }
}

/// Starts a gateway, waiting a moment while the previous one's last handles
/// on the database file are released (redb refuses a second open).
async fn start_when_free(config: &Config) -> Result<Gateway, DaemonError> {
    let mut attempt = 0;
    loop {
        match Gateway::start(config, Vec::new()) {
            Err(DaemonError::Store(StoreError::InUse(path))) if attempt < 50 => {
                if attempt == 0 {
                    warn!(db = %path.display(), "Database still held by the previous data path; waiting.");
                }
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            other => return other,
        }
    }
}
