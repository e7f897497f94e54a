//! `coldgate demo`: the whole data path on a laptop, nothing to install.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use tokio::sync::broadcast::error::RecvError;

use crate::config;
use crate::daemon::Gateway;
use crate::event::payload::{word, Direction, DoorPhase, EventBody, ExcursionPhase};
use crate::publish::Delivered;

#[derive(Args)]
pub struct DemoArgs {
    /// Port of the embedded MQTT broker on 127.0.0.1. Default 1883, or a free
    /// port if 1883 is taken.
    #[arg(long)]
    mqtt_port: Option<u16>,
    /// Port of the dashboard and HTTP API on 127.0.0.1. Default 8080, or a
    /// free port if 8080 is taken.
    #[arg(long)]
    http_port: Option<u16>,
    /// Simulated seconds per real second. The default shows an excursion
    /// start and end within the first minute.
    #[arg(long)]
    speed: Option<f64>,
    /// Where the database goes. Default: a new temporary directory.
    #[arg(long)]
    data_dir: Option<PathBuf>,
    /// Stop by itself after this long (e.g. `90s`). Default: run until Ctrl-C.
    #[arg(long, value_parser = humantime::parse_duration)]
    duration: Option<Duration>,
}

/// What `coldgate demo` says in a build without the `demo` feature (the
/// Debian packages): an operator who tries it on the gateway learns why and
/// where the demo is.
pub const NO_DEMO: &str = "this build of coldgate has no demo: it was built without the `demo` \
feature (as the Debian packages are), which leaves out the embedded MQTT broker the demo runs on. \
Try the demo from a source checkout on any computer: `cargo run --release -- demo`.";

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
    if !cfg!(feature = "demo") {
        anyhow::bail!(NO_DEMO);
    }
    let mut config = config::parse(config::DEMO, "the embedded demo configuration")?;
    let dir = match args.data_dir {
        Some(d) => d,
        None => std::env::temp_dir().join(format!(
            "coldgate-demo-{}-{}",
            std::process::id(),
            crate::event::now_ms()
        )),
    };
    std::fs::create_dir_all(&dir).with_context(|| format!("cannot create {}", dir.display()))?;
    config.storage.path = dir.join("coldgate.redb");
    // A fresh demo loads its pallet as it starts, so the trip report judges
    // a stay the simulator watched from its first minute (a load long
    // before the first reading is an unmonitored stretch: "Record
    // incomplete"). A reused data directory keeps its stays.
    if !config.storage.path.exists() {
        let now = crate::event::rfc3339(crate::event::now_ms());
        for pallet in &mut config.pallets {
            pallet.loaded_at = now.clone();
        }
    }
    if let Some(speed) = args.speed {
        if !(speed.is_finite() && speed > 0.0) {
            anyhow::bail!("--speed must be a positive number");
        }
        if let Some(sim) = config.sim.as_mut() {
            sim.speed = speed;
        }
    }
    config.mqtt.port = start_broker(args.mqtt_port)?;
    config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], http_port(args.http_port)?));
    let prefix = config.topic_prefix();
    println!(
        "coldgate demo: simulated container, {} sensors, speed {}x",
        config.sensors.len(),
        config.sim.as_ref().map(|s| s.speed).unwrap_or(1.0)
    );
    println!(
        "  MQTT broker: 127.0.0.1:{}   watch: mosquitto_sub -h 127.0.0.1 -p {} -t 'coldgate/#' -v",
        config.mqtt.port, config.mqtt.port
    );
    println!("  topics:      {prefix}/status, {prefix}/events/...");
    println!("  database:    {}", config.storage.path.display());
    println!("  dashboard:   http://{}/", config.http.listen);

    let mut gateway = Gateway::start(&config, Vec::new())?;
    let mut delivered = gateway
        .take_delivered()
        .context("the demo's delivery feed is already taken")?;
    let stop_after = async {
        match args.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop_after);
    // Watched once, before the loop: a signal stream created anew each turn
    // misses a SIGINT that lands between turns, and the demo never stops.
    let shutdown = super::shutdown_signal();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            msg = delivered.recv() => match msg {
                Ok(d) => println!("{}", describe(&d)),
                Err(RecvError::Lagged(n)) => println!("({n} events not shown)"),
                Err(RecvError::Closed) => break,
            },
            _ = &mut stop_after => break,
            res = &mut shutdown => { res?; break }
        }
    }
    let totals = gateway.stop().await?;
    println!(
        "demo stopped: {} readings and {} events committed in {}",
        totals.readings,
        totals.events,
        config.storage.path.display()
    );
    Ok(())
}

