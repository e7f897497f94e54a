//! Start-up time: from exec of `coldgate run` to its `READY=1` on the
//! systemd notify socket (what `Type=notify` waits for), with an empty
//! database and with one holding 10 million readings.
//!
//! `cargo bench -p coldgate --bench startup` prints the medians; `scripts/bench`
//! compares them with the targets (200 ms empty, 1 s with 10 million readings).
//! A benchmark, not a test: it measures, the script judges.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use coldgate::store::{Batch, Store};
use coldgate_sensor_drivers::{Quantity, Reading};

const SENSORS: usize = 100;

fn config(dir: &Path, db: &Path) -> PathBuf {
    let mut text = format!(
        "gateway_id = \"startup-bench\"\n[storage]\npath = \"{}\"\n[mqtt]\nenabled = false\n\
         [[profiles]]\nid = \"refrigerated\"\nlimits = [{{ quantity = \"temperature\", low = 2.0, high = 8.0, delay = \"5m\" }}]\n\
         [[zones]]\nid = \"rear\"\nprofile = \"refrigerated\"\n[sim]\nreading_interval = \"10s\"\n",
        db.display()
    );
    for i in 0..SENSORS {
        text.push_str(&format!(
            "[[sensors]]\nid = \"s{i:03}\"\nzone = \"rear\"\nkind = \"sim\"\n"
        ));
    }
    let path = dir.join(format!(
        "{}.toml",
        db.file_stem().and_then(|s| s.to_str()).unwrap_or("c")
    ));
    std::fs::write(&path, text).expect("write config");
    path
}

/// Exec to READY=1, then SIGTERM and wait for the exit.
fn time_to_ready(config: &Path, dir: &Path) -> Duration {
    let socket_path = dir.join("notify.sock");
    let _ = std::fs::remove_file(&socket_path);
    let socket = UnixDatagram::bind(&socket_path).expect("notify socket");
    socket
        .set_read_timeout(Some(Duration::from_secs(30)))
        .expect("timeout");
    let started = Instant::now();
    let mut child = Command::new(env!("CARGO_BIN_EXE_coldgate"))
        .args(["run", "--config"])
        .arg(config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("coldgate starts");
    let mut buf = [0u8; 4096];
    let ready = loop {
        let n = socket.recv(&mut buf).expect("READY=1 within 30 s");
        if String::from_utf8_lossy(&buf[..n])
            .lines()
            .any(|l| l == "READY=1")
        {
            break started.elapsed();
        }
    };
    let _ = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status();
    let _ = child.wait();
    ready
}

/// The middle run, in whole milliseconds like the runs printed beside it.
fn median(v: &[Duration]) -> u128 {
    let mut ms: Vec<u128> = v.iter().map(Duration::as_millis).collect();
    ms.sort_unstable();
    ms[ms.len() / 2]
}

/// `n` readings of 100 sensors, one every 10 s, ending now, committed the
/// way ingest commits them (batches of 100,000 here, to build it quickly).
fn fill(db: &Path, n: usize) {
    let (_store, mut writer) = Store::open(db, 4 << 20).expect("open");
    let sensors: Vec<Arc<str>> = (0..SENSORS)
        .map(|i| Arc::from(format!("s{i:03}")))
        .collect();
    let per_sensor = n / SENSORS;
    let now = coldgate::event::now_ms();
    let start = now - per_sensor as i64 * 10_000;
    let mut batch = Batch {
        readings: Vec::with_capacity(100_000),
        ..Batch::default()
    };
    for step in 0..per_sensor {
        for (i, s) in sensors.iter().enumerate() {
            let value = 5.0 + ((step + i) % 20) as f64 / 10.0;
            batch.readings.push(Reading::new(
                s.clone(),
                Quantity::Temperature,
                value,
                start + step as i64 * 10_000,
            ));
        }
        if batch.readings.len() >= 100_000 {
            writer.commit(&batch).expect("commit");
            batch.clear();
        }
    }
    writer.commit(&batch).expect("commit");
}

fn main() {
    // `cargo bench` passes --bench; `cargo test --benches` does not: keep that quick.
    let quick = !std::env::args().any(|a| a == "--bench");
    let big = if quick { 200_000 } else { 10_000_000 };
    let dir = tempfile::tempdir().expect("temp dir");

    let mut empty = Vec::new();
    for i in 0..5 {
        let db = dir.path().join(format!("empty{i}.redb"));
        empty.push(time_to_ready(&config(dir.path(), &db), dir.path()));
    }
    println!(
        "startup empty database: {} ms to READY=1 (median of 5; {:?})",
        median(&empty),
        empty.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );

    let db = dir.path().join("big.redb");
    let filling = Instant::now();
    fill(&db, big);
    let size = std::fs::metadata(&db).map(|m| m.len()).unwrap_or(0);
    let count = Store::open_existing(&db)
        .and_then(|s| s.reading_count())
        .expect("count");
    let config = config(dir.path(), &db);
    let mut full = Vec::new();
    for _ in 0..3 {
        full.push(time_to_ready(&config, dir.path()));
    }
    println!(
        "startup with {count} readings ({:.0} MB file, filled in {:.0} s): {} ms to READY=1 (median of 3; {:?})",
        size as f64 / 1e6,
        filling.elapsed().as_secs_f64(),
        median(&full),
        full.iter().map(|d| d.as_millis()).collect::<Vec<_>>()
    );
    if std::env::var_os("COLDGATE_BENCH_KEEP").is_some() {
        println!("kept {}", dir.keep().display());
    }
}
