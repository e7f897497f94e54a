//! Operations: the real binary under systemd's protocols. Readiness and
//! watchdog pings over a notify socket the test binds, SIGTERM with readings
//! still pending, and SIGHUP reloads (a broken file is rejected, a valid one
//! applies) — without losing a reading.

use std::collections::HashMap;
use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use coldgate::store::Store;
use coldgate_tests::{committed_readings, free_port, start_gateway, Proc, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

fn wait_for_log(log: &Path, needle: &str, within: Duration) {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        if log_text(log).contains(needle) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!(
        "`{needle}` not logged in {}:\n{}",
        log.display(),
        log_text(log)
    );
}

/// Waits until the gateway's API counts more than `above` readings
/// committed.
fn wait_for_commit_above(http_port: u16, above: u64, within: Duration) -> u64 {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let n = committed_readings(http_port);
        if n > above {
            return n;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    panic!("no commit above {above} readings on port {http_port}");
}

/// The `readings=N` of every "Ingest stopped" line: one per data path run.
fn ingest_stopped_totals(log: &Path) -> Vec<u64> {
    log_text(log)
        .lines()
        .filter(|l| l.contains("Ingest stopped with everything committed."))
        .filter_map(|l| {
            let i = l.find(" readings=")?;
            l[i + " readings=".len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect()
}

/// Readings per sensor in the file, checking per-sensor seqs are gap-free.
fn stored_per_sensor(db: &Path) -> HashMap<String, u64> {
    let store = Store::open_existing(db).expect("database opens");
    let mut seqs: HashMap<String, Vec<u64>> = HashMap::new();
    store
        .for_each_reading(None, i64::MIN, i64::MAX, |r| {
            seqs.entry(r.sensor.to_string()).or_default().push(r.seq);
            true
        })
        .unwrap();
    seqs.into_iter()
        .map(|(sensor, mut s)| {
            s.sort_unstable();
            for (i, seq) in s.iter().enumerate() {
                assert_eq!(*seq, i as u64 + 1, "sensor {sensor} has a gap");
            }
            (sensor, s.len() as u64)
        })
        .collect()
}

/// No failure within any test's run: only the batch timer or shutdown commits.
const NO_FAILURE: &str = r#"{ zone = "rear", after = "1000h", lasts = "1m", every = "2000h" }"#;

#[test]
fn notify_socket_gets_ready_then_watchdog_pings_at_half_the_timeout_then_stopping() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(dir.path());
    cfg.sensors = 1;
    let config = cfg.write();
    let socket_path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&socket_path).unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let log = dir.path().join("run.log");
    let mut cmd = Command::new(BIN);
    cmd.args(["run", "--config"])
        .arg(&config)
        .env("NOTIFY_SOCKET", &socket_path)
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID")
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap());
    let mut gw = Proc::spawn("coldgate run", cmd);

    // (message, when received)
    let mut got: Vec<(String, Instant)> = Vec::new();
    let mut buf = [0u8; 4096];
    let started = Instant::now();
    let mut ready_at = None;
    while started.elapsed() < Duration::from_secs(30) {
        if let Ok(n) = socket.recv(&mut buf) {
            let msg = String::from_utf8_lossy(&buf[..n]).to_string();
            if ready_at.is_none() && msg.lines().any(|l| l == "READY=1") {
                ready_at = Some(Instant::now());
            }
            got.push((msg, Instant::now()));
        }
        if ready_at.is_some_and(|t| t.elapsed() > Duration::from_secs(3)) {
            break;
        }
    }
    let ready_at = ready_at.unwrap_or_else(|| panic!("no READY=1; got {got:?}"));
    assert!(
        log_text(&log).contains("coldgate is running."),
        "READY=1 came before the gateway was running"
    );
    let pings: Vec<Instant> = got
        .iter()
        .filter(|(m, _)| m.lines().any(|l| l == "WATCHDOG=1"))
        .map(|(_, t)| *t)
        .collect();
    assert!(
        pings.iter().all(|t| *t >= ready_at),
        "a watchdog ping came before READY=1"
    );
    // ~3 s at one ping per 200 ms is 15; allow a loaded machine half that.
    assert!(pings.len() >= 8, "only {} pings in 3 s", pings.len());
    let gaps: Vec<Duration> = pings.windows(2).map(|w| w[1] - w[0]).collect();
    let mut sorted = gaps.clone();
    sorted.sort();
    let median = sorted[sorted.len() / 2];
    assert!(
        median >= Duration::from_millis(120) && median <= Duration::from_millis(320),
        "median gap {median:?} is not about 200 ms: {gaps:?}"
    );
    // The deadline is 400 ms; any gap near it would get the unit killed.
    let max = *sorted.last().unwrap();
    assert!(
        max < Duration::from_millis(900),
        "a gap of {max:?}: {gaps:?}"
    );

    gw.signal(15);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut stopping = false;
    while Instant::now() < deadline && !stopping {
        if let Ok(n) = socket.recv(&mut buf) {
            stopping = String::from_utf8_lossy(&buf[..n])
                .lines()
                .any(|l| l == "STOPPING=1");
        }
    }
    assert!(stopping, "no STOPPING=1 after SIGTERM");
    assert!(gw.wait(Duration::from_secs(20)).success());
}

#[test]
fn sigterm_commits_every_pending_reading() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(dir.path());
    cfg.sensors = 3;
    // Nothing is committed by the timer within the test: every reading the
    // sources produced is pending when SIGTERM arrives.
    cfg.batch_interval = "1h";
    cfg.failure = NO_FAILURE;
    let http_port = free_port();
    cfg.http_port = Some(http_port);
    let config = cfg.write();
    let log = dir.path().join("run.log");
    let mut gw = start_gateway(BIN, &config, &log);
    wait_for_log(&log, "coldgate is running.", Duration::from_secs(20));
    // The start's audit entries are committed at once (with whatever
    // readings had arrived); after that only SIGTERM commits.
    wait_for_log(&log, "Committed.", Duration::from_secs(10));
    // Both start entries are committed, whether in one commit or two.
    std::thread::sleep(Duration::from_millis(300));
    let at_start = committed_readings(http_port);
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        committed_readings(http_port),
        at_start,
        "a commit happened before SIGTERM; the test proves nothing"
    );
    assert!(gw.terminate(Duration::from_secs(20)).success());

    let totals = ingest_stopped_totals(&log);
    assert_eq!(totals.len(), 1, "{}", log_text(&log));
    let stored: u64 = stored_per_sensor(&cfg.db()).values().sum();
    assert!(
        stored > at_start + 20,
        "only {} readings were pending at SIGTERM",
        stored - at_start
    );
    assert_eq!(stored, totals[0], "stored vs the final ingest totals");
    assert!(log_text(&log).contains("Stopped cleanly."));
}

