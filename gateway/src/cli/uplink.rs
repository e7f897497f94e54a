//! `coldgate uplink --test`: the way to the broker, one step at a time,
//! before the service is enabled: the TLS files, DNS, TCP, the TLS
//! handshake, CONNACK, and the own status published and read back.
//!
//! Design: each step either passes with what it found or fails with the
//! reason in words, and the walk stops at the first failure, because every
//! later step would fail for the same reason. It builds the TLS
//! configuration with the publisher's own [`tls::load`] and words failures
//! with [`tls::explain_rustls`], so what passes here is what the daemon
//! will use. It never disturbs a running daemon: its own client id, no
//! Last Will, and the status it publishes is not retained (state
//! `offline`, reason `uplink test`: it is not the daemon speaking).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Args;
use rumqttc::{
    AsyncClient, ConnectionError, Event, MqttOptions, Packet, QoS, SubscribeReasonCode,
    TlsConfiguration, Transport,
};

use crate::config::Config;
use crate::publish::tls;

#[derive(Args)]
pub struct UplinkArgs {
    /// Walk the steps to the broker and back (required: the only mode).
    #[arg(long, required = true)]
    test: bool,
    /// The configuration whose `[mqtt]` section is tested.
    #[arg(long, default_value = "/etc/coldgate/coldgate.toml")]
    config: PathBuf,
    /// How long each network step may take.
    #[arg(long, default_value = "5s", value_parser = humantime::parse_duration)]
    timeout: Duration,
}

/// One step's outcome: what it found, or why it failed.
type Step<T> = Result<(T, String), String>;

/// Prints the step's line; `Ok(None)` when it failed (the walk stops).
fn report<T>(name: &str, step: Step<T>) -> std::io::Result<Option<T>> {
    Ok(match step {
        Ok((value, found)) => {
            println!("  ok    {name}: {found}");
            Some(value)
        }
        Err(why) => {
            println!("  FAIL  {name}: {why}");
            println!("uplink: failed at {name}");
            None
        }
    })
}

pub async fn uplink(a: UplinkArgs) -> anyhow::Result<ExitCode> {
    // clap requires `--test`: it names the mode, there is no other.
    debug_assert!(a.test);
    let config = crate::daemon::preflight::load(&a.config)?;
    let m = &config.mqtt;
    let scheme = if m.tls.is_some() { "mqtts" } else { "mqtt" };
    println!(
        "uplink: testing {scheme}://{}:{} as {} (prefix {})",
        m.host,
        m.port,
        config.gateway_id,
        config.topic_prefix()
    );
    if !m.enabled {
        println!("  FAIL  config: mqtt.enabled is false: the gateway would not connect");
        return Ok(ExitCode::FAILURE);
    }
    let Some(loaded) = report("TLS files", tls_files(&config))? else {
        return Ok(ExitCode::FAILURE);
    };
    let Some(addrs) = report("DNS", dns(&m.host, m.port, a.timeout).await)? else {
        return Ok(ExitCode::FAILURE);
    };
    let Some(stream) = report("TCP", tcp(&addrs, a.timeout).await)? else {
        return Ok(ExitCode::FAILURE);
    };
    if let (Some(loaded), Some(tls_config)) = (&loaded, &m.tls) {
        let name = tls_config
            .server_name
            .clone()
            .unwrap_or_else(|| m.host.clone());
        let step = handshake(
            stream,
            loaded.config.clone(),
            name,
            a.timeout,
            tls_config,
            &m.host,
        )
        .await;
        if report("TLS", step)?.is_none() {
            return Ok(ExitCode::FAILURE);
        }
    } else {
        drop(stream);
        println!("  --    TLS: not configured ([mqtt.tls]); the broker is not verified");
    }
    let Some((client, mut events)) =
        report("MQTT", connack(&config, loaded.as_ref(), a.timeout).await)?
    else {
        return Ok(ExitCode::FAILURE);
    };
    let step = round_trip(&config, &client, &mut events, a.timeout).await;
    let passed = report("own status", step)?.is_some();
    let _ = client.disconnect().await;
    let _ = tokio::time::timeout(Duration::from_millis(500), events.poll()).await;
    if passed {
        println!("uplink: every step passed");
        Ok(ExitCode::SUCCESS)
    } else {
        Ok(ExitCode::FAILURE)
    }
}

