//! What the engine's state costs the SD card as the serials on board grow.
//!
//! `cargo bench -p coldgate --bench state` runs the real `Ingest` (engine
//! included) into a real redb file twice: with 5 pallets on board whose
//! items carry no serials, and with the same pallets carrying 12,500 serials
//! (2,500 each). 100 sensors report one temperature every 10 s each, spread
//! over time (10 readings/s, none in lockstep), judged by a profile with
//! limits and an MKT, with the default 2 s batch. It prints the bytes written
//! to the block device (/proc/self/io `write_bytes`) after a warm-up, per
//! second, per 2 s commit and per hour. The serials on board must not change
//! what a routine commit writes: only what changed in it is written.
//!
//! A benchmark, not a test: it asserts nothing, it measures. `cargo test
//! --benches` runs it for a few seconds only.

mod support;
use support::write_bytes;

use std::fmt::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldgate::config::{self, Config};
use coldgate::excursion::{Engine, EngineState};
use coldgate::ingest::{Ingest, IngestChannels, IngestOptions};
use coldgate::manifest::gs1::check_digit;
use coldgate::store::Store;
use coldgate_sensor_drivers::{Quantity, Reading};
use tokio::sync::{mpsc, watch};

const SENSORS: usize = 100;
const PALLETS: usize = 5;
/// Each sensor reports every 10 s.
const RATE: u64 = 10;

/// An SSCC with its check digit: extension 1, company prefix 0614141.
fn sscc(n: usize) -> String {
    let body = format!("10614141{n:09}");
    let check = check_digit(&body).expect("digits");
    format!("{body}{check}")
}

fn config(serials_per_pallet: usize) -> Config {
    let mut text = String::from(
        "gateway_id = \"bench\"\n[ingest]\nbatch_interval = \"2s\"\n\
         [[profiles]]\nid = \"refrigerated\"\n\
         limits = [{ quantity = \"temperature\", low = 2.0, high = 8.0, delay = \"5m\" }]\n\
         mkt = { limit = 8.0, window = \"24h\" }\n\
         [[zones]]\nid = \"rear\"\nprofile = \"refrigerated\"\n[sim]\n",
    );
    for i in 0..SENSORS {
        let _ = write!(
            text,
            "[[sensors]]\nid = \"s{i:03}\"\nzone = \"rear\"\nkind = \"sim\"\n"
        );
    }
    for p in 0..PALLETS {
        let serials: Vec<String> = (0..serials_per_pallet)
            .map(|s| format!("\"SN{p:02}{s:07}\""))
            .collect();
        let _ = write!(
            text,
            "[[pallets]]\nsscc = \"{}\"\nzone = \"rear\"\nloaded_at = \"2027-01-01T00:00:00Z\"\n\
             items = [{{ gtin = \"09520123456788\", lot = \"LOT{p}\", expiry = \"2028-12-31\", \
             serials = [{}] }}]\n",
            sscc(p + 1),
            serials.join(", ")
        );
    }
    config::parse(&text, "bench").expect("bench config")
}

struct Outcome {
    steady_bytes: u64,
    steady: Duration,
    commits: u64,
    wall: Duration,
}

fn run(serials_per_pallet: usize, secs: u64, warmup_secs: u64) -> Outcome {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("bench-state-{serials_per_pallet}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let cfg = config(serials_per_pallet);
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async move {
        let (_store, writer) =
            Store::open(&dir.join("bench.redb"), cfg.storage.cache_size.0 as usize).expect("store");
        let engine = Engine::new(&cfg, EngineState::default());
        let ingest = Ingest::new(
            writer,
            engine,
            IngestOptions {
                gateway_id: cfg.gateway_id.clone(),
                batch_interval: cfg.ingest.batch_interval,
                batch_size: cfg.ingest.batch_size,
                retention: cfg.storage.retention,
                max_bytes: cfg.storage.max_size.0,
            },
        );
        let (tx, rx) = mpsc::channel(cfg.ingest.channel_capacity);
        let (_acked_tx, acked_rx) = mpsc::unbounded_channel();
        let (committed, _) = watch::channel(0);
        let started = Instant::now();
        let task = tokio::spawn(ingest.run(IngestChannels {
            readings: rx,
            acked: acked_rx,
            committed,
        }));
        let ids: Vec<Arc<str>> = (0..SENSORS)
            .map(|i| Arc::from(format!("s{i:03}").as_str()))
            .collect();
        // Reading times follow the wall clock from a time after the loads,
        // one reading every 1/RATE s, the sensors in turn: spread, not in
        // lockstep.
        let t0: i64 = 1_800_000_000_000;
        let step = Duration::from_millis(1000 / RATE);
        let total = RATE * (secs + warmup_secs);
        let mut next = tokio::time::Instant::now();
        let mut at_warm = (0, started);
        for sent in 0..total {
            if sent == RATE * warmup_secs {
                at_warm = (write_bytes(), Instant::now());
            }
            let r = Reading::new(
                ids[(sent % SENSORS as u64) as usize].clone(),
                Quantity::Temperature,
                5.0 + (sent % 7) as f64 * 0.1,
                t0 + (sent * 1000 / RATE) as i64,
            );
            if tx.send(r).await.is_err() {
                break;
            }
            next += step;
            tokio::time::sleep_until(next).await;
        }
        let steady_bytes = write_bytes() - at_warm.0;
        let steady = at_warm.1.elapsed();
        drop(tx);
        let totals = task.await.expect("join").expect("ingest");
        Outcome {
            steady_bytes,
            steady,
            commits: totals.commits,
            wall: started.elapsed(),
        }
    })
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let (secs, warmup) = if quick { (4, 2) } else { (60, 10) };
    for per_pallet in [0, 2_500] {
        let o = run(per_pallet, secs, warmup);
        let per_s = o.steady_bytes as f64 / o.steady.as_secs_f64();
        println!(
            "state: {} serials on board ({PALLETS} pallets), {RATE} readings/s spread, 2 s batches: \
             {per_s:.0} B/s written after a {warmup} s warm-up ({} B in {:.1} s) = {:.0} B per 2 s commit, \
             {:.1} MB/h; {} commits in {:.1} s",
            per_pallet * PALLETS,
            o.steady_bytes,
            o.steady.as_secs_f64(),
            per_s * 2.0,
            per_s * 3600.0 / 1e6,
            o.commits,
            o.wall.as_secs_f64()
        );
    }
}
