//! coldgate-fleet-loadgen: N simulated gateways, each its own MQTT 3.1.1
//! session over (mutual) TLS, publishing `events/door` at QoS 1 with
//! gap-free seqs, as the gateway's contract says. The events are built
//! from the gateway's own payload types (coldgate_fleet::sim) and their
//! `at` is the moment of publishing, so `committed_at - at` in
//! PostgreSQL is the publish-to-commit latency.

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
}

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
    let started = Instant::now();
    let mut tasks = Vec::new();
    for n in 0..args.gateways {
        let args = args.clone();
        let config = loaded.config.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            gateway(args, n, config, acked).await
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
        "gateways={} acked={n} seconds={secs:.2} rate={:.0}",
        args.gateways,
        n as f64 / secs
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
) -> Result<(), String> {
    let id = format!("{}-{n}", args.id_prefix);
    let mut opts = MqttOptions::new(&id, &args.host, args.port);
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_clean_session(true);
    opts.set_inflight(args.inflight);
    opts.set_transport(Transport::tls_with_config(TlsConfiguration::Rustls(config)));
    let (client, mut eventloop) = AsyncClient::new(opts, usize::from(args.inflight) * 2);
    let topic = format!("{}/{id}/events/door", args.topic_prefix);
    let per_gateway_gap = if args.rate == 0 {
        None
    } else {
        Some(Duration::from_secs_f64(
            f64::from(args.gateways) / args.rate as f64,
        ))
    };
    let total = args.events;
    let publisher = tokio::spawn(async move {
        let mut tick = per_gateway_gap.map(tokio::time::interval);
        for seq in 1..=total {
            if let Some(t) = tick.as_mut() {
                t.tick().await;
            }
            let event_id = ulid::Ulid::new().to_string();
            let body =
                coldgate_fleet::sim::door_event(&id, seq, &event_id, OffsetDateTime::now_utc());
            if client
                .publish(&topic, QoS::AtLeastOnce, false, body)
                .await
                .is_err()
            {
                return;
            }
        }
    });
    let mut mine = 0u64;
    let mut failures = 0u32;
    while mine < total {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::PubAck(_))) => {
                mine += 1;
                acked.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => {
                failures += 1;
                if failures > 50 {
                    publisher.abort();
                    return Err(format!("{}-{n}: {e}", args.id_prefix));
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    }
    let _ = publisher.await;
    Ok(())
}
