//! Recovery after a broker outage: with `mqtt.reconnect_max` at its default
//! (60 s) the backoff has grown long by the time the broker returns, yet the
//! first event arrives within 5 s of the broker listening again, because
//! the gateway probes the broker's port while it waits.

use std::path::Path;
use std::time::{Duration, Instant};

use coldgate_tests::{free_port, start_broker, start_gateway, Subscriber, TestConfig};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const EVENTS: &str = "coldgate/v1/test-gw/events/#";

/// The acceptance target (issue 14, item 5).
const FIRST_EVENT_WITHIN: Duration = Duration::from_secs(5);

/// The broker is restarted right after a failed attempt whose backoff is at
/// least this long, so that without probes the next attempt would come
/// well after `FIRST_EVENT_WITHIN`.
const LONG_WAIT_MS: u64 = 8_000;

/// The `retry_in_ms` of "MQTT connection failed or lost." lines in the log,
/// from byte `from` on; returns them and where the log ended.
fn retries_logged(log: &Path, from: usize) -> (Vec<u64>, usize) {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let Some(new) = text.get(from..) else {
        return (Vec::new(), from);
    };
    // Only whole lines: the last one may still be being written.
    let complete = new.rfind('\n').map_or(0, |i| i + 1);
    let waits = new[..complete]
        .lines()
        .filter(|l| l.contains("MQTT connection failed or lost."))
        .filter_map(|l| {
            let i = l.find("retry_in_ms=")?;
            l[i + "retry_in_ms=".len()..]
                .split(|c: char| !c.is_ascii_digit())
                .next()?
                .parse()
                .ok()
        })
        .collect();
    (waits, from + complete)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_20_s_outage_the_first_event_arrives_within_5_s_of_the_broker_listening_again() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut broker = start_broker(BIN, port);
    let mut cfg = TestConfig::new(dir.path());
    cfg.mqtt_port = Some(port);
    let config = cfg.write();
    // The tests' fast backoff out: the defaults (500 ms doubling to 60 s).
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text
        .replace("reconnect_min = \"100ms\"\n", "")
        .replace("reconnect_max = \"1s\"\n", "");
    assert!(!text.contains("reconnect_"), "{text}");
    std::fs::write(&config, text).unwrap();

    let mut sub = Subscriber::connect(port, EVENTS).await;
    let log = dir.path().join("gw.log");
    let _gw = start_gateway(BIN, &config, &log);
    assert!(
        sub.next(Duration::from_secs(20)).await.is_some(),
        "no event before the outage"
    );

    broker.sigkill();
    drop(sub);
    let down = Instant::now();
    // Wait for a failed attempt, at least 18 s into the outage, after which
    // the gateway would sit out a long backoff (a cooling failure every 4 s
    // keeps raising events meanwhile).
    let mut read = 0;
    let pending = loop {
        assert!(
            down.elapsed() < Duration::from_secs(90),
            "no attempt with a backoff of {LONG_WAIT_MS} ms or more within 90 s of the outage"
        );
        let (waits, end) = retries_logged(&log, read);
        read = end;
        let long = waits.into_iter().find(|&w| w >= LONG_WAIT_MS);
        if let (Some(w), true) = (long, down.elapsed() >= Duration::from_secs(18)) {
            break Duration::from_millis(w);
        }
        std::thread::sleep(Duration::from_millis(20));
    };
    let seen = Instant::now();
    let outage = down.elapsed();

    broker = start_broker(BIN, port);
    let back = Instant::now();
    let mut sub = Subscriber::connect(port, EVENTS).await;
    let first = loop {
        let left = (back + Duration::from_secs(40)).saturating_duration_since(Instant::now());
        match sub.next(left).await {
            Some((_, v)) if v["seq"].is_u64() => break back.elapsed(),
            Some(_) => {}
            None => panic!("no event within 40 s of the broker's return"),
        }
    };
    eprintln!(
        "outage {:.1} s; backoff pending when the broker returned: {:.1} s; first event {:.2} s after it listened",
        outage.as_secs_f64(),
        (seen + pending).saturating_duration_since(back).as_secs_f64(),
        first.as_secs_f64()
    );
    // The test proves something only if the backoff alone would have missed
    // the target: its attempt was due well after it.
    assert!(
        (seen + pending).saturating_duration_since(back)
            >= FIRST_EVENT_WITHIN + Duration::from_secs(1),
        "the pending backoff was too short to tell"
    );
    assert!(
        first <= FIRST_EVENT_WITHIN,
        "the first event came {first:?} after the broker listened again (target {FIRST_EVENT_WITHIN:?})"
    );
    let text = std::fs::read_to_string(&log).unwrap();
    assert!(
        text.contains("The broker accepts connections again"),
        "the wait was not cut short by a probe"
    );
    drop(broker);
}
