use tokio::sync::oneshot;

use super::*;
use crate::audit::AuditEntry;
use crate::command::ManifestCommand;
use crate::event::now_ms;
use crate::excursion::EngineState;
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
[[pallets]]
sscc = "106141412345678908"
zone = "rear"
loaded_at = "2026-01-01T00:00:00Z"
items = [{ gtin = "09520123456788", lot = "L", serials = ["1"] }]
"#;

#[tokio::test]
async fn manifest_commands_are_audited_and_published_as_audit_events_in_the_same_commit() {
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
    .with_commands(cmd_rx);
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
            let request_id = ulid::Ulid::new().to_string();
            cmd_tx
                .send(ManifestRequest {
                    request_id,
                    actor: "mqtt:cmd/manifest".into(),
                    command,
                    reply,
                })
                .await
                .unwrap();
            answer.await.unwrap()
        }
    };
    let ok = send(ManifestCommand::Unload {
        sscc: "106141412345678908".into(),
        at_ms: now_ms(),
    })
    .await;
    assert!(ok.ok, "refused: {}", String::from_utf8_lossy(&ok.payload));
    // The answer comes after the commit: the entry and its event are stored.
    assert_eq!(store.audit_rows().unwrap().len(), 1);
    let refused = send(ManifestCommand::Unload {
        sscc: "106141412345678915".into(),
        at_ms: now_ms(),
    })
    .await;
    assert!(!refused.ok);
    task.abort();

    let entries: Vec<AuditEntry> = store
        .audit_rows()
        .unwrap()
        .iter()
        .map(|(_, b)| AuditEntry::decode(b).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "refused commands are audited too");
    assert!(entries.iter().all(|e| e.kind == "manifest_command"));
    let details: Vec<serde_json::Value> = entries
        .iter()
        .map(|e| serde_json::from_str(&e.details).unwrap())
        .collect();
    assert_eq!(details[0]["accepted"], true);
    assert_eq!(details[1]["accepted"], false);
    assert_eq!(details[1]["sscc"], "106141412345678915");
    assert!(store.verify_audit().unwrap().is_ok());

    let events: Vec<serde_json::Value> = store
        .events_between(i64::MIN, i64::MAX)
        .unwrap()
        .into_iter()
        .filter(|e| e.topic == "events/audit")
        .map(|e| serde_json::from_slice(&e.payload).unwrap())
        .collect();
    assert_eq!(events.len(), 2);
    for (i, ev) in events.iter().enumerate() {
        assert_eq!(ev["schema"], "coldgate.audit/1");
        assert_eq!(ev["phase"], "manifest_command");
        assert_eq!(ev["audit_seq"], i as u64 + 1);
        assert_eq!(ev["actor"], "mqtt:cmd/manifest");
        assert_eq!(ev["details"], details[i]);
    }
}
