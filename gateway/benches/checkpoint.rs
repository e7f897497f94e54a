//! What the readings checkpoints cost the SD card, on a real redb file.
//!
//! `cargo bench -p coldgate --bench checkpoint` (or, quicker and with the
//! same bytes, `cargo test -p coldgate --bench checkpoint`) prints the bytes
//! written to the block device (/proc/self/io `write_bytes`) by:
//! - a routine commit of 200 readings from 100 sensors (2 s at 100/s, the
//!   wear benchmark's load), in steady state;
//! - a commit that also appends an audit entry and its event (with a
//!   checkpoint of the readings since the last one), and the commit after
//!   it (which records where the next checkpoint's scan starts).
//!
//! The extra per hour is what the hourly checkpoint adds on top of 1,800
//! routine commits. A benchmark, not a test: it asserts nothing.

mod support;
use support::write_bytes;

use std::sync::Arc;

use coldgate::audit::{AuditKind, AuditRecord};
use coldgate::store::{Batch, Store, StoredEvent, Writer};
use coldgate_sensor_drivers::{Quantity, Reading};

const SENSORS: usize = 100;
const PER_COMMIT: usize = 200;

struct Load {
    ids: Vec<Arc<str>>,
    t: i64,
    n: u64,
    /// How long the last commit took (the checkpoint's scan included).
    elapsed: std::time::Duration,
}

impl Load {
    fn batch(&mut self) -> Vec<Reading> {
        (0..PER_COMMIT)
            .map(|i| {
                self.n += 1;
                Reading::new(
                    self.ids[i % SENSORS].clone(),
                    Quantity::Temperature,
                    5.0 + (self.n % 7) as f64 * 0.1,
                    self.t + (i / SENSORS) as i64 * 1000,
                )
            })
            .collect()
    }

    fn commit(&mut self, w: &mut Writer, audit: bool) -> u64 {
        let readings = self.batch();
        self.t += 2000;
        let (events, records) = if audit {
            let seq = w.next_event_seq();
            let payload = format!(
                "{{\"schema\":\"coldgate.audit/1\",\"seq\":{seq},\"phase\":\"readings_checkpoint\"}}"
            );
            (
                vec![StoredEvent {
                    seq,
                    at_ms: self.t,
                    topic: "events/audit".into(),
                    payload: payload.into_bytes(),
                }],
                vec![AuditRecord {
                    at_ms: self.t,
                    kind: AuditKind::GatewayStarted,
                    actor: "coldgate".into(),
                    details: serde_json::json!({}),
                }],
            )
        } else {
            (vec![], vec![])
        };
        let batch = Batch {
            readings,
            events,
            audit: records,
            ..Batch::default()
        };
        let before = write_bytes();
        let started = std::time::Instant::now();
        w.commit(&batch).expect("commit");
        self.elapsed = started.elapsed();
        write_bytes() - before
    }
}

fn main() {
    let dir = std::path::Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-checkpoint");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("bench dir");
    let (_store, mut w) = Store::open(&dir.join("bench.redb"), 4 << 20).expect("store");
    let mut load = Load {
        ids: (0..SENSORS)
            .map(|i| Arc::from(format!("s{i:03}").as_str()))
            .collect(),
        t: 1_800_000_000_000,
        n: 0,
        elapsed: std::time::Duration::ZERO,
    };
    // Warm-up: the file and its tables exist, one checkpoint was made.
    for i in 0..300 {
        load.commit(&mut w, i == 100);
    }
    let rounds = 5;
    let routine_per_round = 60;
    let (mut routine, mut routine_n, mut cp, mut after) = (0u64, 0u64, 0u64, 0u64);
    let (mut routine_time, mut cp_time) = (std::time::Duration::ZERO, std::time::Duration::ZERO);
    for _ in 0..rounds {
        for _ in 0..routine_per_round {
            routine += load.commit(&mut w, false);
            routine_time += load.elapsed;
            routine_n += 1;
        }
        cp += load.commit(&mut w, true);
        cp_time += load.elapsed;
        after += load.commit(&mut w, false);
    }
    let routine = routine as f64 / routine_n as f64;
    let cp = cp as f64 / rounds as f64;
    let after = after as f64 / rounds as f64;
    let extra = (cp - routine) + (after - routine);
    println!(
        "routine commit of {PER_COMMIT} readings: {routine:.0} B ({:.0} B/reading); \
         commit with an audit entry and checkpoint: {cp:.0} B; the commit after it: {after:.0} B; \
         extra per checkpoint {extra:.0} B = {:.3} % of an hour of 2 s commits (1,800)",
        routine / PER_COMMIT as f64,
        100.0 * extra / (routine * 1800.0)
    );
    let span = (routine_per_round + 1) * PER_COMMIT;
    println!(
        "time: routine commit {:.1} ms; commit with a checkpoint of {span} readings {:.1} ms",
        routine_time.as_secs_f64() * 1000.0 / routine_n as f64,
        cp_time.as_secs_f64() * 1000.0 / rounds as f64,
    );
}
