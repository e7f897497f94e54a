//! Ingest throughput and SD-card wear, on a real redb file.
//!
//! `cargo bench -p coldgate --bench ingest` prints:
//! - readings/s taken at an offered 120,000 readings/s with the default
//!   batching (2 s or 100,000 readings), and the durable commits (fsyncs)
//!   per second it took. Offering more than the 100,000/s target shows
//!   ingest keeping up with it; offering exactly 100,000/s could never
//!   measure more than that;
//! - readings/s flat out;
//! - bytes written to the block device per reading at 100 readings/s with
//!   a 1 s and the default 2 s batch (from /proc/self/io `write_bytes`);
//! - the same with the reading journal (`storage.journal`) at 100 and 10
//!   readings/s, folds included: `COLDGATE_WEAR_FOLD` (default `5m`) and
//!   `COLDGATE_WEAR_SECS` (default 70) set the fold interval and the run.
//!
//! A benchmark, not a test: it asserts nothing, it measures.

mod support;
use support::write_bytes;

use std::sync::Arc;
use std::time::{Duration, Instant};

use coldgate::config::{self, Config};
use coldgate::excursion::{Engine, EngineState};
use coldgate::ingest::{FoldPolicy, Ingest, IngestChannels, IngestOptions, IngestTotals};
use coldgate::store::Store;
use coldgate_sensor_drivers::{Quantity, Reading};
use tokio::sync::{mpsc, watch};

const SENSORS: usize = 100;

fn config(batch_interval: &str) -> Config {
    let mut text = format!(
        "gateway_id = \"bench\"\n[ingest]\nbatch_interval = \"{batch_interval}\"\n\
         [[profiles]]\nid = \"refrigerated\"\nlimits = [{{ quantity = \"temperature\", low = 2.0, high = 8.0, delay = \"5m\" }}]\n\
         [[zones]]\nid = \"rear\"\nprofile = \"refrigerated\"\n[sim]\n"
    );
    for i in 0..SENSORS {
        text.push_str(&format!(
            "[[sensors]]\nid = \"s{i:03}\"\nzone = \"rear\"\nkind = \"sim\"\n"
        ));
    }
    config::parse(&text, "bench").expect("bench config")
}

struct Outcome {
    totals: IngestTotals,
    /// From the first reading offered to the last commit.
    wall: Duration,
    /// How long the producer took to hand over every reading: if ingest
    /// cannot keep up, the bounded channel makes it wait and this grows.
    offering: Duration,
    bytes_written: u64,
    /// Bytes written and readings offered after the warm-up, when the file
    /// and its tables exist: the steady state an SD card lives in.
    steady_bytes: u64,
    steady_readings: u64,
    /// Of `steady_bytes`, those written before the producer stopped: without
    /// the stop's final commit (with the journal, a fold of every reading
    /// since the last one).
    steady_bytes_before_stop: u64,
}

/// Offers `rate` readings/s (0 = as fast as possible) for `secs`.
fn run(batch_interval: &str, rate: u64, secs: u64, name: &str) -> Outcome {
    run_with_warmup(batch_interval, rate, secs, 0, name, None)
}

fn run_with_warmup(
    batch_interval: &str,
    rate: u64,
    secs: u64,
    warmup_secs: u64,
    name: &str,
    journal: Option<Duration>,
) -> Outcome {
    let dir =
        std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("bench-ingest-{name}"));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let cfg = config(batch_interval);
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
        let ingest = match journal {
            Some(every) => ingest
                .with_journal(
                    &dir.join("bench.journal"),
                    coldgate::store::journal::Options::default(),
                    FoldPolicy {
                        every,
                        ..FoldPolicy::default()
                    },
                )
                .expect("journal"),
            None => ingest,
        };
        let (tx, rx) = mpsc::channel(cfg.ingest.channel_capacity);
        let (_acked_tx, acked_rx) = mpsc::unbounded_channel();
        let (committed, _) = watch::channel(0);
        let before = write_bytes();
        let started = Instant::now();
        let task = tokio::spawn(ingest.run(IngestChannels {
            readings: rx,
            acked: acked_rx,
            committed,
        }));
        let ids: Vec<Arc<str>> = (0..SENSORS)
            .map(|i| Arc::from(format!("s{i:03}").as_str()))
            .collect();
        let t0: i64 = 1_800_000_000_000;
        let total = if rate == 0 { 2_000_000 } else { rate * secs };
        // 100 steps a second, or one reading a step below 100/s.
        let step = match rate {
            1..=99 => Duration::from_millis(1000 / rate),
            _ => Duration::from_millis(10),
        };
        let per_step = (rate / 100).max(1);
        let mut sent = 0u64;
        let mut next = tokio::time::Instant::now();
        let warm = rate * warmup_secs;
        let mut at_warm = (before, 0);
        while sent < total {
            if warm > 0 && sent == warm {
                at_warm = (write_bytes(), sent);
            }
            let n = if rate == 0 { 10_000 } else { per_step };
            for _ in 0..n {
                let at = t0 + (sent / SENSORS as u64) as i64 * 1000;
                let r = Reading::new(
                    ids[(sent % SENSORS as u64) as usize].clone(),
                    Quantity::Temperature,
                    5.0 + (sent % 7) as f64 * 0.1,
                    at,
                );
                if tx.send(r).await.is_err() {
                    break;
                }
                sent += 1;
            }
            if rate > 0 {
                next += step;
                tokio::time::sleep_until(next).await;
            }
        }
        let offering = started.elapsed();
        let at_stop = write_bytes();
        drop(tx);
        let totals = task.await.expect("join").expect("ingest");
        let after = write_bytes();
        Outcome {
            totals,
            wall: started.elapsed(),
            offering,
            bytes_written: after - before,
            steady_bytes: after - at_warm.0,
            steady_readings: sent - at_warm.1,
            steady_bytes_before_stop: at_stop - at_warm.0,
        }
    })
}

