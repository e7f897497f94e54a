//! Where the data path is wired, in one screen:
//! sources → (bounded channel) → ingest → store + engine → outbox → publisher.
//! [`lifecycle`] runs it under systemd; [`notify`] talks to systemd.

pub mod lifecycle;
pub mod notify;
pub mod preflight;
pub mod trim;

use std::time::Duration;

use coldgate_sensor_drivers::ble::{BleSource, Diagnostics as BleDiagnostics, Scanner};
use coldgate_sensor_drivers::modbus::HealthMap;
use coldgate_sensor_drivers::{Reading, Source};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::task::JoinHandle;
use tracing::{error, info, warn};

use crate::audit::{AuditKind, AuditRecord};
use crate::config::Config;
use crate::event::now_ms;
use crate::excursion::Engine;
use crate::ingest::{Ingest, IngestChannels, IngestOptions, IngestTotals};
use crate::publish::{Delivered, LinkState, Publisher, PublisherOptions};
use crate::sim::SimSource;
use crate::snapshot::{load_engine_state, SnapshotError};
use crate::store::{Store, StoreError};

#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("engine state in {path} cannot be decoded: {reason}; the database is left untouched")]
    EngineState { path: String, reason: String },
    #[error("sensor configuration: {}", .0.join("; "))]
    Sources(Vec<String>),
    #[error("cannot watch {name}: {source}")]
    Signal {
        name: &'static str,
        source: std::io::Error,
    },
    #[error(transparent)]
    Http(#[from] crate::http::HttpError),
    #[error("ingest task failed: {0}")]
    Join(String),
}

/// A running gateway: the handles needed to watch it and to stop it.
pub struct Gateway {
    pub store: Store,
    delivered: Option<broadcast::Receiver<Delivered>>,
    pub link: watch::Receiver<LinkState>,
    /// Per-device Modbus health, for diagnostics.
    pub modbus_health: HealthMap,
    /// BLE advertisement counters and per-sensor RSSI, for diagnostics.
    pub ble_diagnostics: BleDiagnostics,
    /// Last values and counters, for the HTTP API.
    pub live: crate::live::Live,
    /// The HTTP API and dashboard, if `[http]` is enabled.
    pub http: Option<crate::http::HttpServer>,
    sources_stop: watch::Sender<bool>,
    audit: mpsc::UnboundedSender<AuditRecord>,
    publisher_stop: watch::Sender<bool>,
    ingest: JoinHandle<Result<IngestTotals, StoreError>>,
    heartbeat: watch::Receiver<std::time::Instant>,
    batch_interval: Duration,
    publisher: Option<JoinHandle<()>>,
    sources: Vec<JoinHandle<()>>,
}

impl Gateway {
    /// Opens the store, resumes the engine and starts every task.
    /// `extra_sources` are added to those the config describes.
    pub fn start(
        config: &Config,
        extra_sources: Vec<Box<dyn Source>>,
    ) -> Result<Gateway, DaemonError> {
        Self::start_with_ble_scanner(config, extra_sources, None)
    }

