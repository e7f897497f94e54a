//! Operator commands over MQTT: load/unload on `{prefix}/cmd/manifest`,
//! answered on `.../result` only after ingest committed them; a repeated
//! `request_id` has effect once, also across a restart; the retained
//! `{prefix}/manifest` says what is on board.

use std::time::Duration;

use coldgate::daemon::Gateway;
use coldgate::store::Store;
use coldgate_tests::{free_port, start_broker, Subscriber, TestConfig};
use rumqttc::{AsyncClient, MqttOptions, QoS};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const CMD: &str = "coldgate/v1/test-gw/cmd/manifest";
const MANIFEST: &str = "coldgate/v1/test-gw/manifest";
const LOAD_C1: &str = r#"{"action":"load","request_id":"c1","sscc":"106141412345678908","zone":"rear","loaded_at":"2026-11-25T18:00:00Z","items":[{"gtin":"09520123456788","lot":"ABC123","expiry":"2027-12-31"}]}"#;

/// The first message a subscriber that connects now gets on the retained
/// manifest topic: the retained one.
async fn retained_manifest(port: u16) -> serde_json::Value {
    let mut sub = Subscriber::connect(port, MANIFEST).await;
    let (topic, v) = sub
        .next(Duration::from_secs(10))
        .await
        .expect("a retained manifest");
    assert_eq!(topic, MANIFEST);
    v
}

/// The committed engine state's pallet stays.
fn stays(path: &std::path::Path) -> usize {
    let store = Store::open_existing(path).unwrap();
    let state = coldgate::snapshot::load_engine_state(&store).unwrap();
    state.manifest.stays.len()
}

/// The operator's client, polled in the background.
fn operator(port: u16) -> AsyncClient {
    let mut opts = MqttOptions::new(
        format!("operator-{}", rand::random::<u32>()),
        "127.0.0.1",
        port,
    );
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    client
}

async fn connected(gw: &Gateway) {
    let mut link = gw.link.clone();
    tokio::time::timeout(Duration::from_secs(10), link.wait_for(|l| l.connected))
        .await
        .expect("the gateway connects")
        .expect("link");
    // The gateway subscribes to cmd/manifest right after its CONNACK.
    tokio::time::sleep(Duration::from_millis(500)).await;
}