/// redb's own cost of one durable commit of 100 small rows into a single
/// table, with nothing of ours around it: the floor any batching pays.
fn redb_floor_bytes_per_commit() -> u64 {
    use redb::{ReadableTableMetadata, TableDefinition};
    const T: TableDefinition<(i64, u32, u64), (u8, f64)> = TableDefinition::new("readings");
    let path = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-redb-floor.redb");
    let _ = std::fs::remove_file(&path);
    let db = redb::Builder::new()
        .set_cache_size(4 << 20)
        .create(&path)
        .expect("redb");
    let (mut seq, mut t, mut before) = (0u64, 1_800_000_000_000i64, 0);
    for commit in 0..80 {
        if commit == 20 {
            before = write_bytes();
        }
        let txn = db.begin_write().expect("txn");
        {
            let mut table = txn.open_table(T).expect("table");
            for sensor in 0..100u32 {
                seq += 1;
                table.insert((t, sensor, seq), (0u8, 5.0)).expect("insert");
            }
            let _ = table.len();
        }
        txn.commit().expect("commit");
        t += 1000;
    }
    (write_bytes() - before) / 60
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    // `COLDGATE_WEAR_RATES=10` (or `100`, `100,10`): only the journal's wear
    // at those rates, so that the two long runs can go in two processes at
    // once (`write_bytes` is per process).
    let rates: Option<Vec<u64>> = std::env::var("COLDGATE_WEAR_RATES")
        .ok()
        .map(|v| v.split(',').filter_map(|r| r.trim().parse().ok()).collect());
    if let Some(rates) = rates {
        wear_with_journal(&rates, if quick { (4, 1) } else { (70, 10) });
        return;
    }
    let secs = if quick { 2 } else { 10 };

    const OFFERED: u64 = 120_000;
    let o = run("2s", OFFERED, secs, "offered");
    println!(
        "ingest offered {OFFERED}/s for {secs}s: all {} readings handed over in {:.2}s ({:.0}/s sustained), \
         committed by {:.2}s; {} commits = {:.2} fsyncs/s",
        o.totals.readings,
        o.offering.as_secs_f64(),
        o.totals.readings as f64 / o.offering.as_secs_f64(),
        o.wall.as_secs_f64(),
        o.totals.commits,
        o.totals.commits as f64 / o.wall.as_secs_f64()
    );

    let o = run("1s", 0, 0, "flat-out");
    println!(
        "ingest flat out: {:.0} readings/s ({} readings in {:.2}s, {} commits)",
        o.totals.readings as f64 / o.wall.as_secs_f64(),
        o.totals.readings,
        o.wall.as_secs_f64(),
        o.totals.commits
    );

    let floor = redb_floor_bytes_per_commit();
    println!(
        "redb floor: {floor} bytes written per durable commit of 100 rows into one table \
         ({} B/reading at 1 commit per 100 readings)",
        floor / 100
    );

    let (wear_secs, warmup) = if quick { (4, 1) } else { (70, 10) };
    for interval in ["1s", "2s"] {
        let o = run_with_warmup(
            interval,
            100,
            wear_secs,
            warmup,
            &format!("wear-{interval}"),
            None,
        );
        println!(
            "wear at 100 readings/s, batch_interval {interval}: {:.0} bytes written per reading in steady state \
             ({} bytes for {} readings after a {warmup}s warm-up); {:.0} B/reading including creating the file; \
             {:.2} commits/s",
            o.steady_bytes as f64 / o.steady_readings.max(1) as f64,
            o.steady_bytes,
            o.steady_readings,
            o.bytes_written as f64 / o.totals.readings.max(1) as f64,
            o.totals.commits as f64 / o.wall.as_secs_f64()
        );
    }

    wear_with_journal(&[100, 10], (wear_secs, warmup));
}

/// The journal's wear at each rate: readings spread over time, folds by
/// `COLDGATE_WEAR_FOLD`, `COLDGATE_WEAR_SECS` in all.
fn wear_with_journal(rates: &[u64], (wear_secs, warmup): (u64, u64)) {
    let fold = std::env::var("COLDGATE_WEAR_FOLD")
        .ok()
        .and_then(|v| humantime::parse_duration(&v).ok())
        .unwrap_or(Duration::from_secs(300));
    let secs = std::env::var("COLDGATE_WEAR_SECS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(wear_secs);
    // The first fold (the run's first commit) and the tables' creation
    // fall in the warm-up.
    let warmup = (secs / 10).max(warmup);
    for &rate in rates {
        let o = run_with_warmup(
            "2s",
            rate,
            secs,
            warmup,
            &format!("wear-journal-{rate}-{}", humantime::format_duration(fold)),
            Some(fold),
        );
        let steady_secs = (secs - warmup) as f64;
        println!(
            "wear with the journal at {rate} readings/s, folds every {}: {:.0} B/s written in steady state \
             ({:.1} B/reading; {} bytes for {} readings after a {warmup}s warm-up; {:.0} B/s before the \
             stop's fold); {} folds in all",
            humantime::format_duration(fold),
            o.steady_bytes as f64 / steady_secs,
            o.steady_bytes as f64 / o.steady_readings.max(1) as f64,
            o.steady_bytes,
            o.steady_readings,
            o.steady_bytes_before_stop as f64 / steady_secs,
            o.totals.commits
        );
    }
}