/// The asked port, else 8080 when free, else one the system picks.
fn http_port(asked: Option<u16>) -> anyhow::Result<u16> {
    if let Some(p) = asked {
        return Ok(p);
    }
    let free = |p: u16| {
        std::net::TcpListener::bind(("127.0.0.1", p))
            .ok()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    };
    Ok(match free(8080) {
        Some(p) => p,
        None => {
            let p = free(0).unwrap_or(8080);
            println!("port 8080 is taken; the dashboard uses {p} instead");
            p
        }
    })
}

#[cfg(feature = "demo")]
fn start_broker(asked: Option<u16>) -> anyhow::Result<u16> {
    let port = crate::broker::choose_port(asked)?;
    if asked.is_none() && port != 1883 {
        println!("port 1883 is taken (a local broker?); the embedded broker uses {port} instead");
    }
    crate::broker::start(port)?;
    Ok(port)
}

#[cfg(not(feature = "demo"))]
fn start_broker(_asked: Option<u16>) -> anyhow::Result<u16> {
    anyhow::bail!(NO_DEMO)
}

/// One readable line per delivered event, read as the subscriber reads it:
/// the payload type of its topic.
pub fn describe(d: &Delivered) -> String {
    let kind = d.topic.rsplit('/').next().unwrap_or("?");
    let Ok(e) = EventBody::parse(kind, &d.payload) else {
        return format!(
            "#{:<4} {} {}",
            d.seq,
            kind.to_uppercase(),
            String::from_utf8_lossy(&d.payload)
        );
    };
    let (seq, at) = (d.seq, e.at);
    let part = match (e.part, e.parts) {
        (Some(k), Some(n)) => format!(" (part {k} of {n})"),
        _ => String::new(),
    };
    match e.body {
        EventBody::Excursion(x) => {
            let sign = match x.direction {
                Direction::High => ">=",
                Direction::Low => "<=",
            };
            let tail = match x.phase {
                ExcursionPhase::Ended => format!(
                    "lasted {} s, min {} max {} mean {}",
                    x.duration_s, x.min, x.max, x.mean
                ),
                ExcursionPhase::Started => {
                    format!("since {}, max so far {}", x.started_at, x.max)
                }
            };
            let lots: Vec<&str> = x
                .affected
                .iter()
                .flat_map(|p| &p.items)
                .map(|i| i.lot.as_str())
                .collect();
            let lots = if lots.is_empty() {
                String::new()
            } else {
                format!("; lots {}", lots.join(", "))
            };
            format!(
                "#{seq:<4} {at}  EXCURSION {:<7} {} {} {sign} {} {} (profile {}, zone {}): {tail}{lots}{part}",
                word(&x.phase),
                x.sensor_id,
                x.quantity.as_str(),
                x.limit,
                x.unit,
                x.profile,
                x.zone,
            )
        }
        EventBody::Door(x) => format!(
            "#{seq:<4} {at}  DOOR      {:<7} zone {} ({} lux){}",
            word(&x.phase),
            x.zone,
            x.lux,
            match x.phase {
                DoorPhase::Closed => format!(", open {} s", x.duration_s),
                DoorPhase::Opened => String::new(),
            }
        ),
        EventBody::Sensor(x) => format!(
            "#{seq:<4} {at}  SENSOR    {:<7} {} in zone {}",
            word(&x.phase),
            x.sensor_id,
            x.zone
        ),
        EventBody::Lot(x) => format!(
            "#{seq:<4} {at}  LOT       {:<7} {} lot {} gtin {}{part}",
            word(&x.phase),
            x.reason.as_str(),
            x.lot.as_deref().unwrap_or("?"),
            x.gtin.as_deref().unwrap_or("?"),
        ),
        EventBody::Gateway(_) | EventBody::Audit(_) => format!(
            "#{seq:<4} {at}  {} {}",
            kind.to_uppercase(),
            String::from_utf8_lossy(&d.payload)
        ),
    }
}
