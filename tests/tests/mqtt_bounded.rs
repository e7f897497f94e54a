//! No message can stall the uplink: every payload a real `coldgate run`
//! publishes stays under `mqtt.max_payload`, an event naming more pallets
//! and serials than fit arrives in parts that merge back, hostile or huge
//! input is answered and echoed cut down, a command over the size limit is
//! refused with an answer on a link that stays up, a burst of commands gets
//! an answer each, and an entry stored too large to send is set aside so the
//! ones behind it flow.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use coldgate_tests::{
    free_port, http_get, http_post, start_broker, start_gateway, wait_for_port, wait_until,
    Subscriber,
};
use rumqttc::{AsyncClient, MqttOptions, QoS};
use serde_json::{json, Map, Value};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const PREFIX: &str = "coldgate/v1/big-gw";
const LIMIT: usize = 128 * 1024;

/// A gateway whose rear zone warms past 8 °C `after` (simulated; the
/// simulator runs 600× real time) and every 40 min after that.
fn config(dir: &Path, mqtt_port: u16, http_port: u16, max_payload: &str, after: &str) -> PathBuf {
    let text = format!(
        r#"gateway_id = "big-gw"
[storage]
path = "{db}"
[ingest]
batch_interval = "200ms"
[mqtt]
port = {mqtt_port}
reconnect_min = "100ms"
reconnect_max = "1s"
max_payload = "{max_payload}"
[http]
listen = "127.0.0.1:{http_port}"
[[profiles]]
id = "refrigerated"
limits = [{{ quantity = "temperature", low = 2.0, high = 8.0, delay = "0s" }}]
[[zones]]
id = "rear"
profile = "refrigerated"
[[sensors]]
id = "rear-1"
zone = "rear"
kind = "sim"
[sim]
speed = 600.0
reading_interval = "30s"
failures = [{{ zone = "rear", after = "{after}", lasts = "10m", every = "40m" }}]
"#,
        db = dir.join("coldgate.redb").display(),
    );
    let path = dir.join(format!("coldgate-{max_payload}.toml"));
    std::fs::write(&path, text).unwrap();
    path
}

/// A valid SSCC (extension 1, company prefix 0614141) for `n`.
fn sscc(n: u32) -> String {
    let body = format!("10614141{n:09}");
    let sum: u32 = body
        .bytes()
        .rev()
        .enumerate()
        .map(|(i, b)| u32::from(b - b'0') * if i % 2 == 0 { 3 } else { 1 })
        .sum();
    format!("{body}{}", (10 - sum % 10) % 10)
}

/// A load of pallet `n` holding `serials` serials of one lot.
fn load(n: u32, request_id: &str, serials: usize) -> Value {
    json!({
        "action": "load",
        "request_id": request_id,
        "sscc": sscc(n),
        "zone": "rear",
        "loaded_at": "2020-01-01T00:00:00Z",
        "items": [{
            "gtin": "09520123456788",
            "lot": format!("LOT{n}"),
            "expiry": "2030-12-31",
            "serials": (0..serials).map(|s| format!("S{n}-{s:06}")).collect::<Vec<_>>(),
        }],
    })
}