    /// [`Gateway::start`] with the BLE sensors fed by `ble_scanner` instead of
    /// btleplug: there is no radio in CI, and the footprint benchmark drives
    /// 50 BLE sensors through the same source, dedup and decoders.
    pub fn start_with_ble_scanner(
        config: &Config,
        extra_sources: Vec<Box<dyn Source>>,
        ble_scanner: Option<Box<dyn Scanner>>,
    ) -> Result<Gateway, DaemonError> {
        // First: a port that cannot be bound fails the start before
        // anything runs.
        let http = crate::http::HttpServer::bind(&config.http)?;
        let (store, writer) =
            Store::open(&config.storage.path, config.storage.cache_size.0 as usize)?;
        let state = load_engine_state(&store).map_err(|e| match e {
            SnapshotError::Store(e) => DaemonError::from(e),
            decode => DaemonError::EngineState {
                path: config.storage.path.display().to_string(),
                reason: decode.to_string(),
            },
        })?;
        // Say what survived the last run: an operator checking after a power
        // cut wants to see the open excursions and the manifest came back.
        let open = state
            .trackers
            .values()
            .filter(|t| t.out.as_ref().is_some_and(|o| o.excursion_id.is_some()))
            .count();
        info!(
            open_excursions = open,
            pallet_stays = state.manifest.stays.len(),
            lots = state.ledger.lots.len(),
            "Engine state resumed."
        );
        let engine = Engine::new(config, state);

        let (readings_tx, readings_rx) = mpsc::channel::<Reading>(config.ingest.channel_capacity);
        let (acked_tx, acked_rx) = mpsc::unbounded_channel();
        let (committed_tx, committed_rx) = watch::channel(writer.next_event_seq() - 1);
        let (sources_stop, sources_rx) = watch::channel(false);
        let (publisher_stop, publisher_rx) = watch::channel(false);
        let (audit, audit_rx) = mpsc::unbounded_channel();
        let (set_aside_tx, set_aside_rx) = mpsc::unbounded_channel();
        let max_payload = usize::try_from(config.mqtt.max_payload.0).unwrap_or(usize::MAX);

        let ingest = Ingest::new(
            writer,
            engine,
            IngestOptions {
                gateway_id: config.gateway_id.clone(),
                batch_interval: config.ingest.batch_interval,
                batch_size: config.ingest.batch_size,
                retention: config.storage.retention,
                max_bytes: config.storage.max_size.0,
            },
        )
        .with_audit(audit_rx)
        .with_max_payload(max_payload)
        .with_set_aside(set_aside_rx)
        .with_load_time_limits(crate::manifest::LoadTimeLimits {
            future_skew: config.manifest.loaded_at_skew,
            max_age: config.manifest.loaded_at_max_age,
        });
        let ingest = if config.storage.journal {
            ingest.with_journal(
                &crate::store::journal::dir_beside(&config.storage.path),
                crate::store::journal::Options::default(),
                crate::ingest::FoldPolicy {
                    every: config.storage.fold_interval,
                    ..Default::default()
                },
            )?
        } else {
            ingest
        };
        // Operator commands: MQTT → publisher → ingest (the single writer).
        let (commands_tx, commands_rx) = mpsc::channel(16);
        let live = crate::live::Live::new();
        let http_commands = commands_tx.clone();
        let ingest = ingest
            .with_commands(commands_rx)
            .with_live(live.clone())
            .with_zone_profiles(
                config
                    .zones
                    .iter()
                    .map(|z| (z.id.clone(), z.profile.clone()))
                    .collect(),
            );
        let manifest = ingest.manifest();
        // Telemetry: ingest aggregates and stores, the publisher sends and
        // reports what left; the cap drops telemetry first.
        let (telemetry_tx, telemetry_rx) = mpsc::unbounded_channel();
        let ingest = ingest.with_outbox_cap(config.mqtt.outbox_cap);
        let ingest = if config.mqtt.telemetry.enabled {
            ingest.with_telemetry(
                crate::telemetry::Aggregator::new(
                    &config.gateway_id,
                    config.mqtt.telemetry.interval,
                ),
                telemetry_rx,
            )
        } else {
            ingest
        };
        let heartbeat = ingest.heartbeat();
        let ingest = tokio::spawn(ingest.run(IngestChannels {
            readings: readings_rx,
            acked: acked_rx,
            committed: committed_tx,
        }));

        let publisher = Publisher::new(
            PublisherOptions::from_config(config),
            store.clone(),
            acked_tx,
            committed_rx,
        )
        .with_commands(commands_tx)
        .with_manifest(manifest)
        .with_set_aside(set_aside_tx);
        let publisher = if config.mqtt.telemetry.enabled {
            let qos = match config.mqtt.telemetry.qos {
                0 => rumqttc::QoS::AtMostOnce,
                _ => rumqttc::QoS::AtLeastOnce,
            };
            publisher.with_telemetry(qos, telemetry_tx)
        } else {
            publisher
        };
        let delivered = publisher.delivered();
        let link = publisher.link();
        let publisher = if config.mqtt.enabled {
            Some(tokio::spawn(publisher.run(publisher_rx)))
        } else {
            info!("MQTT is disabled; events stay in the outbox.");
            None
        };

        let mut all: Vec<Box<dyn Source>> = extra_sources;
        let modbus_health = HealthMap::new();
        match config.modbus.sources(&modbus_health) {
            Ok(sources) => all.extend(sources),
            Err(problems) => {
                return Err(DaemonError::Sources(
                    problems.iter().map(|p| p.to_string()).collect(),
                ))
            }
        }
        let ble_diagnostics = BleDiagnostics::new();
        if !config.ble.sensors.is_empty() {
            let source = match ble_scanner {
                Some(scanner) => BleSource::new(&config.ble, scanner, ble_diagnostics.clone()),
                None => BleSource::with_btleplug(&config.ble, ble_diagnostics.clone()),
            };
            match source {
                Ok(source) => all.push(Box::new(source)),
                Err(problems) => {
                    return Err(DaemonError::Sources(
                        problems.iter().map(|p| p.to_string()).collect(),
                    ))
                }
            }
        }
        if let Some(sim) = SimSource::from_config(config, now_ms()) {
            info!("The [sim] section is set: simulated sensors record made-up readings.");
            all.push(Box::new(sim));
        }
        let sources = all
            .into_iter()
            .map(|source| {
                let name = source.name();
                let tx = readings_tx.clone();
                let stop = sources_rx.clone();
                tokio::spawn(async move {
                    info!(source = %name, "Source started.");
                    match source.run(tx, stop).await {
                        Ok(()) => info!(source = %name, "Source stopped."),
                        Err(error) => error!(source = %name, %error, "Source ended."),
                    }
                })
            })
            .collect();
        drop(readings_tx);

        let http = http
            .map(|bound| {
                bound.serve(crate::http::Ctx {
                    config: std::sync::Arc::new(config.clone()),
                    store: store.clone(),
                    live: live.clone(),
                    link: link.clone(),
                    modbus: modbus_health.clone(),
                    ble: ble_diagnostics.clone(),
                    commands: http_commands,
                })
            })
            .transpose()?;

        // Start-up's code and freed heap are not the steady state's: hand
        // their pages back (trim.rs).
        tokio::spawn(async {
            tokio::time::sleep(trim::AFTER).await;
            match trim::unmap_startup_pages() {
                Ok(bytes) => info!(bytes, "Start-up's executable pages unmapped."),
                Err(error) => warn!(%error, "Cannot unmap start-up's executable pages."),
            }
            let released = trim::release_free_heap();
            info!(released, "Start-up's freed heap pages handed back.");
        });

        Ok(Gateway {
            store,
            delivered: Some(delivered),
            link,
            modbus_health,
            ble_diagnostics,
            live,
            http,
            sources_stop,
            audit,
            publisher_stop,
            ingest,
            heartbeat,
            batch_interval: config.ingest.batch_interval,
            publisher,
            sources,
        })
    }

