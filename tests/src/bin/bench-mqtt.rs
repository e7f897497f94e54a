//! Measures the MQTT path for docs/performance.md, against whatever broker
//! the given configuration names (scripts/bench-mqtt.sh: the local Debian
//! mosquitto over mutual TLS):
//!
//! - `mqtt_drain_rate`: a backlog of `--events` events, committed by the
//!   store's writer as ingest would after a long offline stretch, drained by
//!   the real publisher: events PUBACKed per second, from the gateway's
//!   start to the last PUBACK.
//! - `mqtt_reading_to_puback_p50` / `_p99`: online, a source alternates a
//!   sensor between 20 °C and 5 °C (limit 8 °C, no delay), so every reading
//!   raises an excursion event; the time from the reading (its timestamp,
//!   taken when it is sent to ingest) to the broker's PUBACK of its event,
//!   counted from half a second after the connection (steady state).
//!
//! Prints one line per figure: `name value unit target met|MISSED`.
//!
//!   bench-mqtt --config FILE [--events 100000] [--samples 1000]
//!
//! The configuration must have `gateway_id`, `[storage] path` (a fresh
//! file), `[mqtt]` with its TLS, a zone `bench` with a profile limiting
//! temperature at 8 °C with no delay, and a sim sensor `bench-0` in it with a
//! `[sim]` too slow to send anything (scripts/bench-mqtt.sh writes it).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{bail, Context};
use coldgate::daemon::Gateway;
use coldgate::event::{now_ms, payload, rfc3339, Event};
use coldgate::store::{Batch, Store, StoredEvent};
use coldgate_sensor_drivers::{Quantity, Reading, ReadingSender, Source, SourceError};
use tokio::sync::watch;

struct Args {
    config: std::path::PathBuf,
    events: u64,
    samples: usize,
}

fn args() -> anyhow::Result<Args> {
    let mut a = Args {
        config: Default::default(),
        events: 100_000,
        samples: 1000,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it.next().with_context(|| format!("{flag} needs a value"))?;
        match flag.as_str() {
            "--config" => a.config = value.into(),
            "--events" => a.events = value.parse().context("--events")?,
            "--samples" => a.samples = value.parse().context("--samples")?,
            other => bail!("unknown option {other}"),
        }
    }
    if a.config.as_os_str().is_empty() {
        bail!("usage: bench-mqtt --config FILE [--events N] [--samples N]");
    }
    Ok(a)
}

fn line(name: &str, value: f64, unit: &str, target: &str, met: bool) {
    let verdict = if met { "met" } else { "MISSED" };
    println!("{name} {value:.1} {unit} {target} {verdict}");
}

/// Commits `n` events to the outbox, 10,000 per transaction.
fn backlog(db: &std::path::Path, gateway_id: &str, n: u64) -> anyhow::Result<()> {
    let (_store, mut writer) = Store::open(db, 4 << 20)?;
    let mut next = writer.next_event_seq();
    let last = next + n - 1;
    while next <= last {
        let batch: Vec<StoredEvent> = (next..=last.min(next + 9_999))
            .map(|seq| {
                // A typical small event: a sensor back after a gap.
                let now = now_ms();
                let ev = Event::new(
                    now,
                    payload::SensorGap {
                        phase: payload::SensorPhase::Back,
                        sensor_id: "bench-1".into(),
                        zone: "rear".into(),
                        quantity: Some(Quantity::Temperature),
                        cause: Some(payload::GapCause::SensorSilent),
                        last_seen_at: rfc3339(now - 60_000),
                        gap_s: 60,
                        silence_limit_s: Some(30),
                        value: None,
                        physical_range: None,
                    },
                );
                StoredEvent {
                    seq,
                    at_ms: ev.at_ms,
                    topic: ev.kind().topic(),
                    payload: ev.payload(seq, gateway_id),
                }
            })
            .collect();
        writer.commit(&Batch {
            events: batch,
            ..Batch::default()
        })?;
        next = writer.next_event_seq();
    }
    Ok(())
}

/// Alternates `bench-0` between 20 °C and 5 °C every `period`, each
/// reading stamped with the wall clock when it is handed to ingest.
struct Toggler {
    period: Duration,
}

impl Source for Toggler {
    fn name(&self) -> String {
        "bench-toggler".into()
    }