/// The certificate files, read and checked the way each connection does.
fn tls_files(config: &Config) -> Step<Option<tls::Loaded>> {
    let Some(t) = &config.mqtt.tls else {
        return Ok((
            None,
            "no [mqtt.tls]: plain MQTT, readable by anyone on the path".to_string(),
        ));
    };
    match tls::load(t, &config.mqtt.host, crate::event::now_ms()) {
        Ok(loaded) => {
            let client = match loaded.client_cert_expires_ms {
                Some(ms) => format!(
                    "client certificate valid until {}",
                    crate::event::rfc3339(ms)
                ),
                None => "no client certificate".to_string(),
            };
            let found = format!(
                "read; {client}; the broker is verified against {}",
                tls::trust_summary(t)
            );
            Ok((Some(loaded), found))
        }
        Err(errors) => Err(errors
            .iter()
            .map(|e| format!("{}: {e}", e.key()))
            .collect::<Vec<_>>()
            .join("; ")),
    }
}

async fn dns(host: &str, port: u16, timeout: Duration) -> Step<Vec<SocketAddr>> {
    match tokio::time::timeout(timeout, tokio::net::lookup_host((host, port))).await {
        Ok(Ok(addrs)) => {
            let addrs: Vec<SocketAddr> = addrs.collect();
            if addrs.is_empty() {
                return Err(format!("`{host}` has no address (mqtt.host)"));
            }
            let list: Vec<String> = addrs.iter().map(|a| a.ip().to_string()).collect();
            Ok((addrs, format!("{host} is {}", list.join(", "))))
        }
        Ok(Err(e)) => Err(format!("cannot resolve `{host}` (mqtt.host): {e}")),
        Err(_) => Err(format!(
            "no answer for `{host}` within {} (mqtt.host; is DNS reachable?)",
            humantime::format_duration(timeout)
        )),
    }
}

async fn tcp(addrs: &[SocketAddr], timeout: Duration) -> Step<tokio::net::TcpStream> {
    let mut why = Vec::new();
    for addr in addrs {
        let started = Instant::now();
        match tokio::time::timeout(timeout, tokio::net::TcpStream::connect(addr)).await {
            Ok(Ok(s)) => {
                return Ok((
                    s,
                    format!("connected to {addr} in {} ms", started.elapsed().as_millis()),
                ))
            }
            Ok(Err(e)) if e.kind() == std::io::ErrorKind::ConnectionRefused => why.push(format!(
                "{addr}: connection refused: nothing listens there (is the broker running? is mqtt.port right?)"
            )),
            Ok(Err(e)) => why.push(format!("{addr}: {e}")),
            Err(_) => why.push(format!(
                "{addr}: no answer within {} (a firewall, or the wrong address)",
                humantime::format_duration(timeout)
            )),
        }
    }
    Err(why.join("; "))
}

/// The handshake on the connection the TCP step opened, then a short read:
/// under TLS 1.3 a broker refuses a client certificate only after the
/// client's side of the handshake is done, with an alert that comes next.
async fn handshake(
    stream: tokio::net::TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: String,
    timeout: Duration,
    tls_config: &crate::config::MqttTlsConfig,
    host: &str,
) -> Step<()> {
    let stream = stream
        .into_std()
        .map_err(|e| format!("cannot use the connection: {e}"))?;
    let done =
        tokio::task::spawn_blocking(move || blocking_handshake(stream, config, name, timeout))
            .await
            .map_err(|e| format!("the handshake task failed: {e}"))?;
    match done {
        Ok(found) => Ok(((), found)),
        Err(HandshakeError::Tls(e)) => Err(tls::explain_rustls(&e, tls_config, host)),
        Err(HandshakeError::Other(why)) => Err(why),
    }
}

enum HandshakeError {
    Tls(rustls::Error),
    Other(String),
}