#[test]
fn sighup_rejects_a_broken_file_and_applies_a_valid_one_without_losing_readings() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(dir.path());
    cfg.sensors = 2;
    cfg.failure = NO_FAILURE;
    let http_port = free_port();
    cfg.http_port = Some(http_port);
    let config = cfg.write();
    let good = std::fs::read_to_string(&config).unwrap();
    let log = dir.path().join("run.log");
    let mut gw = start_gateway(BIN, &config, &log);
    wait_for_log(&log, "coldgate is running.", Duration::from_secs(20));
    wait_for_commit_above(http_port, 0, Duration::from_secs(10));

    // A broken file: rejected, the process keeps running and committing.
    std::fs::write(&config, good.replace("[ingest]", "[ingest\n")).unwrap();
    gw.signal(1);
    wait_for_log(
        &log,
        "Configuration reload rejected; the running configuration stays.",
        Duration::from_secs(10),
    );
    let at_rejection = committed_readings(http_port);
    wait_for_commit_above(http_port, at_rejection, Duration::from_secs(10));
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the gateway exited on a broken config"
    );
    assert!(!log_text(&log).contains("Configuration reloaded."));

    // A valid change: a third sensor.
    cfg.sensors = 3;
    cfg.write();
    gw.signal(1);
    wait_for_log(&log, "Configuration reloaded.", Duration::from_secs(20));
    std::thread::sleep(Duration::from_millis(1000));
    assert!(gw.terminate(Duration::from_secs(20)).success());

    let totals = ingest_stopped_totals(&log);
    assert_eq!(
        totals.len(),
        2,
        "one data path before the reload, one after"
    );
    let stored = stored_per_sensor(&cfg.db());
    assert!(
        stored.get("rear-2").copied().unwrap_or(0) > 0,
        "the sensor added by the reload recorded nothing: {stored:?}"
    );
    assert_eq!(
        stored.values().sum::<u64>(),
        totals.iter().sum::<u64>(),
        "stored readings vs what both data paths committed"
    );

    // Every step is in the audit trail, in order, and the chain verifies.
    let kinds: Vec<String> = audit_show(&cfg.db())
        .iter()
        .map(|e| e["kind"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        kinds,
        [
            "config_loaded",
            "gateway_started",
            "config_rejected",
            "config_reloaded",
            "gateway_stopped"
        ],
    );
    let entries = audit_show(&cfg.db());
    assert!(
        entries[1]["details"]
            .as_object()
            .is_some_and(|d| d.contains_key("clock_synchronised")),
        "the start records whether the clock was trusted: {}",
        entries[1]
    );
    assert_eq!(entries[2]["actor"], "signal:SIGHUP");
    assert!(entries[2]["details"]["problems"][0]
        .as_str()
        .is_some_and(|p| !p.is_empty()));
    assert_eq!(
        entries[3]["details"]["previous_sha256"],
        entries[0]["details"]["sha256"]
    );
    assert_eq!(entries[4]["actor"], "signal:SIGTERM");
    let out = coldgate(&["audit", "verify", "--db"], &cfg.db());
    assert!(out.status.success(), "{out:?}");
}