/// Sends one command and returns the answer carrying `id` (or any answer
/// without an id when `id` is None).
async fn ask(
    client: &AsyncClient,
    answers: &mut Subscriber,
    id: Option<&str>,
    body: &str,
) -> serde_json::Value {
    client
        .publish(CMD, QoS::AtLeastOnce, false, body.as_bytes().to_vec())
        .await
        .expect("queued");
    loop {
        let (_, v) = answers
            .next(Duration::from_secs(15))
            .await
            .unwrap_or_else(|| panic!("no answer to {body}"));
        if v["request_id"].as_str() == id {
            return v;
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_and_unload_commands_are_applied_by_ingest_and_answered_after_commit() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let _broker = start_broker(BIN, port);
    let mut cfg = TestConfig::new(dir.path());
    cfg.mqtt_port = Some(port);
    let config = coldgate::config::load(&cfg.write()).expect("config");
    let mut answers = Subscriber::connect(port, &format!("{CMD}/result")).await;
    let gw = Gateway::start(&config, Vec::new()).expect("starts");

    let client = operator(port);
    connected(&gw).await;

    let empty = retained_manifest(port).await;
    assert_eq!(empty["schema"], "coldgate.manifest/1", "{empty}");
    assert_eq!(empty["pallets"], serde_json::json!([]), "{empty}");

    let ok = ask(&client, &mut answers, Some("c1"), LOAD_C1).await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["duplicate"], false, "{ok}");
    assert_eq!(ok["schema"], "coldgate.command_result/1");
    assert_eq!(ok["gateway_id"], "test-gw");
    // Loaded more than manifest.loaded_at_max_age (7 d) ago: accepted, and
    // the answer says so.
    assert_eq!(ok["warnings"][0]["reason"], "loaded_at_past", "{ok}");

    // The same request again: answered with the first answer, not applied.
    let repeat = ask(&client, &mut answers, Some("c1"), LOAD_C1).await;
    assert_eq!(repeat["duplicate"], true, "{repeat}");
    assert_eq!(repeat["ok"], true, "{repeat}");
    assert_eq!(repeat["at"], ok["at"], "the original answer: {repeat}");
    assert_eq!(repeat["warnings"], ok["warnings"], "{repeat}");

    // A subscriber that connects after the change gets the retained manifest.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let loaded = retained_manifest(port).await;
    let pallets = loaded["pallets"].as_array().expect("pallets");
    assert_eq!(pallets.len(), 1, "{loaded}");
    assert_eq!(pallets[0]["sscc"], "106141412345678908");
    assert_eq!(pallets[0]["zone"], "rear");
    assert_eq!(pallets[0]["profile"], "refrigerated", "the zone's profile");
    assert_eq!(pallets[0]["loaded_at"], "2026-11-25T18:00:00.000Z");
    assert_eq!(pallets[0]["items"][0]["lot"], "ABC123");

    // The first name of the id still works.

    let refused = ask(
        &client,
        &mut answers,
        Some("c2"),
        r#"{"action":"load","command_id":"c2","sscc":"106141412345678909","zone":"hold","items":[{"gtin":"09520123456788","lot":"X"}]}"#,
    )
    .await;
    assert_eq!(refused["ok"], false, "{refused}");
    let errors = refused["errors"].to_string();
    assert!(
        errors.contains("sscc") && errors.contains("hold"),
        "{errors}"
    );

    let unloaded = ask(
        &client,
        &mut answers,
        Some("c3"),
        r#"{"action":"unload","command_id":"c3","sscc":"106141412345678908"}"#,
    )
    .await;
    assert_eq!(unloaded["ok"], true, "{unloaded}");
    tokio::time::sleep(Duration::from_millis(500)).await;
    let after_unload = retained_manifest(port).await;
    assert_eq!(
        after_unload["pallets"],
        serde_json::json!([]),
        "{after_unload}"
    );

    let again = ask(
        &client,
        &mut answers,
        Some("c4"),
        r#"{"action":"unload","command_id":"c4","sscc":"106141412345678908"}"#,
    )
    .await;
    assert_eq!(again["ok"], false, "{again}");
    assert!(
        again["errors"].to_string().contains("not on board"),
        "{again}"
    );

    let garbage = ask(&client, &mut answers, None, "{not json").await;
    assert_eq!(garbage["ok"], false, "{garbage}");
    assert!(
        garbage["errors"]
            .to_string()
            .contains("not a manifest command"),
        "{garbage}"
    );

    gw.stop().await.expect("stops");
    assert_eq!(
        stays(&config.storage.path),
        1,
        "one stay, loaded and unloaded, was committed"
    );

    // After a restart the request ids are still known: the load is not
    // applied a second time, the refusal is repeated as it was.
    let gw = Gateway::start(&config, Vec::new()).expect("restarts");
    connected(&gw).await;
    let repeat = ask(&client, &mut answers, Some("c1"), LOAD_C1).await;
    assert_eq!(repeat["duplicate"], true, "{repeat}");
    assert_eq!(repeat["ok"], true, "{repeat}");
    assert_eq!(repeat["at"], ok["at"], "{repeat}");
    let refused_again = ask(
        &client,
        &mut answers,
        Some("c2"),
        r#"{"action":"load","request_id":"c2","sscc":"106141412345678908","zone":"rear","items":[{"gtin":"09520123456788","lot":"X"}]}"#,
    )
    .await;
    assert_eq!(refused_again["duplicate"], true, "{refused_again}");
    assert_eq!(refused_again["ok"], false, "{refused_again}");
    assert_eq!(
        refused_again["errors"], refused["errors"],
        "{refused_again}"
    );
    let manifest = retained_manifest(port).await;
    assert_eq!(manifest["pallets"], serde_json::json!([]), "{manifest}");
    gw.stop().await.expect("stops");
    assert_eq!(
        stays(&config.storage.path),
        1,
        "the repeated load had no effect"
    );
    let store = Store::open_existing(&config.storage.path).unwrap();
    assert_eq!(
        store.commands_remembered().unwrap(),
        4,
        "c1 to c4 remembered"
    );
}