fn blocking_handshake(
    mut sock: std::net::TcpStream,
    config: Arc<rustls::ClientConfig>,
    name: String,
    timeout: Duration,
) -> Result<String, HandshakeError> {
    use std::io::ErrorKind;
    let other = |e: std::io::Error| HandshakeError::Other(e.to_string());
    sock.set_nonblocking(false).map_err(other)?;
    sock.set_read_timeout(Some(timeout)).map_err(other)?;
    sock.set_write_timeout(Some(timeout)).map_err(other)?;
    let server_name = rustls::pki_types::ServerName::try_from(name.clone())
        .map_err(|_| HandshakeError::Other(format!("`{name}` is not a valid TLS server name")))?;
    let mut conn =
        rustls::ClientConnection::new(config, server_name).map_err(HandshakeError::Tls)?;
    // rustls reports its own error (a refused certificate, an alert) inside
    // the I/O error of `complete_io`; take it out so it can be worded.
    let tls_error = |e: std::io::Error| {
        match e
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>())
    {
        Some(r) => HandshakeError::Tls(r.clone()),
        None if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            HandshakeError::Other("the broker did not finish the TLS handshake in time: is this port a TLS listener?".into())
        }
        None if e.kind() == ErrorKind::UnexpectedEof => HandshakeError::Other(
            "the broker closed the connection during the TLS handshake: is this port a TLS listener, and does the broker accept this client certificate?".into(),
        ),
        None => HandshakeError::Other(e.to_string()),
    }
    };
    while conn.is_handshaking() {
        conn.complete_io(&mut sock).map_err(tls_error)?;
    }
    let _ = sock.set_read_timeout(Some(Duration::from_millis(500)));
    match conn.read_tls(&mut sock) {
        Ok(0) => {
            return Err(HandshakeError::Other(
                "the broker closed the connection right after the TLS handshake: it does not accept this gateway's certificate (mqtt.tls.cert_file)".into(),
            ))
        }
        Ok(_) => conn.process_new_packets().map(|_| ()).map_err(HandshakeError::Tls)?,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
        Err(e) => return Err(tls_error(e)),
    }
    let version = conn
        .protocol_version()
        .map_or("TLS".to_string(), |v| format!("{v:?}"));
    let suite = conn
        .negotiated_cipher_suite()
        .map_or(String::new(), |s| format!(", {:?}", s.suite()));
    conn.send_close_notify();
    let _ = conn.complete_io(&mut sock);
    Ok(format!(
        "handshake done ({version}{suite}); the broker's certificate is valid for `{name}` and signed by a trusted CA"
    ))
}

/// The options of the publisher's connection, minus what would disturb a
/// running daemon: its own client id and no Last Will.
fn options(config: &Config, loaded: Option<&tls::Loaded>) -> Result<MqttOptions, String> {
    let m = &config.mqtt;
    let mut o = MqttOptions::new(
        format!("{}-uplink-test", config.gateway_id),
        m.host.clone(),
        m.port,
    );
    o.set_keep_alive(Duration::from_secs(30))
        .set_clean_session(true);
    if let Some(loaded) = loaded {
        o.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(
            loaded.config.clone(),
        )));
    }
    if let Some(user) = &m.username {
        let password = match &m.password_file {
            Some(path) => tls::read_password(path).map_err(|e| format!("{}: {e}", e.key()))?,
            None => String::new(),
        };
        o.set_credentials(user.clone(), password);
    }
    Ok(o)
}

async fn connack(
    config: &Config,
    loaded: Option<&tls::Loaded>,
    timeout: Duration,
) -> Step<(AsyncClient, rumqttc::EventLoop)> {
    let opts = options(config, loaded)?;
    let (client, mut events) = AsyncClient::new(opts, 16);
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(Event::Incoming(Packet::ConnAck(ack)))) => {
                return Ok((
                    (client, events),
                    format!("CONNACK {:?}: the broker accepted the connection", ack.code),
                ))
            }
            Ok(Ok(_)) => {}
            Ok(Err(ConnectionError::ConnectionRefused(code))) => {
                return Err(format!(
                    "the broker refused the connection: CONNACK {code:?}: {}",
                    refusal(code)
                ))
            }
            Ok(Err(e)) => {
                return Err(tls::explain(
                    &e,
                    config.mqtt.tls.as_ref(),
                    &config.mqtt.host,
                ))
            }
            Err(_) => {
                return Err(format!(
                    "no CONNACK within {}",
                    humantime::format_duration(timeout)
                ))
            }
        }
    }
}

