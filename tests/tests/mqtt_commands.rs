//! Operator commands over MQTT: load/unload on `{prefix}/cmd/manifest`,
//! answered on `.../result` only after ingest committed them.

use std::time::Duration;

use coldgate::daemon::Gateway;
use coldgate::store::Store;
use coldgate_tests::{free_port, start_broker, Subscriber, TestConfig};
use rumqttc::{AsyncClient, MqttOptions, QoS};

const BIN: &str = env!("CARGO_BIN_EXE_coldgate-under-test");
const CMD: &str = "coldgate/v1/test-gw/cmd/manifest";

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
        if v["command_id"].as_str() == id {
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

    // The operator's client; the gateway subscribes after its CONNACK.
    let mut opts = MqttOptions::new("operator", "127.0.0.1", port);
    opts.set_keep_alive(Duration::from_secs(30));
    let (client, mut eventloop) = AsyncClient::new(opts, 16);
    tokio::spawn(async move { while eventloop.poll().await.is_ok() {} });
    let mut link = gw.link.clone();
    tokio::time::timeout(Duration::from_secs(10), link.wait_for(|l| l.connected))
        .await
        .expect("the gateway connects")
        .expect("link");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let ok = ask(
        &client,
        &mut answers,
        Some("c1"),
        r#"{"action":"load","command_id":"c1","sscc":"106141412345678908","zone":"rear","loaded_at":"2026-11-25T18:00:00Z","items":[{"gtin":"09520123456788","lot":"ABC123","expiry":"2027-12-31"}]}"#,
    )
    .await;
    assert_eq!(ok["ok"], true, "{ok}");
    assert_eq!(ok["schema"], "coldgate.command_result/1");
    assert_eq!(ok["gateway_id"], "test-gw");

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
    let store = Store::open_existing(&config.storage.path).unwrap();
    let state: coldgate::excursion::EngineState = serde_json::from_slice(
        &store
            .state(coldgate::ingest::ENGINE_STATE)
            .unwrap()
            .expect("engine state stored"),
    )
    .unwrap();
    assert_eq!(
        state.manifest.stays.len(),
        1,
        "one stay, loaded and unloaded, was committed"
    );
}
