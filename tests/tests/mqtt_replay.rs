//! `cmd/replay`: a subscriber that lost events downstream of the broker asks
//! for a seq range and gets those events again from a real `coldgate run`,
//! with their original `event_id`, `seq` and payload, then an answer naming
//! what was replayed and what the gateway does not hold; a request over the
//! bound is refused with an answer.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use coldgate_tests::{free_port, start_broker, start_gateway, Subscriber, TestConfig};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Value};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const PREFIX: &str = "coldgate/v1/test-gw";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replay_republishes_the_original_events_and_answers_what_it_holds() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(BIN, port);
    let mut cfg = TestConfig::new(dir.path());
    cfg.mqtt_port = Some(port);
    let mut sub = Subscriber::connect(port, &format!("{PREFIX}/#")).await;
    let mut gw = start_gateway(BIN, &cfg.write(), &dir.path().join("gw.log"));

    // First arrivals of seq 1..=4.
    let mut first: BTreeMap<u64, Value> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(40);
    while Instant::now() < deadline && (1..=4).any(|s| !first.contains_key(&s)) {
        if let Some((topic, v)) = sub.next(Duration::from_secs(1)).await {
            if topic.contains("/events/") {
                first.entry(v["seq"].as_u64().unwrap()).or_insert(v);
            }
        }
    }
    assert!(
        (1..=4).all(|s| first.contains_key(&s)),
        "{:?}",
        first.keys()
    );
    let last_known = *first.keys().last().unwrap();

    let mut opts = MqttOptions::new("replayer", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let ask = |body: Value| {
        let client = client.clone();
        async move {
            client
                .publish(
                    format!("{PREFIX}/cmd/replay"),
                    QoS::AtLeastOnce,
                    false,
                    body.to_string(),
                )
                .await
                .unwrap();
        }
    };
    // 2..=4, and a range running past what exists (the gateway's seqs keep
    // growing; far past them is certain not to exist yet).
    ask(json!({"request_id": "r1", "from_seq": 2, "to_seq": 4})).await;
    ask(json!({"request_id": "r2", "from_seq": 1_000_000, "to_seq": 1_000_002})).await;
    ask(json!({"request_id": "r3", "from_seq": 1, "to_seq": 5_000})).await;

    let mut again: BTreeMap<u64, Vec<Value>> = BTreeMap::new();
    let mut results: BTreeMap<String, Value> = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline && results.len() < 3 {
        if let Some((topic, v)) = sub.next(Duration::from_secs(1)).await {
            if topic == format!("{PREFIX}/cmd/replay/result") {
                results.insert(v["request_id"].as_str().unwrap().to_string(), v);
            } else if topic.contains("/events/") {
                let seq = v["seq"].as_u64().unwrap();
                if seq <= last_known {
                    again.entry(seq).or_default().push(v);
                }
            }
        }
    }
    assert_eq!(results.len(), 3, "{results:?}");
    let r1 = &results["r1"];
    assert_eq!(r1["ok"], true, "{r1}");
    assert_eq!(r1["replayed"], 3, "{r1}");
    assert_eq!(r1["missing"], json!([]), "{r1}");
    assert_eq!(r1["schema"], "coldgate.replay_result/1");
    for seq in 2..=4 {
        let copies = again
            .get(&seq)
            .unwrap_or_else(|| panic!("seq {seq} not replayed"));
        for copy in copies {
            assert_eq!(copy, &first[&seq], "the original event, unchanged");
        }
    }
    assert!(!again.contains_key(&1), "only what was asked");
    let r2 = &results["r2"];
    assert_eq!(r2["ok"], true, "{r2}");
    assert_eq!(r2["replayed"], 0);
    assert_eq!(r2["missing"], json!([1_000_000, 1_000_001, 1_000_002]));
    let r3 = &results["r3"];
    assert_eq!(r3["ok"], false, "{r3}");
    assert!(
        r3["errors"][0].as_str().unwrap().contains("at most 1000"),
        "{r3}"
    );
    assert!(gw.terminate(Duration::from_secs(20)).success());
}
