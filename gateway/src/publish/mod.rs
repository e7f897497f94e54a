//! The only module that talks to the broker.
//!
//! The outbox in redb is the truth. The publisher reads it in order, publishes
//! at QoS 1 and reports a seq to ingest only when the broker's PUBACK for it
//! arrived; ingest then removes it. rumqttc's `publish` returns when the
//! message is *queued*, so acknowledgement is tracked by correlating
//! `Outgoing::Publish(pkid)` (emitted in request order) with
//! `Incoming::PubAck(pkid)`.
//!
//! Each connection gets a fresh rumqttc event loop: requests queued on a dead
//! connection are dropped with it, so no stale request can be sent later and
//! matched to the wrong seq. After every (re)connect the whole outbox is
//! resent from its start; subscribers drop duplicates by `event_id`.
//!
//! One room: the publisher is one select loop (outbox, PUBACKs, commands, replay, status) over
//! one connection; its pure parts are flight.rs, link.rs, status.rs, replay.rs and manifest.rs.

mod flight;
mod link;
pub mod manifest;
pub mod replay;
mod status;
pub mod tls;

use std::collections::VecDeque;
use std::time::Duration;

use futures::StreamExt;
use rand::Rng;
use rumqttc::{
    AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS, TlsConfiguration,
    Transport,
};
use tokio::sync::{broadcast, mpsc, watch};
use tokio::time::Instant;
use tracing::{debug, error, info, warn};

use self::flight::{InFlight, Sent, Settled};
use crate::config::MqttTlsConfig;
use crate::store::{SetAside, Store};

use crate::command::{self as commands, ManifestRequest};
pub use status::{status_payload, LinkState, StatusFacts};

/// A client certificate this close to expiry is warned about when
/// connecting (at most once a day), so there is time to renew it before the
/// gateway goes silent.
const CERT_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// With `mqtt.verify_own_status`, how long after CONNACK the broker has to
/// deliver the gateway's own status back before the link is reported as
/// refusing its publishes.
const VERIFY_WITHIN: Duration = Duration::from_secs(10);

/// The largest packet accepted from the broker. Far above any command the
/// gateway takes (see `commands`), so an oversized one is refused with an
/// answer instead of failing the connection.
const INCOMING_MAX_PACKET: usize = 16 * 1024 * 1024;

#[derive(Debug, Clone)]
pub struct PublisherOptions {
    pub gateway_id: String,
    pub prefix: String,
    pub host: String,
    pub port: u16,
    pub keep_alive: Duration,
    pub inflight: u16,
    pub reconnect_min: Duration,
    pub reconnect_max: Duration,
    /// `mqtt.reconnect_probe` and `mqtt.reconnect_spread`: see `link`.
    pub reconnect_probe: Duration,
    pub reconnect_spread: Duration,
    pub status_interval: Duration,
    pub username: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
    pub tls: Option<MqttTlsConfig>,
    pub verify_own_status: bool,
    /// `mqtt.max_payload`: nothing larger is published.
    pub max_payload: usize,
}

impl PublisherOptions {
    pub fn from_config(c: &crate::config::Config) -> PublisherOptions {
        PublisherOptions {
            gateway_id: c.gateway_id.clone(),
            prefix: c.topic_prefix(),
            host: c.mqtt.host.clone(),
            port: c.mqtt.port,
            keep_alive: c.mqtt.keep_alive,
            inflight: c.mqtt.inflight,
            reconnect_min: c.mqtt.reconnect_min,
            reconnect_max: c.mqtt.reconnect_max,
            reconnect_probe: c.mqtt.reconnect_probe,
            reconnect_spread: c.mqtt.reconnect_spread,
            status_interval: c.mqtt.status_interval,
            username: c.mqtt.username.clone(),
            password_file: c.mqtt.password_file.clone(),
            tls: c.mqtt.tls.clone(),
            verify_own_status: c.mqtt.verify_own_status,
            max_payload: usize::try_from(c.mqtt.max_payload.0).unwrap_or(usize::MAX),
        }
    }
}