fn coldgate(args: &[&str], db: &Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .arg(db)
        .env("RUST_LOG", "off")
        .output()
        .expect("coldgate runs")
}

fn audit_show(db: &Path) -> Vec<serde_json::Value> {
    let out = coldgate(&["audit", "show", "--db"], db);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("one JSON entry per line"))
        .collect()
}

#[test]
fn audit_verify_exits_non_zero_naming_an_entry_altered_in_the_file() {
    let dir = tempfile::tempdir().unwrap();
    let mut cfg = TestConfig::new(dir.path());
    cfg.sensors = 1;
    cfg.failure = NO_FAILURE;
    let config = cfg.write();
    let log = dir.path().join("run.log");
    let mut gw = start_gateway(BIN, &config, &log);
    wait_for_log(&log, "coldgate is running.", Duration::from_secs(20));
    assert!(gw.terminate(Duration::from_secs(20)).success());
    assert!(coldgate(&["audit", "verify", "--db"], &cfg.db())
        .status
        .success());

    // Someone edits who started the gateway, straight in the file.
    {
        use redb::ReadableTable;
        const AUDIT: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("audit");
        let db = redb::Database::open(cfg.db()).unwrap();
        let txn = db.begin_write().unwrap();
        {
            let mut t = txn.open_table(AUDIT).unwrap();
            let text = String::from_utf8(t.get(2).unwrap().unwrap().value().to_vec()).unwrap();
            assert!(text.contains("command line"), "{text}");
            let forged = text.replace("command line", "service manager");
            t.insert(2, forged.as_bytes()).unwrap();
        }
        txn.commit().unwrap();
    }
    let out = coldgate(&["audit", "verify", "--db"], &cfg.db());
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("BROKEN at entry 2"), "{err}");
}

#[test]
fn run_with_a_broken_config_exits_78_so_systemd_does_not_restart_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "gateway_id = \"g\"\n[ingest\n").unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(78), "{out:?}");
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(dir.path().join("missing.toml"))
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    // EX_NOINPUT: the file is missing, not wrong; systemd does not restart on it either.
    assert_eq!(out.status.code(), Some(66), "{out:?}");
}