    fn run(
        self: Box<Self>,
        readings: ReadingSender,
        mut shutdown: watch::Receiver<bool>,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = Result<(), SourceError>> + Send>> {
        Box::pin(async move {
            let sensor: Arc<str> = Arc::from("bench-0");
            let mut tick = tokio::time::interval(self.period);
            let mut high = true;
            loop {
                tokio::select! {
                    _ = tick.tick() => {}
                    _ = shutdown.changed() => return Ok(()),
                }
                let value = if high { 20.0 } else { 5.0 };
                high = !high;
                let r = Reading::new(sensor.clone(), Quantity::Temperature, value, now_ms());
                if readings.send(r).await.is_err() {
                    return Err(SourceError::IngestClosed);
                }
            }
        })
    }
}

/// The disk's own durable-write latency next to the database: `n` times a
/// 32 KiB write (what one small redb commit writes) and an fdatasync. The
/// reading-to-PUBACK path waits for one such sync, so this is its floor.
fn fsync_ms(dir: &std::path::Path, n: usize) -> anyhow::Result<Vec<i64>> {
    use std::io::{Seek, Write};
    let path = dir.join("bench-fsync.tmp");
    let mut f = std::fs::File::create(&path).context("fsync probe file")?;
    let block = vec![0x5a_u8; 32 * 1024];
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        f.rewind()?;
        let t = Instant::now();
        f.write_all(&block)?;
        f.sync_data()?;
        out.push(t.elapsed().as_micros() as i64);
        std::thread::sleep(Duration::from_millis(20));
    }
    drop(f);
    std::fs::remove_file(&path)?;
    out.sort_unstable();
    Ok(out)
}

fn percentile(sorted: &[i64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)] as f64
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> anyhow::Result<()> {
    let a = args()?;
    let config = coldgate::config::load(&a.config)
        .map_err(|e| anyhow::anyhow!("{}: {e}", a.config.display()))?;
    if config.storage.path.exists() {
        bail!(
            "{} exists; give a fresh storage.path",
            config.storage.path.display()
        );
    }

    // 1. Drain rate.
    backlog(&config.storage.path, &config.gateway_id, a.events)?;
    let started = Instant::now();
    let mut gw = Gateway::start(&config, Vec::new())?;
    let mut delivered = gw.take_delivered().context("delivered")?;
    // Every PUBACKed event is announced once (one connection, no resend);
    // announcements the bench was too slow to read are counted by `Lagged`.
    let mut acked: u64 = 0;
    let deadline = Instant::now() + Duration::from_secs(600);
    while acked < a.events && Instant::now() < deadline {
        match tokio::time::timeout(Duration::from_secs(30), delivered.recv()).await {
            Ok(Ok(_)) => acked += 1,
            Ok(Err(tokio::sync::broadcast::error::RecvError::Lagged(n))) => acked += n,
            Ok(Err(_)) | Err(_) => break,
        }
    }
    let drained = started.elapsed();
    let link = gw.link.borrow().clone();
    gw.stop().await?;
    if acked < a.events {
        bail!(
            "only {acked} of {} events were acknowledged; link: {link:?}",
            a.events
        );
    }
    let outbox = Store::open_existing(&config.storage.path)?
        .outbox_depth()?
        .0;
    if outbox != 0 {
        bail!("{outbox} events are still in the outbox after the drain");
    }
    let rate = a.events as f64 / drained.as_secs_f64();
    line(
        "mqtt_drain_rate",
        rate,
        "events/s",
        ">=5000",
        rate >= 5000.0,
    );

    // 2. The disk's floor under the latency, then the latency itself.
    let dir = config
        .storage
        .path
        .parent()
        .context("storage.path has no directory")?;
    let syncs = fsync_ms(dir, a.samples)?;
    line(
        "disk_fsync_32k_p50",
        percentile(&syncs, 0.50) / 1000.0,
        "ms",
        "-",
        true,
    );
    line(
        "disk_fsync_32k_p99",
        percentile(&syncs, 0.99) / 1000.0,
        "ms",
        "-",
        true,
    );

    // Reading-to-PUBACK latency, online.
    let toggler = Toggler {
        period: Duration::from_millis(50),
    };
    let mut gw = Gateway::start(&config, vec![Box::new(toggler)])?;
    let mut delivered = gw.take_delivered().context("delivered")?;
    // Steady state only: readings from before the connection (and its first
    // half second) waited for the link, not for the path being measured.
    let mut link = gw.link.clone();
    tokio::time::timeout(Duration::from_secs(30), link.wait_for(|l| l.connected))
        .await
        .context("the gateway did not connect within 30 s")??;
    let steady_from = now_ms() + 500;
    let mut lat = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while lat.len() < a.samples && Instant::now() < deadline {
        let Ok(Ok(d)) = tokio::time::timeout(Duration::from_secs(10), delivered.recv()).await
        else {
            break;
        };
        let now = now_ms();
        let v: serde_json::Value = serde_json::from_slice(&d.payload)?;
        if v["schema"] != "coldgate.excursion/1" {
            continue;
        }
        let at = v["at"]
            .as_str()
            .and_then(coldgate::event::parse_rfc3339)
            .context("event without `at`")?;
        if at >= steady_from {
            lat.push(now - at);
        }
    }
    gw.stop().await?;
    if lat.len() < a.samples {
        bail!("only {} latency samples of {}", lat.len(), a.samples);
    }
    lat.sort_unstable();
    let p50 = percentile(&lat, 0.50);
    let p99 = percentile(&lat, 0.99);
    line("mqtt_reading_to_puback_p50", p50, "ms", "-", true);
    line("mqtt_reading_to_puback_p99", p99, "ms", "<=50", p99 <= 50.0);
    Ok(())
}
