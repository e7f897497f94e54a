use tokio::sync::oneshot;

use super::*;
use crate::command::ManifestCommand;
use crate::event::now_ms;
use crate::excursion::EngineState;
use crate::manifest::{Item, LoadCommand, LoadTimeLimits};
use crate::store::Store;

const CONFIG: &str = r#"
gateway_id = "g"
[[profiles]]
id = "p"
limits = [{ quantity = "temperature", low = 2.0, high = 8.0 }]
[[zones]]
id = "rear"
profile = "p"
[[sensors]]
id = "s"
zone = "rear"
kind = "sim"
[sim]
"#;

fn load(sscc: &str, loaded_at_ms: i64, serials: &[&str]) -> ManifestCommand {
    ManifestCommand::Load(LoadCommand {
        sscc: sscc.into(),
        zone: "rear".into(),
        profile: None,
        loaded_at_ms,
        unloaded_at_ms: None,
        items: vec![Item {
            gtin: "09520123456788".into(),
            lot: "L".into(),
            expiry: None,
            serials: serials.iter().map(|s| s.to_string()).collect(),
        }],
    })
}

#[tokio::test]
async fn a_load_answer_carries_every_warning_the_load_raised_and_each_is_an_event() {
    let dir = tempfile::tempdir().unwrap();
    let config = crate::config::parse(CONFIG, "t").unwrap();
    let (store, writer) = Store::open(&dir.path().join("db.redb"), 1 << 20).unwrap();
    let (cmd_tx, cmd_rx) = mpsc::channel(4);
    let ingest = Ingest::new(
        writer,
        Engine::new(&config, EngineState::default()),
        IngestOptions {
            gateway_id: "g".into(),
            batch_interval: Duration::from_secs(3600),
            batch_size: 100,
            retention: Duration::from_secs(86400 * 3650),
            max_bytes: 1 << 30,
        },
    )
    .with_commands(cmd_rx)
    .with_load_time_limits(LoadTimeLimits {
        future_skew: Duration::from_secs(60),
        max_age: Duration::from_secs(3600),
    });
    let (_tx, readings) = mpsc::channel(8);
    let (_acked_tx, acked) = mpsc::unbounded_channel();
    let (committed, _rx) = watch::channel(0);
    let task = tokio::spawn(ingest.run(IngestChannels {
        readings,
        acked,
        committed,
    }));
    let send = |command| {
        let cmd_tx = cmd_tx.clone();
        async move {
            let (reply, answer) = oneshot::channel();
            cmd_tx
                .send(ManifestRequest {
                    request_id: ulid::Ulid::new().to_string(),
                    actor: "mqtt:cmd/manifest".into(),
                    command,
                    reply,
                })
                .await
                .unwrap();
            let a = answer.await.unwrap();
            serde_json::from_slice::<payload::CommandResult>(&a.payload).unwrap()
        }
    };
    let reasons = |a: &payload::CommandResult| -> Vec<&'static str> {
        a.warnings.iter().map(|w| w.reason.as_str()).collect()
    };
    let now = now_ms();
    let clean = send(load("106141412345678908", now, &["1", "2"])).await;
    assert!(clean.ok && clean.warnings.is_empty(), "{clean:?}");
    // Two minutes ahead (skew 1 min), serial 3 twice, serial 1 on board.
    let warned = send(load("106141412345678915", now + 120_000, &["3", "1", "3"])).await;
    assert!(warned.ok, "{warned:?}");
    assert_eq!(
        reasons(&warned),
        ["serial_on_board", "serial_duplicate", "loaded_at_future"],
        "{warned:?}"
    );
    // Two hours old (max age 1 h).
    let old = send(load("106141412345678922", now - 7_200_000, &[])).await;
    assert_eq!(reasons(&old), ["loaded_at_past"], "{old:?}");
    task.abort();

    let stored: Vec<String> = store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.topic == "events/lot")
        .map(|e| serde_json::from_slice::<serde_json::Value>(&e.payload).unwrap())
        .map(|v| v["reason"].as_str().unwrap().to_string())
        .collect();
    for r in [
        "serial_on_board",
        "serial_duplicate",
        "loaded_at_future",
        "loaded_at_past",
    ] {
        assert!(stored.iter().any(|s| s == r), "{r}: {stored:?}");
    }
}
