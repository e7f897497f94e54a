//! Recovery after broker outages, for docs/performance.md (issue 14, item
//! 5): a real gateway process against a real broker process (Debian's
//! mosquitto over mutual TLS, from scripts/bench-recovery.sh), the broker
//! killed and restarted after outages of varied length. For each outage the
//! time from the broker accepting TCP connections again to the first event
//! the gateway delivers through it to a subscriber.
//!
//! Prints one line per outage (`outage N LEN s: first event after X s`) and
//! then `name value unit target met|MISSED` lines:
//!   recovery_first_event_p50 / _p95 / _max  s  (target: p95 <= 5)
//!
//!   bench-recovery --gateway BIN --config FILE --broker-conf FILE --port P
//!                  --ca PEM --cert PEM --key PEM --topic FILTER
//!                  [--outages 5,10,...]
//!
//! The gateway's configuration must raise events often (a sim failure every
//! few seconds), so that some wait in the outbox during every outage.

use std::net::TcpStream;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};

/// Outage lengths in seconds: 5 to 90 s, mixed so a long one follows a
/// short one (the backoff grown by one is met by the next). About 10
/// minutes in all.
const OUTAGES: [u64; 20] = [
    5, 30, 8, 60, 10, 90, 6, 45, 12, 70, 15, 35, 18, 50, 20, 40, 25, 15, 25, 40,
];
const TARGET_P95_S: f64 = 5.0;

struct Args {
    gateway: PathBuf,
    config: PathBuf,
    broker_conf: PathBuf,
    port: u16,
    ca: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    topic: String,
    outages: Vec<u64>,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        gateway: PathBuf::new(),
        config: PathBuf::new(),
        broker_conf: PathBuf::new(),
        port: 0,
        ca: PathBuf::new(),
        cert: PathBuf::new(),
        key: PathBuf::new(),
        topic: String::new(),
        outages: OUTAGES.to_vec(),
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--gateway" => a.gateway = value.into(),
            "--config" => a.config = value.into(),
            "--broker-conf" => a.broker_conf = value.into(),
            "--port" => a.port = value.parse().context("--port")?,
            "--ca" => a.ca = value.into(),
            "--cert" => a.cert = value.into(),
            "--key" => a.key = value.into(),
            "--topic" => a.topic = value,
            "--outages" => {
                a.outages = value
                    .split(',')
                    .map(|s| s.trim().parse::<u64>().context("--outages"))
                    .collect::<anyhow::Result<_>>()?
            }
            other => bail!("unknown option {other}"),
        }
    }
    if a.port == 0 || a.topic.is_empty() || a.gateway.as_os_str().is_empty() {
        bail!("usage: see the first comment of tests/src/bin/bench-recovery.rs");
    }
    Ok(a)
}

/// A child killed when dropped, however the run ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn start_broker(a: &Args) -> anyhow::Result<Proc> {
    let child = Command::new("mosquitto")
        .arg("-c")
        .arg(&a.broker_conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start mosquitto")?;
    Ok(Proc(child))
}

/// The moment the broker accepts TCP connections, polled every 2 ms.
fn listening(port: u16, within: Duration) -> anyhow::Result<Instant> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return Ok(Instant::now());
        }
        std::thread::sleep(Duration::from_millis(2));
    }
    bail!("the broker does not listen on {port} after {within:?}")
}

/// A TLS subscriber that connects as soon as it can, and the channel of the
/// instants events arrive at.
async fn subscribe(
    a: &Args,
) -> anyhow::Result<(
    tokio::task::JoinHandle<()>,
    tokio::sync::mpsc::UnboundedReceiver<Instant>,
)> {
    let mut opts = MqttOptions::new(
        format!("bench-sub-{}", rand::random::<u32>()),
        "localhost",
        a.port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Simple {
        ca: std::fs::read(&a.ca).context("--ca")?,
        alpn: None,
        client_auth: Some((
            std::fs::read(&a.cert).context("--cert")?,
            std::fs::read(&a.key).context("--key")?,
        )),
    }));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    client.subscribe(&a.topic, QoS::AtLeastOnce).await?;
    let (tx, rx) = tokio::sync::mpsc::unbounded_channel();
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
                Ok(Event::Incoming(Packet::Publish(_))) => {
                    if tx.send(Instant::now()).is_err() {
                        return;
                    }
                }
                Ok(_) => {}
                Err(e) => {
                    eprintln!("subscriber: {e}");
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
            }
        }
    });
    tokio::time::timeout(Duration::from_secs(10), ready_rx)
        .await
        .context("no SUBACK within 10 s")??;
    Ok((task, rx))
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    let i = ((sorted.len() as f64 * p).ceil() as usize).clamp(1, sorted.len()) - 1;
    sorted[i]
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let mut broker = start_broker(&a)?;
    listening(a.port, Duration::from_secs(10))?;
    let (mut sub, mut events) = subscribe(&a).await?;
    let _gateway = Proc(
        Command::new(&a.gateway)
            .args(["run", "--config"])
            .arg(&a.config)
            .stdout(Stdio::null())
            .spawn()
            .context("cannot start the gateway")?,
    );
    tokio::time::timeout(Duration::from_secs(30), events.recv())
        .await
        .context("no event within 30 s of the gateway's start")?;

    let mut firsts = Vec::new();
    for (n, &len) in a.outages.iter().enumerate() {
        // Kill the broker as a crash would; the subscriber goes with it.
        drop(broker);
        sub.abort();
        std::thread::sleep(Duration::from_secs(len));
        broker = start_broker(&a)?;
        let back = listening(a.port, Duration::from_secs(10))?;
        let (s, mut ev) = subscribe(&a).await?;
        let subscribed = back.elapsed();
        sub = s;
        let first = tokio::time::timeout(Duration::from_secs(120), ev.recv())
            .await
            .ok()
            .flatten()
            .context("no event within 120 s of the broker's return")?;
        let took = first.duration_since(back).as_secs_f64();
        println!(
            "outage {:2} {len:3} s: first event after {took:.2} s (subscriber ready after {:.3} s)",
            n + 1,
            subscribed.as_secs_f64()
        );
        firsts.push(took);
        events = ev;
        // Let the gateway settle (the outbox drained) before the next one.
        tokio::time::sleep(Duration::from_secs(2)).await;
        while events.try_recv().is_ok() {}
    }
    firsts.sort_by(f64::total_cmp);
    let p95 = percentile(&firsts, 0.95);
    let verdict = if p95 <= TARGET_P95_S { "met" } else { "MISSED" };
    println!(
        "recovery_first_event_p50 {:.2} s - -",
        percentile(&firsts, 0.5)
    );
    println!("recovery_first_event_p95 {p95:.2} s <={TARGET_P95_S} {verdict}");
    println!(
        "recovery_first_event_max {:.2} s - -",
        firsts.last().copied().unwrap_or(f64::NAN)
    );
    println!("recovery_outages {} - - -", firsts.len());
    Ok(())
}