/// Collects messages until one on a topic ending in `suffix` matches `pred`.
async fn wait_for_event(
    sub: &mut coldgate_tests::Subscriber,
    suffix: &str,
    pred: impl Fn(&serde_json::Value) -> bool,
    within: Duration,
) -> serde_json::Value {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    while let Some(left) = deadline.checked_duration_since(Instant::now()) {
        match sub.next(left).await {
            Some((topic, v)) if topic.ends_with(suffix) && pred(&v) => return v,
            Some((topic, v)) => seen.push(format!("{topic}: {v}")),
            None => break,
        }
    }
    panic!("no matching {suffix} event within {within:?}; saw {seen:#?}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sighup_with_a_broken_config_publishes_the_rejection_and_every_audit_entry() {
    let dir = tempfile::tempdir().unwrap();
    let port = coldgate_tests::free_port();
    let _broker = coldgate_tests::start_broker(BIN, port);
    let mut sub = coldgate_tests::Subscriber::connect(port, "coldgate/v1/test-gw/events/#").await;
    let mut cfg = TestConfig::new(dir.path());
    cfg.sensors = 1;
    cfg.failure = NO_FAILURE;
    cfg.mqtt_port = Some(port);
    let config = cfg.write();
    let good = std::fs::read_to_string(&config).unwrap();
    let log = dir.path().join("run.log");
    let mut gw = start_gateway(BIN, &config, &log);

    // The start's audit entries arrive as `audit` events, numbered like the
    // trail and like every other event.
    let loaded = wait_for_event(
        &mut sub,
        "/events/audit",
        |v| v["phase"] == "config_loaded",
        Duration::from_secs(20),
    )
    .await;
    assert_eq!(loaded["schema"], "coldgate.audit/1");
    assert_eq!(loaded["audit_seq"], 1);
    assert!(loaded["seq"].as_u64().is_some_and(|s| s >= 1));
    assert_eq!(
        loaded["details"]["sha256"].as_str().map(str::len),
        Some(64),
        "{loaded}"
    );
    let started = wait_for_event(
        &mut sub,
        "/events/audit",
        |v| v["phase"] == "gateway_started",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(started["audit_seq"], 2);

    // A broken file on SIGHUP: logged, kept running, and published.
    std::fs::write(&config, good.replace("[ingest]", "[ingest\n")).unwrap();
    gw.signal(1);
    // The audit event first: it is queued before the gateway event.
    let audit = wait_for_event(
        &mut sub,
        "/events/audit",
        |v| v["phase"] == "config_rejected",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(audit["audit_seq"], 3);
    let rejected = wait_for_event(
        &mut sub,
        "/events/gateway",
        |v| v["phase"] == "config_rejected",
        Duration::from_secs(10),
    )
    .await;
    assert_eq!(rejected["schema"], "coldgate.gateway/1");
    assert_eq!(rejected["actor"], "signal:SIGHUP");
    assert!(
        rejected["problems"][0]
            .as_str()
            .is_some_and(|p| !p.is_empty()),
        "{rejected}"
    );
    assert_eq!(
        rejected["path"].as_str(),
        Some(config.display().to_string().as_str())
    );
    assert!(log_text(&log).contains("Configuration reload rejected"));
    assert!(
        gw.child.try_wait().unwrap().is_none(),
        "the gateway exited on a broken config"
    );
    assert!(gw.terminate(Duration::from_secs(20)).success());
}

#[test]
fn run_with_a_corrupt_database_names_the_file_and_leaves_it_untouched() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = TestConfig::new(dir.path());
    let config = cfg.write();
    // Not a database at all: what a half-written card or a wrong file gives.
    let garbage: Vec<u8> = (0..65_536u32).map(|i| (i * 7 % 251) as u8).collect();
    std::fs::write(cfg.db(), &garbage).unwrap();
    let out = Command::new(BIN)
        .args(["run", "--config"])
        .arg(&config)
        .env("RUST_LOG", "off")
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "{out:?}");
    assert!(
        !stderr.contains("panicked"),
        "a corrupt file must be an error, not a panic: {stderr}"
    );
    assert!(
        stderr.contains(&cfg.db().display().to_string()),
        "the error names the file: {stderr}"
    );
    assert!(
        stderr.contains("left untouched") && stderr.contains("move it aside"),
        "the error says what to do: {stderr}"
    );
    assert_eq!(std::fs::read(cfg.db()).unwrap(), garbage, "never modified");
}
