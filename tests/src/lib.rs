//! Shared helpers of the end-to-end tests: real processes, a real broker,
//! real database files. Nothing here imitates a component under test.

use std::io::Read;
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio::sync::mpsc;

pub mod modbus;
pub mod schema;

/// A child process that is killed when the test ends, however it ends.
pub struct Proc {
    pub child: Child,
    pub name: &'static str,
}

impl Proc {
    pub fn spawn(name: &'static str, mut cmd: Command) -> Proc {
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start {name}: {e}"));
        Proc { child, name }
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    pub fn signal(&self, sig: i32) {
        // The kill command, not libc::kill: unsafe code is forbidden here too.
        let status = Command::new("kill")
            .arg(format!("-{sig}"))
            .arg(self.pid().to_string())
            .status()
            .expect("kill runs");
        assert!(
            status.success() || sig == 9,
            "kill -{sig} {} failed",
            self.name
        );
    }

    pub fn sigkill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends SIGTERM and waits (bounded) for the exit status.
    pub fn terminate(&mut self, within: Duration) -> std::process::ExitStatus {
        self.signal(15);
        self.wait(within)
    }

    pub fn wait(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            if Instant::now() > deadline {
                self.sigkill();
                panic!("{} did not exit within {within:?}", self.name);
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    pub fn stdout_text(&mut self) -> String {
        let mut s = String::new();
        if let Some(mut out) = self.child.stdout.take() {
            let _ = out.read_to_string(&mut s);
        }
        s
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// A port on 127.0.0.1 that was free a moment ago.
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

pub fn wait_for_port(port: u16, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        std::thread::sleep(Duration::from_millis(25));
    }
    panic!("nothing listens on 127.0.0.1:{port} after {within:?}");
}

/// Starts the real embedded broker (rumqttd) as its own process, so a test
/// can stop and restart it.
pub fn start_broker(bin: &str, port: u16) -> Proc {
    let mut cmd = Command::new(bin);
    cmd.args(["broker", "--port", &port.to_string()])
        .env("RUST_LOG", "off")
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    let p = Proc::spawn("broker", cmd);
    wait_for_port(port, Duration::from_secs(10));
    p
}

/// A gateway `run` process with its log in `log`.
pub fn start_gateway(bin: &str, config: &Path, log: &Path) -> Proc {
    let log_file = std::fs::File::create(log).expect("log file");
    let mut cmd = Command::new(bin);
    cmd.args(["run", "--config"])
        .arg(config)
        .env("RUST_LOG", "info,coldgate::ingest=debug,rumqttd=off")
        .stdout(Stdio::null())
        .stderr(log_file);
    Proc::spawn("coldgate run", cmd)
}

/// A separate MQTT client that collects every message on `filter`.
pub struct Subscriber {
    /// Each message with the schema check of its payload (see [`schema`]).
    rx: mpsc::UnboundedReceiver<(String, serde_json::Value, Result<(), String>)>,
    _task: tokio::task::JoinHandle<()>,
}

impl Subscriber {
    /// Connects and returns once the subscription is acknowledged.
    pub async fn connect(port: u16, filter: &str) -> Subscriber {
        Subscriber::start(port, filter, true).await
    }

    /// Like [`Subscriber::connect`] without the schema check: for the
    /// throughput tests whose timing a debug-build validator would skew
    /// (their payloads are fixtures the tests write themselves).
    pub async fn connect_unchecked(port: u16, filter: &str) -> Subscriber {
        Subscriber::start(port, filter, false).await
    }

    async fn start(port: u16, filter: &str, checked: bool) -> Subscriber {
        let id = format!("test-sub-{}", rand::random::<u32>());
        let mut opts = MqttOptions::new(id, "127.0.0.1", port);
        opts.set_max_packet_size(1 << 20, 1 << 20);
        opts.set_keep_alive(Duration::from_secs(30));
        let (client, mut eventloop) = AsyncClient::new(opts, 100);
        client
            .subscribe(filter, QoS::AtLeastOnce)
            .await
            .expect("subscribe queued");
        let (tx, rx) = mpsc::unbounded_channel();
        let (ready_tx, ready_rx) = tokio::sync::oneshot::channel();
        let task = tokio::spawn(async move {
            let _client = client;
            let mut ready = Some(ready_tx);
            loop {
                match eventloop.poll().await {
                    Ok(Event::Incoming(Packet::SubAck(_))) => {
                        if let Some(r) = ready.take() {
                            let _ = r.send(());
                        }
                    }
                    Ok(Event::Incoming(Packet::Publish(p))) => {
                        let v =
                            serde_json::from_slice(&p.payload).unwrap_or(serde_json::Value::Null);
                        let checked = if checked {
                            schema::check_published(&p.topic, &p.payload)
                        } else {
                            Ok(())
                        };
                        if tx.send((p.topic.clone(), v, checked)).is_err() {
                            return;
                        }
                    }
                    Ok(_) => {}
                    Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
                }
            }
        });
        tokio::time::timeout(Duration::from_secs(10), ready_rx)
            .await
            .expect("SUBACK within 10 s")
            .expect("subscriber alive");
        Subscriber { rx, _task: task }
    }

    /// Next message within `within`, or `None`. Panics on a payload that
    /// does not follow its schema in `docs/schema/`: every test that
    /// subscribes checks the MQTT contract.
    pub async fn next(&mut self, within: Duration) -> Option<(String, serde_json::Value)> {
        let (topic, v, checked) = tokio::time::timeout(within, self.rx.recv())
            .await
            .ok()
            .flatten()?;
        if let Err(e) = checked {
            panic!("a published payload breaks its schema: {e}\n{v}");
        }
        Some((topic, v))
    }
}

/// A gateway configuration for tests: `sensors` simulated sensors in one
/// zone `rear` with a refrigerated profile, a fast simulator, and the broker
/// on `mqtt_port` (MQTT disabled when `None`).
pub struct TestConfig {
    pub dir: PathBuf,
    pub sensors: usize,
    pub speed: f64,
    pub reading_interval: &'static str,
    pub batch_interval: &'static str,
    pub mqtt_port: Option<u16>,
    pub delay: &'static str,
    pub failure: &'static str,
    /// Port of the HTTP API on 127.0.0.1; `None`: one the system picks, so
    /// gateways of parallel tests never collide.
    pub http_port: Option<u16>,
    /// `[mqtt.telemetry]` interval (simulated time); `None` disables it.
    pub telemetry: Option<&'static str>,
    /// `mqtt.outbox_cap`.
    pub outbox_cap: u64,
    /// `mqtt.inflight`.
    pub inflight: u16,
    /// `storage.journal`.
    pub journal: bool,
    /// `storage.fold_interval`; `None`: the default.
    pub fold_interval: Option<&'static str>,
}

impl TestConfig {
    pub fn new(dir: &Path) -> TestConfig {
        TestConfig {
            dir: dir.to_path_buf(),
            sensors: 4,
            speed: 600.0,
            reading_interval: "30s",
            batch_interval: "200ms",
            mqtt_port: None,
            delay: "0s",
            failure: r#"{ zone = "rear", after = "2m", lasts = "20m", every = "40m" }"#,
            http_port: None,
            telemetry: Some("10m"),
            outbox_cap: 100_000,
            inflight: 32,
            journal: false,
            fold_interval: None,
        }
    }

    pub fn db(&self) -> PathBuf {
        self.dir.join("coldgate.redb")
    }

    pub fn write(&self) -> PathBuf {
        let mut text = format!(
            r#"gateway_id = "test-gw"
[storage]
path = "{db}"
journal = {journal}
{fold_interval}
[ingest]
batch_interval = "{batch}"
[mqtt]
enabled = {enabled}
port = {port}
reconnect_min = "100ms"
reconnect_max = "1s"
inflight = {inflight}
outbox_cap = {outbox_cap}
[mqtt.telemetry]
enabled = {telemetry_on}
interval = "{telemetry}"
[http]
listen = "127.0.0.1:{http_port}"
[[profiles]]
id = "refrigerated"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "{delay}" }}]
[[zones]]
id = "rear"
profile = "refrigerated"
[sim]
speed = {speed}
reading_interval = "{interval}"
failures = [{failure}]
"#,
            db = self.db().display(),
            batch = self.batch_interval,
            enabled = self.mqtt_port.is_some(),
            port = self.mqtt_port.unwrap_or(1883),
            delay = self.delay,
            speed = self.speed,
            interval = self.reading_interval,
            failure = self.failure,
            http_port = self.http_port.unwrap_or(0),
            inflight = self.inflight,
            outbox_cap = self.outbox_cap,
            telemetry_on = self.telemetry.is_some(),
            telemetry = self.telemetry.unwrap_or("60s"),
            journal = self.journal,
            fold_interval = self
                .fold_interval
                .map(|f| format!("fold_interval = \"{f}\""))
                .unwrap_or_default(),
        );
        for i in 0..self.sensors {
            text.push_str(&format!(
                "[[sensors]]\nid = \"rear-{i}\"\nzone = \"rear\"\nkind = \"sim\"\nquantities = [\"temperature\", \"humidity\"]\n"
            ));
        }
        let path = self.dir.join("coldgate.toml");
        std::fs::write(&path, text).expect("write config");
        path
    }
}

/// The readings this gateway process has committed, from its
/// `/api/status` (`ingest.readings_committed`); 0 while the API is not up
/// (the process starting, or gone).
pub fn committed_readings(http_port: u16) -> u64 {
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(Duration::from_secs(5)))
        .build()
        .into();
    let url = format!("http://127.0.0.1:{http_port}/api/status");
    let Ok(mut resp) = agent.get(&url).call() else {
        return 0;
    };
    let Ok(body) = resp.body_mut().read_to_string() else {
        return 0;
    };
    serde_json::from_str::<serde_json::Value>(&body)
        .ok()
        .and_then(|v| v["ingest"]["readings_committed"].as_u64())
        .unwrap_or(0)
}

