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

pub mod commands;
mod link;
mod status;
pub mod tls;

use std::collections::{HashMap, VecDeque};
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

use crate::config::MqttTlsConfig;
use crate::store::Store;

pub use commands::{ManifestCommand, ManifestRequest};
pub use status::{status_payload, LinkState, StatusFacts};

/// A client certificate this close to expiry is warned about when
/// connecting (at most once a day), so there is time to renew it before the
/// gateway goes silent.
const CERT_WARNING: Duration = Duration::from_secs(30 * 24 * 3600);

/// With `mqtt.verify_own_status`, how long after CONNACK the broker has to
/// deliver the gateway's own status back before the link is reported as
/// refusing its publishes.
const VERIFY_WITHIN: Duration = Duration::from_secs(10);

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
    pub status_interval: Duration,
    pub username: Option<String>,
    pub password_file: Option<std::path::PathBuf>,
    pub tls: Option<MqttTlsConfig>,
    pub verify_own_status: bool,
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
            status_interval: c.mqtt.status_interval,
            username: c.mqtt.username.clone(),
            password_file: c.mqtt.password_file.clone(),
            tls: c.mqtt.tls.clone(),
            verify_own_status: c.mqtt.verify_own_status,
        }
    }
}

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
    /// Where `cmd/manifest` commands go (ingest); none: not subscribed.
    commands: Option<mpsc::Sender<ManifestRequest>>,
}

/// An answer ingest has yet to give: the command id and its outcome.
type PendingAnswer = futures::future::BoxFuture<'static, (String, commands::Outcome)>;

/// What one connection has sent and not yet seen acknowledged.
struct InFlight {
    /// Publish requests in the order they were queued: `Some(seq)` for an
    /// event, `None` for a status message. rumqttc assigns packet ids in
    /// this order.
    queued: VecDeque<Option<(u64, String, Vec<u8>)>>,
    by_pkid: HashMap<u16, (u64, String, Vec<u8>)>,
    /// The highest seq queued on this connection.
    cursor: u64,
}

