//! coldgate-fleet-loadgen: N simulated gateways, each its own MQTT 3.1.1
//! session over (mutual) TLS, publishing `events/door` at QoS 1 with
//! gap-free seqs, as the gateway's contract says. The events are built
//! from the gateway's own payload types (coldgate_fleet::sim) and their
//! `at` is the moment of publishing, so `committed_at - at` in
//! PostgreSQL is the publish-to-commit latency.
//!
//! `--pallets P --serials S` adds the custody workload (issue 18, item 5):
//! each gateway first publishes what a real gateway publishes for a load
//! of P pallets of S serials (the retained manifest, split into parts where
//! `--max-payload` demands, and one accepted `manifest_command` audit event
//! per pallet), then its `--events`, among which excursions that name the
//! pallets of their zone (started, and ended five events later), so that
//! custody and exposure both have work. Off by default: part 1's benchmark
//! is unchanged.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use clap::Parser;
use coldgate::config::MqttTlsConfig;
use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS, TlsConfiguration, Transport};
use time::OffsetDateTime;

#[derive(Parser, Clone)]
#[command(name = "coldgate-fleet-loadgen")]
struct Args {
    #[arg(long, default_value = "127.0.0.1")]
    host: String,
    #[arg(long)]
    port: u16,
    #[arg(long)]
    ca: PathBuf,
    #[arg(long)]
    cert: PathBuf,
    #[arg(long)]
    key: PathBuf,
    /// Simulated gateways, one MQTT session each.
    #[arg(long, default_value_t = 100)]
    gateways: u32,
    /// Events each gateway publishes.
    #[arg(long, default_value_t = 100)]
    events: u64,
    /// Events per second over all gateways (0: as fast as acknowledged).
    #[arg(long, default_value_t = 0)]
    rate: u64,
    /// Gateway ids are `{id_prefix}-{n}`.
    #[arg(long, default_value = "lg")]
    id_prefix: String,
    #[arg(long, default_value = "coldgate/v1")]
    topic_prefix: String,
    /// Unacknowledged publishes per session.
    #[arg(long, default_value_t = 32)]
    inflight: u16,
    /// Pallets on board each gateway (0: no custody workload).
    #[arg(long, default_value_t = 0)]
    pallets: u32,
    /// Serials per pallet in the custody workload.
    #[arg(long, default_value_t = 100)]
    serials: u32,
    /// The gateways' `mqtt.max_payload`: larger manifests and excursions
    /// are split into parts as the gateway splits them.
    #[arg(long, default_value_t = 128 * 1024)]
    max_payload: usize,
}

/// One slot in ten of the custody workload starts an excursion, which ends
/// five slots later.
const EXCURSION_EVERY: u64 = 10;

fn main() -> ExitCode {
    let args = Args::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    rt.block_on(run(args))
}