/// Reads one MQTT control packet (fixed header byte and body) from a
/// scripted broker's socket; `None` when the peer closed it.
pub fn read_mqtt_packet(s: &mut impl std::io::Read) -> Option<(u8, Vec<u8>)> {
    let mut head = [0u8; 1];
    s.read_exact(&mut head).ok()?;
    let mut len = 0usize;
    let mut shift = 0;
    loop {
        let mut b = [0u8; 1];
        s.read_exact(&mut b).ok()?;
        len |= usize::from(b[0] & 0x7f) << shift;
        shift += 7;
        if b[0] & 0x80 == 0 {
            break;
        }
        if shift > 21 {
            return None;
        }
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).ok()?;
    Some((head[0], body))
}

/// An HTTP answer: status and body text.
pub struct HttpAnswer {
    pub status: u16,
    pub content_type: String,
    pub body: String,
}

impl HttpAnswer {
    /// The body as JSON; panics with the body when it is not.
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.body).unwrap_or_else(|e| panic!("not JSON ({e}): {}", self.body))
    }
}

fn http_agent() -> ureq::Agent {
    ureq::Agent::config_builder()
        .http_status_as_error(false)
        .timeout_global(Some(Duration::from_secs(30)))
        .build()
        .into()
}

fn http_answer(
    url: &str,
    sent: Result<ureq::http::Response<ureq::Body>, ureq::Error>,
) -> HttpAnswer {
    let mut resp = sent.unwrap_or_else(|e| panic!("{url}: {e}"));
    let content_type = resp
        .headers()
        .get("content-type")
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_string();
    HttpAnswer {
        status: resp.status().as_u16(),
        content_type,
        body: resp.body_mut().read_to_string().expect("body"),
    }
}