fn refusal(code: rumqttc::ConnectReturnCode) -> &'static str {
    use rumqttc::ConnectReturnCode as C;
    match code {
        C::Success => "accepted",
        C::RefusedProtocolVersion => "the broker does not speak MQTT 3.1.1",
        C::BadClientId => "the client id (gateway_id) is refused",
        C::ServiceUnavailable => "the broker is not available now; try again",
        C::BadUserNamePassword => "wrong user name or password (mqtt.username, mqtt.password_file)",
        C::NotAuthorized => {
            "not authorised: the broker does not let this user or certificate connect"
        }
    }
}

/// Subscribes to the own status, publishes one (not retained) and waits
/// for it to come back. mosquitto acknowledges a publish its ACL denies and
/// drops it, so a missing read-back is how a denied prefix shows.
async fn round_trip(
    config: &Config,
    client: &AsyncClient,
    events: &mut rumqttc::EventLoop,
    timeout: Duration,
) -> Step<()> {
    let topic = format!("{}/status", config.topic_prefix());
    let payload = crate::publish::status_payload(
        &config.gateway_id,
        "offline",
        Some("uplink test"),
        crate::publish::StatusFacts::default(),
    );
    client
        .subscribe(&topic, QoS::AtLeastOnce)
        .await
        .map_err(|e| format!("cannot subscribe: {e}"))?;
    let started = Instant::now();
    let deadline = tokio::time::Instant::now() + timeout;
    let mut published = false;
    let mut acked = false;
    loop {
        let event = match tokio::time::timeout_at(deadline, events.poll()).await {
            Ok(Ok(event)) => event,
            Ok(Err(e)) => {
                return Err(format!(
                    "the connection ended: {}",
                    tls::explain(&e, config.mqtt.tls.as_ref(), &config.mqtt.host)
                ))
            }
            Err(_) if acked => {
                return Err(format!(
                    "the broker acknowledged the status on {topic} but did not deliver it back within {}: its ACL does not let this gateway write or read {topic} (mosquitto acknowledges a denied publish and drops it). Check the ACL (pattern write coldgate/v1/%u/#, pattern read coldgate/v1/%u/status), that the certificate CN or user name is `{}`, and mqtt.prefix",
                    humantime::format_duration(timeout),
                    config.gateway_id
                ))
            }
            Err(_) => {
                return Err(format!(
                    "no acknowledgement from the broker within {}",
                    humantime::format_duration(timeout)
                ))
            }
        };
        match event {
            Event::Incoming(Packet::SubAck(ack)) => {
                if ack
                    .return_codes
                    .iter()
                    .any(|c| matches!(c, SubscribeReasonCode::Failure))
                {
                    return Err(format!(
                        "the broker refused the subscription to {topic}: its ACL does not let this gateway read its own status (pattern read coldgate/v1/%u/status)"
                    ));
                }
                if !published {
                    published = true;
                    client
                        .publish(&topic, QoS::AtLeastOnce, false, payload.clone())
                        .await
                        .map_err(|e| format!("cannot publish: {e}"))?;
                }
            }
            Event::Incoming(Packet::PubAck(_)) => acked = true,
            // A retained status (the daemon's) comes first on subscribing;
            // only the one just sent, not retained, counts.
            Event::Incoming(Packet::Publish(p))
                if p.topic == topic && !p.retain && p.payload[..] == payload[..] =>
            {
                return Ok((
                    (),
                    format!(
                        "published to {topic} and read back in {} ms",
                        started.elapsed().as_millis()
                    ),
                ));
            }
            _ => {}
        }
    }
}