/// Room in a packet besides the payload: the fixed header, the topic (at
/// most 64 KiB) and the packet id.
const PACKET_OVERHEAD: usize = 5 + 2 + 65_535 + 2;

/// An event the broker acknowledged, for the demo's console and tests.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub seq: u64,
    pub topic: String,
    pub payload: Vec<u8>,
}

pub struct Publisher {
    opts: PublisherOptions,
    store: Store,
    acked: mpsc::UnboundedSender<u64>,
    committed: watch::Receiver<u64>,
    delivered: broadcast::Sender<Delivered>,
    link: watch::Sender<LinkState>,
    started: Instant,
    /// Of the certificate used by the current connection, for `status`.
    client_cert_expires_ms: Option<i64>,
    /// When the coming expiry was last warned about: once a day is enough,
    /// a reconnect every few seconds during an outage must not flood the log.
    cert_warned: Option<Instant>,
    /// When the current connection was accepted, for `status`.
    connected_since_ms: Option<i64>,
    /// Where `cmd/manifest` commands go (ingest); none: not subscribed.
    commands: Option<mpsc::Sender<ManifestRequest>>,
    /// Where sent telemetry ids go (ingest) and at which QoS; none: no
    /// telemetry is published.
    telemetry: Option<TelemetrySink>,
    /// The committed manifest (from ingest), published retained on
    /// `{prefix}/manifest`; none: not published.
    manifest: Option<watch::Receiver<Vec<crate::manifest::Pallet>>>,
    /// Where entries over `max_payload` go (ingest); none: they are skipped
    /// on each connection and stay in the outbox.
    set_aside: Option<mpsc::UnboundedSender<SetAside>>,
    /// Manifest parts 2.. published retained on this connection, to clear
    /// those a smaller manifest no longer has.
    manifest_parts: usize,
    /// Commands from `cmd/manifest` waiting for room in ingest's channel:
    /// a burst is queued here instead of refused.
    to_ingest: VecDeque<ManifestRequest>,
    /// Answers and replayed events (topic, payload) waiting for room in
    /// rumqttc's request queue, in the order they are to be sent.
    out_queue: VecDeque<(String, Vec<u8>)>,
}

/// Most commands held for ingest; more in one burst are answered "busy".
const COMMAND_QUEUE: usize = 10_000;

struct TelemetrySink {
    qos: QoS,
    sent: mpsc::UnboundedSender<u64>,
}

/// An answer ingest has yet to give.
type PendingAnswer = futures::future::BoxFuture<'static, commands::Answer>;

enum Ended {
    Shutdown,
    Lost(String),
    /// rumqttc's event loop failed; how decides the next wait.
    Failed(String, link::Failure),
}

impl Publisher {
    pub fn new(
        opts: PublisherOptions,
        store: Store,
        acked: mpsc::UnboundedSender<u64>,
        committed: watch::Receiver<u64>,
    ) -> Publisher {
        let (delivered, _) = broadcast::channel(1024);
        let (link, _) = watch::channel(LinkState::default());
        Publisher {
            opts,
            store,
            acked,
            committed,
            delivered,
            link,
            started: Instant::now(),
            client_cert_expires_ms: None,
            cert_warned: None,
            connected_since_ms: None,
            commands: None,
            manifest: None,
            telemetry: None,
            set_aside: None,
            manifest_parts: 1,
            to_ingest: VecDeque::new(),
            out_queue: VecDeque::new(),
        }
    }

    /// Reports entries too large to publish to `tx` (ingest), which moves
    /// them out of the outbox.
    pub fn with_set_aside(mut self, tx: mpsc::UnboundedSender<SetAside>) -> Publisher {
        self.set_aside = Some(tx);
        self
    }

    /// Publishes the telemetry outbox after the events, at `qos`, and sends
    /// the ids sent (QoS 0) or acknowledged (QoS 1) to `sent` (ingest).
    pub fn with_telemetry(mut self, qos: QoS, sent: mpsc::UnboundedSender<u64>) -> Publisher {
        self.telemetry = Some(TelemetrySink { qos, sent });
        self
    }

