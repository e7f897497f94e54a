//! A clean stop is not a crash: on SIGTERM the gateway publishes its own
//! retained `offline` status (reason `stopped`, the stop time, the real
//! uptime) and sends DISCONNECT, so the broker keeps the Last Will
//! (reason `connection lost`) for real failures, such as SIGKILL.

use std::time::{Duration, Instant};

use coldgate_tests::{free_port, start_broker, start_gateway, Subscriber, TestConfig};
use serde_json::Value;

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const STATUS: &str = "coldgate/v1/test-gw/status";

/// The status retained now, as a subscriber connecting now gets it.
async fn retained(port: u16) -> Value {
    let mut sub = Subscriber::connect(port, STATUS).await;
    sub.next(Duration::from_secs(5))
        .await
        .expect("a retained status")
        .1
}

/// Waits until the retained status says `state`.
async fn until_retained(port: u16, state: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let v = retained(port).await;
        if v["state"] == state || Instant::now() > deadline {
            return v;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn ms(v: &Value, field: &str) -> i64 {
    coldgate::event::parse_rfc3339(v[field].as_str().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigterm_leaves_a_stopped_status_retained_and_sigkill_leaves_the_last_will() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(BIN, port);
    let mut cfg = TestConfig::new(dir.path());
    cfg.mqtt_port = Some(port);
    // Events every few hundred milliseconds, so PUBACKs are still arriving
    // while the daemon stops (ingest first, then the publisher).
    cfg.speed = 6000.0;
    cfg.failure = r#"{ zone = "rear", after = "1m", lasts = "10m", every = "20m" }"#;
    let config = cfg.write();

    // A clean stop, after a few seconds of uptime.
    let mut gw = start_gateway(BIN, &config, &dir.path().join("gw1.log"));
    let online = until_retained(port, "online").await;
    assert_eq!(online["state"], "online", "{online}");
    assert!(online["reason"].is_null(), "{online}");
    tokio::time::sleep(Duration::from_secs(3)).await;
    let stopping = coldgate::event::now_ms();
    assert!(gw.terminate(Duration::from_secs(20)).success());
    let stopped = retained(port).await;
    assert_eq!(stopped["state"], "offline", "{stopped}");
    assert_eq!(
        stopped["reason"], "stopped",
        "a clean stop, not the will: {stopped}"
    );
    assert!(
        stopped["uptime_s"].as_u64().unwrap() >= 3,
        "the real uptime: {stopped}"
    );
    assert!(
        ms(&stopped, "at") >= stopping - 1_000,
        "stamped at the stop, not at the connect: {stopped}"
    );

    // A crash: the broker publishes the will.
    let mut gw = start_gateway(BIN, &config, &dir.path().join("gw2.log"));
    let online = until_retained(port, "online").await;
    assert_eq!(online["state"], "online", "{online}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    gw.sigkill();
    let will = until_retained(port, "offline").await;
    assert_eq!(will["state"], "offline", "{will}");
    assert_eq!(will["reason"], "connection lost", "{will}");

    // The next start says the last run died, and for how long nothing was
    // observed; the start after the clean stop said nothing of the kind.
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut gateway_events = Subscriber::connect(port, "coldgate/v1/test-gw/events/gateway").await;
    let mut gw = start_gateway(BIN, &config, &dir.path().join("gw3.log"));
    let mut unclean = None;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline && unclean.is_none() {
        if let Some((_, v)) = gateway_events.next(Duration::from_secs(1)).await {
            if v["kind"] == "unclean_stop" {
                unclean = Some(v);
            }
        }
    }
    let unclean = unclean.expect("an unclean_stop event after SIGKILL");
    assert_eq!(unclean["phase"], "detected");
    assert!(unclean["downtime_s"].as_u64().unwrap() >= 2, "{unclean}");
    assert!(ms(&unclean, "last_alive_at") < ms(&unclean, "started_at"));
    assert!(gw.terminate(Duration::from_secs(20)).success());
    let store = coldgate::store::Store::open_existing(&dir.path().join("coldgate.redb")).unwrap();
    let unclean_events = store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| String::from_utf8_lossy(&e.payload).contains("unclean_stop"))
        .count();
    assert_eq!(
        unclean_events, 1,
        "only the start after the kill reports one"
    );
}