    /// Events as the broker acknowledges them (once; later calls get `None`).
    pub fn take_delivered(&mut self) -> Option<broadcast::Receiver<Delivered>> {
        self.delivered.take()
    }

    /// Appends to the audit trail, through ingest (the only writer), which
    /// commits it at once. Records sent before [`Gateway::stop`] are
    /// committed by it.
    pub fn audit(&self, kind: AuditKind, actor: &str, details: serde_json::Value) {
        let record = AuditRecord {
            at_ms: now_ms(),
            kind,
            actor: actor.to_string(),
            details,
        };
        if self.audit.send(record).is_err() {
            error!(
                kind = kind.as_str(),
                "Ingest has ended; an audit record is lost."
            );
        }
    }

    /// False once ingest has ended (it only ends when stopped, or on a bug)
    /// or has made no progress (no timer turn, no commit) for `grace` plus
    /// three batch intervals — a commit hung on a failing SD card. The
    /// watchdog ping is withheld then, and systemd restarts the gateway.
    pub fn is_alive(&self, grace: Duration) -> bool {
        let stale_after = grace + self.batch_interval.saturating_mul(3);
        !self.ingest.is_finished() && self.heartbeat.borrow().elapsed() <= stale_after
    }

    /// Stops the sources, lets ingest commit everything it holds, then gives
    /// the publisher a bounded moment for what is in flight.
    pub async fn stop(self) -> Result<IngestTotals, DaemonError> {
        if let Some(http) = self.http {
            http.stop().await;
        }
        self.sources_stop.send_replace(true);
        for s in self.sources {
            let abort = s.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), s)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        let totals = self
            .ingest
            .await
            .map_err(|e| DaemonError::Join(e.to_string()))??;
        self.publisher_stop.send_replace(true);
        if let Some(p) = self.publisher {
            // Aborted if it overstays: its handle on the store would keep
            // the database file open and block a reload from reopening it.
            let abort = p.abort_handle();
            if tokio::time::timeout(Duration::from_secs(5), p)
                .await
                .is_err()
            {
                abort.abort();
            }
        }
        Ok(totals)
    }
}