    /// Publishes the retained `{prefix}/manifest` at every (re)connect and
    /// after each change of `manifest`.
    pub fn with_manifest(
        mut self,
        manifest: watch::Receiver<Vec<crate::manifest::Pallet>>,
    ) -> Publisher {
        self.manifest = Some(manifest);
        self
    }

    /// Queues the retained manifest (what is on board now), when there is one
    /// and it differs from what this connection last published.
    fn publish_manifest(
        &mut self,
        client: &AsyncClient,
        flight: &mut InFlight,
        last: &mut Option<Vec<crate::manifest::Pallet>>,
    ) {
        let Some(rx) = self.manifest.as_mut() else {
            return;
        };
        let now = crate::event::now_ms();
        let on_board: Vec<_> = rx
            .borrow_and_update()
            .iter()
            .filter(|p| p.on_board_at(now))
            .cloned()
            .collect();
        if last.as_ref() == Some(&on_board) {
            return;
        }
        let topic = format!("{}/manifest", self.opts.prefix);
        let messages = match manifest::manifest_messages(
            &self.opts.gateway_id,
            &on_board,
            now,
            self.opts.max_payload,
        ) {
            Ok(m) => m,
            Err(error) => {
                error!(topic = %topic, %error, "The manifest cannot be split to fit mqtt.max_payload; it is not published.");
                *last = Some(on_board);
                return;
            }
        };
        let parts = messages.len();
        // Parts a larger manifest left retained: emptied, so a subscriber
        // never reads a stale part.
        let stale =
            (parts + 1..=self.manifest_parts).map(|k| (manifest::part_topic(k), Vec::new()));
        for (sub, payload) in messages.into_iter().chain(stale) {
            let full = format!("{}/{sub}", self.opts.prefix);
            if client
                .try_publish(&full, QoS::AtLeastOnce, true, payload)
                .is_err()
            {
                warn!(topic = %full, "The manifest could not be queued; it is sent again at the next change or reconnect.");
                return;
            }
            flight.queue(Sent::Other);
        }
        self.manifest_parts = parts;
        info!(topic = %topic, pallets = on_board.len(), parts, "Manifest published.");
        *last = Some(on_board);
    }

    /// Subscribes to `{prefix}/cmd/manifest` and hands commands to `commands`.
    pub fn with_commands(mut self, commands: mpsc::Sender<ManifestRequest>) -> Publisher {
        self.commands = Some(commands);
        self
    }

    pub fn delivered(&self) -> broadcast::Receiver<Delivered> {
        self.delivered.subscribe()
    }

    pub fn link(&self) -> watch::Receiver<LinkState> {
        self.link.subscribe()
    }

