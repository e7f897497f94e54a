//! `coldgate demo`: the whole data path on a laptop, nothing to install.

use std::path::PathBuf;
use std::time::Duration;

use anyhow::Context;
use clap::Args;
use serde_json::Value;
use tokio::sync::broadcast::error::RecvError;

use crate::config;
use crate::daemon::Gateway;
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

pub async fn demo(args: DemoArgs) -> anyhow::Result<()> {
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
    if let Some(speed) = args.speed {
        if !(speed.is_finite() && speed > 0.0) {
            anyhow::bail!("--speed must be a positive number");
        }
        if let Some(sim) = config.sim.as_mut() {
            sim.speed = speed;
        }
    }
    config.mqtt.port = start_broker(args.mqtt_port)?;
    config.http.listen = std::net::SocketAddr::from(([127, 0, 0, 1], http_port(args.http_port)));
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
fn http_port(asked: Option<u16>) -> u16 {
    if let Some(p) = asked {
        return p;
    }
    let free = |p: u16| {
        std::net::TcpListener::bind(("127.0.0.1", p))
            .ok()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port())
    };
    match free(8080) {
        Some(p) => p,
        None => {
            let p = free(0).unwrap_or(8080);
            println!("port 8080 is taken; the dashboard uses {p} instead");
            p
        }
    }
}

#[cfg(feature = "embedded-broker")]
fn start_broker(asked: Option<u16>) -> anyhow::Result<u16> {
    let port = crate::broker::choose_port(asked)?;
    if asked.is_none() && port != 1883 {
        println!("port 1883 is taken (a local broker?); the embedded broker uses {port} instead");
    }
    crate::broker::start(port)?;
    Ok(port)
}

#[cfg(not(feature = "embedded-broker"))]
fn start_broker(asked: Option<u16>) -> anyhow::Result<u16> {
    let port = asked.unwrap_or(1883);
    println!("built without the embedded broker: publishing to a broker at 127.0.0.1:{port}");
    Ok(port)
}

/// One readable line per delivered event.
pub fn describe(d: &Delivered) -> String {
    let v: Value = serde_json::from_slice(&d.payload).unwrap_or(Value::Null);
    let s = |k: &str| v.get(k).and_then(Value::as_str).unwrap_or("?").to_string();
    let kind = d.topic.rsplit('/').next().unwrap_or("?");
    match kind {
        "excursion" => {
            let limit = v.get("limit").and_then(Value::as_f64).unwrap_or(f64::NAN);
            let sign = if s("direction") == "high" { ">=" } else { "<=" };
            let tail = if s("phase") == "ended" {
                format!(
                    "lasted {} s, min {} max {} mean {}",
                    v["duration_s"], v["min"], v["max"], v["mean"]
                )
            } else {
                format!("since {}, max so far {}", s("started_at"), v["max"])
            };
            let lots: Vec<String> = v["affected"]
                .as_array()
                .into_iter()
                .flatten()
                .flat_map(|p| p["items"].as_array().into_iter().flatten())
                .filter_map(|i| i["lot"].as_str().map(str::to_string))
                .collect();
            let lots = if lots.is_empty() {
                String::new()
            } else {
                format!("; lots {}", lots.join(", "))
            };
            format!(
                "#{:<4} {}  EXCURSION {:<7} {} {} {} {} {} (profile {}, zone {}): {}{}",
                d.seq,
                s("at"),
                s("phase"),
                s("sensor_id"),
                s("quantity"),
                sign,
                limit,
                s("unit"),
                s("profile"),
                s("zone"),
                tail,
                lots
            )
        }
        "door" => format!(
            "#{:<4} {}  DOOR      {:<7} zone {} ({} lux){}",
            d.seq,
            s("at"),
            s("phase"),
            s("zone"),
            v["lux"],
            v.get("duration_s")
                .filter(|x| !x.is_null())
                .map(|x| format!(", open {x} s"))
                .unwrap_or_default()
        ),
        "sensor" => format!(
            "#{:<4} {}  SENSOR    {:<7} {} in zone {}",
            d.seq,
            s("at"),
            s("phase"),
            s("sensor_id"),
            s("zone")
        ),
        "lot" => format!(
            "#{:<4} {}  LOT       {:<7} {} lot {} gtin {}",
            d.seq,
            s("at"),
            s("phase"),
            s("reason"),
            s("lot"),
            s("gtin")
        ),
        other => format!(
            "#{:<4} {}  {} {}",
            d.seq,
            s("at"),
            other.to_uppercase(),
            String::from_utf8_lossy(&d.payload)
        ),
    }
}
