//! The demo's embedded MQTT broker (rumqttd), so `coldgate demo` needs
//! nothing installed. Behind the `demo` feature: the Debian packages leave
//! it out (a gateway publishes to its operator's broker).

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::time::{Duration, Instant};

#[derive(Debug, thiserror::Error)]
pub enum BrokerError {
    #[error("port {0} on 127.0.0.1 is already in use (another MQTT broker?); choose another with --mqtt-port")]
    PortTaken(u16),
    #[error("no free port on 127.0.0.1: {0}")]
    NoPort(std::io::Error),
    #[error("embedded broker configuration: {0}")]
    Config(String),
    #[error("embedded broker did not start listening on {0} within 5 s")]
    NotListening(SocketAddr),
}

/// Picks the port: the one asked for (an error if taken), or 1883 when free,
/// or else any free port.
pub fn choose_port(asked: Option<u16>) -> Result<u16, BrokerError> {
    match asked {
        Some(p) => match TcpListener::bind(("127.0.0.1", p)) {
            Ok(_) => Ok(p),
            Err(_) => Err(BrokerError::PortTaken(p)),
        },
        None => match TcpListener::bind(("127.0.0.1", 1883)) {
            Ok(_) => Ok(1883),
            Err(_) => TcpListener::bind(("127.0.0.1", 0))
                .and_then(|l| l.local_addr())
                .map(|a| a.port())
                .map_err(BrokerError::NoPort),
        },
    }
}

/// Starts rumqttd on 127.0.0.1:`port` in its own threads and waits until it
/// accepts connections. It lives until the process exits.
pub fn start(port: u16) -> Result<SocketAddr, BrokerError> {
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let text = format!(
        r#"
id = 0
[router]
id = 0
max_connections = 1000
max_outgoing_packet_count = 200
max_segment_size = 104857600
max_segment_count = 10

[v4.1]
name = "v4-1"
listen = "{addr}"
next_connection_delay_ms = 1
[v4.1.connections]
connection_timeout_ms = 60000
max_payload_size = 20971520
max_inflight_count = 100
dynamic_filters = true
"#
    );
    let config: rumqttd::Config =
        toml::from_str(&text).map_err(|e| BrokerError::Config(e.to_string()))?;
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            let mut broker = rumqttd::Broker::new(config);
            if let Err(error) = broker.start() {
                tracing::error!(%error, "Embedded MQTT broker stopped.");
            }
        })
        .map_err(|e| BrokerError::Config(e.to_string()))?;
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok() {
            return Ok(addr);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(BrokerError::NotListening(addr))
}