    /// The options of one connection. TLS files and the password are read
    /// here, each time, so renewed ones are used without a restart; a
    /// problem with them fails this attempt like a broker that is away.
    fn mqtt_options(&mut self) -> Result<MqttOptions, String> {
        let mut m = MqttOptions::new(
            self.opts.gateway_id.clone(),
            self.opts.host.clone(),
            self.opts.port,
        );
        if let Some(tls) = &self.opts.tls {
            let loaded =
                tls::load(tls, &self.opts.host, crate::event::now_ms()).map_err(|errors| {
                    errors
                        .iter()
                        .map(|e| format!("{}: {e}", e.key()))
                        .collect::<Vec<_>>()
                        .join("; ")
                })?;
            if let Some(expires) = loaded.client_cert_expires_ms {
                let left_ms = expires - crate::event::now_ms();
                let due = self
                    .cert_warned
                    .is_none_or(|t| t.elapsed() >= Duration::from_secs(24 * 3600));
                if left_ms < CERT_WARNING.as_millis() as i64 && due {
                    self.cert_warned = Some(Instant::now());
                    warn!(
                        expires_at = %crate::event::rfc3339(expires),
                        days_left = left_ms / 86_400_000,
                        file = ?tls.cert_file,
                        "The MQTT client certificate expires soon; renew it (mqtt.tls.cert_file)."
                    );
                }
            }
            self.client_cert_expires_ms = loaded.client_cert_expires_ms;
            self.link
                .send_modify(|l| l.client_cert_expires_ms = loaded.client_cert_expires_ms);
            m.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
                loaded.config,
            )));
        }
        if let Some(user) = &self.opts.username {
            let password = match &self.opts.password_file {
                Some(path) => tls::read_password(path).map_err(|e| format!("{}: {e}", e.key()))?,
                None => String::new(),
            };
            m.set_credentials(user.clone(), password);
        }
        let o = &self.opts;
        m.set_keep_alive(o.keep_alive)
            .set_clean_session(true)
            .set_inflight(o.inflight)
            .set_max_packet_size(
                INCOMING_MAX_PACKET,
                o.max_payload.saturating_add(PACKET_OVERHEAD),
            )
            .set_request_channel_capacity(usize::from(o.inflight) + 16)
            .set_last_will(LastWill::new(
                format!("{}/status", o.prefix),
                self.status("offline", Some(status::REASON_LOST)),
                QoS::AtLeastOnce,
                true,
            ));
        Ok(m)
    }

    fn status(&self, state: &str, reason: Option<&str>) -> Vec<u8> {
        let (depth, oldest) = self.store.outbox_depth().unwrap_or((0, None));
        status_payload(
            &self.opts.gateway_id,
            state,
            reason,
            StatusFacts {
                uptime: self.started.elapsed(),
                outbox_depth: depth,
                oldest_unsent_ms: oldest,
                client_cert_expires_ms: self.client_cert_expires_ms,
                clock_last_jump: self.store.last_clock_jump().ok().flatten().and_then(|j| {
                    let at = crate::event::parse_rfc3339(j["at"].as_str()?)?;
                    Some((at, j["offset_ms"].as_i64()?))
                }),
                telemetry_dropped: self.store.telemetry_dropped().unwrap_or(0),
                set_aside: self.store.set_aside_count().unwrap_or(0),
                link: self.link.borrow().clone(),
                connected_since_ms: self.connected_since_ms,
                audit_head: self.store.audit_head().ok().flatten(),
            },
        )
    }

    /// Runs until `shutdown` is set; then sends what is in flight a short
    /// while longer, publishes `offline` and disconnects.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff =
            coldgate_sensor_drivers::Backoff::new(self.opts.reconnect_min, self.opts.reconnect_max);
        let probing = link::Probing {
            every: self.opts.reconnect_probe,
            spread: self.opts.reconnect_spread,
        };
        let mut answers = futures::stream::FuturesUnordered::new();
        loop {
            if *shutdown.borrow() {
                return;
            }
            let connected_at = Instant::now();
            let ended = match self.mqtt_options() {
                Ok(options) => {
                    let (client, eventloop) =
                        AsyncClient::new(options, usize::from(self.opts.inflight) + 16);
                    self.connection(client, eventloop, &mut shutdown, &mut answers)
                        .await
                }
                // TLS files or the password cannot be read: no broker
                // coming back mends that.
                Err(error) => Ended::Failed(error, link::Failure::Refused),
            };
            let (error, failure) = match ended {
                Ended::Shutdown => return,
                Ended::Lost(error) => (error, link::Failure::Lost),
                Ended::Failed(error, failure) => (error, failure),
            };
            self.connected_since_ms = None;
            let wait = link::reconnect_wait(
                &mut backoff,
                connected_at.elapsed(),
                rand::rng().random_range(0.5..1.0),
            );
            warn!(%error, ?failure, retry_in_ms = wait.as_millis() as u64, "MQTT connection failed or lost.");
            self.link.send_modify(|l| {
                l.connected = false;
                l.publish_errors += 1;
                l.last_error = Some(error);
                l.next_retry_ms = Some(crate::event::now_ms() + wait.as_millis() as i64);
            });
            let (host, port) = (self.opts.host.clone(), self.opts.port);
            let waited = link::wait(
                wait,
                failure,
                probing,
                |limit| link::tcp_probe(host.clone(), port, limit),
                || rand::rng().random::<f64>(),
            );
            tokio::select! {
                waited = waited => if let link::Waited::Back { away } = waited {
                    info!(away_ms = away.as_millis() as u64, cut_from_ms = wait.as_millis() as u64, "The broker accepts connections again; reconnecting before the backoff ends.");
                },
                _ = shutdown.changed() => return,
            }
        }
    }

    /// `answers`: those ingest has yet to give, kept across reconnects (in
    /// [`Publisher::run`]) so a command applied while the link dropped is
    /// still answered on the next connection.
    async fn connection(
        &mut self,
        client: AsyncClient,
        mut eventloop: EventLoop,
        shutdown: &mut watch::Receiver<bool>,
        answers: &mut futures::stream::FuturesUnordered<PendingAnswer>,
    ) -> Ended {
        let mut flight = InFlight::new();
        let mut connected = false;
        let mut status_tick = tokio::time::interval(self.opts.status_interval);
        let status_topic = format!("{}/status", self.opts.prefix);
        let mut committed_open = true;
        // The link is verified when the broker has delivered one of the
        // statuses sent on this connection back to us: mosquitto PUBACKs a
        // publish its ACL denies, so a PUBACK alone proves nothing. It is
        // always checked and shown (status, API, metrics); with
        // `verify_own_status` events wait for it, so a wrong prefix or ACL
        // cannot empty the outbox into nowhere.
        let mut verified = false;
        let gated = self.opts.verify_own_status;
        let mut sent_status: VecDeque<Vec<u8>> = VecDeque::new();
        let mut verify_deadline: Option<Instant> = None;
        let cmd_topic = format!("{}/cmd/manifest", self.opts.prefix);
        let result_topic = format!("{cmd_topic}/result");
        let replay_topic = format!("{}/cmd/replay", self.opts.prefix);
        let cmd_tx = self.commands.clone();
        let mut manifest_rx = self.manifest.clone();
        let mut manifest_sent = None;
        loop {
            tokio::select! {
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        info!(host = %self.opts.host, port = self.opts.port, "Connected to the MQTT broker.");
                        connected = true;
                        self.connected_since_ms = Some(crate::event::now_ms());
                        self.link.send_modify(|l| { l.connected = true; l.next_retry_ms = None; l.verified = verified; });
                        if self.commands.is_some() {
                            let _ = client.try_subscribe(&cmd_topic, QoS::AtLeastOnce);
                        }
                        let _ = client.try_subscribe(&replay_topic, QoS::AtLeastOnce);
                        let _ = client.try_subscribe(&status_topic, QoS::AtLeastOnce);
                        verify_deadline = Some(Instant::now() + VERIFY_WITHIN);
                        let status = self.status("online", None);
                        if client.try_publish(&status_topic, QoS::AtLeastOnce, true, status.clone()).is_ok() {
                            flight.queue(Sent::Other);
                            remember(&mut sent_status, status);
                        }
                        self.publish_manifest(&client, &mut flight, &mut manifest_sent);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                        if let Some(answer) = self.command(&p.payload, answers) {
                            self.answer(&result_topic, &answer);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == replay_topic => {
                        self.replay(&p.payload, &replay_topic);
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if !verified && p.topic == status_topic && sent_status.iter().any(|s| **s == *p.payload) {
                            verified = true;
                            verify_deadline = None;
                            info!(topic = %status_topic, "The broker delivered this gateway's own status back: the link is verified.");
                            self.link.send_modify(|l| { l.verified = true; l.last_error = None; });
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        self.written(&mut flight, pkid);
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if !self.acknowledged(&mut flight, ack.pkid) {
                            // Ingest has stopped (the daemon stops it
                            // first): leave cleanly, or the broker would
                            // publish the Last Will as if we had crashed.
                            self.finish(client, eventloop, flight, &status_topic).await;
                            return Ended::Shutdown;
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Ended::Failed(tls::explain(&e, self.opts.tls.as_ref(), &self.opts.host), link::Failure::of(&e))
                    }
                },
                Some(answer) = answers.next(), if !answers.is_empty() => {
                    self.answer(&result_topic, &answer);
                }
                permit = reserve(&cmd_tx), if !self.to_ingest.is_empty() => match permit {
                    Ok(permit) => {
                        if let Some(request) = self.to_ingest.pop_front() {
                            permit.send(request);
                        }
                    }
                    // Ingest is gone (stopping): dropping the requests
                    // answers each "stopped before answering".
                    Err(_) => self.to_ingest.clear(),
                },
                // Until the CONNACK, only the broker and shutdown may wake
                // this loop: rumqttc's poll() is not cancel-safe while it
                // connects, and a commit (several a second) would drop the
                // half-made connection and start another, so a link whose
                // handshake takes longer than a batch interval (TLS over a
                // slow cellular uplink) would never connect.
                res = self.committed.changed(), if committed_open && connected => {
                    committed_open = res.is_ok();
                }
                res = changed(&mut manifest_rx), if manifest_rx.is_some() && connected => {
                    if res.is_err() {
                        manifest_rx = None;
                    } else if connected {
                        self.publish_manifest(&client, &mut flight, &mut manifest_sent);
                    }
                }
                _ = status_tick.tick(), if connected => {
                    let status = self.status("online", None);
                    if client.try_publish(&status_topic, QoS::AtLeastOnce, true, status.clone()).is_ok() {
                        flight.queue(Sent::Other);
                        remember(&mut sent_status, status);
                    }
                    // A pallet whose unload time has passed leaves it.
                    self.publish_manifest(&client, &mut flight, &mut manifest_sent);
                }
                _ = tokio::time::sleep_until(verify_deadline.unwrap_or_else(Instant::now)), if verify_deadline.is_some() => {
                    verify_deadline = None;
                    let error = format!(
                        "the broker accepted the connection but did not deliver this gateway's own status back within {}s: it probably denies publishing (or reading) under `{}` (ACL, mqtt.prefix); {}",
                        VERIFY_WITHIN.as_secs(),
                        self.opts.prefix,
                        if gated {
                            "events stay in the outbox"
                        } else {
                            "events are sent and PUBACKed but may be delivered to nobody (set mqtt.verify_own_status to hold them)"
                        }
                    );
                    error!(topic = %status_topic, "{error}");
                    self.link.send_modify(|l| { l.publish_errors += 1; l.last_error = Some(error); });
                }
                _ = shutdown.changed() => {
                    self.finish(client, eventloop, flight, &status_topic).await;
                    return Ended::Shutdown;
                }
            }
            if connected {
                self.flush_out_queue(&client, &mut flight);
            }
            if connected && (verified || !gated) {
                if let Err(error) = self.fill(&client, &mut flight) {
                    return Ended::Lost(error);
                }
            }
        }
    }

    /// Hands a command to ingest; returns an immediate answer when it cannot
    /// be (unreadable, or ingest busy or gone).
    fn command(
        &mut self,
        payload: &[u8],
        answers: &mut futures::stream::FuturesUnordered<PendingAnswer>,
    ) -> Option<commands::Answer> {
        let gw = self.opts.gateway_id.clone();
        let parsed = match commands::parse(payload) {
            Ok(p) => p,
            Err((id, why)) => {
                return Some(commands::Answer::new(&gw, id.as_deref(), &Err(vec![why])))
            }
        };
        self.commands.as_ref()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let id = parsed.request_id;
        if self.to_ingest.len() < COMMAND_QUEUE {
            self.to_ingest.push_back(ManifestRequest {
                request_id: id.clone(),
                actor: "mqtt:cmd/manifest".into(),
                command: parsed.command,
                reply,
            });
        } else {
            let why = "the gateway is busy (over 10000 commands waiting); send the command again";
            return Some(commands::Answer::new(
                &gw,
                Some(&id),
                &Err(vec![why.into()]),
            ));
        }
        answers.push(Box::pin(async move {
            rx.await.unwrap_or_else(|_| {
                let why = "the gateway stopped before answering; send the command again";
                commands::Answer::new(&gw, Some(&id), &Err(vec![why.into()]))
            })
        }));
        None
    }

    /// Queues a command's answer; [`Publisher::flush_out_queue`] sends it.
    fn answer(&mut self, topic: &str, answer: &commands::Answer) {
        info!(
            ok = answer.ok,
            duplicate = answer.duplicate,
            "Manifest command answered."
        );
        self.out_queue
            .push_back((topic.to_string(), answer.payload.clone()));
    }

    /// Queues the events a `cmd/replay` asks for, with their original
    /// bytes, then the answer (see [`replay`]).
    fn replay(&mut self, payload: &[u8], topic: &str) {
        let gw = self.opts.gateway_id.clone();
        let result_topic = format!("{topic}/result");
        let result = match replay::parse(payload) {
            Err((id, why)) => replay::ReplayResult::refused(&gw, id, why),
            // A queue this long is a replay (or a burst of answers) still
            // going out: no request may make it grow without bound.
            Ok(r) if self.out_queue.len() >= replay::REPLAY_MAX_EVENTS as usize => {
                replay::ReplayResult::refused(
                    &gw,
                    Some(r.request_id),
                    "busy sending an earlier replay; ask again in a few seconds".into(),
                )
            }
            Ok(r) => match self.store.events_by_seq(r.from_seq, r.to_seq) {
                Err(error) => replay::ReplayResult::refused(
                    &gw,
                    Some(r.request_id),
                    format!("cannot read the events table: {error}"),
                ),
                Ok(events) => {
                    let mut result = replay::ReplayResult::accepted(&gw, &r);
                    let mut expected = r.from_seq;
                    for ev in events {
                        result.missing.extend(expected..ev.seq);
                        expected = ev.seq + 1;
                        if ev.payload.len() > self.opts.max_payload {
                            result.set_aside.push(ev.seq);
                            continue;
                        }
                        self.out_queue
                            .push_back((format!("{}/{}", self.opts.prefix, ev.topic), ev.payload));
                        result.replayed += 1;
                    }
                    result.missing.extend(expected..=r.to_seq);
                    result
                }
            },
        };
        info!(
            request_id = ?result.request_id,
            ok = result.ok,
            replayed = result.replayed,
            missing = result.missing.len(),
            "Replay request answered."
        );
        self.out_queue.push_back((result_topic, result.to_vec()));
    }

    /// Publishes queued answers and replayed events (QoS 1, not retained)
    /// while rumqttc's request queue has room, in the same request order
    /// as everything else so pkid correlation holds; the rest wait for the
    /// next turn.
    fn flush_out_queue(&mut self, client: &AsyncClient, flight: &mut InFlight) {
        while let Some((topic, payload)) = self.out_queue.front() {
            if client
                .try_publish(topic, QoS::AtLeastOnce, false, payload.clone())
                .is_err()
            {
                return;
            }
            flight.queue(Sent::Other);
            self.out_queue.pop_front();
        }
    }

    /// rumqttc wrote the next queued publish with packet id `pkid`.
    fn written(&self, flight: &mut InFlight, pkid: u16) {
        if let Some(Settled::Telemetry(id)) = flight.written(pkid) {
            let _ = self.telemetry.as_ref().map(|t| t.sent.send(id));
        }
    }

    /// The broker acknowledged `pkid`; false once ingest is gone.
    fn acknowledged(&self, flight: &mut InFlight, pkid: u16) -> bool {
        match flight.acknowledged(pkid) {
            Some(Settled::Event {
                seq,
                topic,
                payload,
            }) => {
                debug!(seq, "PUBACK received.");
                if self.acked.send(seq).is_err() {
                    return false;
                }
                let _ = self.delivered.send(Delivered {
                    seq,
                    topic,
                    payload,
                });
            }
            Some(Settled::Telemetry(id)) => {
                let _ = self.telemetry.as_ref().map(|t| t.sent.send(id));
            }
            None => {}
        }
        true
    }

    /// Queues outbox entries after the cursor until the in-flight window is
    /// full: events first, telemetry only when no event is waiting.
    fn fill(&self, client: &AsyncClient, flight: &mut InFlight) -> Result<(), String> {
        let window = usize::from(self.opts.inflight);
        let used = flight.used();
        if used >= window {
            return Ok(());
        }
        let entries = self
            .store
            .outbox_after(flight.cursor, window - used)
            .map_err(|e| e.to_string())?;
        let mut room = window - used - entries.len();
        for ev in entries {
            let topic = format!("{}/{}", self.opts.prefix, ev.topic);
            if ev.payload.len() > self.opts.max_payload {
                // Sending it would fail the connection, every time: the
                // rest of the outbox must not wait behind it.
                flight.cursor = ev.seq;
                error!(seq = ev.seq, topic = %topic, bytes = ev.payload.len(), max_payload = self.opts.max_payload, "An outbox entry is larger than mqtt.max_payload; it is set aside, not published.");
                if let Some(tx) = &self.set_aside {
                    let _ = tx.send(SetAside {
                        seq: ev.seq,
                        topic: ev.topic,
                        bytes: ev.payload.len(),
                    });
                }
                continue;
            }
            match client.try_publish(&topic, QoS::AtLeastOnce, false, ev.payload.clone()) {
                Ok(()) => flight.queue(Sent::Event {
                    seq: ev.seq,
                    topic,
                    payload: ev.payload,
                }),
                Err(_) => {
                    room = 0;
                    break;
                }
            }
        }
        let Some(t) = self.telemetry.as_ref() else {
            return Ok(());
        };
        if room == 0 {
            return Ok(());
        }
        let waiting = self
            .store
            .telemetry_after(flight.telemetry_cursor, room)
            .map_err(|e| e.to_string())?;
        for m in waiting {
            let topic = format!("{}/{}", self.opts.prefix, m.topic);
            if client.try_publish(&topic, t.qos, false, m.payload).is_err() {
                break;
            }
            flight.queue(Sent::Telemetry {
                id: m.seq,
                qos0: t.qos == QoS::AtMostOnce,
            });
        }
        Ok(())
    }

    /// On shutdown: wait (bounded) for PUBACKs of what is in flight, publish
    /// `offline`, disconnect.
    /// Leaves the broker cleanly: the last status (`offline`, `stopped`),
    /// its PUBACK awaited, then DISCONNECT, then the broker's close.
    ///
    /// Waiting matters: a broker that still has a PUBACK to write when the
    /// socket closes treats the close as a failure and publishes the Last
    /// Will over our status (mosquitto 2.0 logs it as "out of memory"), so
    /// a clean stop would look like a crash. At most 2 s in all.
    async fn finish(
        &self,
        client: AsyncClient,
        mut eventloop: EventLoop,
        mut flight: InFlight,
        status_topic: &str,
    ) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let status = self.status("offline", Some(status::REASON_STOPPED));
        let mut last = None;
        let mut waiting = client
            .try_publish(status_topic, QoS::AtLeastOnce, true, status)
            .is_ok();
        if waiting {
            flight.queue(Sent::Final);
        }
        let mut disconnecting = false;
        while Instant::now() < deadline {
            if !waiting && !disconnecting {
                disconnecting = client.try_disconnect().is_ok();
                if !disconnecting {
                    break;
                }
            }
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if flight.final_is_next() {
                        flight.written(pkid);
                        last = Some(pkid);
                    } else {
                        self.written(&mut flight, pkid);
                    }
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if last == Some(ack.pkid) {
                        waiting = false;
                    } else {
                        self.acknowledged(&mut flight, ack.pkid);
                    }
                }
                // After DISCONNECT the broker closes the connection: that
                // end (an error from poll) is the proof it was read.
                Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
    }
}

/// The next change of a watched value (never without one).
async fn changed<T>(rx: &mut Option<watch::Receiver<T>>) -> Result<(), watch::error::RecvError> {
    match rx {
        Some(rx) => rx.changed().await,
        None => std::future::pending().await,
    }
}

/// Keeps the last few statuses sent on a connection, to recognise one when
/// the broker delivers it back (a retained one from before differs by `at`).
fn remember(sent: &mut VecDeque<Vec<u8>>, status: Vec<u8>) {
    if sent.len() >= 8 {
        sent.pop_front();
    }
    sent.push_back(status);
}

/// Room for one command in ingest's channel, or never without a channel.
async fn reserve(
    tx: &Option<mpsc::Sender<ManifestRequest>>,
) -> Result<mpsc::Permit<'_, ManifestRequest>, mpsc::error::SendError<()>> {
    match tx {
        Some(tx) => tx.reserve().await,
        None => std::future::pending().await,
    }
}