async fn run(args: Args) -> ExitCode {
    let tls = MqttTlsConfig {
        ca_file: Some(args.ca.clone()),
        cert_file: Some(args.cert.clone()),
        key_file: Some(args.key.clone()),
        server_name: None,
    };
    let loaded = match coldgate::publish::tls::load(&tls, &args.host, coldgate::event::now_ms()) {
        Ok(l) => l,
        Err(errors) => {
            for e in errors {
                eprintln!("{e}");
            }
            return ExitCode::FAILURE;
        }
    };
    let acked = Arc::new(AtomicU64::new(0));
    let events = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..args.gateways {
        let args = args.clone();
        let config = loaded.config.clone();
        let acked = acked.clone();
        let events = events.clone();
        tasks.push(tokio::spawn(async move {
            gateway(args, n, config, acked, events).await
        }));
        // Connecting a thousand sessions at once is a thundering herd.
        if n % 50 == 49 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    let mut failed = 0;
    for t in tasks {
        match t.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => {
                failed += 1;
                eprintln!("{e}");
            }
            Err(e) => {
                failed += 1;
                eprintln!("{e}");
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    let n = acked.load(Ordering::Relaxed);
    println!(
        "gateways={} acked={n} seconds={secs:.2} rate={:.0} event_messages={}",
        args.gateways,
        n as f64 / secs,
        events.load(Ordering::Relaxed)
    );
    if failed > 0 {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}

async fn gateway(
    args: Args,
    n: u32,
    config: Arc<rustls::ClientConfig>,
    acked: Arc<AtomicU64>,
    events: Arc<AtomicU64>,
) -> Result<(), String> {
    let id = format!("{}-{n}", args.id_prefix);
    let mut opts = MqttOptions::new(&id, &args.host, args.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_inflight(args.inflight);
    // A manifest of thousands of serials is one large message.
    opts.set_max_packet_size(args.max_payload + 1024, args.max_payload + 1024);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    let (client, mut eventloop) = AsyncClient::new(opts, usize::from(args.inflight) * 2);
    let per_gateway_gap = if args.rate == 0 {
        None
    } else {
        Some(Duration::from_secs_f64(
            f64::from(args.gateways) / args.rate as f64,
        ))
    };
    let publisher = {
        let (id, args) = (id.clone(), args.clone());
        tokio::spawn(
            async move { publish_all(&client, &id, n, &args, per_gateway_gap, &events).await },
        )
    };
    tokio::pin!(publisher);
    let mut published: Option<u64> = None;
    let mut mine = 0u64;
    let mut failures = 0u32;
    loop {
        if published.is_some_and(|p| mine >= p) {
            return Ok(());
        }
        tokio::select! {
            done = &mut publisher, if published.is_none() => match done {
                Ok(Ok(count)) => published = Some(count),
                Ok(Err(e)) => return Err(format!("{id}: {e}")),
                Err(e) => return Err(format!("{id}: {e}")),
            },
            polled = eventloop.poll() => match polled {
                Ok(Event::Incoming(Packet::PubAck(_))) => {
                    mine += 1;
                    acked.fetch_add(1, Ordering::Relaxed);
                }
                Ok(_) => {}
                Err(e) => {
                    failures += 1;
                    if failures > 50 {
                        publisher.abort();
                        return Err(format!("{id}: {e}"));
                    }
                    tokio::time::sleep(Duration::from_millis(200)).await;
                }
            },
        }
    }
}

fn now_ms() -> i64 {
    coldgate::event::now_ms()
}

/// Publishes everything gateway `n` sends; returns how many messages.
async fn publish_all(
    client: &AsyncClient,
    id: &str,
    n: u32,
    args: &Args,
    gap: Option<Duration>,
    events: &AtomicU64,
) -> Result<u64, String> {
    let base = format!("{}/{id}", args.topic_prefix);
    let base = base.as_str();
    let send = |topic: String, body: Vec<u8>, retain: bool| async move {
        client
            .publish(format!("{base}/{topic}"), QoS::AtLeastOnce, retain, body)
            .await
            .map_err(|e| e.to_string())
    };
    let mut count = 0u64;
    let mut seq = 0u64;
    // Loaded over the last hour: a manifest lists only what is on board.
    let cargo = coldgate_fleet::sim::cargo(n, args.pallets, args.serials, now_ms() - 3_600_000);
    if !cargo.is_empty() {
        let manifest =
            coldgate_fleet::sim::manifest_messages(id, &cargo, now_ms(), args.max_payload)
                .map_err(|e| e.to_string())?;
        for (topic, body) in manifest {
            send(topic, body, true).await?;
            count += 1;
        }
        for p in &cargo {
            seq += 1;
            send(
                "events/audit".into(),
                coldgate_fleet::sim::load_event(id, seq, &p.sscc, now_ms()),
                false,
            )
            .await?;
            count += 1;
            events.fetch_add(1, Ordering::Relaxed);
        }
    }
    let mut tick = gap.map(tokio::time::interval);
    let mut open: Option<(String, &str, i64)> = None;
    for slot in 0..args.events {
        if let Some(t) = tick.as_mut() {
            t.tick().await;
        }
        seq += 1;
        let at = now_ms();
        let phase = slot % EXCURSION_EVERY;
        let excursion = if cargo.is_empty() {
            None
        } else if phase == 0 && slot + EXCURSION_EVERY / 2 < args.events {
            let zone = coldgate_fleet::sim::ZONES
                [(slot / EXCURSION_EVERY) as usize % coldgate_fleet::sim::ZONES.len()];
            // Beyond the limit for the last 15 minutes.
            let x = (format!("{id}-x{slot}"), zone, at - 900_000);
            open = Some(x.clone());
            Some((x, None))
        } else if phase == EXCURSION_EVERY / 2 {
            open.take().map(|x| (x, Some(at)))
        } else {
            None
        };
        let (topic, bodies) = match excursion {
            Some(((xid, zone, started), ended)) => (
                "events/excursion",
                coldgate_fleet::sim::excursion_messages(
                    id,
                    seq,
                    &xid,
                    zone,
                    &cargo,
                    started,
                    ended,
                    at,
                    args.max_payload,
                ),
            ),
            None => (
                "events/door",
                vec![coldgate_fleet::sim::door_event(
                    id,
                    seq,
                    &ulid::Ulid::new().to_string(),
                    OffsetDateTime::now_utc(),
                )],
            ),
        };
        // Parts of a split event take consecutive seqs.
        seq += bodies.len() as u64 - 1;
        for body in bodies {
            send(topic.into(), body, false).await?;
            count += 1;
            events.fetch_add(1, Ordering::Relaxed);
        }
    }
    Ok(count)
}
