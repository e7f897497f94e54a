//! The journal alone, against the floor docs/journal.md computes: bytes
//! written to the block device (/proc/self/io `write_bytes`, after a
//! warm-up) per second of readings at 100 and at 10 values/s, a batch
//! (one `Readings` record and one `Tick`) synced every 2 s; how fast
//! readings are encoded, appended and synced flat out; and how long an
//! open takes that replays a tail of 30,000 readings (a fold interval at
//! 100 values/s).
//!
//! Time is compressed: a batch is what 2 s of readings hold, synced one
//! after the other. The bytes a sync writes depend on the pages it
//! dirtied, not on the time between syncs. Not counted here: the folds
//! into redb (docs/journal.md, about 1.1 and 0.24 kB/s) and the file
//! system's own journal for the segment's timestamps, which a kernel
//! thread writes, not this process. A benchmark, not a test: it asserts
//! nothing. `cargo bench -p coldgate --bench journal`.

mod support;
use support::write_bytes;

use std::path::Path;
use std::time::Instant;

use coldgate::store::journal::payload::{encode_readings, Journalled};
use coldgate::store::journal::{real_files, Journal, Kind, Options};
use coldgate_sensor_drivers::Quantity;

/// One 2 s batch at `per_second` values/s from 50 sensors, spread over
/// the 2 s (not in lockstep).
fn batch(per_second: usize, t0: i64, n: &mut u64) -> Vec<Journalled> {
    let count = per_second * 2;
    (0..count)
        .map(|i| {
            *n += 1;
            Journalled {
                sensor: (*n % 50) as u16,
                quantity: if i % 2 == 0 {
                    Quantity::Temperature
                } else {
                    Quantity::Humidity
                },
                at_ms: t0 + (i as i64 * 2000) / count as i64 + (*n % 13) as i64,
                value: 4.0 + (*n % 37) as f64 * 0.1,
            }
        })
        .collect()
}

fn append_batch(journal: &mut Journal, readings: &[Journalled], t0: i64) {
    let mut payload = Vec::new();
    encode_readings(&mut payload, readings).expect("encode");
    journal.append(Kind::Readings, &payload).expect("append");
    journal
        .append(Kind::Tick, &(t0 + 2000).to_le_bytes())
        .expect("append");
}

fn rate(dir: &Path, per_second: usize) {
    let _ = std::fs::remove_dir_all(dir);
    let (mut journal, _) =
        Journal::open(dir, Options::default(), 1, real_files(), |_| {}).expect("open");
    let (mut t, mut n) = (1_800_000_000_000i64, 0u64);
    for _ in 0..50 {
        append_batch(&mut journal, &batch(per_second, t, &mut n), t);
        journal.sync().expect("sync");
        t += 2000;
    }
    let batches = 600;
    let before = write_bytes();
    for _ in 0..batches {
        append_batch(&mut journal, &batch(per_second, t, &mut n), t);
        journal.sync().expect("sync");
        t += 2000;
    }
    let written = write_bytes() - before;
    let seconds = batches as f64 * 2.0;
    println!(
        "{per_second} values/s: {:.2} kB/s written ({:.0} B a sync, {:.1} B a reading appended), \
         {} segments",
        written as f64 / seconds / 1000.0,
        written as f64 / batches as f64,
        written as f64 / (batches * per_second * 2) as f64,
        journal.segment_count()
    );
}

/// 100 values/s through recycled segments after a restart: the spares
/// taken were read whole at the open (by replay), so their pages may sit
/// in the page cache in large folios; a fold every 150 batches (5 min).
fn reused(dir: &Path) {
    let _ = std::fs::remove_dir_all(dir);
    let options = Options::default();
    let (mut journal, _) = Journal::open(dir, options, 1, real_files(), |_| {}).expect("open");
    let (mut t, mut n) = (1_800_000_000_000i64, 0u64);
    // Three 4 MiB segments' worth (about 1,550 batches fill one).
    for _ in 0..4_700 {
        append_batch(&mut journal, &batch(100, t, &mut n), t);
        journal.sync().expect("sync");
        t += 2000;
    }
    drop(journal);
    let (mut journal, _) = Journal::open(dir, options, 1, real_files(), |_| {}).expect("open");
    let batches = 4_700;
    let before = write_bytes();
    for i in 0..batches {
        append_batch(&mut journal, &batch(100, t, &mut n), t);
        journal.sync().expect("sync");
        t += 2000;
        if i % 150 == 149 {
            let folded = journal.next_lsn() - 1;
            journal.recycle(folded).expect("recycle");
        }
    }
    let written = write_bytes() - before;
    println!(
        "100 values/s through recycled segments after a restart: {:.2} kB/s written ({:.0} B a sync)",
        written as f64 / (batches as f64 * 2.0) / 1000.0,
        written as f64 / batches as f64,
    );
}

fn main() {
    let root = Path::new(env!("CARGO_TARGET_TMPDIR")).join("bench-journal");
    std::fs::create_dir_all(&root).expect("bench dir");
    rate(&root.join("r100"), 100);
    rate(&root.join("r10"), 10);
    reused(&root.join("reused"));

    // Flat out: 20,000 readings a batch, encoded, appended and synced.
    let dir = root.join("flat");
    let _ = std::fs::remove_dir_all(&dir);
    let options = Options {
        segment_size: 64 << 20,
        spares: 2,
    };
    let (mut journal, _) = Journal::open(&dir, options, 1, real_files(), |_| {}).expect("open");
    let (mut t, mut n) = (1_800_000_000_000i64, 0u64);
    let started = Instant::now();
    let mut readings = 0;
    while readings < 2_000_000 {
        let b = batch(10_000, t, &mut n);
        readings += b.len();
        append_batch(&mut journal, &b, t);
        journal.sync().expect("sync");
        t += 2000;
    }
    let secs = started.elapsed().as_secs_f64();
    println!(
        "flat out: {readings} readings in {secs:.2} s = {:.0} readings/s (encode, append, fdatasync)",
        readings as f64 / secs
    );
    drop(journal);

    // Start-up: replaying a 30,000-reading tail (a fold interval).
    let dir = root.join("tail");
    let _ = std::fs::remove_dir_all(&dir);
    let (mut journal, _) =
        Journal::open(&dir, Options::default(), 1, real_files(), |_| {}).expect("open");
    for _ in 0..150 {
        append_batch(&mut journal, &batch(100, t, &mut n), t);
        t += 2000;
    }
    journal.sync().expect("sync");
    drop(journal);
    let started = Instant::now();
    let mut decoded = 0usize;
    let (_, replayed) = Journal::open(&dir, Options::default(), 1, real_files(), |r| {
        if r.kind == Kind::Readings {
            decoded += coldgate::store::journal::payload::decode_readings(r.payload)
                .map(|v| v.len())
                .unwrap_or(0);
        }
    })
    .expect("open");
    println!(
        "open replaying {} records ({decoded} readings decoded): {:.1} ms",
        replayed.records,
        started.elapsed().as_secs_f64() * 1000.0
    );
}