fn operator(port: u16) -> AsyncClient {
    let mut opts = MqttOptions::new(
        format!("operator-{}", rand::random::<u32>()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    opts.set_max_packet_size(4 << 20, 4 << 20);
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

async fn send(client: &AsyncClient, body: Vec<u8>) {
    client
        .publish(
            format!("{PREFIX}/cmd/manifest"),
            QoS::AtLeastOnce,
            false,
            body,
        )
        .await
        .expect("queued");
}

/// Waits for the answer carrying `id`.
async fn answer(answers: &mut Subscriber, id: &str) -> Value {
    let deadline = Instant::now() + Duration::from_secs(30);
    while Instant::now() < deadline {
        if let Some((_, v)) = answers.next(Duration::from_secs(1)).await {
            if v["request_id"] == id {
                return v;
            }
        }
    }
    panic!("no answer to {id} within 30 s");
}

/// Waits until the gateway is connected and subscribed (its retained status
/// says online).
async fn online(port: u16) {
    let mut status = Subscriber::connect(port, &format!("{PREFIX}/status")).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while Instant::now() < deadline {
        if let Some((_, v)) = status.next(Duration::from_secs(1)).await {
            if v["state"] == "online" {
                // It subscribes to cmd/manifest right after its CONNACK.
                tokio::time::sleep(Duration::from_millis(300)).await;
                return;
            }
        }
    }
    panic!("the gateway did not come online");
}

fn size(v: &Value) -> usize {
    serde_json::to_vec(v).unwrap().len()
}

/// Every serial an excursion payload names, with its pallet.
fn serials(affected: &Value) -> BTreeSet<(String, String)> {
    let mut out = BTreeSet::new();
    for p in affected.as_array().unwrap() {
        for item in p["items"].as_array().unwrap() {
            for s in item["serials"].as_array().unwrap() {
                out.insert((
                    p["sscc"].as_str().unwrap().to_string(),
                    s.as_str().unwrap().to_string(),
                ));
            }
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn huge_and_hostile_commands_are_answered_small_and_every_later_event_is_delivered() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let http_port = free_port();
    let _broker = start_broker(BIN, port);
    let mut events = Subscriber::connect(port, &format!("{PREFIX}/events/#")).await;
    let mut answers = Subscriber::connect(port, &format!("{PREFIX}/cmd/manifest/result")).await;
    let log = dir.path().join("gw.log");
    let cfg = config(dir.path(), port, http_port, "128KiB", "3h");
    let mut gw = start_gateway(BIN, &cfg, &log);
    online(port).await;
    let client = operator(port);

    // A refused MQTT load with a 200 kB SSCC.
    let mut huge = load(1, "huge-sscc", 1);
    huge["sscc"] = json!("1".repeat(200_000));
    send(&client, serde_json::to_vec(&huge).unwrap()).await;
    let a = answer(&mut answers, "huge-sscc").await;
    assert_eq!(a["ok"], false, "{a}");
    assert!(
        size(&a) < 8 * 1024,
        "the answer echoes it cut: {} bytes",
        size(&a)
    );

    // A refused 60 kB load over HTTP from loopback: a bad GTIN on 2,000 items.
    let items: Vec<Value> = (0..2_000)
        .map(|i| json!({"gtin": "12345", "lot": format!("L{i}")}))
        .collect();
    let body = json!({"sscc": sscc(2), "zone": "rear", "items": items}).to_string();
    assert!(body.len() > 60_000, "{}", body.len());
    let r = http_post(
        &format!("http://127.0.0.1:{http_port}/api/manifest/load"),
        &body,
        None,
    );
    assert_eq!(r.status, 422, "{}", r.body);

    // A command over the documented size (1 MiB): refused with an answer,
    // on the same connection.
    let big = serde_json::to_vec(&load(3, "too-big", 90_000)).unwrap();
    assert!(big.len() > coldgate::command::COMMAND_MAX_BYTES);
    send(&client, big).await;
    let a = answer(&mut answers, "too-big").await;
    assert_eq!(a["ok"], false, "{a}");
    assert!(
        a["errors"][0].as_str().unwrap().contains("at most 1048576"),
        "{a}"
    );
    // And the next command is answered as usual.
    send(&client, serde_json::to_vec(&load(4, "after", 3)).unwrap()).await;
    assert_eq!(answer(&mut answers, "after").await["ok"], true);

    // Every audit event of those arrives, under the limit, and so does the
    // excursion raised after them (the sim warms the rear zone at 3 h,
    // about 18 s after the start).
    let mut audit_seqs = BTreeMap::new();
    let mut excursion_after = None;
    let deadline = Instant::now() + Duration::from_secs(60);
    while Instant::now() < deadline && excursion_after.is_none() {
        let Some((topic, v)) = events.next(Duration::from_secs(1)).await else {
            continue;
        };
        assert!(size(&v) <= LIMIT, "{topic}: {} bytes", size(&v));
        let seq = v["seq"].as_u64().unwrap();
        if topic.ends_with("/audit") && v["phase"] == "manifest_command" {
            audit_seqs.insert(v["details"]["request_id"].to_string(), seq);
        }
        if topic.ends_with("/excursion")
            && audit_seqs.len() >= 3
            && audit_seqs.values().all(|s| *s < seq)
        {
            excursion_after = Some(v);
        }
    }
    // The command over the size limit is refused before it reaches ingest
    // (like any unreadable command): answered, not audited.
    assert_eq!(
        audit_seqs.len(),
        3,
        "one audit event per command ingest decided: {audit_seqs:?}"
    );
    assert!(
        excursion_after.is_some(),
        "an excursion raised after the huge inputs is delivered"
    );
    let log_text = std::fs::read_to_string(&log).unwrap();
    assert_eq!(
        log_text.matches("Connected to the MQTT broker.").count(),
        1,
        "the link never dropped"
    );
    assert!(gw.terminate(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn five_pallets_of_2500_serials_make_an_excursion_in_parts_that_merge_back() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(BIN, port);
    let mut excursions = Subscriber::connect(port, &format!("{PREFIX}/events/excursion")).await;
    let mut answers = Subscriber::connect(port, &format!("{PREFIX}/cmd/manifest/result")).await;
    let cfg = config(dir.path(), port, free_port(), "128KiB", "2h");
    let mut gw = start_gateway(BIN, &cfg, &dir.path().join("gw.log"));
    online(port).await;
    let client = operator(port);
    let mut expected = BTreeSet::new();
    for n in 0..5 {
        let cmd = load(n, &format!("p{n}"), 2_500);
        expected.extend(serials(&json!([{
            "sscc": cmd["sscc"], "items": cmd["items"],
        }])));
        send(&client, serde_json::to_vec(&cmd).unwrap()).await;
        assert_eq!(answer(&mut answers, &format!("p{n}")).await["ok"], true);
    }
    assert_eq!(expected.len(), 12_500);

    // The first excursion started after the loads, in parts.
    let mut parts: Vec<Value> = Vec::new();
    let mut later = None;
    let deadline = Instant::now() + Duration::from_secs(90);
    while Instant::now() < deadline && later.is_none() {
        let Some((_, v)) = excursions.next(Duration::from_secs(1)).await else {
            continue;
        };
        assert!(size(&v) <= LIMIT, "{} bytes", size(&v));
        let whole = parts.first().and_then(|p| p["parts"].as_u64());
        match whole {
            Some(n) if parts.len() as u64 == n => later = Some(v),
            _ if v["phase"] == "started" && v["parts"].is_u64() => parts.push(v),
            Some(_) => parts.push(v),
            None => {}
        }
    }
    assert!(
        later.is_some(),
        "an event after the parted one is delivered"
    );
    let n = parts[0]["parts"].as_u64().unwrap() as usize;
    assert!(n >= 2, "{n}");
    assert_eq!(parts.len(), n);
    let first_seq = parts[0]["seq"].as_u64().unwrap();
    for (i, p) in parts.iter().enumerate() {
        assert_eq!(p["part"], i + 1, "parts arrive in order");
        assert_eq!(p["seq"], first_seq + i as u64, "one seq per part, no gap");
        assert_eq!(p["event_id"], parts[0]["event_id"]);
        assert_eq!(p["excursion_id"], parts[0]["excursion_id"]);
    }
    let maps: Vec<Map<String, Value>> = parts
        .iter()
        .map(|p| {
            let mut m = p.as_object().unwrap().clone();
            m.insert("seq".into(), parts[0]["seq"].clone());
            m
        })
        .collect();
    let merged = coldgate::event::parts::merge(&maps, "affected").expect("merges");
    assert_eq!(serials(&merged["affected"]), expected);
    assert_eq!(merged["affected"].as_array().unwrap().len(), 5);

    // The retained manifest is split the same way, on manifest and
    // manifest/part/{k}.
    let mut manifest = Subscriber::connect(port, &format!("{PREFIX}/manifest/#")).await;
    let mut retained = BTreeMap::new();
    while let Some((topic, v)) = manifest.next(Duration::from_secs(2)).await {
        assert!(size(&v) <= LIMIT);
        retained.insert(v["part"].as_u64().unwrap_or(0), (topic, v));
    }
    let count = retained[&1].1["parts"].as_u64().unwrap();
    assert!(count >= 2);
    assert_eq!(retained.len() as u64, count, "{:?}", retained.keys());
    assert_eq!(retained[&1].0, format!("{PREFIX}/manifest"));
    assert_eq!(retained[&2].0, format!("{PREFIX}/manifest/part/2"));
    let maps: Vec<Map<String, Value>> = retained
        .values()
        .map(|(_, v)| v.as_object().unwrap().clone())
        .collect();
    let on_board = coldgate::event::parts::merge(&maps, "pallets").unwrap();
    assert_eq!(serials(&on_board["pallets"]), expected);
    assert!(gw.terminate(Duration::from_secs(20)).success());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_of_1000_commands_gets_1000_answers() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(BIN, port);
    let mut answers = Subscriber::connect(port, &format!("{PREFIX}/cmd/manifest/result")).await;
    let cfg = config(dir.path(), port, free_port(), "128KiB", "100h");
    let mut gw = start_gateway(BIN, &cfg, &dir.path().join("gw.log"));
    online(port).await;
    let client = operator(port);
    for n in 0..1_000 {
        send(
            &client,
            serde_json::to_vec(&load(n, &format!("b{n}"), 1)).unwrap(),
        )
        .await;
    }
    let mut seen = BTreeMap::new();
    let deadline = Instant::now() + Duration::from_secs(120);
    while Instant::now() < deadline && seen.len() < 1_000 {
        if let Some((_, v)) = answers.next(Duration::from_secs(1)).await {
            seen.insert(
                v["request_id"].as_str().unwrap().to_string(),
                v["ok"].clone(),
            );
        }
    }
    assert_eq!(seen.len(), 1_000, "answers to distinct requests");
    let refused: Vec<_> = seen.iter().filter(|(_, ok)| **ok != true).collect();
    assert!(refused.is_empty(), "every load was applied: {refused:?}");
    let on_board = http_get(
        &format!("http://127.0.0.1:{}/api/manifest", http_port_of(dir.path())),
        None,
    );
    assert_eq!(
        on_board.json()["pallets"].as_array().map(Vec::len),
        Some(1_000)
    );
    assert!(gw.terminate(Duration::from_secs(20)).success());
}

/// The HTTP port written in the test's configuration.
fn http_port_of(dir: &Path) -> u16 {
    let text = std::fs::read_to_string(dir.join("coldgate-128KiB.toml")).unwrap();
    let at = text.find("listen = \"127.0.0.1:").unwrap() + "listen = \"127.0.0.1:".len();
    text[at..]
        .split('"')
        .next()
        .and_then(|p| p.parse().ok())
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_entry_stored_too_large_to_send_is_set_aside_and_the_rest_flow() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let http_port = free_port();
    // Offline, with a 1 MiB limit: the excursion naming 12,500 serials is
    // stored whole (about 300 kB).
    let cfg = config(dir.path(), port, http_port, "1MiB", "1h");
    let mut gw = start_gateway(BIN, &cfg, &dir.path().join("gw1.log"));
    let api = format!("http://127.0.0.1:{http_port}");
    wait_for_port(http_port, Duration::from_secs(20));
    for n in 0..5 {
        let mut cmd = load(n, &format!("p{n}"), 2_500);
        cmd.as_object_mut().unwrap().remove("action");
        let r = http_post(&format!("{api}/api/manifest/load"), &cmd.to_string(), None);
        assert_eq!(r.status, 200, "{}", r.body);
    }
    let big_seq = wait_until(Duration::from_secs(60), "a large excursion event", || {
        let evs = http_get(&format!("{api}/api/events?kind=excursion"), None).json();
        evs["events"].as_array()?.iter().find_map(|e| {
            let p = &e["payload"];
            (size(p) > LIMIT && p["phase"] == "started").then(|| e["seq"].as_u64())?
        })
    });
    assert!(gw.terminate(Duration::from_secs(20)).success());

    // Online with the 128 KiB limit: that entry cannot be sent.
    let _broker = start_broker(BIN, port);
    let mut events = Subscriber::connect(port, &format!("{PREFIX}/events/#")).await;
    let cfg = config(dir.path(), port, http_port, "128KiB", "1h");
    let mut gw = start_gateway(BIN, &cfg, &dir.path().join("gw2.log"));
    // Every excursion naming the 12,500 serials is over the limit (started
    // and ended): each is set aside, and each says so.
    let mut seqs = BTreeSet::new();
    let mut set_aside = BTreeSet::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    // Until the large entry is set aside, a later one arrived, and every
    // seq up to the newest is accounted for (sent or set aside): the notice
    // for an entry set aside comes after the entries behind it.
    let done = |seqs: &BTreeSet<u64>, set_aside: &BTreeSet<u64>| {
        let newest = seqs.iter().max().copied().unwrap_or(0);
        set_aside.contains(&big_seq)
            && newest > big_seq
            && (1..=newest).all(|s| seqs.contains(&s) || set_aside.contains(&s))
    };
    while Instant::now() < deadline && !done(&seqs, &set_aside) {
        if let Some((_, v)) = events.next(Duration::from_secs(1)).await {
            assert!(size(&v) <= LIMIT);
            if v["kind"] == "entry_set_aside" {
                set_aside.insert(v["set_aside_seq"].as_u64().unwrap());
            }
            seqs.insert(v["seq"].as_u64().unwrap());
        }
    }
    assert!(set_aside.contains(&big_seq), "{set_aside:?}");
    assert!(
        set_aside.iter().all(|s| !seqs.contains(s)),
        "an entry set aside is never sent: {set_aside:?} {seqs:?}"
    );
    let newest = *seqs.iter().max().unwrap();
    assert!(newest > big_seq);
    assert!(
        (1..=newest).all(|s| seqs.contains(&s) || set_aside.contains(&s)),
        "every other entry arrives: {seqs:?}, set aside {set_aside:?}"
    );
    let status = wait_until(Duration::from_secs(20), "status counts them", || {
        let s = http_get(&format!("{api}/api/status"), None).json();
        (s["outbox"]["set_aside"].as_u64()? >= set_aside.len() as u64).then_some(s)
    });
    let _ = status;
    assert!(gw.terminate(Duration::from_secs(20)).success());
}
