//! The daemon's life under systemd: start, READY=1, watchdog pings, SIGHUP
//! reloads, SIGTERM/SIGINT stop with everything committed, STOPPING=1.
//! Each step leaves an entry in the audit trail, with the SHA-256 of the
//! configuration file that was (or was not) applied.

use std::path::Path;
use std::time::Duration;

use serde_json::json;
use sha2::{Digest, Sha256};
use tokio::signal::unix::{signal, Signal, SignalKind};
use tokio::time::{interval, Interval, MissedTickBehavior};
use tracing::{error, info, warn};

use super::notify::Notifier;
use super::{DaemonError, Gateway};
use crate::audit::AuditKind;
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
    Stop(&'static str),
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
            _ = self.term.recv() => Asked::Stop("signal:SIGTERM"),
            _ = self.int.recv() => Asked::Stop("signal:SIGINT"),
            _ = self.hup.recv() => Asked::Reload,
        }
    }
}

/// A configuration file read once: its SHA-256 (hex, `None` if unreadable)
/// and what parsing and validating it gave. Hashing the very bytes that were
/// parsed lets the audit trail say exactly which file was applied.
pub fn load_hashed(path: &Path) -> (Option<String>, Result<Config, config::ConfigError>) {
    let bytes = match config::read_bounded(path, config::MAX_FILE_SIZE) {
        Ok(b) => b,
        Err(source) => {
            return (
                None,
                Err(config::ConfigError::Read {
                    path: path.to_path_buf(),
                    source,
                }),
            )
        }
    };
    let sha = hex::encode(Sha256::digest(&bytes));
    let parsed = match String::from_utf8(bytes) {
        Ok(text) => super::preflight::parse(&text, &path.display().to_string()),
        Err(_) => Err(config::ConfigError::Invalid {
            origin: path.display().to_string(),
            problems: vec![config::Problem::new("", "the file is not UTF-8 text")],
        }),
    };
    (Some(sha), parsed)
}

/// Runs the gateway from `config` (loaded from `config_path`, whose bytes
/// hash to `sha256`) until SIGTERM or SIGINT; SIGHUP reloads `config_path`.
/// Returns the totals of the last data path.
pub async fn run(
    config_path: &Path,
    config: Config,
    sha256: Option<String>,
) -> Result<IngestTotals, DaemonError> {
    let notifier = Notifier::from_env();
    let mut signals = Signals::new()?;
    let mut config = config;
    let mut sha256 = sha256;
    let mut gateway = Gateway::start(&config, Vec::new())?;
    // systemd sets INVOCATION_ID for every unit it starts.
    let actor = if std::env::var_os("INVOCATION_ID").is_some() {
        "service manager"
    } else {
        "command line"
    };
    gateway.audit(
        AuditKind::ConfigLoaded,
        actor,
        json!({ "path": config_path.display().to_string(), "sha256": sha256 }),
    );
    gateway.audit(
        AuditKind::GatewayStarted,
        actor,
        json!({
            "version": env!("CARGO_PKG_VERSION"),
            "pid": std::process::id(),
            "gateway_id": config.gateway_id,
            "db": config.storage.path.display().to_string(),
            // Readings before synchronisation may carry a wrong time: the
            // trail says whether the clock could be trusted at start.
            "clock_synchronised": crate::clock::is_synchronised(),
        }),
    );
    info!(gateway_id = %config.gateway_id, db = %config.storage.path.display(), "coldgate is running.");
    if config.mqtt.enabled && config.mqtt.tls.is_some() {
        if let Some(clock) = crate::clock::tls_clock_warning() {
            warn!(
                clock,
                "Clock not synchronised; TLS certificate validity cannot be checked until it is."
            );
        }
    }
    // A slow fsync is not a hang: at least 10 s, and never less than the
    // watchdog timeout, before ingest counts as stuck.
    let stuck_grace = notifier
        .watchdog_timeout()
        .unwrap_or_default()
        .max(Duration::from_secs(10));
    let mut status = status_line(&config);
    notifier.ready(&status);
    let mut pings = notifier.ping_interval().map(|period| {
        let mut i = interval(period);
        i.set_missed_tick_behavior(MissedTickBehavior::Delay);
        i
    });
    let stopped_by = loop {
        tokio::select! {
            asked = signals.next() => match asked {
                Asked::Stop(by) => break by,
                Asked::Reload => {
                    notifier.reloading();
                    (gateway, config, sha256) = reload(gateway, config, sha256, config_path).await?;
                    status = status_line(&config);
                    notifier.ready(&status);
                }
            },
            _ = tick(&mut pings) => {
                // The ping says the data path is alive, not merely the
                // runtime: if ingest has ended, systemd must restart us.
                if gateway.is_alive(stuck_grace) {
                    notifier.ping();
                    // The clock may get synchronised long after start.
                    let now = status_line(&config);
                    if now != status {
                        notifier.status(&now);
                        status = now;
                    }
                } else {
                    error!("Ingest has ended or is stuck; withholding the watchdog ping so systemd restarts the gateway.");
                }
            }
        }
    };
    notifier.stopping();
    info!(by = stopped_by, "Stopping: committing what ingest holds.");
    gateway.audit(AuditKind::GatewayStopped, stopped_by, json!({}));
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
    let clock = match crate::clock::is_synchronised() {
        Some(true) => "clock synchronised",
        _ => "clock NOT known to be synchronised",
    };
    format!(
        "Running: gateway {}, {} sensors, database {}, {clock}",
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
    current_sha: Option<String>,
    path: &Path,
) -> Result<(Gateway, Config, Option<String>), DaemonError> {
    const ACTOR: &str = "signal:SIGHUP";
    let (new_sha, loaded) = load_hashed(path);
    let new = match loaded {
        Ok(new) => new,
        Err(error) => {
            let problems: Vec<String> = error.problems().iter().map(|p| p.to_string()).collect();
            error!(
                config = %path.display(),
                problems = %problems.join("; "),
                "Configuration reload rejected; the running configuration stays."
            );
            gateway.audit(
                AuditKind::ConfigRejected,
                ACTOR,
                json!({
                    "path": path.display().to_string(),
                    "sha256": new_sha,
                    "running_sha256": current_sha,
                    "problems": problems,
                }),
            );
            return Ok((gateway, current, current_sha));
        }
    };
    info!(config = %path.display(), "New configuration is valid; restarting the data path with it.");
    let totals = gateway.stop().await?;
    info!(
        readings = totals.readings,
        events = totals.events,
        "Data path stopped for the reload."
    );
    // Recorded by the data path that runs with the outcome, in its database.
    match start_when_free(&new).await {
        Ok(gateway) => {
            info!(gateway_id = %new.gateway_id, db = %new.storage.path.display(), "Configuration reloaded.");
            gateway.audit(
                AuditKind::ConfigReloaded,
                ACTOR,
                json!({
                    "path": path.display().to_string(),
                    "sha256": new_sha,
                    "previous_sha256": current_sha,
                }),
            );
            Ok((gateway, new, new_sha))
        }
        Err(error) => {
            error!(%error, "The new configuration cannot start; going back to the previous one.");
            let gateway = start_when_free(&current).await?;
            gateway.audit(
                AuditKind::ConfigRejected,
                ACTOR,
                json!({
                    "path": path.display().to_string(),
                    "sha256": new_sha,
                    "running_sha256": current_sha,
                    "problems": [error.to_string()],
                }),
            );
            Ok((gateway, current, current_sha))
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