/// GET `url`, with a bearer token if given.
pub fn http_get(url: &str, token: Option<&str>) -> HttpAnswer {
    let mut req = http_agent().get(url);
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    http_answer(url, req.call())
}

/// POST `body` (JSON text) to `url`.
pub fn http_post(url: &str, body: &str, token: Option<&str>) -> HttpAnswer {
    let mut req = http_agent().post(url).content_type("application/json");
    if let Some(t) = token {
        req = req.header("Authorization", format!("Bearer {t}"));
    }
    http_answer(url, req.send(body.to_string()))
}

/// Polls `check` until it returns `Some`, or panics after `within` naming `what`.
pub fn wait_until<T>(within: Duration, what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + within;
    loop {
        if let Some(v) = check() {
            return v;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A TCP relay between a gateway and its broker whose link can be cut. While
/// down it closes every relayed connection and refuses new ones, which is
/// what a lost uplink looks like to the gateway. The broker keeps running, so
/// a subscriber connected to it directly misses nothing the broker accepted.
pub struct LinkCutter {
    /// Where the gateway connects.
    pub port: u16,
    up: tokio::sync::watch::Sender<bool>,
    _task: tokio::task::JoinHandle<()>,
}

impl LinkCutter {
    pub async fn start(upstream: u16) -> LinkCutter {
        LinkCutter::with_latency(upstream, Duration::ZERO).await
    }

    /// A relay that also holds everything the broker sends for `latency`
    /// before passing it on: a slow uplink (cellular, satellite), where a
    /// connection takes several such delays to be made.
    pub async fn with_latency(upstream: u16, latency: Duration) -> LinkCutter {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("relay port");
        let port = listener.local_addr().expect("relay address").port();
        let (up, up_rx) = tokio::sync::watch::channel(true);
        let task = tokio::spawn(async move {
            loop {
                let Ok((mut client, _)) = listener.accept().await else {
                    continue;
                };
                if !*up_rx.borrow() {
                    continue; // dropped: the connection is refused
                }
                let mut cut = up_rx.clone();
                tokio::spawn(async move {
                    let Ok(mut server) =
                        tokio::net::TcpStream::connect(("127.0.0.1", upstream)).await
                    else {
                        return;
                    };
                    tokio::select! {
                        _ = relay(&mut client, &mut server, latency) => {}
                        _ = cut.wait_for(|up| !*up) => {}
                    }
                });
            }
        });
        LinkCutter {
            port,
            up,
            _task: task,
        }
    }

    /// Cuts (`false`) or restores (`true`) the link.
    pub fn set_up(&self, up: bool) {
        self.up.send_replace(up);
    }
}

/// Copies both ways; what comes from `server` is delayed by `latency`.
async fn relay(
    client: &mut tokio::net::TcpStream,
    server: &mut tokio::net::TcpStream,
    latency: Duration,
) {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    if latency.is_zero() {
        let _ = tokio::io::copy_bidirectional(client, server).await;
        return;
    }
    let (mut client_rx, mut client_tx) = client.split();
    let (mut server_rx, mut server_tx) = server.split();
    let up = tokio::io::copy(&mut client_rx, &mut server_tx);
    let down = async {
        let mut buf = vec![0u8; 16 * 1024];
        loop {
            let n = match server_rx.read(&mut buf).await {
                Ok(0) | Err(_) => return,
                Ok(n) => n,
            };
            tokio::time::sleep(latency).await;
            if client_tx.write_all(&buf[..n]).await.is_err() {
                return;
            }
        }
    };
    tokio::select! {
        _ = up => {}
        _ = down => {}
    }
}

/// Resident set size of a process in KiB, from `/proc/<pid>/status`.
pub fn rss_kib(pid: i32) -> Option<u64> {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    text.lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
}