enum Ended {
    Shutdown,
    Lost(String),
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
            commands: None,
        }
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
            .set_max_packet_size(256 * 1024, 256 * 1024)
            .set_request_channel_capacity(usize::from(o.inflight) + 16)
            .set_last_will(LastWill::new(
                format!("{}/status", o.prefix),
                self.status("offline"),
                QoS::AtLeastOnce,
                true,
            ));
        Ok(m)
    }

    fn status(&self, state: &str) -> Vec<u8> {
        let (depth, oldest) = self.store.outbox_depth().unwrap_or((0, None));
        status_payload(
            &self.opts.gateway_id,
            state,
            StatusFacts {
                uptime: self.started.elapsed(),
                outbox_depth: depth,
                oldest_unsent_ms: oldest,
                client_cert_expires_ms: self.client_cert_expires_ms,
                clock_last_jump: self.store.last_clock_jump().ok().flatten().and_then(|j| {
                    let at = crate::event::parse_rfc3339(j["at"].as_str()?)?;
                    Some((at, j["offset_ms"].as_i64()?))
                }),
            },
        )
    }

    /// Runs until `shutdown` is set; then sends what is in flight a short
    /// while longer, publishes `offline` and disconnects.
    pub async fn run(mut self, mut shutdown: watch::Receiver<bool>) {
        let mut backoff = link::Backoff::new(self.opts.reconnect_min, self.opts.reconnect_max);
        loop {
            if *shutdown.borrow() {
                return;
            }
            let connected_at = Instant::now();
            let ended = match self.mqtt_options() {
                Ok(options) => {
                    let (client, eventloop) =
                        AsyncClient::new(options, usize::from(self.opts.inflight) + 16);
                    self.connection(client, eventloop, &mut shutdown).await
                }
                Err(error) => Ended::Lost(error),
            };
            match ended {
                Ended::Shutdown => return,
                Ended::Lost(error) => {
                    let wait = backoff
                        .after_failure(connected_at.elapsed(), rand::rng().random_range(0.5..1.0));
                    warn!(%error, retry_in_ms = wait.as_millis() as u64, "MQTT connection failed or lost.");
                    self.link.send_modify(|l| {
                        l.connected = false;
                        l.publish_errors += 1;
                        l.last_error = Some(error);
                        l.next_retry_ms = Some(crate::event::now_ms() + wait.as_millis() as i64);
                    });
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        _ = shutdown.changed() => return,
                    }
                }
            }
        }
    }

    async fn connection(
        &mut self,
        client: AsyncClient,
        mut eventloop: EventLoop,
        shutdown: &mut watch::Receiver<bool>,
    ) -> Ended {
        let mut flight = InFlight {
            queued: VecDeque::new(),
            by_pkid: HashMap::new(),
            cursor: 0,
        };
        let mut connected = false;
        let mut status_tick = tokio::time::interval(self.opts.status_interval);
        let status_topic = format!("{}/status", self.opts.prefix);
        let mut committed_open = true;
        // Events are published only once the link is verified: at once, or
        // with `verify_own_status` when the broker has delivered one of the
        // statuses sent on this connection back to us. mosquitto PUBACKs a
        // publish its ACL denies, so without this a wrong prefix or ACL
        // would empty the outbox into nowhere.
        let mut verified = !self.opts.verify_own_status;
        let mut sent_status: VecDeque<Vec<u8>> = VecDeque::new();
        let mut verify_deadline: Option<Instant> = None;
        let cmd_topic = format!("{}/cmd/manifest", self.opts.prefix);
        let result_topic = format!("{cmd_topic}/result");
        let mut answers: futures::stream::FuturesUnordered<PendingAnswer> =
            futures::stream::FuturesUnordered::new();
        loop {
            tokio::select! {
                ev = eventloop.poll() => match ev {
                    Ok(Event::Incoming(Packet::ConnAck(_))) => {
                        info!(host = %self.opts.host, port = self.opts.port, "Connected to the MQTT broker.");
                        connected = true;
                        self.link.send_modify(|l| { l.connected = true; l.next_retry_ms = None; l.verified = verified; });
                        if self.commands.is_some() {
                            let _ = client.try_subscribe(&cmd_topic, QoS::AtLeastOnce);
                        }
                        if !verified {
                            let _ = client.try_subscribe(&status_topic, QoS::AtLeastOnce);
                            verify_deadline = Some(Instant::now() + VERIFY_WITHIN);
                        }
                        let status = self.status("online");
                        if client.try_publish(&status_topic, QoS::AtLeastOnce, true, status.clone()).is_ok() {
                            flight.queued.push_back(None);
                            remember(&mut sent_status, status);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) if p.topic == cmd_topic => {
                        if let Some(answer) = self.command(&p.payload, &mut answers) {
                            self.answer(&client, &mut flight, &result_topic, answer.0.as_deref(), &answer.1);
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        if !verified && p.topic == status_topic && sent_status.iter().any(|s| **s == *p.payload) {
                            verified = true;
                            verify_deadline = None;
                            info!(topic = %status_topic, "The broker delivered this gateway's own status back; publishing events.");
                            self.link.send_modify(|l| { l.verified = true; l.last_error = None; });
                        }
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        if let Some(Some(entry)) = flight.queued.pop_front() {
                            flight.by_pkid.insert(pkid, entry);
                        }
                    }
                    Ok(Event::Incoming(Packet::PubAck(ack))) => {
                        if let Some((seq, topic, payload)) = flight.by_pkid.remove(&ack.pkid) {
                            debug!(seq, "PUBACK received.");
                            if self.acked.send(seq).is_err() {
                                return Ended::Shutdown;
                            }
                            let _ = self.delivered.send(Delivered { seq, topic, payload });
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        return Ended::Lost(tls::explain(&e, self.opts.tls.as_ref(), &self.opts.host))
                    }
                },
                Some((id, outcome)) = answers.next(), if !answers.is_empty() => {
                    self.answer(&client, &mut flight, &result_topic, Some(&id), &outcome);
                }
                res = self.committed.changed(), if committed_open => {
                    committed_open = res.is_ok();
                }
                _ = status_tick.tick(), if connected => {
                    let status = self.status("online");
                    if client.try_publish(&status_topic, QoS::AtLeastOnce, true, status.clone()).is_ok() {
                        flight.queued.push_back(None);
                        remember(&mut sent_status, status);
                    }
                }
                _ = tokio::time::sleep_until(verify_deadline.unwrap_or_else(Instant::now)), if verify_deadline.is_some() => {
                    verify_deadline = None;
                    let error = format!(
                        "the broker accepted the connection but did not deliver this gateway's own status back within {}s: it probably denies publishing (or reading) under `{}` (ACL, mqtt.prefix); events stay in the outbox",
                        VERIFY_WITHIN.as_secs(),
                        self.opts.prefix
                    );
                    error!(topic = %status_topic, "{error}");
                    self.link.send_modify(|l| { l.publish_errors += 1; l.last_error = Some(error); });
                }
                _ = shutdown.changed() => {
                    self.finish(client, eventloop, flight, &status_topic).await;
                    return Ended::Shutdown;
                }
            }
            if connected && verified {
                if let Err(error) = self.fill(&client, &mut flight) {
                    return Ended::Lost(error);
                }
            }
        }
    }

    /// Hands a command to ingest; returns an immediate answer when it cannot
    /// be (unreadable, or ingest busy or gone).
    fn command(
        &self,
        payload: &[u8],
        answers: &mut futures::stream::FuturesUnordered<PendingAnswer>,
    ) -> Option<(Option<String>, commands::Outcome)> {
        let parsed = match commands::parse(payload) {
            Ok(p) => p,
            Err((id, why)) => return Some((id, Err(vec![why]))),
        };
        let tx = self.commands.as_ref()?;
        let (reply, rx) = tokio::sync::oneshot::channel();
        let id = parsed.command_id;
        if tx
            .try_send(ManifestRequest {
                command: parsed.command,
                reply,
            })
            .is_err()
        {
            return Some((
                Some(id),
                Err(vec![
                    "the gateway is busy or stopping; send the command again".into(),
                ]),
            ));
        }
        answers.push(Box::pin(async move {
            let outcome = rx
                .await
                .unwrap_or_else(|_| Err(vec!["the gateway stopped before answering".into()]));
            (id, outcome)
        }));
        None
    }

    /// Publishes a command's answer (QoS 1, not retained) in the same
    /// request order as everything else, so pkid correlation holds.
    fn answer(
        &self,
        client: &AsyncClient,
        flight: &mut InFlight,
        topic: &str,
        command_id: Option<&str>,
        outcome: &commands::Outcome,
    ) {
        info!(command_id = ?command_id, ok = outcome.is_ok(), "Manifest command answered.");
        let payload = commands::result_payload(&self.opts.gateway_id, command_id, outcome);
        if client
            .try_publish(topic, QoS::AtLeastOnce, false, payload)
            .is_ok()
        {
            flight.queued.push_back(None);
        } else {
            warn!(command_id = ?command_id, "The answer to a manifest command could not be queued.");
        }
    }

    /// Queues outbox entries after the cursor until the in-flight window is full.
    fn fill(&self, client: &AsyncClient, flight: &mut InFlight) -> Result<(), String> {
        let window = usize::from(self.opts.inflight);
        let used = flight.queued.len() + flight.by_pkid.len();
        if used >= window {
            return Ok(());
        }
        let entries = self
            .store
            .outbox_after(flight.cursor, window - used)
            .map_err(|e| e.to_string())?;
        for ev in entries {
            let topic = format!("{}/{}", self.opts.prefix, ev.topic);
            match client.try_publish(&topic, QoS::AtLeastOnce, false, ev.payload.clone()) {
                Ok(()) => {
                    flight.cursor = ev.seq;
                    flight.queued.push_back(Some((ev.seq, topic, ev.payload)));
                }
                Err(_) => break,
            }
        }
        Ok(())
    }

    /// On shutdown: wait (bounded) for PUBACKs of what is in flight, publish
    /// `offline`, disconnect.
    async fn finish(
        &self,
        client: AsyncClient,
        mut eventloop: EventLoop,
        mut flight: InFlight,
        status_topic: &str,
    ) {
        let deadline = Instant::now() + Duration::from_secs(2);
        let _ = client.try_publish(status_topic, QoS::AtLeastOnce, true, self.status("offline"));
        flight.queued.push_back(None);
        let _ = client.try_disconnect();
        while Instant::now() < deadline {
            match tokio::time::timeout_at(deadline, eventloop.poll()).await {
                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => {
                    if let Some(Some(entry)) = flight.queued.pop_front() {
                        flight.by_pkid.insert(pkid, entry);
                    }
                }
                Ok(Ok(Event::Incoming(Packet::PubAck(ack)))) => {
                    if let Some((seq, ..)) = flight.by_pkid.remove(&ack.pkid) {
                        let _ = self.acked.send(seq);
                    }
                }
                Ok(Ok(Event::Outgoing(Outgoing::Disconnect))) | Ok(Err(_)) | Err(_) => break,
                Ok(Ok(_)) => {}
            }
        }
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
